import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { hashCanonical } from '../src/core/codec.ts'
import { Ledger, type LedgerOp, LedgerRejectedError } from '../src/core/economy/ledger.ts'
import {
  decayed,
  OUTCOME_POINTS,
  type OutcomeKind,
  ReputationBuckets,
  reputationScores,
} from '../src/core/economy/reputation.ts'
import { isqrt, type PoolEntry, relatedParties, selectCommittee } from '../src/core/economy/selection.ts'
import {
  settleBounty,
  settleBudget,
  settleFrivolous,
  settleInvalidation,
} from '../src/core/economy/settlement.ts'

const did = (n: number) => `did:key:z6Mk${String(n).padStart(4, '0')}`
const [alice, bob, carol, dave] = [did(1), did(2), did(3), did(4)] as const

describe('Ledger', () => {
  it('mints, transfers, escrows and releases, conserving credits', () => {
    const ledger = new Ledger()
    ledger.apply({ op: 'mint', to: alice, amount: 100, reason: 'genesis' }, 0)
    ledger.apply({ op: 'transfer', from: alice, to: bob, amount: 30 }, 1)
    ledger.apply({ op: 'escrow', id: 'n/budget', from: alice, amount: 50, purpose: 'need-budget' }, 2)
    expect(ledger.account(alice).balance).toBe(20)
    ledger.apply(
      { op: 'release', id: 'n/budget', payouts: [{ to: carol, amount: 35 }], burn: 5, refund: 10 },
      3,
    )
    expect([
      ledger.account(alice).balance,
      ledger.account(bob).balance,
      ledger.account(carol).balance,
    ]).toEqual([30, 30, 35])
    expect(ledger.supply).toEqual({ minted: 100, burned: 5, circulating: 95 })
    expect(ledger.conservationGap()).toBe(0)
  })

  it('refuses what is not allowed, naming the field, and changes nothing', () => {
    const ledger = new Ledger({ faucetCapPerAccount: 10, genesisCap: 100 })
    ledger.apply({ op: 'mint', to: alice, amount: 60, reason: 'genesis' }, 0)
    const before = hashCanonical(ledger.canonical())
    const cases: [LedgerOp, string, string][] = [
      [{ op: 'transfer', from: alice, to: bob, amount: 61 }, 'insufficient-funds', 'amount'],
      [{ op: 'transfer', from: alice, to: alice, amount: 1 }, 'self-transfer', 'to'],
      [{ op: 'transfer', from: alice, to: 'bob', amount: 1 }, 'bad-account', 'to'],
      [{ op: 'transfer', from: alice, to: bob, amount: 1.5 }, 'bad-amount', 'amount'],
      [{ op: 'mint', to: bob, amount: 11, reason: 'faucet' }, 'faucet-cap', 'amount'],
      [{ op: 'mint', to: bob, amount: 41, reason: 'genesis' }, 'genesis-cap', 'amount'],
      [{ op: 'release', id: 'missing', payouts: [], burn: 0, refund: 0 }, 'unknown-escrow', 'id'],
      [{ op: 'unbond', account: alice, amount: 1 }, 'insufficient-stake', 'amount'],
      [{ op: 'withdraw', account: alice }, 'nothing-due', 'account'],
      [{ op: 'slash', account: alice, amount: 1, payouts: [], reason: 'x' }, 'insufficient-stake', 'amount'],
    ]
    for (const [op, reason, field] of cases) {
      let error: unknown
      try {
        ledger.apply(op, 5)
      } catch (caught) {
        error = caught
      }
      expect(error, reason).toBeInstanceOf(LedgerRejectedError)
      expect(error).toMatchObject({ code: 'LEDGER_REJECTED', reason, field })
      expect(hashCanonical(ledger.canonical())).toBe(before)
    }
    ledger.apply({ op: 'escrow', id: 'e', from: alice, amount: 10, purpose: 'verify-bounty' }, 6)
    expect(() =>
      ledger.apply({ op: 'release', id: 'e', payouts: [{ to: bob, amount: 9 }], burn: 0, refund: 0 }, 7),
    ).toThrow(/≠ escrow 10/)
    ledger.apply({ op: 'release', id: 'e', payouts: [{ to: bob, amount: 10 }], burn: 0, refund: 0 }, 7)
    expect(() =>
      ledger.apply({ op: 'escrow', id: 'e', from: alice, amount: 1, purpose: 'verify-bounty' }, 8),
    ).toThrow(/already exists/)
    expect(() => ledger.apply({ op: 'mint', to: bob, amount: 1, reason: 'genesis' }, 1)).toThrow(
      /before the last/,
    )
  })

  it('unbonds after the period; slashing reaches stake still unbonding', () => {
    const ledger = new Ledger({ unbondingMs: 1000 })
    ledger.apply({ op: 'mint', to: alice, amount: 100, reason: 'genesis' }, 0)
    ledger.apply({ op: 'stake', account: alice, amount: 80 }, 0)
    ledger.apply({ op: 'unbond', account: alice, amount: 50 }, 10)
    expect(() => ledger.apply({ op: 'withdraw', account: alice }, 1009)).toThrow(/no unbonded stake due/)
    ledger.apply(
      { op: 'slash', account: alice, amount: 40, payouts: [{ to: bob, amount: 10 }], reason: 'wrong' },
      1009,
    )
    expect(ledger.account(alice)).toMatchObject({ staked: 0, unbonding: [{ amount: 40, releaseAtMs: 1010 }] })
    ledger.apply({ op: 'withdraw', account: alice }, 1010)
    expect(ledger.account(alice)).toMatchObject({ balance: 60, staked: 0, unbonding: [] })
    expect(ledger.supply.burned).toBe(30)
    expect(ledger.conservationGap()).toBe(0)
  })

  const accounts = [alice, bob, carol, dave]
  const arbOp: fc.Arbitrary<LedgerOp> = fc.oneof(
    fc.record({
      op: fc.constant('mint' as const),
      to: fc.constantFrom(...accounts),
      amount: fc.integer({ min: 0, max: 500 }),
      reason: fc.constantFrom('genesis' as const, 'faucet' as const),
    }),
    fc.record({
      op: fc.constant('transfer' as const),
      from: fc.constantFrom(...accounts),
      to: fc.constantFrom(...accounts),
      amount: fc.integer({ min: 0, max: 300 }),
    }),
    fc.record({
      op: fc.constant('escrow' as const),
      id: fc.constantFrom('e1', 'e2', 'e3'),
      from: fc.constantFrom(...accounts),
      amount: fc.integer({ min: 1, max: 200 }),
      purpose: fc.constant('need-budget' as const),
    }),
    fc.record({
      op: fc.constant('release' as const),
      id: fc.constantFrom('e1', 'e2', 'e3'),
      payouts: fc.array(
        fc.record({ to: fc.constantFrom(...accounts), amount: fc.integer({ min: 0, max: 100 }) }),
        { maxLength: 3 },
      ),
      burn: fc.integer({ min: 0, max: 50 }),
      refund: fc.integer({ min: 0, max: 200 }),
    }),
    fc.record({
      op: fc.constant('stake' as const),
      account: fc.constantFrom(...accounts),
      amount: fc.integer({ min: 1, max: 200 }),
    }),
    fc.record({
      op: fc.constant('unbond' as const),
      account: fc.constantFrom(...accounts),
      amount: fc.integer({ min: 1, max: 100 }),
    }),
    fc.record({ op: fc.constant('withdraw' as const), account: fc.constantFrom(...accounts) }),
    fc.record({
      op: fc.constant('slash' as const),
      account: fc.constantFrom(...accounts),
      amount: fc.integer({ min: 1, max: 100 }),
      payouts: fc.array(
        fc.record({ to: fc.constantFrom(...accounts), amount: fc.integer({ min: 0, max: 50 }) }),
        { maxLength: 2 },
      ),
      reason: fc.constant('x'),
    }),
  )

  it('conserves credits after every operation, accepted or refused, and replays identically', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(arbOp, fc.integer({ min: 0, max: 400 })), { maxLength: 60 }), (steps) => {
        const ledger = new Ledger({ unbondingMs: 500 })
        const accepted: [LedgerOp, number][] = []
        let now = 0
        for (const [op, advance] of steps) {
          now += advance
          try {
            ledger.apply(op, now)
            accepted.push([op, now])
          } catch (error) {
            expect(error).toBeInstanceOf(LedgerRejectedError)
          }
          expect(ledger.conservationGap()).toBe(0)
          for (const did of ledger.accounts()) {
            const a = ledger.account(did)
            expect(Math.min(a.balance, a.staked)).toBeGreaterThanOrEqual(0)
          }
        }
        const replay = new Ledger({ unbondingMs: 500 })
        for (const [op, at] of accepted) replay.apply(op, at)
        expect(hashCanonical(replay.canonical())).toBe(hashCanonical(ledger.canonical()))
      }),
      { numRuns: 300 },
    )
  })
})

