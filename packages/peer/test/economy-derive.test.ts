import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { builtinCapabilities } from '../src/agent/capabilities.ts'
import {
  accountView,
  DEFAULT_GENESIS,
  deriveLedger,
  type GenesisRule,
  LedgerTimeline,
} from '../src/core/economy/derive.ts'
import type { FaucetGrant } from '../src/core/economy/grants.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import type { Did } from '../src/core/types.ts'
import { type FinalThread, finalThread } from './final-thread.ts'

const honestOutput = () => builtinCapabilities().run('word-frequency', [new TextEncoder().encode('a b a')])

/** Credits each party of a fixture holds at genesis. */
const ALLOCATION = 1_000

/** A genesis rule allocating {@link ALLOCATION} to `dids` (and nothing to anyone else). */
function allocating(...dids: Did[]): Partial<GenesisRule> {
  return { allocations: dids.map((did) => ({ did, amount: ALLOCATION })) }
}

/** The genesis of a fixture: requester, worker and verifier funded; the verifier staked. */
function fundedGenesis(fixture: FinalThread) {
  return {
    genesis: allocating(fixture.requester.did, fixture.worker.did, fixture.verifier.did),
    genesisVerifiers: [fixture.verifier.did],
  }
}

/** A faucet grant of the fixture's anchor (as verifyGrant returns it, without its signature). */
function grantOf(
  fixture: FinalThread,
  to: Did,
  amount: number,
  atMs: number,
  net = fixture.params.network,
): FaucetGrant {
  return { net, to, amount, atMs, anchor: fixture.decider.did }
}

