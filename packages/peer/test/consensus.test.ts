import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  bucketOf,
  challengeRewardFor,
  checkEpochStep,
  compareDecides,
  INITIAL_BOOTSTRAP_STATE,
  kPlanFor,
  kResultFor,
  MAX_EPOCH_STEP,
  MemoryConsensusStore,
  mergeWinner,
  observeVerifiers,
} from '../src/core/consensus.ts'
import { InvalidArgumentError, StaleEpochError } from '../src/core/errors.ts'
import { MAX_EPOCH, MAX_LAMPORT } from '../src/core/types.ts'

const decider = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
const other = 'did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH'

describe('MemoryConsensusStore', () => {
  it('decides once per NEED, returns the record to an idempotent retry, conflicts otherwise', async () => {
    const store = new MemoryConsensusStore()
    const request = { need: 'n1', proposal: 'p1', epoch: 1, lamport: 5, kPlan: 1, decider }
    const first = await store.tryDecide(request)
    expect(first.outcome).toBe('decided')
    expect(first.record.bucket).toBe(bucketOf('n1'))
    const retry = await store.tryDecide({ ...request, lamport: 9 })
    expect(retry).toEqual({ outcome: 'existing', record: first.record })
    const rival = await store.tryDecide({ ...request, proposal: 'p2', decider: other })
    expect(rival.outcome).toBe('conflict')
    expect(rival.record.proposal).toBe('p1')
    expect(store.history).toHaveLength(1)
  })

  it('refuses a stale or foreign epoch with a typed error (P4)', async () => {
    const store = new MemoryConsensusStore({ epoch: 3 })
    await expect(
      store.tryDecide({ need: 'n', proposal: 'p', epoch: 2, lamport: 1, kPlan: 1, decider }),
    ).rejects.toBeInstanceOf(StaleEpochError)
    await expect(
      store.tryDecide({ need: 'n', proposal: 'p', epoch: 3, lamport: 1, kPlan: 1, decider }),
    ).resolves.toMatchObject({
      outcome: 'decided',
    })
  })

  it('rejects bad requests naming the field', async () => {
    const store = new MemoryConsensusStore()
    await expect(
      store.tryDecide({ need: '', proposal: 'p', epoch: 1, lamport: 1, kPlan: 1, decider }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'need',
    })
    await expect(
      store.tryDecide({ need: 'n', proposal: 'p', epoch: 1, lamport: 1, kPlan: 0, decider }),
    ).rejects.toMatchObject({
      field: 'kPlan',
    })
    await expect(
      store.tryDecide({ need: 'n', proposal: 'p', epoch: 1, lamport: 1.5, kPlan: 1, decider }),
    ).rejects.toMatchObject({ field: 'lamport' })
  })

  it('bounds epochs and lamports (A4) and raises the epoch only by bounded steps (A3)', async () => {
    const store = new MemoryConsensusStore({ epoch: 1 })
    const request = { need: 'n', proposal: 'p', epoch: 1, lamport: 1, kPlan: 1, decider }
    await expect(store.tryDecide({ ...request, epoch: MAX_EPOCH + 1 })).rejects.toMatchObject({
      field: 'epoch',
    })
    await expect(store.tryDecide({ ...request, lamport: MAX_LAMPORT + 1 })).rejects.toMatchObject({
      field: 'lamport',
    })
    expect(store.advanceEpoch()).toBe(2)
    expect(store.advanceEpoch(2 + MAX_EPOCH_STEP)).toBe(2 + MAX_EPOCH_STEP)
    for (const to of [store.epoch, store.epoch - 1, store.epoch + MAX_EPOCH_STEP + 1, MAX_EPOCH + 1, 1.5]) {
      expect(() => store.advanceEpoch(to)).toThrow(InvalidArgumentError)
    }
    expect(store.epoch).toBe(2 + MAX_EPOCH_STEP)
    expect(() => checkEpochStep(MAX_EPOCH, MAX_EPOCH - 1)).not.toThrow()
    expect(() => checkEpochStep(MAX_EPOCH + 1, MAX_EPOCH)).toThrow(/bounded steps/)
  })

  it('forks for a split and merges by the rule on heal', async () => {
    const store = new MemoryConsensusStore({ epoch: 1 })
    await store.tryDecide({ need: 'before', proposal: 'p0', epoch: 1, lamport: 1, kPlan: 1, decider })
    const side = store.fork(2)
    expect(side.getDecideSync('before')?.proposal).toBe('p0')
    await store.tryDecide({ need: 'x', proposal: 'pa', epoch: 1, lamport: 50, kPlan: 1, decider })
    await side.tryDecide({ need: 'x', proposal: 'pb', epoch: 2, lamport: 3, kPlan: 1, decider: other })
    await side.tryDecide({ need: 'only-b', proposal: 'pc', epoch: 2, lamport: 4, kPlan: 1, decider: other })
    const losers = store.mergeFrom(side, 3)
    expect(losers.map((r) => r.proposal)).toEqual(['pa'])
    expect(store.getDecideSync('x')?.proposal).toBe('pb')
    expect(store.getDecideSync('only-b')?.proposal).toBe('pc')
    expect(store.epoch).toBe(3)
  })
})

