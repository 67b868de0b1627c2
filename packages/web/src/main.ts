/**
 * Entry of the web app: one peer per browser profile (its identity lives in IndexedDB, and two
 * tabs with one key would be two libp2p nodes with one peer id), so the tab first takes a Web Lock;
 * a second tab of the same profile says so instead of starting. Then: storage, peer, UI. Automerge's
 * binary WASM and the network's policy bundle (packages/peer/policy-bundle: WASM and manifest) are assets of the
 * build (only their URLs are in the page's code), fetched once the peer starts.
 */
import automergeWasm from '@automerge/automerge/automerge.wasm?url'
import policyManifest from '@can-swarm/peer/policy-bundle/base.json?url'
import policyWasm from '@can-swarm/peer/policy-bundle/base.wasm?url'
import { SwarmSession } from './app/session.ts'
import { TabStorage } from './app/storage.ts'
import { mountApp } from './ui/app.ts'
import { h } from './ui/dom.ts'

const root = document.getElementById('app')!
const LOCK = 'can-swarm-peer'

function fail(title: string, detail: string, testId: string): void {
  root.replaceChildren(
    h(
      'div',
      { class: 'banner offline', role: 'alert', 'data-testid': testId },
      h('strong', {}, `${title} `),
      detail,
    ),
  )
}

async function start(): Promise<void> {
  const storage = await TabStorage.open()
  const session = await SwarmSession.start({
    storage,
    automergeWasm,
    policy: { wasm: policyWasm, manifest: policyManifest },
  })
  mountApp(root, session)
}

function main(): void {
  const run = () =>
    start().catch((error: unknown) =>
      fail(
        'This tab could not start its peer.',
        error instanceof Error ? error.message : String(error),
        'fatal',
      ),
    )
  if (!('locks' in navigator)) {
    void run()
    return
  }
  void navigator.locks.request(LOCK, { ifAvailable: true }, async (lock) => {
    if (!lock) {
      fail(
        'CAN Swarm is already running in another tab of this browser.',
        'Your identity can be one peer at a time: use that tab, or open a private window for a second identity.',
        'already-running',
      )
      return
    }
    await run()
    // Hold the lock for as long as this tab lives.
    await new Promise(() => undefined)
  })
}

main()
