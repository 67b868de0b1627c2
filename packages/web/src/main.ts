/** Entry of the web app: open storage, start the tab's peer, mount the UI. */
import { SwarmSession } from './app/session.ts'
import { TabStorage } from './app/storage.ts'
import { mountApp } from './ui/app.ts'
import { h } from './ui/dom.ts'

const root = document.getElementById('app')!

async function main(): Promise<void> {
  const storage = await TabStorage.open()
  const session = await SwarmSession.start({ storage })
  mountApp(root, session)
}

main().catch((error: unknown) => {
  root.replaceChildren(
    h(
      'div',
      { class: 'banner offline', role: 'alert', 'data-testid': 'fatal' },
      h('strong', {}, 'This tab could not start its peer. '),
      error instanceof Error ? error.message : String(error),
    ),
  )
})
