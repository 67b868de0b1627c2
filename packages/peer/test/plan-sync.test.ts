/**
 * Plan sync over real libp2p (TCP on 127.0.0.1) between createPeer() peers with envelope sync
 * turned off, so that Automerge is the only way envelopes travel (delivering envelopes to an agent
 * directly publishes nothing on gossip): followers converge, a late joiner catches up with a
 * 1 004-envelope thread, forged and tampered entries are not folded, and a document kept on disk
 * reproduces the plan after a restart without any network.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { claimedThread } from '../../../test-support/claimed-thread.ts'
import { tcpOf, until } from '../../../test-support/peers.ts'
import { cidOfDagCbor, encodeEnvelope } from '../src/core/codec.ts'
import type { NetworkParams } from '../src/core/thread/params.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import type { AnyEnvelope } from '../src/core/types.ts'
import { createPeer, type Peer, type PeerOptions } from '../src/peer.ts'

const peers: Peer[] = []
const dirs: string[] = []
afterAll(async () => {
  for (const peer of peers) await peer.stop().catch(() => undefined)
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** A peer whose only way to exchange envelopes is plan sync. */
async function planPeer(
  params: NetworkParams,
  bootstrap: Peer[] = [],
  extra: Partial<PeerOptions> = {},
): Promise<Peer> {
  const peer = await createPeer({
    params,
    bootstrap: bootstrap.map(tcpOf),
    network: { webRTC: false },
    envelopeSync: false,
    planSync: { relayDelayMs: 50 },
    ...extra,
  })
  peers.push(peer)
  return peer
}

function referencePlan(thread: string, params: NetworkParams, log: AnyEnvelope[]): ThreadReplica {
  const replica = new ThreadReplica(thread, params)
  replica.receiveAll(log, 0)
  return replica
}

function holds(peer: Peer, thread: string, count: number): true | undefined {
  return (peer.agent.replica(thread)?.size ?? 0) >= count ? true : undefined
}

