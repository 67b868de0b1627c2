import {
  Agent,
  type AnyEnvelope,
  builtinCapabilities,
  createIdentity,
  MemoryArtifactStore,
  MemoryConsensusStore,
  SeededRandom,
} from '@can-swarm/peer'
import { systemClock } from '@can-swarm/peer/net'
import { describe, expect, it } from 'vitest'
import { quantile, TrafficSeries } from '../src/app/metrics.ts'
import { transportOf } from '../src/app/session.ts'
import { finalOutputs, isFinal, planTasks, STAGES, stageOf, taskLabel } from '../src/ui/model.ts'
import { testNetwork } from './network.ts'

async function until<T>(probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('thread position and plan views', () => {
  it('follows a two-task NEED through every stage to FINAL and names its result', async () => {
    const identities = await Promise.all(
      [1, 2, 3, 4].map((tag) => createIdentity({ seed: new Uint8Array(32).fill(tag) })),
    )
    const [requester, worker, verifier, anchor] = identities as [
      (typeof identities)[0],
      (typeof identities)[0],
      (typeof identities)[0],
      (typeof identities)[0],
    ]
    const { params } = await testNetwork({
      anchors: [anchor],
      verifiers: [verifier.did, worker.did],
      params: { tChallengeMs: 50 },
    })
    const artifacts = new MemoryArtifactStore()
    const agents: Agent[] = []
    const bus = (from: () => Agent) => ({
      publish(env: AnyEnvelope) {
        for (const agent of agents) if (agent !== from()) queueMicrotask(() => void agent.deliver(env))
      },
    })
    const make = (identity: typeof requester, roles: Agent['roles'], seed: number) => {
      const agent: Agent = new Agent({
        identity,
        params,
        bus: bus(() => agent),
        clock: systemClock(),
        random: new SeededRandom(seed),
        artifacts,
        roles,
      })
      agents.push(agent)
      return agent
    }
    const mine = make(requester, {}, 1)
    make(worker, { planner: true, worker: true, verifier: true, decider: false }, 2)
    make(verifier, { verifier: true }, 3)
    agents.push(
      new Agent({
        identity: anchor,
        params,
        bus: bus(() => agents[3]!),
        clock: systemClock(),
        random: new SeededRandom(4),
        artifacts,
        roles: { decider: true },
        consensus: new MemoryConsensusStore(),
      }),
    )
    const input = new TextEncoder().encode('b a b')
    const need = await mine.post({
      requires: ['word-frequency', 'sha256'],
      inputs: [input],
      budget: 20,
      bidWindowMs: 50,
    })
    const seen = new Set<number>()
    const state = await until(() => {
      const current = mine.replica(need)?.state
      if (current) seen.add(stageOf(current))
      return current && isFinal(current) ? current : undefined
    })
    expect(STAGES[stageOf(state)]).toBe('FINAL')
    expect(seen.has(0)).toBe(true)
    // Thread ids are the NEED's CID; tasks are named `<PROPOSE envelope id>/<name>`.
    expect(need).toMatch(/^bafyrei/)
    const tasks = planTasks(state)
    expect(tasks.map((task) => task.spec.capability)).toEqual(['word-frequency', 'sha256'])
    const propose = mine
      .replica(need)!
      .envelopes()
      .find((env) => env.kind === 'PROPOSE')!
    expect(state.winner?.proposal).toBe(propose.id)
    expect(tasks[0]!.id).toBe(`${propose.id}/${tasks[0]!.name}`)
    expect(taskLabel(tasks[0]!.id)).toBe(
      `${tasks[0]!.name} (plan ${propose.id.slice(0, 6)}…${propose.id.slice(-6)})`,
    )
    // Leases start with the anchor's GRANT; only the anchor finalizes.
    const kinds = (kind: string) =>
      mine
        .replica(need)!
        .envelopes()
        .filter((env) => env.kind === kind)
    expect(kinds('GRANT').length).toBeGreaterThanOrEqual(2)
    expect(new Set(kinds('GRANT').map((env) => env.sender))).toEqual(new Set([anchor.did]))
    expect(kinds('FINALIZE').map((env) => env.sender)).toEqual([anchor.did, anchor.did])
    const registry = builtinCapabilities()
    const expected = await registry.run('sha256', [await registry.run('word-frequency', [input])])
    const [cid] = finalOutputs(state)
    expect(new TextDecoder().decode((await artifacts.get(cid!))!)).toBe(new TextDecoder().decode(expected))
    for (const agent of agents) agent.stop()
  })
})

describe('traffic series', () => {
  it('buckets per second, fills gaps, bounds the window', () => {
    const series = new TrafficSeries(5)
    series.received(10_100, 4)
    series.received(10_900, 8)
    series.published(12_000)
    for (let t = 0; t < 20; t += 1) series.received(20_000 + t * 1000, 1)
    const window = series.series(39_500)
    expect(window).toHaveLength(5)
    expect(window.map((s) => s.received)).toEqual([1, 1, 1, 1, 1])
    const early = new TrafficSeries(60)
    early.received(10_100, 4)
    early.received(10_900, 8)
    early.published(12_000)
    const points = early.series(12_500)
    expect(points.at(-3)!.received).toBe(2)
    expect(points.at(-2)!.received).toBe(0)
    expect(points.at(-1)!.published).toBe(1)
    expect(quantile(points.at(-3)!.latenciesMs, 0.5)).toBe(8)
    expect(quantile([], 0.5)).toBeUndefined()
  })
})

describe('transport classification', () => {
  it('tells direct WebRTC from relayed and WebSocket connections', () => {
    const relay = '/ip4/127.0.0.1/tcp/7702/ws/p2p/12D3KooWA'
    expect(transportOf(`${relay}/p2p-circuit/webrtc/p2p/12D3KooWB`, false)).toEqual({
      transport: 'webrtc',
      direct: true,
    })
    expect(transportOf(`${relay}/p2p-circuit/p2p/12D3KooWB`, true)).toEqual({
      transport: 'relayed',
      direct: false,
    })
    expect(transportOf(`${relay}/p2p-circuit/webrtc/p2p/12D3KooWB`, true)).toEqual({
      transport: 'relayed',
      direct: false,
    })
    expect(transportOf(relay, false)).toEqual({ transport: 'websocket', direct: true })
    expect(transportOf('/ip4/127.0.0.1/tcp/7701', false)).toEqual({ transport: 'tcp', direct: true })
  })
})