describe('the ledger derived from live threads', () => {
  it('holds a FINAL result’s payouts as pending until 2 × T_challenge after its FINALIZE, then pays them', async () => {
    const fixture = await finalThread({
      output: await honestOutput(),
      budget: 10,
      cost: 3,
      verifyBounty: 2,
      finalizedAtMs: 50_000,
      tag: 7,
    })
    const { params, replica, requester, worker, verifier } = fixture
    const due = fixture.finalizedAtMs + 2 * params.tChallengeMs
    const stake = DEFAULT_GENESIS.verifierStake
    const funded = fundedGenesis(fixture)

    const before = deriveLedger({ replicas: [replica], params, nowMs: due - 1, ...funded })
    expect(before.ledger.conservationGap()).toBe(0)
    expect(accountView(before, requester.did)).toMatchObject({
      balance: ALLOCATION - 10,
      escrowed: 10,
      pending: 0,
    })
    expect(accountView(before, worker.did)).toMatchObject({
      balance: ALLOCATION - 2,
      escrowed: 2,
      pending: 3,
    })
    expect(accountView(before, verifier.did)).toMatchObject({
      balance: ALLOCATION - stake,
      staked: stake,
      pending: 2,
    })

    const after = deriveLedger({ replicas: [replica], params, nowMs: due, ...funded })
    expect(after.ledger.conservationGap()).toBe(0)
    expect(accountView(after, requester.did)).toMatchObject({
      balance: ALLOCATION - 3,
      escrowed: 0,
      pending: 0,
    })
    expect(accountView(after, worker.did)).toMatchObject({
      balance: ALLOCATION - 2 + 3,
      escrowed: 0,
      pending: 0,
    })
    expect(accountView(after, verifier.did)).toMatchObject({ balance: ALLOCATION - stake + 2, pending: 0 })
    expect(after.refused).toEqual([])
    expect(after.unfunded).toEqual([])
    expect(after.ledger.escrows()).toEqual([])
    // Credits come only from the genesis: nothing was minted by the thread.
    expect(after.ledger.supply.minted).toBe(3 * ALLOCATION)
  })

  it('is a function of the envelopes: any arrival order gives the same ledger', async () => {
    const fixture = await finalThread({ output: await honestOutput(), tag: 8 })
    const reversed = new ThreadReplica(fixture.thread, fixture.params)
    reversed.receiveAll([...fixture.log].reverse(), 0)
    for (const nowMs of [0, Number.POSITIVE_INFINITY]) {
      const input = { params: fixture.params, nowMs, ...fundedGenesis(fixture) }
      const a = deriveLedger({ replicas: [fixture.replica], ...input })
      const b = deriveLedger({ replicas: [reversed], ...input })
      expect(b.ledger.canonical()).toEqual(a.ledger.canonical())
    }
  })

  it('refuses a budget the requester cannot cover and says why; an unfunded NEED pays nobody', async () => {
    const fixture = await finalThread({
      output: await honestOutput(),
      budget: ALLOCATION + 1,
      cost: 3,
      tag: 9,
    })
    const derived = deriveLedger({
      replicas: [fixture.replica],
      params: fixture.params,
      nowMs: Number.POSITIVE_INFINITY,
      ...fundedGenesis(fixture),
    })
    expect(derived.refused).toContainEqual({ op: 'escrow', reason: 'insufficient-funds' })
    expect(derived.unfunded).toEqual([fixture.thread])
    expect(derived.threads.get(fixture.thread)?.unfunded).toBe(true)
    expect(accountView(derived, fixture.requester.did)).toMatchObject({ balance: ALLOCATION, escrowed: 0 })
    // The work was done and verified, but the worker gets nothing from a budget that was never escrowed.
    expect(accountView(derived, fixture.worker.did).balance).toBe(ALLOCATION - 2)
    expect(derived.ledger.conservationGap()).toBe(0)
  })

  it('mints nothing for anyone without a genesis allocation or a grant: a fresh key funds no NEED', async () => {
    const fixture = await finalThread({ output: await honestOutput(), tag: 10 })
    const derived = deriveLedger({
      replicas: [fixture.replica],
      params: fixture.params,
      nowMs: Number.POSITIVE_INFINITY,
    })
    expect(derived.ledger.supply.minted).toBe(0)
    expect(derived.unfunded).toEqual([fixture.thread])
    for (const party of [fixture.requester, fixture.worker, fixture.verifier, fixture.decider]) {
      expect(accountView(derived, party.did)).toMatchObject({
        balance: 0,
        staked: 0,
        escrowed: 0,
        pending: 0,
      })
    }
  })

  it('A7: budgets are escrowed in the order of their DECIDEs, never in thread-id order', async () => {
    // One requester, two NEEDs (budgets 10 and 9) and credits for only one of them.
    const ten = await finalThread({ output: await honestOutput(), budget: 10, tag: 11 })
    const nine = await finalThread({ output: await honestOutput(), budget: 9, tag: 11 })
    expect(nine.requester.did).toBe(ten.requester.did)
    // Whichever thread id sorts first is decided second: it must not take the first one's budget.
    const [sortsFirst, sortsLast] = ten.thread < nine.thread ? [ten, nine] : [nine, ten]
    const decidedFirst = await finalThread({
      output: await honestOutput(),
      budget: sortsLast === ten ? 10 : 9,
      decidedAtMs: 100,
      tag: 11,
    })
    const decidedSecond = await finalThread({
      output: await honestOutput(),
      budget: sortsFirst === ten ? 10 : 9,
      decidedAtMs: 200,
      tag: 11,
    })
    // The DECIDE's ts is not part of the NEED: the thread ids are those of the first two fixtures.
    expect(decidedFirst.thread).toBe(sortsLast.thread)
    expect(decidedSecond.thread).toBe(sortsFirst.thread)
    expect(decidedSecond.thread < decidedFirst.thread).toBe(true)
    const genesis: Partial<GenesisRule> = {
      allocations: [
        { did: decidedFirst.requester.did, amount: 10 },
        { did: decidedFirst.worker.did, amount: ALLOCATION },
        { did: decidedFirst.verifier.did, amount: ALLOCATION },
      ],
    }
    for (const replicas of [
      [decidedFirst.replica, decidedSecond.replica],
      [decidedSecond.replica, decidedFirst.replica],
    ]) {
      const derived = deriveLedger({
        replicas,
        params: decidedFirst.params,
        nowMs: Number.POSITIVE_INFINITY,
        genesis,
      })
      expect(derived.unfunded).toEqual([decidedSecond.thread])
      expect(derived.threads.get(decidedFirst.thread)?.unfunded).toBe(false)
      // The first NEED's budget paid its worker its cost (3) and refunded the rest.
      expect(accountView(derived, decidedFirst.requester.did).balance).toBe(10 - 3)
      expect(derived.ledger.conservationGap()).toBe(0)
    }
  })

  it('A7: faucet grants mint on the anchors’ timeline, within the faucet rule, for this network only', async () => {
    const fixture = await finalThread({
      output: await honestOutput(),
      budget: 10,
      decidedAtMs: 1_000,
      tag: 12,
    })
    const { requester, worker, verifier, params } = fixture
    const derive = (grants: FaucetGrant[]) =>
      deriveLedger({
        replicas: [fixture.replica],
        params,
        nowMs: Number.POSITIVE_INFINITY,
        genesis: allocating(worker.did, verifier.did),
        genesisVerifiers: [verifier.did],
        grants,
      })
    // Granted after the DECIDE by the anchor's clock: the budget was not there when it was decided.
    const late = derive([grantOf(fixture, requester.did, 1_000, 1_001)])
    expect(late.grants).toBe(1)
    expect(late.unfunded).toEqual([fixture.thread])
    expect(accountView(late, requester.did).balance).toBe(1_000)
    // Granted before: funded.
    const early = derive([grantOf(fixture, requester.did, 1_000, 999)])
    expect(early.unfunded).toEqual([])
    expect(accountView(early, requester.did).balance).toBe(1_000 - 3)
    // A grant of another network, and grants past one account's faucet allowance, mint nothing.
    const otherNet = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    const capped = derive([
      grantOf(fixture, requester.did, 600, 10),
      grantOf(fixture, requester.did, 600, 20),
      grantOf(fixture, requester.did, 400, 30),
      grantOf(fixture, requester.did, 1_000, 5, otherNet),
    ])
    expect(capped.grants).toBe(2)
    expect(capped.ledger.supply.minted).toBe(2 * ALLOCATION + DEFAULT_GENESIS.faucet.grantCredits)
    expect(accountView(capped, requester.did).balance).toBe(DEFAULT_GENESIS.faucet.grantCredits - 3)
    // The network-wide cap per window.
    const window = deriveLedger({
      replicas: [],
      params,
      nowMs: 0,
      genesis: { faucet: { ...DEFAULT_GENESIS.faucet, maxCreditsPerWindow: 1_500 } },
      grants: [grantOf(fixture, worker.did, 1_000, 1), grantOf(fixture, verifier.did, 1_000, 2)],
    })
    expect(window.grants).toBe(1)
    expect(window.ledger.supply.minted).toBe(1_000)
  })
})