describe('committee selection', () => {
  const entry = (n: number, over: Partial<PoolEntry> = {}): PoolEntry => ({
    did: did(n),
    stake: 100,
    reputationPerMille: 500,
    lastActiveMs: 0,
    entity: `entity-${n}`,
    org: `org-${n}`,
    asn: `asn-${n}`,
    region: `region-${n % 4}`,
    ...over,
  })

  it('is deterministic and never picks the related, the unstaked, or twice the same', () => {
    const pool = Array.from({ length: 12 }, (_, i) => entry(i, i === 3 ? { stake: 0 } : {}))
    const related = relatedParties(did(5), pool)
    const a = selectCommittee('commit-1', pool, 0, { size: 5, related, maxPerRegion: 5 })
    expect(
      selectCommittee('commit-1', [...pool].reverse(), 0, { size: 5, related, maxPerRegion: 5 }),
    ).toEqual(a)
    expect(a).toHaveLength(5)
    expect(new Set(a).size).toBe(5)
    expect(a).not.toContain(did(5))
    expect(a).not.toContain(did(3))
    expect(selectCommittee('commit-2', pool, 0, { size: 5, related, maxPerRegion: 5 })).not.toEqual(a)
  })

  it('colluders from one org (or one identity graph) cannot fill a committee', () => {
    const colluders = Array.from({ length: 8 }, (_, i) =>
      entry(100 + i, { org: 'evil', stake: 1_000_000, entity: `e${i}` }),
    )
    const honest = Array.from({ length: 6 }, (_, i) => entry(i))
    for (let seed = 0; seed < 50; seed += 1) {
      const committee = selectCommittee(`c${seed}`, [...colluders, ...honest], 0, {
        size: 5,
        maxPerRegion: 5,
      })
      expect(committee.filter((d) => colluders.some((c) => c.did === d)).length).toBeLessThanOrEqual(1)
    }
    const sybils = Array.from({ length: 8 }, (_, i) => entry(200 + i, { entity: 'one-person', org: `o${i}` }))
    const committee = selectCommittee('x', [...sybils, ...honest], 0, { size: 5, maxPerRegion: 5 })
    expect(committee.filter((d) => sybils.some((s) => s.did === d)).length).toBeLessThanOrEqual(1)
  })

  it('weights by √stake × reputation × recency', () => {
    const pool = [
      entry(1, { stake: 10_000 }),
      entry(2, { stake: 100 }),
      entry(3, { stake: 10_000, lastActiveMs: -10 * 86_400_000 }),
    ]
    const wins = new Map<string, number>()
    for (let seed = 0; seed < 2000; seed += 1) {
      const [first] = selectCommittee(`s${seed}`, pool, 0, { size: 1 })
      wins.set(first!, (wins.get(first!) ?? 0) + 1)
    }
    // weights 100×500×1000 : 10×500×1000 : 100×500×100 → 10 : 1 : 1
    expect(wins.get(did(1))!).toBeGreaterThan(1400)
    expect(wins.get(did(2))!).toBeGreaterThan(60)
    expect(wins.get(did(3))!).toBeGreaterThan(60)
    expect(isqrt(10_000)).toBe(100)
    expect(isqrt(99)).toBe(9)
    expect(isqrt(Number.MAX_SAFE_INTEGER)).toBe(94_906_265)
  })
})

