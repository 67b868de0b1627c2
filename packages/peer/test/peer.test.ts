/**
 * The front door in Node: peers made by createPeer() do a NEED end to end over libp2p (inputs and
 * outputs through their default Helia stores), and a peer that joins late (after 1 000+ envelopes
 * of a thread) catches up through sync to the same state and fetches the thread's artifacts.
 */
import { afterAll, describe, expect, it } from 'vitest'
import type { HeliaArtifacts } from '../src/artifacts/helia.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import { MemoryConsensusStore } from '../src/core/consensus.ts'
import { fetchTaskInputs } from '../src/core/thread/inputs.ts'
import { networkParams } from '../src/core/thread/params.ts'
import { createPeer, type Peer } from '../src/peer.ts'
import { claimedThread } from './claimed-thread.ts'
import { tcpOf, until } from './peers.ts'

const peers: Peer[] = []
afterAll(async () => {
  for (const peer of peers) await peer.stop().catch(() => undefined)
})

describe('createPeer', () => {
  it('runs a NEED to FINAL between two peers over libp2p', async () => {
    const params = networkParams({ verifiers: [], bootstrap: true, tChallengeMs: 300 })
    // Each peer has its own default Helia store: the worker fetches the input from the requester.
    const worker = await createPeer({
      params,
      roles: { planner: true, worker: true, verifier: true, decider: true },
      consensus: new MemoryConsensusStore(),
      network: { webRTC: false },
      syncIntervalMs: 1000,
    })
    peers.push(worker)
    const requester = await createPeer({
      params,
      bootstrap: [tcpOf(worker)],
      network: { webRTC: false },
      syncIntervalMs: 1000,
    })
    peers.push(requester)
    await new Promise((resolve) => setTimeout(resolve, 1500))
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
    // The worker's outputs reach the requester from the worker's store.
    const state = requester.agent.replica(need)!.state
    const outputs = [...state.tasks.values()].flatMap((task) => task.commit?.outputs ?? [])
    expect(outputs.length).toBeGreaterThan(0)
    for (const cid of outputs) {
      const bytes = await requester.artifacts.get(cid)
      expect(bytes && artifactCid(bytes)).toBe(cid)
    }
  })

  it('a late joiner catches up with a 1 000-envelope thread through sync', async () => {
    const thread = 'need-late-join'
    const input = new TextEncoder().encode('the one input every task of the thread reads')
    const { params, log } = await claimedThread(thread, 201, artifactCid(input))
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

    const late = await createPeer({
      params,
      bootstrap: [tcpOf(holder)],
      network: { webRTC: false },
      syncIntervalMs: 0,
      planSync: false,
    })
    peers.push(late)
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