describe('a thread’s lifetime (§9.3)', () => {
  it('pays nothing finalized after its lifetime and refunds every escrow once it is over', async () => {
    const lifetime = 10_000
    const late = await finalThread({
      output: await honestOutput(),
      finalizedAtMs: lifetime,
      params: { threadLifetimeMs: lifetime },
      tag: 13,
    })
    const { params, replica, requester, worker } = late
    const funded = fundedGenesis(late)
    const before = deriveLedger({ replicas: [replica], params, nowMs: lifetime - 1, ...funded })
    expect(accountView(before, requester.did)).toMatchObject({ balance: ALLOCATION - 10, escrowed: 10 })
    expect(accountView(before, worker.did)).toMatchObject({ escrowed: 2, pending: 0 })
    const over = deriveLedger({ replicas: [replica], params, nowMs: lifetime, ...funded })
    expect(accountView(over, requester.did)).toMatchObject({ balance: ALLOCATION, escrowed: 0, pending: 0 })
    expect(accountView(over, worker.did)).toMatchObject({ balance: ALLOCATION, escrowed: 0, pending: 0 })
    expect(over.ledger.escrows()).toEqual([])
    expect(over.ledger.conservationGap()).toBe(0)

    // Finalized in time, it is paid when its payouts fall due, even after the lifetime.
    const inTime = await finalThread({
      output: await honestOutput(),
      finalizedAtMs: lifetime - 1,
      params: { threadLifetimeMs: lifetime },
      tag: 13,
    })
    const due = lifetime - 1 + 2 * params.tChallengeMs
    const paid = deriveLedger({ replicas: [inTime.replica], params, nowMs: due, ...funded })
    expect(accountView(paid, worker.did)).toMatchObject({ balance: ALLOCATION - 2 + 3, pending: 0 })
    const waiting = deriveLedger({ replicas: [inTime.replica], params, nowMs: due - 1, ...funded })
    expect(accountView(waiting, worker.did)).toMatchObject({ pending: 3, escrowed: 2 })
  })
})

