/**
 * End to end in real Chromium against a real anchor process: two tabs join the anchor's network
 * (its signed genesis, verified in the tab), see each other and hold a direct WebRTC connection;
 * tab B joins the verifier pool as a stranger would (faucet credits, then a stake declared in a
 * manifest signed in the tab) and the anchor adopts the new pool; the anchor dies (both tabs say
 * so) and returns on the same data; tab A gets its credits from the faucet and posts a NEED, a
 * Node worker does the work, tab B's verifier (the only staked one, so the committee) attests, the
 * anchor grants the leases and finalizes; tab A sees FINAL, the result artifact and a verified
 * audit trail; a reload keeps identity and history; an anchor whose data directory was reset
 * serves another network, which tab A follows without replaying the old one's envelopes into it.
 * Screenshots of the main views go to test-results/e2e/.
 */
import { mkdirSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, builtinCapabilities, createIdentity, fetchNetwork } from '@can-swarm/peer'
import { createHeliaArtifacts, type HeliaArtifacts } from '@can-swarm/peer/artifacts'
import { attachAgent, createBus, createNetwork, type Network, systemClock } from '@can-swarm/peer/net'
import type { Page } from 'playwright'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { need } from '../test-support/prerequisites.ts'
import { freePort, ROOT, type RunningAnchor, startAnchorProcess } from './support/anchor.ts'
import { type LaunchedBrowser, launchChromium } from './support/chromium.ts'
import { ensureWebBuilt } from './support/web.ts'

const SHOTS = join(ROOT, 'test-results', 'e2e')

const chromium = need('chromium', import.meta.filename)

let dir: string
let browser: LaunchedBrowser | undefined
let anchor: RunningAnchor | undefined
let worker: { network: Network; agent: Agent; artifacts: HeliaArtifacts } | undefined

beforeAll(async () => {
  await ensureWebBuilt()
  mkdirSync(SHOTS, { recursive: true })
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-e2e-'))
}, 120_000)

