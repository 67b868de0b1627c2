/**
 * Several anchors (separate Node processes, each with its own etcd client) race for the same
 * NEEDs on a real 3-member etcd cluster; then a split is modelled as two key prefixes that decide
 * independently and are merged.
 */

import type { CanSwarmError } from '@can-swarm/peer'
import { bucketOf, type DecideRecord, MemoryConsensusStore } from '@can-swarm/peer'
import { Etcd3 } from 'etcd3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdCluster, etcdAvailable } from '../../../../test-support/etcd-cluster.ts'
import { EtcdConsensusStore } from '../../src/consensus/etcd.ts'
import { type Ack, AnchorProcess } from './helpers/anchors.ts'

const available = etcdAvailable(import.meta.filename)

/** P1 across every anchor's acknowledgements, checked against the store itself. */
export async function checkSingleDecision(store: EtcdConsensusStore, acks: Ack[], needs: number) {
  const byNeed = new Map<string, Ack[]>()
  for (const ack of acks) byNeed.set(ack.need, [...(byNeed.get(ack.need) ?? []), ack])
  const records = await store.records()
  expect(records).toHaveLength(needs)
  for (const record of records) {
    const seen = byNeed.get(record.need) ?? []
    expect(seen.length).toBeGreaterThan(0)
    // every anchor that got an answer was told the one stored decision…
    for (const ack of seen) expect(ack.proposal, record.need).toBe(record.proposal)
    // …and at most one call created it
    expect(seen.filter((ack) => ack.outcome === 'decided').length, record.need).toBeLessThanOrEqual(1)
  }
  return records
}

