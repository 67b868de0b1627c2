/**
 * The front door in Node: peers made by createPeer() do a NEED end to end over libp2p (inputs and
 * outputs through their default Helia stores), and a peer that joins late (after 1 000+ envelopes
 * of a thread) catches up through sync to the same state and fetches the thread's artifacts.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { claimedThread } from '../../../test-support/claimed-thread.ts'
import { testParams } from '../../../test-support/envelopes.ts'
import { tcpOf, until } from '../../../test-support/peers.ts'
import type { HeliaArtifacts } from '../src/artifacts/helia.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import { MemoryConsensusStore } from '../src/core/consensus.ts'
import { fetchTaskInputs } from '../src/core/thread/inputs.ts'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { createPeer, type Peer, type PeerOptions } from '../src/peer.ts'

/** The id of a network other than the test network. */
const OTHER_NET = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

const peers: Peer[] = []
afterAll(async () => {
  for (const peer of peers) await peer.stop().catch(() => undefined)
})

/** A peer (stopped after the tests) that joins through `via`, over TCP only. */
async function joining(via: Peer, options: Omit<PeerOptions, 'bootstrap' | 'network'>): Promise<Peer> {
  const peer = await createPeer({ ...options, bootstrap: [tcpOf(via)], network: { webRTC: false } })
  peers.push(peer)
  return peer
}