afterAll(async () => {
  worker?.agent.stop()
  await worker?.artifacts.stop().catch(() => undefined)
  await worker?.network.stop().catch(() => undefined)
  await browser?.close()
  await anchor?.stop('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

async function shot(page: Page, name: string): Promise<void> {
  await page.waitForTimeout(300)
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
}

async function connectivity(page: Page): Promise<string | null> {
  return page.locator('[data-testid=connectivity]').getAttribute('data-state')
}

describe.skipIf(!chromium)('the web app in two tabs', () => {
  it('joins the network, stakes a tab into the pool, survives an anchor outage, runs a NEED to FINALIZE, keeps it across a reload and follows a reset anchor to its new network', async () => {
    const ports = { port: await freePort(), p2pPort: await freePort(), wsPort: await freePort() }
    const data = join(dir, 'anchor')
    // A new network: its genesis (an open bootstrap pool, nobody staked) is created in `data`.
    anchor = await startAnchorProcess({ data, ...ports })
    const network = (await (await fetch(`${anchor.url}/api/genesis`)).json()) as { id: string }
    browser = await launchChromium()
    const pageA = await (await browser.newContext()).newPage()
    const pageB = await (await browser.newContext()).newPage()
    const problems: string[] = []
    for (const page of [pageA, pageB]) page.on('pageerror', (error) => problems.push(error.message))
    await pageA.goto(anchor.url)
    await pageB.goto(anchor.url)
    await until(
      'both tabs online',
      async () => (await connectivity(pageA)) === 'online' && (await connectivity(pageB)) === 'online',
    )
    const didA = (await pageA.locator('[data-testid=did]').textContent())!
    const didB = (await pageB.locator('[data-testid=did]').textContent())!
    expect(didA).toMatch(/^did:key:z6Mk/)
    expect(didB).toMatch(/^did:key:z6Mk/)
    expect(didA).not.toBe(didB)
    for (const page of [pageA, pageB]) {
      // Each tab follows the network of the anchor's signed genesis, verified in the tab.
      expect(await page.locator('[data-testid=network-id]').getAttribute('data-network')).toBe(network.id)
      // It loaded the network's policy and passed its conformance vectors.
      await until('the policy loaded', () =>
        page
          .locator('[data-testid=policy]')
          .getAttribute('data-state')
          .then((state) => state === 'loaded'),
      )
      // Nobody has staked yet: the pool is open (bootstrap, any peer may verify).
      expect(await page.locator('[data-testid=pool-status]').getAttribute('data-in-pool')).toBe('open')
    }
    // A new identity holds nothing: credits are minted only by the genesis and the faucet, which
    // the tab has not asked yet (it offers to, and says how much the network grants).
    await expect.poll(() => pageA.locator('[data-testid=credits]').textContent()).toBe('0')
    expect(await pageA.locator('[data-testid=faucet]').getAttribute('data-state')).toBe('none')
    expect(await pageA.locator('[data-testid=faucet]').textContent()).toContain(
      'grants a new identity 1000 credits, once',
    )
    await shot(pageA, '1-overview')

    // A second tab of the same browser profile would be a second node with the same key: it says so.
    const second = await pageA.context().newPage()
    await second.goto(anchor.url)
    await until('the second tab declining', () =>
      second
        .locator('[data-testid=already-running]')
        .count()
        .then((n) => n > 0),
    )
    await second.close()

    // They find each other through the anchor's relay and upgrade to a direct WebRTC connection.
    await pageA.goto(`${anchor.url}/#/swarm`)
    await pageB.goto(`${anchor.url}/#/swarm`)
    for (const [page, other] of [
      [pageA, didB],
      [pageB, didA],
    ] as const) {
      await until(
        `a direct WebRTC connection to ${other}`,
        async () => {
          const transports = await page
            .locator(`[data-testid=peers] tr[data-peer-did="${other}"]`)
            .getAttribute('data-transports', { timeout: 1000 })
            .catch(() => null)
          return transports?.split(' ').includes('webrtc')
        },
        60_000,
      )
    }
    await shot(pageA, '2-swarm')

    // Tab B joins the verifier pool as a stranger would: a bad ASN is refused in words (before the
    // faucet is asked); a good declaration asks the faucet for tab B's credits, bonds 100 of them
    // and puts tab B in the anchor's staked pool.
    await pageB.goto(`${anchor.url}/#/overview`)
    await pageB.locator('[data-testid=stake-org]').fill('tabco')
    await pageB.locator('[data-testid=stake-asn]').fill('64511')
    await pageB.locator('[data-testid=stake-region]').fill('loopback')
    await pageB.locator('[data-testid=stake-amount]').fill('100')
    await pageB.locator('[data-testid=stake-submit]').click()
    // The refusal is the tab's own check; on a loaded machine the first click can land before the
    // form is wired, so an unanswered submit is sent again (a refused form changes nothing).
    let lastResult: string | null = null
    let polls = 0
    await until('the bad ASN refused in words', async () => {
      lastResult = await pageB.locator('[data-testid=stake-result]').textContent()
      if (lastResult?.includes('asn') && lastResult.includes('AS64500')) return lastResult
      polls += 1
      if (polls % 10 === 0) await pageB.locator('[data-testid=stake-submit]').click()
      return undefined
    }).catch((error: Error) => {
      throw new Error(`${error.message} (the form said: ${JSON.stringify(lastResult)})`)
    })
    expect(await pageB.locator('[data-testid=faucet]').getAttribute('data-state')).toBe('none')
    await pageB.locator('[data-testid=stake-asn]').fill('AS64511')
    await pageB.locator('[data-testid=stake-submit]').click()
    const staked = await until('tab B in the staked pool', async () => {
      const result = await pageB.locator('[data-testid=stake-result]').textContent()
      const entry = await pageB.locator('[data-testid=pool-entry]').getAttribute('data-staked')
      return result?.includes('In the pool with 100 credits staked') && entry === '100' ? result : undefined
    })
    expect(staked).toContain("Granted 1000 credits by the network's faucet.")
    expect(await pageB.locator('[data-testid=faucet]').getAttribute('data-state')).toBe('granted')
    await until('tab B holding 900 spendable and 100 staked credits', async () => {
      const balance = await pageB.locator('[data-testid=credits]').getAttribute('data-balance')
      const bonded = await pageB.locator('[data-testid=staked]').textContent()
      return balance === '900' && bonded === '100'
    })
    const pool = (await (await fetch(`${anchor.url}/api/pool`)).json()) as {
      entries: Array<{ did: string; org: string }>
    }
    expect(pool.entries).toContainEqual(expect.objectContaining({ did: didB, org: 'tabco' }))
    // The anchor adopts the new pool at an epoch boundary, and both tabs follow it.
    const adopted = await until('the anchor deciding under the new pool', async () => {
      const now = (await (await fetch(`${anchor!.url}/api/status`)).json()) as {
        pool: { epoch: number; verifiers: string[] }
      }
      return now.pool.verifiers.includes(didB) ? now.pool : undefined
    })
    expect(adopted.verifiers).toEqual([didB])
    expect(adopted.epoch).toBeGreaterThanOrEqual(1)
    await pageA.goto(`${anchor.url}/#/overview`)
    for (const [page, state] of [
      [pageB, 'yes'],
      [pageA, 'no'],
    ] as const) {
      await until(`the new pool in tab ${page === pageA ? 'A' : 'B'}`, () =>
        page
          .locator('[data-testid=pool-status]')
          .getAttribute('data-in-pool')
          .then((v) => v === state),
      )
    }
    await shot(pageB, '3-staked')

    // The anchor dies: both tabs say so, in words.
    await anchor.stop('SIGKILL')
    for (const page of [pageA, pageB]) {
      await until('the offline state', async () => (await connectivity(page)) === 'offline', 30_000)
      expect(await page.locator('[data-testid=offline-banner]').textContent()).toContain('unreachable')
    }
    await shot(pageA, '4-offline')

    // It comes back on the same ports and data, with the same flags: the same network, and the
    // pool it adopted (tab B staked) kept. Both tabs recover.
    anchor = await startAnchorProcess({ data, ...ports })
    const back = (await (await fetch(`${anchor.url}/api/status`)).json()) as {
      network: string
      pool: { epoch: number; verifiers: string[] }
    }
    expect(back.network).toBe(network.id)
    expect(back.pool.verifiers).toEqual([didB])
    expect(back.pool.epoch).toBe(adopted.epoch)
    for (const page of [pageA, pageB]) {
      await until('recovery', async () => (await connectivity(page)) === 'online', 60_000)
      expect(await page.locator('[data-testid=offline-banner]').count()).toBe(0)
    }
    // The relay reservations came back with the anchor (libp2p asks once per connection; the
    // peer's relay watch asks again if that one request failed): tab A says it is reachable, and a
    // tab opened now reaches it directly.
    await pageA.goto(`${anchor.url}/#/swarm`)
    await until(
      'tab A reachable through the relay again',
      () =>
        pageA
          .locator('[data-testid=reachability]')
          .getAttribute('data-relayed', { timeout: 1000 })
          .then((relayed) => relayed === 'yes')
          .catch(() => false),
      60_000,
    )
    const contextC = await browser.newContext()
    const pageC = await contextC.newPage()
    await pageC.goto(`${anchor.url}/#/swarm`)
    let seen: string | null = null
    await until(
      'a direct WebRTC connection from a new tab to tab A',
      () =>
        pageC
          .locator(`[data-testid=peers] tr[data-peer-did="${didA}"]`)
          .getAttribute('data-transports', { timeout: 1000 })
          .then((transports) => {
            seen = transports
            return transports?.split(' ').includes('webrtc')
          })
          .catch(() => false),
      60_000,
    ).catch(async (error: Error) => {
      const reachable = await pageA.locator('[data-testid=reachability]').getAttribute('title')
      throw new Error(
        `${error.message} (new tab's connections to A: ${seen ?? 'none'}; A's relay addresses: ${reachable || 'none'})`,
      )
    })
    await contextC.close()

    await until('tab B still in the verifier pool', () =>
      pageB
        .locator('[data-testid=pool-status]')
        .getAttribute('data-in-pool')
        .then((v) => v === 'yes'),
    )

    // A Node worker (planner + worker) joins the anchor's network (its genesis and current pool)
    // over TCP, with Helia on its node: it fetches the NEED's input by bitswap (from tab A or the
    // anchor, which pins it) and offers its outputs the same way.
    const { params } = await fetchNetwork(anchor.url)
    expect(params.network).toBe(network.id)
    expect(params.verifiers).toEqual([didB])
    const identity = await createIdentity()
    const nodeNetwork = await createNetwork({
      identity,
      bootstrap: anchor.multiaddrs.filter((address) => !address.includes('/ws')),
      webRTC: false,
    })
    const bus = createBus(nodeNetwork, { ingress: (env) => ({ allowed: env.net === params.network }) })
    const artifacts = await createHeliaArtifacts({ libp2p: nodeNetwork.libp2p })
    const agent = new Agent({
      identity,
      params,
      bus,
      clock: systemClock(),
      random: { next: Math.random },
      artifacts,
      roles: { planner: true, worker: true },
      tuning: { leaseTtlMs: 5000 },
    })
    attachAgent(bus, agent)
    worker = { network: nodeNetwork, agent, artifacts }
    await until('the worker in the gossip mesh', () =>
      nodeNetwork.pubsub.getSubscribers('can-swarm/1/shard/0').length > 0 ? true : undefined,
    )

    // A NEED whose budget cannot pay for its chain is refused in words before anything is sent.
    const text = 'the swarm checks the swarm and the swarm pays'
    await pageA.goto(`${anchor.url}/#/overview`)
    await pageA.locator('[data-testid=need-requires]').fill('word-frequency, sha256')
    await pageA.locator('[data-testid=need-input]').fill(text)
    await pageA.locator('[data-testid=need-budget]').fill('1')
    await pageA.locator('[data-testid=need-submit]').click()
    await until('the refusal', () =>
      pageA
        .locator('[data-testid=post-result]')
        .textContent()
        .then((t) => (t?.includes('insufficient budget') ? t : undefined)),
    )

    // A NEED the network's policy denies (a budget above its credit range) is refused in the tab
    // before it is published: the person reads the rule and the field, here and under Problems.
    // (The policy's refusal comes first: the faucet is not asked for a NEED nobody may post.)
    await pageA.locator('[data-testid=need-budget]').fill('2000000')
    await pageA.locator('[data-testid=need-submit]').click()
    const denial = await until('the policy refusal', () =>
      pageA
        .locator('[data-testid=post-result]')
        .textContent()
        .then((t) => (t?.includes('budget-credits') ? t : undefined)),
    )
    expect(denial).toContain('Refused by the policy before anything was sent')
    expect(denial).toContain('rule "budget-credits" on payload.budget = 2000000')
    await until('the denial under Problems and in the policy counters', async () => {
      const problems = await pageA.locator('[data-testid=errors]').textContent()
      const denials = await pageA.locator('[data-testid=policy-denials]').textContent()
      return problems?.includes('rule "budget-credits" on payload.budget') && denials === 'budget-credits: 1'
    })
    expect(await pageA.locator('[data-testid=faucet]').getAttribute('data-state')).toBe('none')
    await shot(pageA, '5-policy-denial')

    // Tab A posts a NEED and follows it live to FINALIZE. It holds nothing, so it asks the faucet
    // first (an anchor decides a NEED only if its requester can fund the budget).
    await pageA.locator('[data-testid=need-requires]').fill('word-frequency, sha256')
    await pageA.locator('[data-testid=need-input]').fill(text)
    await pageA.locator('[data-testid=need-budget]').fill('20')
    await pageA.locator('[data-testid=need-submit]').click()
    // Posting opens the thread's page, where the NEED is followed live.
    const need = await until(
      'the posted thread',
      async () => {
        const thread = await pageA
          .locator('section[data-view=thread]')
          .getAttribute('data-thread', { timeout: 1000 })
          .catch(() => null)
        if (thread) return thread
        const result = await pageA
          .locator('[data-testid=post-result]')
          .textContent()
          .catch(() => '')
        if (result && !result.startsWith('Uploading') && !result.includes('2000000')) {
          throw new Error(`posting failed: ${result}`)
        }
        return undefined
      },
      30_000,
    )
    // The thread id is the NEED's content id (A1).
    expect(need).toMatch(/^bafyrei[a-z2-7]+$/)
    await until(
      'the DAG',
      () =>
        pageA
          .locator('svg.dag')
          .count()
          .then((n) => n > 0),
      60_000,
    )
    await until(
      'FINALIZE shown in tab A',
      () =>
        pageA
          .locator('ol.stepper')
          .getAttribute('data-stage')
          .then((stage) => stage === 'FINAL'),
      150_000,
    )
    // The result artifact: word-frequency, then sha256 of it.
    const registry = builtinCapabilities()
    const counted = await registry.run('word-frequency', [new TextEncoder().encode(text)])
    const expected = new TextDecoder().decode(await registry.run('sha256', [counted]))
    await until('the result artifact shown', () =>
      pageA
        .locator('[data-testid=result-text]')
        .textContent({ timeout: 1000 })
        .then((t) => t === expected)
        .catch(() => false),
    )
    // The audit trail, verified in the tab: the anchor granted the leases and signed both FINALIZEs.
    await until(
      'the audit trail verified',
      () =>
        pageA
          .locator('[data-testid=audit-status]')
          .getAttribute('data-verified')
          .then((v) => v === 'yes'),
      30_000,
    )
    const finalizes = pageA.locator('table.audit tr[data-kind=FINALIZE]')
    expect(await finalizes.count()).toBe(2)
    for (const sender of await finalizes.locator('td:nth-child(3)').allTextContents()) {
      expect(sender).toMatch(/^anchor /)
    }
    expect(await pageA.locator('table.audit tr[data-kind=GRANT]').count()).toBeGreaterThanOrEqual(2)
    // The result came by bitswap (the HTTP gateway is only a fallback), and tab A now holds it.
    expect(await pageA.locator('[data-testid=result-source]').textContent()).toBe('bitswap')
    await shot(pageA, '6-thread-final')

    // The anchor pinned the input (fetched from tab A, which never uploaded it) and both outputs,
    // all by bitswap: nobody PUT an artifact to its HTTP gateway.
    await until('the anchor pinning input and outputs', async () => {
      const now = (await (await fetch(`${anchor!.url}/api/status`)).json()) as {
        artifacts: { pinned: number }
      }
      return now.artifacts.pinned >= 3
    })
    const metrics = await (await fetch(`${anchor.url}/metrics`)).text()
    expect(metrics).not.toMatch(/can_swarm_http_requests_total\{route="\/api\/artifacts",status="201"\}/)
    // Automerge's WASM came as a binary asset, served as application/wasm.
    const wasm = await pageA.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .map((entry) => entry.name)
        .find((name) => /\/assets\/automerge-[^/]+\.wasm$/.test(name)),
    )
    expect(wasm).toBeDefined()
    expect((await fetch(wasm!)).headers.get('content-type')).toBe('application/wasm')

    // The denied NEED never reached the swarm: the worker heard of this one thread only.
    expect(worker.agent.threads()).toEqual([need])
    // The Node worker did both tasks (leases granted by the anchor); tab B's verifier, the only
    // staked one and so the committee, attested both results; the anchor finalized them.
    const replica = worker.agent.replica(need)!
    const state = replica.state
    const tasks = [...state.tasks.values()].filter((task) => task.proposal === state.winner?.proposal)
    expect(tasks).toHaveLength(2)
    for (const task of tasks) {
      expect(task.id).toBe(`${state.winner!.proposal}/${task.name}`)
      expect(task.state).toBe('FINAL')
      expect(task.commit!.worker).toBe(identity.did)
      expect(task.commit!.committee).toEqual([didB])
      expect([...task.commit!.votes.keys()]).toEqual([didB])
    }
    const signers = (kind: string) =>
      new Set(
        replica
          .envelopes()
          .filter((env) => env.kind === kind)
          .map((env) => env.sender),
      )
    for (const kind of ['DECIDE', 'GRANT', 'FINALIZE']) expect(signers(kind)).toEqual(new Set([anchor.did]))
    await pageB.goto(`${anchor.url}/#/verifier`)
    await until('tab B lists its attestations', () =>
      pageB
        .locator('[data-testid=attestations] tr[data-kind=ATTEST]')
        .count()
        .then((n) => n >= 2),
    )
    await shot(pageB, '7-verifier')
    await pageA.goto(`${anchor.url}/#/swarm`)
    await shot(pageA, '7-swarm-with-traffic')

    // Tab A's credits, from the anchor's ledger: granted by the faucet when it posted the NEED, and
    // the budget left its spendable balance (held in escrow, or paid to the worker after the window).
    await pageA.goto(`${anchor.url}/#/overview`)
    expect(await pageA.locator('[data-testid=post-result]').textContent()).toContain(
      "Granted 1000 credits by the network's faucet. Posted",
    )
    await until('tab A holding credits', async () => {
      const faucet = pageA.locator('[data-testid=faucet]')
      if ((await faucet.getAttribute('data-state')) !== 'granted') return false
      if (!(await faucet.textContent())?.includes("Granted 1000 credits by the network's faucet"))
        return false
      const balance = Number(await pageA.locator('[data-testid=credits]').getAttribute('data-balance'))
      return balance > 0 && balance < 1000
    })
    await shot(pageA, '8-credits')

    // A reload keeps the identity, the network and the history.
    await pageA.reload()
    await until('tab A online again', async () => (await connectivity(pageA)) === 'online')
    expect(await pageA.locator('[data-testid=did]').textContent()).toBe(didA)
    expect(await pageA.locator('[data-testid=network-id]').getAttribute('data-network')).toBe(network.id)
    expect(await pageA.locator('[data-testid=faucet]').getAttribute('data-state')).toBe('granted')
    await pageA.goto(`${anchor.url}/#/threads`)
    await until('the thread kept as FINAL', () =>
      pageA
        .locator(`[data-testid=threads] tr[data-thread="${need}"]`)
        .getAttribute('data-stage', { timeout: 1000 })
        .then((s) => s === 'FINAL')
        .catch(() => false),
    )
    await shot(pageA, '8-threads-after-reload')
    // Artifacts survive the reload too: the result is read from this browser's IndexedDB.
    await pageA.goto(`${anchor.url}/#/threads/${encodeURIComponent(need)}`)
    await until('the result read from this browser', () =>
      pageA
        .locator('[data-testid=result-source]')
        .textContent({ timeout: 1000 })
        .then((source) => source === 'this browser')
        .catch(() => false),
    )
    expect(await pageA.locator('[data-testid=result-text]').textContent()).toBe(expected)

    // The anchor's data directory is reset: another network on the same address. Tab A follows it
    // and says so; it holds nothing there (no credits, the faucet not asked), and the old network's
    // envelopes are not replayed into the new one, not even after a reload.
    await anchor.stop('SIGKILL')
    anchor = await startAnchorProcess({ data: join(dir, 'anchor-reset'), ...ports })
    const reset = (await (await fetch(`${anchor.url}/api/genesis`)).json()) as { id: string }
    expect(reset.id).not.toBe(network.id)
    await pageA.goto(`${anchor.url}/#/overview`)
    await until('tab A on the new network', () =>
      pageA
        .locator('[data-testid=network-id]')
        .getAttribute('data-network')
        .then((id) => id === reset.id),
    )
    expect(await pageA.locator('[data-testid=errors]').textContent()).toContain(
      `The anchor now serves network ${reset.id}, not ${network.id}`,
    )
    await until('tab A online on the new network, holding nothing', async () => {
      const balance = await pageA.locator('[data-testid=credits]').getAttribute('data-balance')
      const faucet = await pageA.locator('[data-testid=faucet]').getAttribute('data-state')
      return (await connectivity(pageA)) === 'online' && balance === '0' && faucet === 'none'
    })
    expect(await pageA.locator('[data-testid=pool-status]').getAttribute('data-in-pool')).toBe('open')
    await pageA.reload()
    await until('tab A online again', async () => (await connectivity(pageA)) === 'online')
    expect(await pageA.locator('[data-testid=network-id]').getAttribute('data-network')).toBe(reset.id)
    await pageA.goto(`${anchor.url}/#/threads`)
    expect(await pageA.locator('[data-testid=threads]').count()).toBe(0)
    expect(await pageA.locator('section[data-view=threads]').textContent()).toContain('No thread yet')
    const fresh = (await (await fetch(`${anchor.url}/api/status`)).json()) as { threads: number }
    expect(fresh.threads).toBe(0)
    await shot(pageA, '9-new-network')
    expect(problems).toEqual([])
  }, 420_000)
})
