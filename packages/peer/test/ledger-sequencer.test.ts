import { describe, expect, it } from 'vitest'
import { MemoryConsensusStore } from '../src/core/consensus.ts'
import { LedgerRejectedError } from '../src/core/economy/ledger.ts'
import { LedgerSequencer, slotKey } from '../src/core/economy/sequencer.ts'

const alice = 'did:key:z6MkAlice'
const bob = 'did:key:z6MkBob'
const anchorA = 'did:key:z6MkAnchorA'
const anchorB = 'did:key:z6MkAnchorB'

describe('LedgerSequencer', () => {
  it('orders operations per account through the consensus store and refuses the loser of a race', async () => {
    const store = new MemoryConsensusStore()
    const a = new LedgerSequencer(store, anchorA)
    const b = new LedgerSequencer(store, anchorB)
    await a.submit({ op: 'mint', to: alice, amount: 100, reason: 'genesis' })
    b.learn(a.entries())
    // Both anchors try to spend Alice's credits in her slot 1.
    await a.submit({ op: 'escrow', id: 'need-1/budget', from: alice, amount: 100, purpose: 'need-budget' })
    const lost = await b.submit({ op: 'transfer', from: alice, to: bob, amount: 100 }).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(lost).toBeInstanceOf(LedgerRejectedError)
    expect(lost).toMatchObject({ reason: 'sequence-lost', code: 'LEDGER_REJECTED' })
    b.learn(a.entries())
    // B now sees the escrow and refuses a second spend on its own: the funds are gone.
    await expect(b.submit({ op: 'transfer', from: alice, to: bob, amount: 1 })).rejects.toMatchObject({
      reason: 'insufficient-funds',
    })
    for (const sequencer of [a, b]) {
      const { ledger, refused } = sequencer.ledger()
      expect(ledger.escrow('need-1/budget')?.amount).toBe(100)
      expect(ledger.account(bob).balance).toBe(0)
      expect(refused).toEqual([])
    }
    expect(store.getDecideSync(slotKey(alice, 1))?.decider).toBe(anchorA)
  })

  it('a partitioned double spend: both sides escrow the same credits, exactly one survives the heal', async () => {
    const main = new MemoryConsensusStore({ epoch: 1 })
    const left = new LedgerSequencer(main, anchorA)
    await left.submit({ op: 'mint', to: alice, amount: 100, reason: 'genesis' })
    const fork = main.fork(2)
    const right = new LedgerSequencer(fork, anchorB)
    right.learn(left.entries())
    // The split: each side escrows all of Alice's credits for a different NEED, and each succeeds locally.
    await left.submit({
      op: 'escrow',
      id: 'need-left/budget',
      from: alice,
      amount: 100,
      purpose: 'need-budget',
    })
    await right.submit({
      op: 'escrow',
      id: 'need-right/budget',
      from: alice,
      amount: 100,
      purpose: 'need-budget',
    })
    expect(left.ledger().ledger.escrow('need-left/budget')).toBeDefined()
    expect(right.ledger().ledger.escrow('need-right/budget')).toBeDefined()
    // The heal: the stores merge by the rule, and each side learns the other's slots.
    main.mergeFrom(fork, 3)
    const lostLeft = left.learn(right.entries()).lost
    const lostRight = right.learn(left.entries()).lost
    // The left learns it lost; the right, told by the already-merged left, has nothing to give up.
    expect(lostLeft).toHaveLength(1)
    expect(lostRight).toEqual([])
    for (const sequencer of [left, right]) {
      const { ledger } = sequencer.ledger()
      const escrows = ['need-left/budget', 'need-right/budget'].filter((id) => ledger.escrow(id))
      expect(escrows).toEqual(['need-right/budget']) // the higher epoch's operation wins
      expect(ledger.account(alice).balance).toBe(0)
      expect(ledger.conservationGap()).toBe(0)
    }
    expect(main.getDecideSync(slotKey(alice, 1))?.decider).toBe(anchorB)
  })
})