describe.skipIf(!available)('etcd store: anchors racing on a real 3-member cluster', () => {
  let cluster: EtcdCluster
  beforeAll(async () => {
    cluster = await EtcdCluster.start({ size: 3 })
  }, 90_000)
  afterAll(async () => {
    await cluster?.stop()
  })

  for (const anchors of [2, 3]) {
    it(`${anchors} anchors racing on 1 000 NEEDs: exactly one decision per NEED, idempotent retries`, async () => {
      const prefix = `race-${anchors}`
      const processes = Array.from(
        { length: anchors },
        (_, i) =>
          new AnchorProcess({
            hosts: cluster.clientUrls,
            prefix,
            anchor: `anchor${i}`,
            needs: 1_000,
            giveUpAfterMs: 60_000,
            concurrency: 16,
            timeoutMs: 10_000,
          }),
      )
      try {
        await Promise.all(processes.map((p) => p.finished()))
      } finally {
        await Promise.all(processes.map((p) => p.kill()))
      }
      const acks = processes.flatMap((p) => p.acks)
      expect(acks).toHaveLength(anchors * 1_000)
      for (const p of processes) expect(p.done).toEqual({ done: true, acks: 1_000, retryMismatches: 0 })
      const store = await EtcdConsensusStore.open({ hosts: cluster.clientUrls, prefix })
      try {
        await checkSingleDecision(store, acks, 1_000)
        // exactly one creator per NEED here (no faults: no ambiguous answers)
        expect(acks.filter((ack) => ack.outcome === 'decided')).toHaveLength(1_000)
        // the race really was a race: more than one anchor won some NEEDs
        const winners = new Set(acks.filter((a) => a.outcome === 'decided').map((a) => a.decider))
        expect(winners.size).toBeGreaterThan(1)
        expect(acks.filter((a) => a.outcome === 'conflict').length).toBeGreaterThan(0)
      } finally {
        await store.close()
      }
    }, 180_000)
  }

  it('a split (two prefixes deciding apart) merges to one winner per NEED by the rule, losers reported', async () => {
    const hosts = cluster.clientUrls
    const sideA = await EtcdConsensusStore.open({ hosts, prefix: 'split-a' })
    const sideB = await EtcdConsensusStore.open({ hosts, prefix: 'split-b', initialEpoch: 1 })
    const reference = new MemoryConsensusStore({ epoch: 1 })
    try {
      // Before the split both sides share history (NEEDs 0–19 decided on A and copied to B).
      for (let i = 0; i < 20; i += 1) {
        const request = {
          need: `n${i}`,
          proposal: `shared${i}`,
          epoch: 1,
          lamport: i,
          kPlan: 1,
          decider: 'did:key:zA',
        }
        await sideA.tryDecide(request)
        reference.tryDecideSync(request)
      }
      await sideB.mergeFrom(sideA, { epoch: 2, fenceSource: false })
      await sideA.advanceEpoch(2)
      const forkB = reference.fork(2)
      reference.advanceEpoch(2)
      // During the split each side decides; NEEDs 20–79 are contested with varied lamports/epochs.
      await sideB.advanceEpoch(3)
      forkB.advanceEpoch(3)
      for (let i = 20; i < 100; i += 1) {
        if (i < 80) {
          const a = {
            need: `n${i}`,
            proposal: `a${i}`,
            epoch: 2,
            lamport: 100 + (i % 7),
            kPlan: 1,
            decider: 'did:key:zA',
          }
          expect((await sideA.tryDecide(a)).outcome).toBe('decided')
          reference.tryDecideSync(a)
        }
        if (i >= 40) {
          const b = {
            need: `n${i}`,
            proposal: `b${i}`,
            epoch: 3,
            lamport: 100 + (i % 5),
            kPlan: 1,
            decider: 'did:key:zB',
          }
          expect((await sideB.tryDecide(b)).outcome).toBe('decided')
          forkB.tryDecideSync(b)
        }
      }
      // Heal: B's decisions merge into A.
      const report = await sideA.mergeFrom(sideB)
      const expectedLosers = reference.mergeFrom(forkB, 4)
      expect(report.epoch).toBe(4)
      expect(report.losers).toEqual([...expectedLosers].sort((x, y) => (x.need < y.need ? -1 : 1)))
      expect(report.losers).toHaveLength(40) // NEEDs 40–79 were decided on both sides
      expect(report.adopted).toBe(20) // NEEDs 80–99 only on B
      expect(await sideA.records()).toEqual(reference.records())
      // one winner per NEED, the rule's: B's epoch-3 decisions beat A's epoch-2 ones
      const merged = new Map((await sideA.records()).map((r) => [r.need, r] as const))
      for (const loser of report.losers) {
        const winner = merged.get(loser.need)!
        expect(winner.proposal).not.toBe(loser.proposal)
        expect(winner.epoch).toBeGreaterThanOrEqual(loser.epoch)
      }
      // both sides are fenced: old tokens are refused everywhere
      expect(await sideA.currentEpoch()).toBe(4)
      expect(await sideB.currentEpoch()).toBe(4)
      const stale = { need: 'late', proposal: 'x', epoch: 3, lamport: 1, kPlan: 1, decider: 'did:key:zB' }
      await expect(sideB.tryDecide(stale)).rejects.toMatchObject({ code: 'STALE_EPOCH' })
      // merging again changes nothing
      const again = await sideA.mergeFrom(sideB, { epoch: 5 })
      expect(again.losers).toEqual([])
      expect(again.adopted + again.replaced).toBe(0)
    } finally {
      await sideA.close()
      await sideB.close()
    }
  }, 120_000)

  it('a second merger is fenced out while the merge lock is held', async () => {
    const hosts = cluster.clientUrls
    const target = await EtcdConsensusStore.open({ hosts, prefix: 'lock-t' })
    const other = await EtcdConsensusStore.open({ hosts, prefix: 'lock-t', timeoutMs: 1_500 })
    const source = new MemoryConsensusStore({ epoch: 1 })
    for (let i = 0; i < 300; i += 1) {
      source.tryDecideSync({
        need: `m${i}`,
        proposal: 'p',
        epoch: 1,
        lamport: i,
        kPlan: 1,
        decider: 'did:key:zS',
      })
    }
    try {
      const first = target.mergeFrom(source, { concurrency: 1 })
      const second = other.mergeFrom(new MemoryConsensusStore({ epoch: 1 }))
      const outcomes = await Promise.allSettled([first, second])
      expect(outcomes[0]!.status).toBe('fulfilled')
      // the second merger either waited for the lock or gave up with a typed error, never interleaved
      if (outcomes[1]!.status === 'rejected') {
        const error = outcomes[1]!.reason as CanSwarmError
        expect(error.code).toBe('CONSENSUS_UNAVAILABLE')
        expect(error.message).toMatch(/merge lock/)
      }
      const records: DecideRecord[] = await target.records()
      expect(records).toHaveLength(300)
    } finally {
      await target.close()
      await other.close()
    }
  }, 60_000)

  it('a merger whose lock lease is gone cannot write: the lock key revision fences it', async () => {
    const hosts = cluster.clientUrls
    const target = await EtcdConsensusStore.open({ hosts, prefix: 'lease-fence' })
    const raw = new Etcd3({ hosts })
    const records = [
      {
        need: 'f1',
        proposal: 'p',
        epoch: 1,
        lamport: 1,
        kPlan: 1,
        decider: 'did:key:zS' as const,
        bucket: 0,
      },
    ]
    // The source hands over its records only after the lock is taken; at that moment the lock key
    // disappears, exactly as if this anchor had stalled past the lease TTL.
    const source = {
      currentEpoch: async () => 1,
      records: async () => {
        await raw.delete().key('lease-fence/merge-lock')
        return records.map((r) => ({ ...r, bucket: bucketOf(r.need) }))
      },
    }
    try {
      await expect(target.mergeFrom(source, { fenceSource: false })).rejects.toMatchObject({
        code: 'CONSENSUS_UNAVAILABLE',
        message: /merge lock .* was lost/,
      })
      expect(await target.records()).toEqual([]) // nothing written after the fence was lost
      expect(await target.currentEpoch()).toBe(1) // and the epoch did not move
    } finally {
      raw.close()
      await target.close()
    }
  }, 60_000)
})
