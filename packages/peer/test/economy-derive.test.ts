import { describe, expect, it } from 'vitest'
import { builtinCapabilities } from '../src/agent/capabilities.ts'
import { accountView, DEFAULT_GENESIS, deriveLedger, type GenesisRule } from '../src/core/economy/derive.ts'
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
