/**
 * Ordering balance-changing operations through scoped consensus (docs/PROTOCOL.md §7, §9): every
 * operation that takes credits from an account claims that account's next sequence slot with the
 * same atomic create-if-absent that DECIDE uses (`ledger/<account>/<seq>` in place of a NEED). Two
 * operations racing for one slot — on two anchors, or on the two sides of a partition — cannot both
 * hold it: the store keeps one, and after a heal the merge rule keeps one everywhere. The loser is
 * refused with {@link LedgerRejectedError} (`sequence-lost`), never applied twice.
 *
 * The ledger state is rebuilt from the slots' winners in a deterministic order (sequencer time =
 * the record's Lamport time, then account, then slot), so every replica that holds the same
 * decisions holds the same balances.
 *
 * @example
 * ```ts
 * const sequencer = new LedgerSequencer(store, anchorDid)
 * await sequencer.submit({ op: 'escrow', id: 'n/budget', from: alice, amount: 40, purpose: 'need-budget' })
 * ```
 */
import { hashCanonical } from '../codec.ts'
import { type ConsensusStore, type DecideRecord, mergeWinner } from '../consensus.ts'
import type { Did } from '../types.ts'
import { Ledger, type LedgerOp, type LedgerParams, LedgerRejectedError } from './ledger.ts'

/** The account an operation takes credits from (its ordering key), or `mint` for minting. */
export function debitedAccount(op: LedgerOp): string {
  switch (op.op) {
    case 'mint':
      return `mint:${op.to}`
    case 'transfer':
      return op.from
    case 'escrow':
      return op.from
    case 'release':
      return `escrow:${op.id}`
    case 'stake':
    case 'unbond':
    case 'withdraw':
    case 'slash':
      return op.account
  }
}

/** The id of an operation: the hash of its canonical encoding. */
export function operationId(op: LedgerOp): string {
  return hashCanonical(op)
}

/** The consensus key of slot `seq` of an account. */
export function slotKey(account: string, seq: number): string {
  return `ledger/${account}/${seq}`
}

export interface SequencedOp {
  op: LedgerOp
  id: string
  record: DecideRecord
}

export class LedgerSequencer {
  readonly store: ConsensusStore
  readonly sequencer: Did
  readonly params: Partial<LedgerParams>
  /** Operations by id (the store holds only ids; operations travel beside them). */
  #ops = new Map<string, LedgerOp>()
  /** The winning record of each slot this sequencer knows. */
  #slots = new Map<string, DecideRecord>()
  #next = new Map<string, number>()
  #lamport = 0
  /** The ledger of the known winners, kept while slots only append (rebuilt after a merge). */
  #cache: { ledger: Ledger; refused: { id: string; reason: string }[] } | undefined

  constructor(store: ConsensusStore, sequencer: Did, params: Partial<LedgerParams> = {}) {
    this.store = store
    this.sequencer = sequencer
    this.params = params
  }

  /** The ledger as the known winners of every slot make it. */
  ledger(): { ledger: Ledger; refused: { id: string; reason: string }[] } {
    this.#cache ??= this.#rebuild()
    return this.#cache
  }

  #rebuild(): { ledger: Ledger; refused: { id: string; reason: string }[] } {
    const ledger = new Ledger(this.params)
    const refused: { id: string; reason: string }[] = []
    const ordered = [...this.#slots.entries()].sort(([keyA, a], [keyB, b]) =>
      a.lamport !== b.lamport ? a.lamport - b.lamport : keyA < keyB ? -1 : keyA > keyB ? 1 : 0,
    )
    let atMs = 0
    for (const [, record] of ordered) {
      const op = this.#ops.get(record.proposal)
      if (!op) continue
      atMs = Math.max(atMs, record.lamport)
      try {
        ledger.apply(op, atMs)
      } catch (error) {
        if (!(error instanceof LedgerRejectedError)) throw error
        refused.push({ id: record.proposal, reason: error.reason })
      }
    }
    return { ledger, refused }
  }

  /**
   * Submits an operation: it must apply to the current ledger, then it claims its account's next
   * slot. Resolves with the sequenced operation; rejects with `sequence-lost` when another
   * operation holds the slot (the caller re-reads and decides again), or with the ledger's reason.
   */
  async submit(op: LedgerOp, options: { signal?: AbortSignal } = {}): Promise<SequencedOp> {
    const id = operationId(op)
    const { ledger } = this.ledger()
    const lamport = this.#lamport + 1
    // Nothing is applied before the slot is won: check first.
    ledger.check(op, lamport)
    const account = debitedAccount(op)
    const seq = this.#next.get(account) ?? 1
    const key = slotKey(account, seq)
    const epoch = await this.store.currentEpoch(options)
    this.#lamport = lamport
    this.#ops.set(id, op)
    const result = await this.store.tryDecide(
      { need: key, proposal: id, epoch, lamport, kPlan: 1, decider: this.sequencer },
      options,
    )
    this.#slots.set(key, result.record)
    this.#next.set(account, seq + 1)
    this.#lamport = Math.max(this.#lamport, result.record.lamport)
    if (result.outcome === 'conflict') {
      this.#cache = undefined
      throw new LedgerRejectedError(
        'sequence-lost',
        `slot ${seq} of ${account} was taken by another operation first; re-read the balance and submit again`,
        'op',
      )
    }
    if (this.#cache && result.record.lamport >= lamport) this.#cache.ledger.apply(op, result.record.lamport)
    else this.#cache = undefined
    return { op, id, record: result.record }
  }

  /**
   * Learns slots decided elsewhere (another anchor, the other side of a heal): for each slot the
   * merge rule keeps one record; operations that lost their slot are reported.
   */
  learn(entries: readonly { record: DecideRecord; op: LedgerOp }[]): { lost: string[] } {
    const lost: string[] = []
    this.#cache = undefined
    for (const { record, op } of entries) {
      this.#ops.set(record.proposal, op)
      const current = this.#slots.get(record.need)
      if (!current) {
        this.#slots.set(record.need, record)
      } else if (current.proposal !== record.proposal) {
        const winner = mergeWinner(current, record)
        lost.push((winner === current ? record : current).proposal)
        this.#slots.set(record.need, winner)
      }
      const cut = record.need.lastIndexOf('/')
      const account = record.need.slice('ledger/'.length, cut)
      const seq = Number(record.need.slice(cut + 1))
      if ((this.#next.get(account) ?? 1) <= seq) this.#next.set(account, seq + 1)
      this.#lamport = Math.max(this.#lamport, record.lamport)
    }
    return { lost }
  }

  /** Every known slot with its operation (what a peer sends another to `learn`). */
  entries(): { record: DecideRecord; op: LedgerOp }[] {
    return [...this.#slots.values()]
      .filter((record) => this.#ops.has(record.proposal))
      .map((record) => ({ record, op: this.#ops.get(record.proposal)! }))
  }
}
