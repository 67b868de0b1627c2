import { describe, expect, it } from 'vitest'
import { builtinCapabilities } from '../src/agent/capabilities.ts'
import { accountView, DEFAULT_GENESIS, deriveLedger } from '../src/core/economy/derive.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import { finalThread } from './final-thread.ts'

const honestOutput = () => builtinCapabilities().run('word-frequency', [new TextEncoder().encode('a b a')])

describe('the ledger derived from live threads', () => {
  it('holds a FINAL result’s payouts as pending until 2 × T_challenge after its FINALIZE, then pays them', async () => {
    const fixture = await finalThread({
      thread: 'need-live',
      output: await honestOutput(),
      budget: 10,
      cost: 3,
      verifyBounty: 2,
      finalizedAtMs: 50_000,
      tag: 7,
    })
    const { params, replica, requester, worker, verifier } = fixture
    const due = fixture.finalizedAtMs + 2 * params.tChallengeMs
    const grant = DEFAULT_GENESIS.faucetGrant
    const stake = DEFAULT_GENESIS.verifierStake

    const before = deriveLedger({ replicas: [replica], params, nowMs: due - 1 })
    expect(before.ledger.conservationGap()).toBe(0)
    expect(accountView(before, requester.did)).toMatchObject({
      balance: grant - 10,
      escrowed: 10,
      pending: 0,
    })
    expect(accountView(before, worker.did)).toMatchObject({ balance: grant - 2, escrowed: 2, pending: 3 })
    expect(accountView(before, verifier.did)).toMatchObject({
      balance: grant - stake,
      staked: stake,
      pending: 2,
    })

    const after = deriveLedger({ replicas: [replica], params, nowMs: due })
    expect(after.ledger.conservationGap()).toBe(0)
    expect(accountView(after, requester.did)).toMatchObject({ balance: grant - 3, escrowed: 0, pending: 0 })
    expect(accountView(after, worker.did)).toMatchObject({ balance: grant - 2 + 3, escrowed: 0, pending: 0 })
    expect(accountView(after, verifier.did)).toMatchObject({ balance: grant - stake + 2, pending: 0 })
    expect(after.refused).toEqual([])
    expect(after.ledger.escrows()).toEqual([])
  })

  it('is a function of the envelopes: any arrival order gives the same ledger', async () => {
    const fixture = await finalThread({ thread: 'need-order', output: await honestOutput(), tag: 8 })
    const reversed = new ThreadReplica('need-order', fixture.params)
    reversed.receiveAll([...fixture.log].reverse(), 0)
    for (const nowMs of [0, Number.POSITIVE_INFINITY]) {
      const a = deriveLedger({ replicas: [fixture.replica], params: fixture.params, nowMs })
      const b = deriveLedger({ replicas: [reversed], params: fixture.params, nowMs })
      expect(b.ledger.canonical()).toEqual(a.ledger.canonical())
    }
  })

  it('refuses a budget the requester cannot cover and says why, without breaking conservation', async () => {
    const fixture = await finalThread({
      thread: 'need-rich',
      output: await honestOutput(),
      budget: DEFAULT_GENESIS.faucetGrant + 1,
      tag: 9,
    })
    const derived = deriveLedger({ replicas: [fixture.replica], params: fixture.params, nowMs: 0 })
    expect(derived.refused).toContainEqual({ op: 'escrow', reason: 'insufficient-funds' })
    expect(accountView(derived, fixture.requester.did).escrowed).toBe(0)
    expect(derived.ledger.conservationGap()).toBe(0)
  })
})