describe('the settled base of the ledger (§9.3)', () => {
  /** Threads of one requester, worker and verifier: funding competes, one is never finalized. */
  async function history() {
    const output = await honestOutput()
    const lifetime = 100_000
    const threads = await Promise.all(
      [
        { budget: 10, decidedAtMs: 100, finalizedAtMs: 1_000 },
        { budget: 9, decidedAtMs: 200, finalizedAtMs: 60_000 },
        { budget: 8, decidedAtMs: 300, finalizedAtMs: 2_000 },
        { budget: 7, decidedAtMs: 400, finalizedAtMs: 3_000 },
      ].map((shape) => finalThread({ output, ...shape, params: { threadLifetimeMs: lifetime }, tag: 14 })),
    )
    const [first] = threads
    // The fourth is never finalized: its replica lacks the FINALIZE.
    const stuck = new ThreadReplica(threads[3]!.thread, first!.params)
    stuck.receiveAll(threads[3]!.log.slice(0, -1), 0)
    const replicas = [...threads.slice(0, 3).map((t) => t.replica), stuck]
    const options = {
      params: first!.params,
      genesis: {
        allocations: [
          { did: first!.requester.did, amount: 25 },
          { did: first!.worker.did, amount: ALLOCATION },
          { did: first!.verifier.did, amount: ALLOCATION },
        ],
      },
      genesisVerifiers: [first!.verifier.did],
    }
    const grants = [grantOf(first!, first!.requester.did, 500, 250)]
    return { replicas, options, grants, lifetime, first: first! }
  }

  it('settling in steps and dropping settled threads gives the ledger of the full derivation', async () => {
    const { replicas, options, grants, lifetime } = await history()
    const end = lifetime + 400 + 1
    for (const nowMs of [end, end + 30 * 7 * 86_400_000]) {
      const full = deriveLedger({ replicas, grants, nowMs, ...options })
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: end }), { maxLength: 6 }), (cuts) => {
          const timeline = new LedgerTimeline(options)
          let held = [...replicas]
          for (const untilMs of [...cuts].sort((a, b) => a - b)) {
            const settled = new Set(timeline.settle({ replicas: held, grants, nowMs: untilMs, untilMs }))
            held = held.filter((replica) => !settled.has(replica.thread))
          }
          const derived = timeline.derive({ replicas: held, grants, nowMs })
          expect(derived.ledger.canonical()).toEqual(full.ledger.canonical())
          expect(derived.reputation).toEqual(full.reputation)
          expect(derived.pool).toEqual(full.pool)
          expect(derived.unfundedTotal).toBe(full.unfundedTotal)
          expect(derived.applied).toBe(full.applied)
          expect(derived.grants).toBe(full.grants)
          expect(derived.settledThreads + derived.threads.size).toBe(replicas.length)
        }),
        { numRuns: 40 },
      )
    }
  })

  it('stops at the first thread that can still change: a stuck thread holds the base until its lifetime is over', async () => {
    const { replicas, options, grants, lifetime } = await history()
    const timeline = new LedgerTimeline(options)
    // By 70 000 the thread decided at 200 has a payout still to fall due (at 80 000): only the
    // first settles, though the third (due at 22 000) could.
    expect(timeline.settle({ replicas, grants, nowMs: 70_000, untilMs: 70_000 })).toHaveLength(1)
    expect(timeline.cutMs).toBe(100)
    // By 80 000 everything but the stuck thread (decided at 400, sealed at 100 400) has settled.
    expect(timeline.settle({ replicas, grants, nowMs: 80_000, untilMs: 80_000 })).toHaveLength(2)
    expect(timeline.cutMs).toBe(300)
    expect(timeline.settle({ replicas, grants, nowMs: lifetime + 399, untilMs: lifetime + 399 })).toEqual([])
    expect(timeline.settle({ replicas, grants, nowMs: lifetime + 400, untilMs: lifetime + 400 })).toEqual([
      replicas[3]!.thread,
    ])
    expect(timeline.settled.closedEscrows).toBe(0)
    // A settled thread given again is not settled twice.
    const again = timeline.derive({ replicas, grants, nowMs: lifetime + 400 })
    const without = timeline.derive({ replicas: [], grants, nowMs: lifetime + 400 })
    expect(again.ledger.canonical()).toEqual(without.ledger.canonical())
    expect(again.threads.size).toBe(0)
  })

  it('settles a DECIDE that arrives behind the cut at the cut, and refuses one older than the late window', async () => {
    const { replicas, options, grants, first } = await history()
    const [a, b, c] = replicas
    const timeline = new LedgerTimeline({ ...options, lateWindowMs: 150 })
    // Only the thread decided at 300 is known when the base moves on.
    expect(timeline.settle({ replicas: [c!], grants, nowMs: 70_000, untilMs: 70_000 })).toHaveLength(1)
    expect(timeline.cutMs).toBe(300)
    // Decided at 200 (within 150 of the cut): settled now, at the cut.
    expect(timeline.isSettled(b!.thread, 200)).toBe(false)
    const late = timeline.derive({ replicas: [b!], grants, nowMs: 70_000 })
    expect(late.threads.has(b!.thread)).toBe(true)
    // Decided at 100 (150 behind the cut and more): too late, it changes nothing.
    expect(timeline.isSettled(a!.thread, 100)).toBe(true)
    const tooLate = timeline.derive({ replicas: [a!], grants, nowMs: 70_000 })
    const none = timeline.derive({ replicas: [], grants, nowMs: 70_000 })
    expect(tooLate.ledger.canonical()).toEqual(none.ledger.canonical())
    expect(accountView(tooLate, first.worker.did)).toEqual(accountView(none, first.worker.did))
  })

  it('forgets the oldest settled thread past maxSettledThreads, and never settles it twice', async () => {
    const { replicas, options, grants, first } = await history()
    const [a, b, c] = replicas
    const timeline = new LedgerTimeline({ ...options, lateWindowMs: 1_000_000, maxSettledThreads: 1 })
    // Two threads settle (decided at 100 and 300); only the later one is remembered.
    expect(timeline.settle({ replicas: [a!, c!], grants, nowMs: 70_000, untilMs: 70_000 })).toHaveLength(2)
    expect(timeline.settled).toMatchObject({ threads: 2, remembered: 1 })
    // The forgotten one still counts as settled (no later than the latest forgotten DECIDE): sent
    // again, by sync or a replay, it changes nothing.
    expect(timeline.isSettled(a!.thread, 100)).toBe(true)
    const again = timeline.derive({ replicas: [a!], grants, nowMs: 70_000 })
    const none = timeline.derive({ replicas: [], grants, nowMs: 70_000 })
    expect(again.ledger.canonical()).toEqual(none.ledger.canonical())
    expect(accountView(again, first.worker.did)).toEqual(accountView(none, first.worker.did))
    // A late DECIDE after the forgotten one (at 200, within the time window) still settles.
    expect(timeline.isSettled(b!.thread, 200)).toBe(false)
    expect(timeline.derive({ replicas: [b!], grants, nowMs: 70_000 }).threads.has(b!.thread)).toBe(true)
    // Without the count bound both stay remembered.
    const unbounded = new LedgerTimeline({ ...options, lateWindowMs: 1_000_000 })
    unbounded.settle({ replicas: [a!, c!], grants, nowMs: 70_000, untilMs: 70_000 })
    expect(unbounded.settled.remembered).toBe(2)
  })
})

