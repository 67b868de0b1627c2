/**
 * Nemesis on a real 3-member etcd cluster while two anchor processes decide: kill the leader,
 * pause a member, kill an anchor mid-burst and restart it, lose the quorum and get it back.
 * No NEED gets two decisions, no acknowledged decision is lost, and deciding resumes once a
 * quorum is back (asserted as eventual success with generous bounds, never as a timing).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdCluster, etcdAvailable } from '../../../../test-support/etcd-cluster.ts'
import { EtcdConsensusStore } from '../../src/consensus/etcd.ts'
import { type Ack, AnchorProcess, eventually } from './helpers/anchors.ts'

const available = etcdAvailable(import.meta.filename)

describe.skipIf(!available)('etcd store under a nemesis', () => {
  let cluster: EtcdCluster
  const anchors: AnchorProcess[] = []
  beforeAll(async () => {
    cluster = await EtcdCluster.start({ size: 3 })
  }, 90_000)
  afterAll(async () => {
    await Promise.all(anchors.map((a) => a.kill()))
    await cluster?.stop()
  })

  it('leader killed, member paused, anchor killed and restarted, quorum lost and back: P1 holds, no ack lost', async () => {
    const prefix = 'nemesis'
    const start = (anchor: string) => {
      const process = new AnchorProcess({
        hosts: cluster.clientUrls,
        prefix,
        anchor,
        needs: 100_000,
        giveUpAfterMs: 300_000,
        concurrency: 4,
        timeoutMs: 5_000,
        stopOnStdin: true,
      })
      anchors.push(process)
      return process
    }
    const total = () => anchors.reduce((sum, a) => sum + a.acks.length, 0)
    const progress = async (what: string, more = 100) => {
      const from = total()
      await eventually(`${what}: ${more} more acknowledged decisions`, () => total() >= from + more, 120_000)
    }

    let anchorA = start('anchorA')
    const anchorB = start('anchorB')
    await progress('both anchors deciding', 200)

    // 1. kill the leader: the two others elect a new one and deciding goes on
    const leader = await cluster.leader()
    await cluster.kill(leader)
    await progress('after the leader was killed')
    cluster.restart(leader)
    await cluster.waitHealthy()
    await progress('after the old leader came back')

    // 2. pause a member (the current leader, so that it bites), then resume it
    const paused = await cluster.leader()
    cluster.pause(paused)
    await progress('while a member is paused')
    cluster.resume(paused)
    await cluster.waitHealthy()

    // 3. kill an anchor mid-burst, restart it: it redoes its NEEDs, idempotently
    const killedAcks = anchorA.acks.length
    await anchorA.kill()
    expect(anchorA.done).toBeUndefined()
    await progress('with one anchor dead')
    anchorA = start('anchorA')
    await eventually('the restarted anchor to catch up', () => anchorA.acks.length > killedAcks + 50, 120_000)

    // 4. lose the quorum: calls fail with a typed error within their timeout instead of hanging
    const probe = await EtcdConsensusStore.open({ hosts: cluster.clientUrls, prefix, timeoutMs: 3_000 })
    try {
      const [first, second] = cluster.members.filter((m) => m.process !== undefined)
      await cluster.kill(first!)
      await cluster.kill(second!)
      const epoch = 1
      const request = {
        need: 'probe',
        proposal: 'probe',
        epoch,
        lamport: 1,
        kPlan: 1,
        decider: 'did:key:zProbe' as const,
      }
      await expect(probe.tryDecide(request)).rejects.toMatchObject({ code: 'CONSENSUS_UNAVAILABLE' })
      const abort = new AbortController()
      const aborted = probe.tryDecide(request, { signal: abort.signal })
      abort.abort(new Error('operator gave up'))
      await expect(aborted).rejects.toThrow('operator gave up')
      cluster.restart(first!)
      cluster.restart(second!)
      const restartedAt = Date.now()
      // deciding resumes once a quorum is back
      await eventually(
        'a decision after the quorum came back',
        async () => {
          try {
            return (await probe.tryDecide(request)).record.proposal === 'probe'
          } catch {
            return false
          }
        },
        120_000,
      )
      console.info(`[nemesis] first decision ${Date.now() - restartedAt} ms after restarting the two members`)
      await progress('after the quorum came back')
    } finally {
      await probe.close()
    }

    // stop both bursts; each anchor retries its acknowledged NEEDs and must get the same records
    for (const anchor of [anchorA, anchorB]) anchor.stop()
    await Promise.all([anchorA.finished(), anchorB.finished()])
    for (const anchor of [anchorA, anchorB]) expect(anchor.done?.retryMismatches).toBe(0)

    const store = await EtcdConsensusStore.open({ hosts: cluster.clientUrls, prefix })
    try {
      const stored = new Map((await store.records()).map((r) => [r.need, r] as const))
      const acks: Ack[] = anchors.flatMap((a) => a.acks)
      const decidedBy = new Map<string, number>()
      for (const ack of acks) {
        // no acknowledged decision is lost, and every anchor was told the one stored decision
        expect(stored.get(ack.need)?.proposal, ack.need).toBe(ack.proposal)
        if (ack.outcome === 'decided') decidedBy.set(ack.need, (decidedBy.get(ack.need) ?? 0) + 1)
      }
      for (const [need, count] of decidedBy) expect(count, need).toBe(1)
      expect(acks.length).toBeGreaterThan(1_000)
      const outcomes = Object.groupBy(acks, (ack) => ack.outcome)
      const unavailable = anchors
        .flatMap((a) => a.lines)
        .filter((l) => (l as { unavailable?: string }).unavailable)
      console.info(
        `[nemesis] ${acks.length} acks (${outcomes.decided?.length ?? 0} decided, ${outcomes.existing?.length ?? 0} existing, ${outcomes.conflict?.length ?? 0} conflict), ${stored.size} NEEDs stored, ${unavailable.length} CONSENSUS_UNAVAILABLE answers seen by anchors`,
      )
    } finally {
      await store.close()
    }
  }, 600_000)
})
