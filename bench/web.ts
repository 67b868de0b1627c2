/**
 * Benchmark `web`: the web app in Debian's Chromium against a real anchor on loopback.
 * - `web_join_ms`: navigation start → first valid envelope received over gossip in a fresh tab
 *   (median of 3 fresh browser contexts, while a Node peer posts a NEED every 250 ms);
 * - `web_finalize_ms`: a NEED (word-frequency) posted in a tab → FINALIZE shown in that tab, with a
 *   Node peer as planner, worker and verifier (bootstrap mode, K = 1); includes the challenge window;
 * - `web_bundle_gz_kb`: gzipped JS, CSS, WASM and JSON the app page loads (the embed example excluded).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { Agent, createIdentity, fetchNetwork, requestCredits } from '@can-swarm/peer'
import { createHeliaArtifacts, type HeliaArtifacts } from '@can-swarm/peer/artifacts'
import { attachAgent, createBus, createNetwork, type Network, systemClock } from '@can-swarm/peer/net'
import { freePort, ROOT, startAnchorProcess } from '../e2e/support/anchor.ts'
import { hasChromium, launchChromium } from '../e2e/support/chromium.ts'
import { ensureWebBuilt } from '../e2e/support/web.ts'
import type { Metric } from './suite.ts'

const JOIN_RUNS = 3

function bundleGzKb(): number {
  const assets = join(ROOT, 'packages', 'web', 'dist', 'assets')
  let bytes = 0
  for (const name of readdirSync(assets)) {
    if (name.startsWith('embed-') || !/\.(js|css|wasm|json)$/.test(name)) continue
    bytes += gzipSync(readFileSync(join(assets, name)), { level: 9 }).length
  }
  return Math.round(bytes / 102.4) / 10
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`bench web: timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Runs the `web` benchmark. */
export async function runWebBenchmark(progress: (line: string) => void): Promise<Record<string, Metric>> {
  await ensureWebBuilt()
  const metrics: Record<string, Metric> = { web_bundle_gz_kb: { value: bundleGzKb(), unit: 'KiB' } }
  if (!hasChromium()) {
    progress('NOTICE: no Chromium at /usr/bin/chromium: only the bundle size is measured')
    return metrics
  }
  const dir = await mkdtemp(join(tmpdir(), 'can-swarm-bench-web-'))
  const networks: Network[] = []
  const agents: Agent[] = []
  const stores: HeliaArtifacts[] = []
  const identity = await createIdentity()
  const anchor = await startAnchorProcess({
    data: join(dir, 'anchor'),
    port: await freePort(),
    p2pPort: await freePort(),
    wsPort: await freePort(),
    verifiers: [identity.did],
  })
  const browser = await launchChromium()
  let ticker: ReturnType<typeof setInterval> | undefined
  try {
    const tcp = anchor.multiaddrs.filter((address) => !address.includes('/ws'))
    // The anchor's own network (its genesis and current pool): envelopes of any other are refused.
    const { params } = await fetchNetwork(anchor.url)
    const peer = async (roles: Agent['roles'], id = identity) => {
      const network = await createNetwork({ identity: id, bootstrap: tcp, webRTC: false })
      networks.push(network)
      // Artifacts as peers keep them: Helia on the node, blocks fetched from the tab by bitswap.
      const artifacts = await createHeliaArtifacts({ libp2p: network.libp2p })
      stores.push(artifacts)
      const bus = createBus(network)
      const agent = new Agent({
        identity: id,
        params,
        bus,
        clock: systemClock(),
        random: { next: Math.random },
        artifacts,
        roles,
        tuning: { leaseTtlMs: 5000 },
      })
      agents.push(agent)
      attachAgent(bus, agent)
      await until(
        async () => (network.pubsub.getSubscribers('can-swarm/1/shard/0').length > 0 ? true : undefined),
        30_000,
        'a gossip mesh',
      )
      return agent
    }
    await peer({ planner: true, worker: true, verifier: true })
    const talker = await peer({}, await createIdentity())
    // Budgets are escrowed from credits held (A7): the talker asks the faucet once.
    const credits = await requestCredits(anchor.url, talker.did)
    if (!credits.granted) throw new Error(`the faucet refused the talker: ${credits.error}`)
    ticker = setInterval(() => {
      void talker
        .post({ requires: ['bench-ping'], inputs: [new TextEncoder().encode(String(Date.now()))], budget: 1 })
        .catch(() => undefined)
    }, 250)

    const joins: number[] = []
    for (let run = 0; run < JOIN_RUNS; run += 1) {
      const context = await browser.newContext()
      const page = await context.newPage()
      await page.goto(anchor.url)
      const joinMs = await until(
        () =>
          page
            .locator('[data-testid=join-ms]')
            .getAttribute('data-ms', { timeout: 100 })
            .then((v) => (v === null ? undefined : Number(v)))
            .catch(() => undefined),
        30_000,
        'the first envelope',
      )
      joins.push(joinMs)
      progress(`join ${run + 1}: ${joinMs} ms`)
      await context.close()
    }
    clearInterval(ticker)
    ticker = undefined
    joins.sort((a, b) => a - b)
    metrics.web_join_ms = { value: joins[Math.floor(joins.length / 2)]!, unit: 'ms' }

    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(anchor.url)
    await until(
      () =>
        page
          .locator('[data-testid=connectivity]')
          .getAttribute('data-state')
          .then((state) => (state === 'online' ? true : undefined)),
      30_000,
      'the tab online',
    )
    await page.locator('[data-testid=need-requires]').fill('word-frequency')
    await page.locator('[data-testid=need-input]').fill('measure the swarm measure the tab')
    const started = performance.now()
    await page.locator('[data-testid=need-submit]').click()
    await until(
      () =>
        page
          .locator('ol.stepper')
          .getAttribute('data-stage', { timeout: 100 })
          .then((stage) => (stage === 'FINAL' ? true : undefined))
          .catch(() => undefined),
      120_000,
      'FINALIZE in the tab',
    )
    metrics.web_finalize_ms = { value: Math.round(performance.now() - started), unit: 'ms' }
    progress(
      `finalize: ${metrics.web_finalize_ms.value} ms (challenge window ${params.tChallengeMs} ms included)`,
    )
    await context.close()
  } finally {
    if (ticker) clearInterval(ticker)
    for (const agent of agents) agent.stop()
    for (const store of stores) await store.stop().catch(() => undefined)
    for (const network of networks) await network.stop().catch(() => undefined)
    await browser.close()
    await anchor.stop()
    await rm(dir, { recursive: true, force: true })
  }
  return metrics
}