describe('createPeer', () => {
  it('runs a NEED to FINAL between two peers over libp2p', async () => {
    // The worker is the network's anchor too: it decides, grants and finalizes (A3, A5, A6).
    const identity = await createIdentity()
    const params = testParams({ anchors: [identity.did], verifiers: [], bootstrap: true, tChallengeMs: 300 })
    // Each peer has its own default Helia store: the worker fetches the input from the requester.
    const worker = await createPeer({
      identity,
      params,
      roles: { planner: true, worker: true, verifier: true, decider: true },
      consensus: new MemoryConsensusStore(),
      network: { webRTC: false },
      syncIntervalMs: 1000,
    })
    peers.push(worker)
    const requester = await joining(worker, { params, syncIntervalMs: 1000 })
    // A long-running peer that keeps no finished threads in memory.
    const watcher = await joining(worker, { params, syncIntervalMs: 1000, retireSettled: true })
    // A peer of another network, connected to both: their envelopes are worthless to it.
    const outsider = await joining(worker, {
      params: testParams({ network: OTHER_NET, anchors: [identity.did], verifiers: [], bootstrap: true }),
      syncIntervalMs: 1000,
    })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    // Following a NEED needs no reach into the agent: typed events.
    const finals: [string, string, readonly string[]][] = []
    requester.on('thread:final', (thread, task, outputs) => finals.push([thread, task, outputs]))
    const placed: string[] = []
    requester.on('envelope', (env) => placed.push(env.kind))
    let lastState: string | undefined
    requester.on('thread:state', (_thread, state) => {
      lastState = state.winner ? 'decided' : 'open'
    })
    expect(() =>
      (requester.on as (event: string, listener: () => void) => void)('nope', () => undefined),
    ).toThrow(/unknown event/)
    const need = await requester.post({
      requires: ['sort-dedupe', 'sha256'],
      inputs: [new TextEncoder().encode('["b","a","b"]')],
      budget: 10,
      bidWindowMs: 100,
    })
    for (const peer of [worker, requester]) {
      await until(`FINAL at ${peer.did.slice(-6)}`, () => {
        const state = peer.agent.replica(need)?.state
        const winner = state?.winner
        const tasks = winner
          ? [...state.tasks.values()].filter((task) => task.proposal === winner.proposal)
          : []
        return tasks.length === 2 && tasks.every((task) => task.state === 'FINAL') ? true : undefined
      })
    }
    expect(requester.agent.replica(need)!.stateHash()).toBe(worker.agent.replica(need)!.stateHash())
    const finalTasks = [...requester.agent.replica(need)!.state.tasks.values()].filter(
      (task) => task.state === 'FINAL',
    )
    await until('both FINAL events', () =>
      finals.filter(([thread]) => thread === need).length >= 2 ? true : undefined,
    )
    expect(finals.filter(([thread]) => thread === need).sort()).toEqual(
      finalTasks.map((task) => [need, task.id, task.commit!.outputs]).sort(),
    )
    expect(placed).toContain('NEED')
    expect(placed).toContain('FINALIZE')
    expect(lastState).toBe('decided')
    // Leases were granted by the anchor, and nothing was refused on the way.
    const log = worker.agent.replica(need)!.envelopes()
    expect(log.filter((env) => env.kind === 'GRANT').every((env) => env.sender === identity.did)).toBe(true)
    expect(log.filter((env) => env.kind === 'GRANT').length).toBeGreaterThanOrEqual(2)
    expect([...worker.agent.replica(need)!.state.rejected.values()]).toEqual([])
    // It heard them (by gossip or sync) and refused every one.
    const heard = outsider.bus.stats().rejected.denied + (outsider.agent.refusals()['wrong-network'] ?? 0)
    expect(heard).toBeGreaterThan(0)
    expect(outsider.agent.threads()).toEqual([])
    expect(outsider.agent.orphanCount).toBe(0)
    // The worker's outputs reach the requester from the worker's store.
    const state = requester.agent.replica(need)!.state
    const outputs = [...state.tasks.values()].flatMap((task) => task.commit?.outputs ?? [])
    expect(outputs.length).toBeGreaterThan(0)
    for (const cid of outputs) {
      const bytes = await requester.artifacts.get(cid)
      expect(bytes && artifactCid(bytes)).toBe(cid)
    }
    // Once settled (FINAL, then quiet for 2 × T_challenge) the watcher drops the thread from
    // memory and answers its envelopes `retired`; the requester, which did not ask, keeps it.
    await until('the watcher to retire the settled thread', () =>
      watcher.agent.isRetired(need) ? true : undefined,
    )
    expect(watcher.agent.replica(need)).toBeUndefined()
    expect(requester.agent.replica(need)).toBeDefined()
    // Its envelopes left the watcher's sync index with it (the requester still serves them).
    expect(log.some((env) => watcher.sync!.index.has(env.id))).toBe(false)
    expect(log.every((env) => requester.sync!.index.has(env.id))).toBe(true)
  })

  it('a late joiner catches up with a 1 000-envelope thread through sync', async () => {
    const input = new TextEncoder().encode('the one input every task of the thread reads')
    const { params, log, thread } = await claimedThread(201, artifactCid(input))
    expect(log.length).toBeGreaterThanOrEqual(1000)

    // Plan sync off: this is about envelope sync (test/plan-sync.test.ts covers the Automerge path).
    const holder = await createPeer({
      params,
      network: { webRTC: false },
      syncIntervalMs: 0,
      planSync: false,
    })
    peers.push(holder)
    await holder.artifacts.put(input)
    for (const env of log) await holder.agent.deliver(env)
    const reference = holder.agent.replica(thread)!
    expect([...reference.state.rejected.values()]).toEqual([])

    const late = await joining(holder, { params, syncIntervalMs: 0, planSync: false })
    const caughtUp = await until('the late joiner to hold the thread', () => {
      const replica = late.agent.replica(thread)
      return replica && replica.size === log.length ? replica : undefined
    })
    expect(caughtUp.stateHash()).toBe(reference.stateHash())
    const tasks = [...caughtUp.state.tasks.values()]
    expect(tasks.every((task) => task.state === 'CLAIMED')).toBe(true)
    // …and fetches what the tasks read from the holder's store, as a verifier would.
    const lateArtifacts = late.artifacts as HeliaArtifacts
    expect(lateArtifacts.helia).toBeDefined()
    expect(await lateArtifacts.get(artifactCid(input), { offline: true })).toBeUndefined()
    const fetched = await fetchTaskInputs(caughtUp.state, tasks[0]!, (cid) => late.artifacts.get(cid))
    expect(fetched).toEqual([input])
  })
})