describe('merge rule', () => {
  const arbDecide = fc.record({
    epoch: fc.integer({ min: 0, max: 4 }),
    lamport: fc.integer({ min: 0, max: 6 }),
    decider: fc.constantFrom('did:key:a', 'did:key:b', 'did:key:c'),
    proposal: fc.constantFrom('p1', 'p2', 'p3'),
  })

  it('higher epoch, then higher lamport, then lower decider wins', () => {
    expect(
      mergeWinner(
        { epoch: 2, lamport: 1, decider: 'z', proposal: 'a' },
        { epoch: 1, lamport: 99, decider: 'a', proposal: 'b' },
      ).proposal,
    ).toBe('a')
    expect(
      mergeWinner(
        { epoch: 1, lamport: 5, decider: 'z', proposal: 'a' },
        { epoch: 1, lamport: 7, decider: 'z', proposal: 'b' },
      ).proposal,
    ).toBe('b')
    expect(
      mergeWinner(
        { epoch: 1, lamport: 5, decider: 'b', proposal: 'a' },
        { epoch: 1, lamport: 5, decider: 'a', proposal: 'b' },
      ).proposal,
    ).toBe('b')
  })

  it('is a total order: antisymmetric, transitive, and total', () => {
    fc.assert(
      fc.property(arbDecide, arbDecide, arbDecide, (a, b, c) => {
        const ab = Math.sign(compareDecides(a, b))
        expect(Math.sign(compareDecides(b, a))).toBe(-ab || 0)
        if (ab === 0) expect(a).toEqual(b)
        if (compareDecides(a, b) <= 0 && compareDecides(b, c) <= 0)
          expect(compareDecides(a, c)).toBeLessThanOrEqual(0)
      }),
    )
  })

  it('picks the same winner whatever the order of a set of DECIDEs', () => {
    fc.assert(
      fc.property(fc.array(arbDecide, { minLength: 1, maxLength: 8 }), fc.nat(), (decides, rotate) => {
        const shuffled = [
          ...decides.slice(rotate % decides.length),
          ...decides.slice(0, rotate % decides.length),
        ].reverse()
        expect(shuffled.reduce(mergeWinner)).toEqual(decides.reduce(mergeWinner))
      }),
    )
  })
})

describe('quorum sizes', () => {
  it('follows docs/PROTOCOL.md §7.2', () => {
    expect(kPlanFor(3, true)).toBe(1)
    expect(kResultFor(3, true)).toBe(1)
    expect(kPlanFor(10, false)).toBe(3)
    expect(kResultFor(10, false)).toBe(3)
    expect(kPlanFor(100, false)).toBe(5)
    expect(kResultFor(100, false)).toBe(5)
    expect(kPlanFor(2, false)).toBe(1)
    expect(kResultFor(2, false)).toBe(2)
    expect(challengeRewardFor(10, true)).toBe(20)
    expect(challengeRewardFor(10, false)).toBe(10)
  })

  it('K stays within [1, K_target] and grows with the pool', () => {
    fc.assert(
      fc.property(fc.nat({ max: 10_000 }), fc.nat({ max: 10_000 }), (a, b) => {
        const [low, high] = a < b ? [a, b] : [b, a]
        for (const k of [kPlanFor, kResultFor]) {
          expect(k(low, false)).toBeGreaterThanOrEqual(1)
          expect(k(high, false)).toBeLessThanOrEqual(5)
          expect(k(low, false)).toBeLessThanOrEqual(k(high, false))
        }
      }),
    )
  })

  it('leaves bootstrap only after 24 h at or above 10 verifiers, and re-enters below', () => {
    const hour = 3_600_000
    let state = observeVerifiers(INITIAL_BOOTSTRAP_STATE, 12, 0)
    expect(state.bootstrap).toBe(true)
    state = observeVerifiers(state, 11, 23 * hour)
    expect(state.bootstrap).toBe(true)
    state = observeVerifiers(state, 9, 23.5 * hour)
    expect(state).toEqual({ bootstrap: true, aboveSinceMs: undefined })
    state = observeVerifiers(state, 10, 24 * hour)
    state = observeVerifiers(state, 10, 48 * hour)
    expect(state.bootstrap).toBe(false)
    expect(observeVerifiers(state, 4, 49 * hour).bootstrap).toBe(true)
  })

  it('spreads NEEDs over 256 buckets', () => {
    const counts = new Array(256).fill(0)
    for (let i = 0; i < 25_600; i += 1) counts[bucketOf(`need-${i}`)] += 1
    expect(Math.min(...counts)).toBeGreaterThan(50)
    expect(Math.max(...counts)).toBeLessThan(160)
    expect(bucketOf('need-1')).toBe(bucketOf('need-1'))
  })
})