describe('a thread the settled base carries (§9.6)', () => {
  it('settles the escrows of a thread open too long in place, lets later threads settle, and pays it when it finishes', async () => {
    const output = await honestOutput()
    const lifetime = 1_000_000
    const thread = (budget: number, decidedAtMs: number, finalizedAtMs: number) =>
      finalThread({
        output,
        budget,
        decidedAtMs,
        finalizedAtMs,
        params: { threadLifetimeMs: lifetime },
        tag: 15,
      })
    const slow = await thread(10, 100, 50_000)
    const quick = await thread(9, 200, 1_000)
    const { params, requester, worker, verifier } = slow
    // The slow thread is under way: its result is committed and attested, not yet finalized.
    const open = new ThreadReplica(slow.thread, params)
    open.receiveAll(slow.log.slice(0, -1), 0)
    const options = {
      params,
      genesis: allocating(requester.did, worker.did, verifier.did),
      genesisVerifiers: [verifier.did],
      carryAfterMs: 20_000,
    }
    const timeline = new LedgerTimeline(options)
    // Before carryAfterMs has passed the open thread holds the base back.
    expect(timeline.settle({ replicas: [open, quick.replica], nowMs: 20_099, untilMs: 20_099 })).toEqual([])
    expect(timeline.settled.carried).toBe(0)
    // Then it is carried (its budget and bounty held in the base) and the quick thread settles.
    expect(timeline.settle({ replicas: [open, quick.replica], nowMs: 30_000, untilMs: 30_000 })).toEqual([
      quick.thread,
    ])
    expect(timeline.settled).toMatchObject({ carried: 1, threads: 1 })
    const carried = timeline.derive({ replicas: [open], nowMs: 30_000 })
    // 10 (slow) held, 9 (quick) paid 3 to the worker and refunded 6.
    expect(accountView(carried, requester.did)).toMatchObject({ balance: ALLOCATION - 10 - 3, escrowed: 10 })
    expect(carried.ledger.conservationGap()).toBe(0)
    // It finishes: finalized at 50 000, due at 70 000; paid in the tail, then settled for good.
    const done = slow.replica
    const due = 50_000 + 2 * params.tChallengeMs
    const paid = timeline.derive({ replicas: [done], nowMs: due })
    expect(accountView(paid, requester.did)).toMatchObject({ balance: ALLOCATION - 3 - 3, escrowed: 0 })
    expect(accountView(paid, worker.did)).toMatchObject({
      balance: ALLOCATION + 3 + 3 - 2 - 2 + 0,
      pending: 0,
    })
    expect(timeline.settle({ replicas: [done], nowMs: due, untilMs: due })).toEqual([slow.thread])
    expect(timeline.settled).toMatchObject({ carried: 0, threads: 2 })
    const after = timeline.derive({ replicas: [], nowMs: due })
    expect(after.ledger.canonical()).toEqual(paid.ledger.canonical())
    expect(after.ledger.conservationGap()).toBe(0)
    // Over the same history the full derivation agrees here (no later thread used the held funds).
    const full = deriveLedger({ replicas: [done, quick.replica], nowMs: due, ...options })
    expect(full.ledger.canonical()).toEqual(after.ledger.canonical())
  })
})