describe('reputation', () => {
  it('moves with outcomes, halves with age, stays within [0, 1000]', () => {
    const day = 86_400_000
    expect(decayed(-150, 0, 0, 7 * day)).toBe(-150)
    expect(decayed(-150, 0, 7 * day, 7 * day)).toBe(-75)
    // Halvings count half-life boundaries crossed, not time since each outcome.
    expect(decayed(-150, 7 * day - 1, 7 * day, 7 * day)).toBe(-75)
    expect(decayed(-150, 7 * day, 14 * day - 1, 7 * day)).toBe(-150)
    expect(decayed(40, 0, 400 * day, 7 * day)).toBe(0)
    const scores = reputationScores(
      [
        { did: alice, kind: 'finalized', atMs: 0 },
        { did: alice, kind: 'honest-attestation', atMs: 0 },
        { did: bob, kind: 'self-challenge', atMs: 0 },
        { did: bob, kind: 'self-challenge', atMs: 0 },
        { did: carol, kind: 'wrong-attestation', atMs: 0 },
      ],
      7 * day,
    )
    expect(scores.get(alice)).toBe(515)
    expect(scores.get(bob)).toBe(200)
    expect(scores.get(carol)).toBe(425)
  })

  it('keeps outcomes as counts per period: the same scores as the outcomes one by one, pruned when spent', () => {
    const day = 86_400_000
    const kinds = Object.keys(OUTCOME_POINTS) as OutcomeKind[]
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            did: fc.constantFrom(alice, bob, carol),
            kind: fc.constantFrom(...kinds),
            atMs: fc.integer({ min: 0, max: 300 * day }),
          }),
          { maxLength: 60 },
        ),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 400 * day }),
        (outcomes, split, later) => {
          const nowMs = 300 * day + later
          const buckets = new ReputationBuckets()
          for (const outcome of outcomes.slice(0, split)) buckets.add(outcome)
          const copy = buckets.clone()
          buckets.prune(nowMs)
          const expected = new Map<string, number>()
          for (const outcome of outcomes) {
            const points = decayed(OUTCOME_POINTS[outcome.kind], outcome.atMs, nowMs, 7 * day)
            expected.set(outcome.did, (expected.get(outcome.did) ?? 0) + points)
          }
          const scores = buckets.scores(nowMs, outcomes.slice(split))
          for (const [did, sum] of expected) {
            expect(scores.get(did) ?? 500).toBe(Math.max(0, Math.min(1000, 500 + sum)))
          }
          expect(copy.scores(nowMs, outcomes.slice(split))).toEqual(reputationScores(outcomes, nowMs))
        },
      ),
    )
    const buckets = new ReputationBuckets()
    buckets.add({ did: alice, kind: 'finalized', atMs: 0 })
    buckets.prune(29 * 7 * day)
    expect(buckets.size).toBe(1)
    buckets.prune(30 * 7 * day)
    expect(buckets.size).toBe(0)
  })
})

