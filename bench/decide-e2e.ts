/**
 * End-to-end DECIDE latency: a quorum handed to an anchor's DECIDE service → the signed DECIDE
 * delivered (gossip, validated) at every listening peer; and DECIDE throughput with 16 requests in
 * flight. Run against the embedded store and a 3-member etcd cluster, in one run.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createIdentity, fetchNetwork, requestCredits, requestDecide } from '@can-swarm/peer'
import { createBus, createNetwork, type Network } from '@can-swarm/peer/net'
import { multiaddr } from '@multiformats/multiaddr'
import { killAnchors, type StartedAnchor, startAnchorProcess } from '../test-support/anchor-process.ts'
import { makeIdentities } from '../test-support/envelopes.ts'
import { EtcdCluster, etcdAvailable } from '../test-support/etcd-cluster.ts'
import { planQuorum } from '../test-support/quorum.ts'

const LISTENERS = 4
const LATENCY_NEEDS = 100
const THROUGHPUT_NEEDS = 400

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function measure(anchorArgs: string[], label: string, progress: (line: string) => void) {
  const [requester, planner, verifier] = await makeIdentities(3, 123)
  const dir = await mkdtemp(join(tmpdir(), `can-swarm-bench-decide-${label}-`))
  const networks: Network[] = []
  let anchor: StartedAnchor | undefined
  try {
    anchor = await startAnchorProcess([
      '--data',
      join(dir, 'anchor'),
      '--verifiers',
      verifier!.did,
      ...anchorArgs,
    ])
    const tcp = anchor.multiaddrs.find((m) => !m.includes('/ws/'))!
    const seen = new Map<string, number>()
    const arrivals = new Map<string, number>()
    for (let i = 0; i < LISTENERS; i += 1) {
      const network = await createNetwork({
        identity: await createIdentity({ seed: new Uint8Array(32).fill(40 + i) }),
        bootstrap: [tcp],
        webRTC: false,
      })
      networks.push(network)
      createBus(network).onEnvelope((env) => {
        if (env.kind !== 'DECIDE') return
        const need = (env.payload as { need: string }).need
        const count = (seen.get(need) ?? 0) + 1
        seen.set(need, count)
        if (count === LISTENERS) arrivals.set(need, performance.now())
      })
    }
    const client = await createNetwork({
      identity: await createIdentity({ seed: new Uint8Array(32).fill(39) }),
      webRTC: false,
    })
    networks.push(client)
    await new Promise((resolve) => setTimeout(resolve, 2500))
    // Every NEED is funded (A7): the requester's faucet credits cover 500 budgets of 1.
    const { genesis } = await fetchNetwork(anchor.url)
    const granted = await requestCredits(anchor.url, requester!.did)
    if (!granted.granted) throw new Error(`the faucet refused: ${granted.error}`)
    let nonce = 0
    const quorum = () =>
      planQuorum({ requester: requester!, planner: planner!, attester: verifier! }, genesis.id, {
        nonce: nonce++,
        budget: 1,
      })
    const address = multiaddr(tcp)
    const latencies: number[] = []
    for (let i = 0; i < LATENCY_NEEDS; i += 1) {
      const request = await quorum()
      const need = request.need
      const started = performance.now()
      const answer = await requestDecide(client.libp2p, address, request)
      if (answer.outcome !== 'decided') throw new Error(`${need}: ${answer.outcome}`)
      const deadline = Date.now() + 10_000
      while (!arrivals.has(need) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 1))
      if (!arrivals.has(need)) throw new Error(`${need}: the DECIDE did not reach every listener`)
      latencies.push(arrivals.get(need)! - started)
    }
    progress(
      `${label}: ${LATENCY_NEEDS} decisions, p50 ${percentile(latencies, 50).toFixed(2)} ms, p95 ${percentile(latencies, 95).toFixed(2)} ms`,
    )
    const prepared = await Promise.all(Array.from({ length: THROUGHPUT_NEEDS }, () => quorum()))
    const started = performance.now()
    let next = 0
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < prepared.length) {
          const request = prepared[next++]!
          const answer = await requestDecide(client.libp2p, address, request)
          if (answer.outcome !== 'decided') throw new Error(`${request.need}: ${answer.outcome}`)
        }
      }),
    )
    const perSecond = THROUGHPUT_NEEDS / ((performance.now() - started) / 1000)
    progress(`${label}: ${perSecond.toFixed(0)} decisions/s with 16 in flight`)
    return { p50: percentile(latencies, 50), p95: percentile(latencies, 95), perSecond }
  } finally {
    for (const network of networks) await network.stop().catch(() => undefined)
    await anchor?.stop()
    killAnchors()
    await rm(dir, { recursive: true, force: true })
  }
}

export async function runDecideE2eBenchmark(progress: (line: string) => void) {
  const round = (value: number) => Number(value.toFixed(2))
  const embedded = await measure([], 'embedded', progress)
  const metrics: Record<string, { value: number; unit: string }> = {
    decide_p50_ms: {
      value: round(embedded.p50),
      unit: 'ms, quorum sent → DECIDE at all 4 listeners (embedded store)',
    },
    decide_p95_ms: {
      value: round(embedded.p95),
      unit: 'ms, quorum sent → DECIDE at all 4 listeners (embedded store)',
    },
    decide_per_s: {
      value: round(embedded.perSecond),
      unit: 'decisions/s through the DECIDE service, 16 in flight (embedded)',
    },
  }
  if (etcdAvailable('npm run bench -- decide-e2e')) {
    const cluster = await EtcdCluster.start({ size: 3 })
    try {
      const etcd = await measure(
        ['--consensus', 'etcd', '--etcd', cluster.clientUrls.join(','), '--etcd-prefix', 'bench'],
        'etcd',
        progress,
      )
      metrics.decide_p50_ms_etcd = {
        value: round(etcd.p50),
        unit: 'ms, quorum sent → DECIDE at all 4 listeners (3-member etcd)',
      }
      metrics.decide_p95_ms_etcd = {
        value: round(etcd.p95),
        unit: 'ms, quorum sent → DECIDE at all 4 listeners (3-member etcd)',
      }
      metrics.decide_per_s_etcd = {
        value: round(etcd.perSecond),
        unit: 'decisions/s through the DECIDE service, 16 in flight (etcd)',
      }
    } finally {
      await cluster.stop()
    }
  }
  return metrics
}