describe('plan sync (Automerge-repo over libp2p)', () => {
  it('three followers holding different parts of a thread converge to the same plan', async () => {
    const { params, log, thread } = await claimedThread(211)
    const reference = referencePlan(thread, params, log)
    const a = await planPeer(params)
    const b = await planPeer(params, [a])
    const c = await planPeer(params, [a, b])
    const half = Math.floor(log.length / 2)
    for (const env of log.slice(0, half)) await a.agent.deliver(env)
    // b holds the second half without the NEED: orphans, folded once the NEED arrives (A1).
    for (const env of log.slice(half)) expect(await b.agent.deliver(env)).toBe('pending:no-need')
    expect(b.agent.orphanCount).toBe(log.length - half)
    expect(b.agent.replica(thread)).toBeUndefined()
    // Orphans are not placed, so nothing makes b follow the thread's document: it follows it, as c does.
    await b.planSync!.follow(thread)
    await c.planSync!.follow(thread)

    for (const peer of [a, b, c])
      await until('every peer to hold the thread', () => holds(peer, thread, log.length))
    for (const peer of [a, b, c]) {
      const replica = peer.agent.replica(thread)!
      expect(replica.plan().canonicalState()).toEqual(reference.plan().canonicalState())
      expect(replica.stateHash()).toBe(reference.stateHash())
    }
    // Each envelope is in the document once, whoever wrote it.
    const doc = c.planSync!.handle(thread)!.doc()
    expect(Object.keys(doc.envelopes).sort()).toEqual(log.map((env) => env.id).sort())
  })

  it('a late joiner catches up with a 1 000-envelope thread through Automerge alone', async () => {
    const { params, log, thread } = await claimedThread(212)
    expect(log.length).toBeGreaterThanOrEqual(1000)
    const holder = await planPeer(params)
    for (const env of log) await holder.agent.deliver(env)
    await holder.planSync!.flush()
    expect(Object.keys(holder.planSync!.handle(thread)!.doc().envelopes)).toHaveLength(log.length)

    const late = await planPeer(params, [holder])
    expect(late.sync).toBeUndefined()
    await late.planSync!.follow(thread)
    await until('the late joiner to hold the thread', () => holds(late, thread, log.length))
    const caughtUp = late.agent.replica(thread)!
    expect(caughtUp.plan().canonicalState()).toEqual(holder.agent.replica(thread)!.plan().canonicalState())
    expect(caughtUp.stateHash()).toBe(holder.agent.replica(thread)!.stateHash())
    expect([...caughtUp.state.tasks.values()].every((task) => task.state === 'CLAIMED')).toBe(true)
    expect(late.planSync!.stats().folded).toBe(log.length)
  })

  it('refuses a peer that sends a badly signed or a tampered entry: neither enters the document', async () => {
    const { params, log, thread } = await claimedThread(213)
    const honestLog = log.slice(0, 4) // NEED, PROPOSE, ATTEST_PLAN, DECIDE
    const liar = await planPeer(params)
    for (const env of honestLog) await liar.agent.deliver(env)
    const honest = await planPeer(params, [liar])
    await honest.planSync!.follow(thread)
    await until('the honest peer to hold the first envelopes', () => holds(honest, thread, honestLog.length))

    // A forged CLAIM: a valid envelope's signature altered. Its key is the CID of its bytes, so it
    // passes the structural check, but its signature is checked at inspection too: the message
    // carrying it is refused before the repo stores it, and the liar is cut off.
    const claim = log[4]!
    const sig = new Uint8Array(claim.sig)
    sig[0] = sig[0]! ^ 0xff
    const forgedBytes = encodeEnvelope({ ...claim, sig })
    const forgedId = cidOfDagCbor(forgedBytes)
    const liarHandle = liar.planSync!.handle(thread)!
    liarHandle.change((doc) => {
      doc.envelopes[forgedId] = forgedBytes
    })
    await until('the forged message to be refused', () =>
      honest.planSync!.stats().refusedMessages >= 1 ? true : undefined,
    )
    expect(honest.planSync!.handle(thread)!.doc().envelopes[forgedId]).toBeUndefined()
    expect(honest.agent.replica(thread)!.has(forgedId)).toBe(false)
    expect(honest.agent.replica(thread)!.size).toBe(honestLog.length)

    // A tampered entry (a real envelope's bytes under another envelope's id), from another liar:
    // refused by the structural check, nothing of it stored.
    const liar2 = await planPeer(params)
    for (const env of honestLog) await liar2.agent.deliver(env)
    await liar2.planSync!.flush()
    liar2.planSync!.handle(thread)!.change((doc) => {
      doc.envelopes[log[5]!.id] = encodeEnvelope(log[6]!)
    })
    const before = honest.planSync!.stats().refusedMessages
    await honest.network.libp2p.dial(liar2.network.libp2p.getMultiaddrs()[0]!)
    await until('the tampered message to be refused', () =>
      honest.planSync!.stats().refusedMessages > before ? true : undefined,
    )
    expect(honest.planSync!.handle(thread)!.doc().envelopes[log[5]!.id]).toBeUndefined()
    expect(honest.agent.replica(thread)!.has(log[5]!.id)).toBe(false)
    expect(honest.agent.replica(thread)!.size).toBe(honestLog.length)
  })

  it('a document kept on disk reproduces the plan after a restart, without network', async () => {
    const { params, log, thread } = await claimedThread(214)
    const dir = mkdtempSync(join(tmpdir(), 'can-swarm-plan-'))
    dirs.push(dir)
    const first = await planPeer(params, [], { planSync: { storage: dir, relayDelayMs: 50 } })
    for (const env of log) await first.agent.deliver(env)
    await first.planSync!.flush()
    const hash = first.agent.replica(thread)!.stateHash()
    const plan = first.agent.replica(thread)!.plan().canonicalState()
    await first.stop()

    const second = await planPeer(params, [], { planSync: { storage: dir } })
    expect(second.network.libp2p.getConnections()).toHaveLength(0)
    expect(second.agent.replica(thread)).toBeUndefined()
    await second.planSync!.follow(thread)
    await until('the restarted peer to fold the stored document', () => holds(second, thread, log.length))
    expect(second.agent.replica(thread)!.plan().canonicalState()).toEqual(plan)
    expect(second.agent.replica(thread)!.stateHash()).toBe(hash)
  })

  it('a forgotten document leaves memory, stays on disk, and is followed again on news', async () => {
    const { params, log, thread } = await claimedThread(215)
    const dir = mkdtempSync(join(tmpdir(), 'can-swarm-plan-'))
    dirs.push(dir)
    const peer = await planPeer(params, [], { planSync: { storage: dir, relayDelayMs: 50 } })
    for (const env of log.slice(0, -1)) await peer.agent.deliver(env)
    await peer.planSync!.flush()
    const docId = Object.keys(peer.planSync!.repo.handles).find(
      (id) => peer.planSync!.handle(thread)?.documentId === id,
    )
    expect(docId).toBeDefined()
    await peer.planSync!.forget(thread)
    expect(peer.planSync!.followed()).toEqual([])
    expect(peer.planSync!.handle(thread)).toBeUndefined()
    expect(peer.planSync!.repo.handles[docId as never]).toBeUndefined()
    expect(peer.planSync!.stats()).toMatchObject({ threads: 0, forgotten: 1 })
    // News of the thread follows it again, from storage: everything written before is still there.
    await peer.agent.deliver(log[log.length - 1]!)
    await until('the thread to be followed again', () => (peer.planSync!.handle(thread) ? true : undefined))
    await peer.planSync!.flush()
    expect(Object.keys(peer.planSync!.handle(thread)!.doc().envelopes)).toHaveLength(log.length)
  })

  it('opens a document for a decided thread and for its own NEED, not for every NEED it hears', async () => {
    const { params, log, thread } = await claimedThread(216)
    const peer = await planPeer(params)
    await peer.agent.deliver(log[0]!) // a stranger's NEED, undecided
    await peer.planSync!.flush()
    expect(peer.planSync!.followed()).toEqual([])
    for (const env of log.slice(1, 4)) await peer.agent.deliver(env) // … its PROPOSE, vote and DECIDE
    await until('the decided thread to be followed', () => (peer.planSync!.handle(thread) ? true : undefined))
    const own = await peer.agent.post({ requires: ['sha256'], inputs: [new Uint8Array([7])], budget: 1 })
    await until('its own NEED to be followed', () => (peer.planSync!.handle(own) ? true : undefined))
    expect(peer.planSync!.followed()).toEqual([thread, own].sort())
  })
})