describe('settlement', () => {
  const unrelated = () => false
  function funded(): Ledger {
    const ledger = new Ledger()
    for (const account of [alice, bob, carol, dave])
      ledger.apply({ op: 'mint', to: account, amount: 1000, reason: 'genesis' }, 0)
    return ledger
  }

  it('pays workers from the budget and verifiers from the bounty; blocks related-party payouts', () => {
    const ledger = funded()
    ledger.apply({ op: 'escrow', id: 'n/budget', from: alice, amount: 50, purpose: 'need-budget' }, 1)
    ledger.apply({ op: 'escrow', id: 'c/bounty', from: bob, amount: 10, purpose: 'verify-bounty' }, 1)
    ledger.apply(
      settleBudget({
        need: 'n',
        requester: alice,
        escrowed: 50,
        payments: [{ worker: bob, cost: 20 }],
        related: unrelated,
      }),
      2,
    )
    ledger.apply(
      settleBounty({
        commit: 'c',
        worker: bob,
        bounty: 10,
        passVoters: [carol, dave, dave],
        related: unrelated,
      }),
      2,
    )
    expect([alice, bob, carol, dave].map((a) => ledger.account(a).balance)).toEqual([980, 1010, 1005, 1005])

    const related = (a: string, b: string) => [a, b].every((x) => x === bob || x === alice)
    const other = funded()
    other.apply({ op: 'escrow', id: 'n/budget', from: alice, amount: 50, purpose: 'need-budget' }, 1)
    other.apply(
      settleBudget({
        need: 'n',
        requester: alice,
        escrowed: 50,
        payments: [{ worker: bob, cost: 20 }],
        related,
      }),
      2,
    )
    expect(other.account(bob).balance).toBe(1000)
    expect(other.account(alice).balance).toBe(1000)
    expect(other.conservationGap()).toBe(0)
  })

  it('an upheld challenge slashes the wrong, rewards the challenger (double in bootstrap), conserves credits', () => {
    for (const bootstrap of [false, true]) {
      const ledger = funded()
      ledger.apply({ op: 'stake', account: bob, amount: 500 }, 1) // worker
      ledger.apply({ op: 'stake', account: carol, amount: 500 }, 1) // passed the wrong result
      ledger.apply({ op: 'escrow', id: 'c/bounty', from: bob, amount: 100, purpose: 'verify-bounty' }, 1)
      ledger.apply({ op: 'escrow', id: 'ch/bond', from: dave, amount: 30, purpose: 'challenge-bond' }, 1)
      const ops = settleInvalidation({
        commit: 'c',
        challenge: 'ch',
        challenger: dave,
        bond: 30,
        bounty: 100,
        worker: { did: bob, staked: 500 },
        wrongVerifiers: [{ did: carol, staked: 500 }],
        honestVerifiers: [alice],
        bootstrap,
      })
      for (const op of ops) ledger.apply(op, 2)
      expect(ledger.account(carol).staked).toBe(400)
      expect(ledger.account(bob).staked).toBe(350)
      const challengerGain = ledger.account(dave).balance - 1000
      expect(challengerGain).toBe(bootstrap ? 60 + 60 + 90 : 40 + 40 + 60)
      expect(ledger.account(alice).balance).toBe(1040)
      expect(ledger.conservationGap()).toBe(0)
    }
  })

  it('a frivolous challenge loses its bond', () => {
    const ledger = funded()
    ledger.apply({ op: 'escrow', id: 'ch/bond', from: dave, amount: 30, purpose: 'challenge-bond' }, 1)
    ledger.apply(settleFrivolous({ challenge: 'ch', bond: 30, worker: bob }), 2)
    expect(ledger.account(dave).balance).toBe(970)
    expect(ledger.account(bob).balance).toBe(1015)
    expect(ledger.supply.burned).toBe(15)
  })
})

