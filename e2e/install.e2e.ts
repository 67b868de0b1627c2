/**
 * The packages outside this repository (issue "one front door and an installable SDK"): the
 * tarballs `npm pack` makes, installed into a fresh Node project and a fresh Vite app
 * (e2e/support/install.ts). The anchor runs from the installed `@can-swarm/node`; the Vite app's
 * page, built by Vite and served by `vite preview` from another origin, embeds a verifier in about
 * twenty lines and runs in Chromium; the Node project's `worker.mjs` posts a NEED for a capability
 * of its own and works it. The NEED reaches FINAL in both, attested by the page.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, type StartedAnchor, startAnchorProcess } from '../test-support/anchor-process.ts'
import { freePort } from '../test-support/etcd-cluster.ts'
import { until } from '../test-support/peers.ts'
import { need } from '../test-support/prerequisites.ts'
import { type LaunchedBrowser, launchChromium } from './support/chromium.ts'
import { prepareInstall } from './support/install.ts'

const chromium = need('chromium', import.meta.filename)
/** What the installed programs run with: none of this repository's source conditions. */
const CLEAN_ENV = { ...process.env, NODE_OPTIONS: '' }
const TEXT = 'hello from outside the repository'

let dir: string
let scratch: string | undefined
let anchor: StartedAnchor | undefined
let preview: ChildProcess | undefined
let worker: ChildProcess | undefined
let browser: LaunchedBrowser | undefined

beforeAll(async () => {
  if (!chromium) return
  scratch = await mkdtemp(join(tmpdir(), 'can-swarm-install-'))
  if (process.env.CAN_SWARM_INSTALL_DIR) dir = process.env.CAN_SWARM_INSTALL_DIR
  else {
    dir = join(scratch, 'apps')
    prepareInstall(dir, (line) => console.log(`[install] ${line}`))
  }
}, 900_000)

afterAll(async () => {
  worker?.kill('SIGKILL')
  preview?.kill('SIGTERM')
  await browser?.close()
  await anchor?.stop()
  killAnchors()
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

describe.skipIf(!chromium)('the packages installed from their tarballs', () => {
  it('a Vite page embeds a verifier, a Node project works a capability of its own, and their NEED is FINAL in both', {
    timeout: 300_000,
  }, async () => {
    const nodeApp = join(dir, 'node-app')
    const viteApp = join(dir, 'vite-app')
    // The installed command names itself as installed, not as the repository's `node packages/node`.
    const bin = join(nodeApp, 'node_modules', '.bin', 'can-swarm-anchor')
    const usage = execFileSync(process.execPath, [bin, '--help'], {
      encoding: 'utf8',
      env: CLEAN_ENV,
    })
    expect(usage).toMatch(/^Usage: can-swarm-anchor /)
    anchor = await startAnchorProcess(
      ['--data', join(scratch!, 'anchor'), '--allowed-origins', 'http://127.0.0.1:*', '--log-level', 'info'],
      { entry: join(nodeApp, 'node_modules', '@can-swarm', 'node'), env: CLEAN_ENV, readyTimeoutMs: 90_000 },
    )
    const ws = anchor.multiaddrs.find((address) => address.includes('/ws/'))!
    const tcp = anchor.multiaddrs.find((address) => address.includes('/tcp/') && !address.includes('/ws'))!

    // The page, from another origin than the anchor's.
    const port = await freePort()
    preview = spawn(
      process.execPath,
      [
        join('node_modules', 'vite', 'bin', 'vite.js'),
        'preview',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--strictPort',
      ],
      { cwd: viteApp, env: CLEAN_ENV, stdio: 'ignore' },
    )
    const origin = `http://127.0.0.1:${port}`
    await until(
      'vite preview',
      () =>
        fetch(origin)
          .then((r) => (r.ok ? true : undefined))
          .catch(() => undefined),
      60_000,
    )
    browser = await launchChromium()
    const page = await (await browser.newContext()).newPage()
    const pageErrors: string[] = []
    page.on('pageerror', (error) => pageErrors.push(String(error)))
    await page.goto(`${origin}/?${new URLSearchParams({ anchor: anchor.url, ws })}`)
    await page.waitForFunction(
      () => (globalThis as { swarmPeer?: unknown }).swarmPeer !== undefined,
      undefined,
      {
        timeout: 60_000,
      },
    )
    const verifier = await page.evaluate(
      () => (globalThis as unknown as { swarmPeer: { did: string } }).swarmPeer.did,
    )
    expect(pageErrors).toEqual([])

    // The worker: plain JavaScript in a project of its own.
    const events: Record<string, unknown>[] = []
    let stderr = ''
    worker = spawn(process.execPath, ['worker.mjs', anchor.url, tcp, TEXT], { cwd: nodeApp, env: CLEAN_ENV })
    let buffered = ''
    worker.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop()!
      for (const line of lines) if (line.startsWith('{')) events.push(JSON.parse(line))
    })
    worker.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-8000)
    })
    const final = await until(
      'the worker’s NEED FINAL',
      () => {
        const last = events.find((event) => event.event === 'final' || event.event === 'timeout')
        if (last?.event === 'timeout')
          throw new Error(`the NEED did not finish: ${JSON.stringify(last)}\n${stderr}`)
        return last
      },
      180_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\nworker events: ${JSON.stringify(events)}\nstderr: ${stderr}`)
    })
    expect(final.output).toBe(`${TEXT.toUpperCase()}!`)
    expect(final.attesters).toContain(verifier)

    // The page followed the same thread to FINAL.
    const needId = final.need as string
    const pageFinal = await page.waitForFunction(
      (thread) => {
        type Peer = {
          agent: { replica(id: string): { state: { tasks: Map<string, { state: string }> } } | undefined }
        }
        const peer = (globalThis as unknown as { swarmPeer: Peer }).swarmPeer
        const tasks = [...(peer.agent.replica(thread)?.state.tasks.values() ?? [])]
        return tasks.some((task) => task.state === 'FINAL')
      },
      needId,
      { timeout: 60_000 },
    )
    expect(await pageFinal.jsonValue()).toBe(true)
  })
})