describe('committees in the core, drawn from the pool snapshot', () => {
  it('respect diversity caps and keep the worker’s related parties out', async () => {
    const { committeeFor } = await import('../src/core/thread/committee.ts')
    const { networkParams } = await import('../src/core/thread/params.ts')
    const pool: PoolEntry[] = Array.from({ length: 12 }, (_, i) => ({
      did: did(500 + i),
      stake: 100 + 40 * i,
      reputationPerMille: 600,
      lastActiveMs: 0,
      entity: i === 11 ? 'entity-0' : `entity-${i}`, // did 511 is the same person as did 500
      org: `org-${i % 6}`,
      asn: `asn-${i % 5}`,
      region: `region-${i % 4}`,
    }))
    const params = networkParams({ verifiers: pool.map((e) => e.did), bootstrap: false, pool })
    const worker = did(500)
    for (let n = 0; n < 40; n += 1) {
      const committee = committeeFor(`commit-${n}`, worker, 3, params)
      expect(committee).toHaveLength(5)
      const entries = committee.map((d) => pool.find((e) => e.did === d)!)
      expect(new Set(entries.map((e) => e.org)).size).toBe(5)
      expect(entries.some((e) => e.org === 'org-0' || e.entity === 'entity-0')).toBe(false)
      expect(committeeFor(`commit-${n}`, worker, 3, params)).toEqual(committee)
    }
    expect(() => networkParams({ verifiers: [did(500)], bootstrap: false, pool })).toThrow(/not in verifiers/)
  })
})
