/**
 * The credit ledger (docs/PROTOCOL.md §9): accounts, transfers, escrow and release, stake with an
 * unbonding period, slashing, burns, and minting for a new network (genesis and a capped faucet).
 *
 * The ledger is a pure state machine: the same operations in the same order give the same state
 * on every peer. Order comes from outside — balance-changing operations are sequenced per account
 * by the scoped-consensus service — and so does time: each operation carries the `atMs` the
 * sequencer assigned, never a local clock. A rejected operation changes nothing and says why.
 *
 * Conservation holds after every operation:
 * Σ(balance + staked + unbonding) + Σ(open escrows) = minted − burned.
 *
 * @example
 * ```ts
 * const ledger = new Ledger()
 * ledger.apply({ op: 'mint', to: alice, amount: 100, reason: 'genesis' }, 0)
 * ledger.apply({ op: 'escrow', id: 'need-1/budget', from: alice, amount: 40, purpose: 'need-budget' }, 1)
 * ledger.apply({ op: 'release', id: 'need-1/budget', payouts: [{ to: bob, amount: 30 }], burn: 0, refund: 10 }, 9)
 * ```
 */
import { CanSwarmError } from '../errors.ts'
import type { Did } from '../types.ts'

/** Economic constants every peer shares. */
export interface LedgerParams {
  /** How long unbonded stake stays slashable before it can be withdrawn. @default 7 days */
  unbondingMs: number
  /** Most credits one account may ever receive from the faucet. @default 1 000 */
  faucetCapPerAccount: number
  /** Most credits the genesis may mint in all. @default 10 000 000 */
  genesisCap: number
}

export const DEFAULT_LEDGER_PARAMS: LedgerParams = Object.freeze({
  unbondingMs: 7 * 24 * 3_600_000,
  faucetCapPerAccount: 1_000,
  genesisCap: 10_000_000,
})

export type EscrowPurpose = 'need-budget' | 'verify-bounty' | 'challenge-bond'

/** One payout out of an escrow or a slash. */
export interface Payout {
  to: Did
  amount: number
}

/** Balance-changing operations. */
export type LedgerOp =
  | { op: 'mint'; to: Did; amount: number; reason: 'genesis' | 'faucet' }
  | { op: 'transfer'; from: Did; to: Did; amount: number }
  | { op: 'escrow'; id: string; from: Did; amount: number; purpose: EscrowPurpose }
  /** Closes an escrow: payouts + burn + refund (to the owner) must equal what it holds. */
  | { op: 'release'; id: string; payouts: Payout[]; burn: number; refund: number }
  | { op: 'stake'; account: Did; amount: number }
  | { op: 'unbond'; account: Did; amount: number }
  /** Moves every unbonding entry whose period has passed back to the balance. */
  | { op: 'withdraw'; account: Did }
  /** Takes from stake first, then from unbonding (newest first); pays out and burns the rest. */
  | { op: 'slash'; account: Did; amount: number; payouts: Payout[]; reason: string }

export interface AccountState {
  balance: number
  staked: number
  unbonding: { amount: number; releaseAtMs: number }[]
  fauceted: number
}

export interface EscrowState {
  id: string
  owner: Did
  amount: number
  purpose: EscrowPurpose
  openedAtMs: number
}

/** Why the ledger refused an operation. */
export class LedgerRejectedError extends CanSwarmError {
  readonly reason: string
  constructor(reason: string, message: string, field: string) {
    super('LEDGER_REJECTED', message, field)
    this.name = 'LedgerRejectedError'
    this.reason = reason
  }
}

function reject(reason: string, message: string, field: string): never {
  throw new LedgerRejectedError(reason, message, field)
}

function checkAmount(amount: number, field = 'amount', allowZero = false): void {
  if (!Number.isSafeInteger(amount) || amount < 0 || (!allowZero && amount === 0)) {
    reject(
      'bad-amount',
      `${field} must be a ${allowZero ? 'non-negative' : 'positive'} integer of credits, got ${amount}`,
      field,
    )
  }
}

export class Ledger {
  readonly params: LedgerParams
  #accounts = new Map<Did, AccountState>()
  #escrows = new Map<string, EscrowState>()
  #closedEscrows = new Set<string>()
  #minted = 0
  #burned = 0
  #genesisMinted = 0
  #lastAtMs = 0

  constructor(params: Partial<LedgerParams> = {}) {
    this.params = Object.freeze({ ...DEFAULT_LEDGER_PARAMS, ...params })
  }

  /** Credits minted and burned so far. */
  get supply(): { minted: number; burned: number; circulating: number } {
    return { minted: this.#minted, burned: this.#burned, circulating: this.#minted - this.#burned }
  }

  account(did: Did): Readonly<AccountState> {
    return this.#accounts.get(did) ?? { balance: 0, staked: 0, unbonding: [], fauceted: 0 }
  }

  escrow(id: string): Readonly<EscrowState> | undefined {
    return this.#escrows.get(id)
  }

  /** Every open escrow, by id. */
  escrows(): Readonly<EscrowState>[] {
    return [...this.#escrows.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  accounts(): Did[] {
    return [...this.#accounts.keys()].sort()
  }

  #checkDid(did: Did, field: string): void {
    if (typeof did !== 'string' || !did.startsWith('did:key:')) {
      reject('bad-account', `account ${String(did)} is not a did:key`, field)
    }
  }

  #mutable(did: Did): AccountState {
    let account = this.#accounts.get(did)
    if (!account) {
      account = { balance: 0, staked: 0, unbonding: [], fauceted: 0 }
      this.#accounts.set(did, account)
    }
    return account
  }

  #debit(did: Did, amount: number, field: string): void {
    const account = this.#mutable(did)
    if (account.balance < amount) {
      reject('insufficient-funds', `${did} holds ${account.balance} credits, ${amount} needed`, field)
    }
    account.balance -= amount
  }

  #payouts(payouts: readonly Payout[], field: string): number {
    let total = 0
    for (const [index, payout] of payouts.entries()) {
      checkAmount(payout.amount, `${field}.${index}.amount`, true)
      total += payout.amount
    }
    return total
  }

  /**
   * Applies one operation at sequencer time `atMs` (non-decreasing). Throws
   * {@link LedgerRejectedError} and changes nothing when the operation is not allowed.
   */
  apply(op: LedgerOp, atMs: number): void {
    if (!Number.isSafeInteger(atMs) || atMs < this.#lastAtMs) {
      reject('time-went-back', `atMs ${atMs} is before the last operation's ${this.#lastAtMs}`, 'atMs')
    }
    // Validate fully before mutating: a rejected operation leaves the ledger untouched.
    this.#check(op, atMs)
    this.#lastAtMs = atMs
    switch (op.op) {
      case 'mint': {
        const account = this.#mutable(op.to)
        account.balance += op.amount
        if (op.reason === 'faucet') account.fauceted += op.amount
        else this.#genesisMinted += op.amount
        this.#minted += op.amount
        return
      }
      case 'transfer':
        this.#debit(op.from, op.amount, 'amount')
        this.#mutable(op.to).balance += op.amount
        return
      case 'escrow':
        this.#debit(op.from, op.amount, 'amount')
        this.#escrows.set(op.id, {
          id: op.id,
          owner: op.from,
          amount: op.amount,
          purpose: op.purpose,
          openedAtMs: atMs,
        })
        return
      case 'release': {
        const escrow = this.#escrows.get(op.id)!
        for (const payout of op.payouts) this.#mutable(payout.to).balance += payout.amount
        this.#mutable(escrow.owner).balance += op.refund
        this.#burned += op.burn
        this.#escrows.delete(op.id)
        this.#closedEscrows.add(op.id)
        return
      }
      case 'stake': {
        this.#debit(op.account, op.amount, 'amount')
        this.#mutable(op.account).staked += op.amount
        return
      }
      case 'unbond': {
        const account = this.#mutable(op.account)
        account.staked -= op.amount
        account.unbonding.push({ amount: op.amount, releaseAtMs: atMs + this.params.unbondingMs })
        return
      }
      case 'withdraw': {
        const account = this.#mutable(op.account)
        const due = account.unbonding.filter((entry) => entry.releaseAtMs <= atMs)
        account.unbonding = account.unbonding.filter((entry) => entry.releaseAtMs > atMs)
        account.balance += due.reduce((sum, entry) => sum + entry.amount, 0)
        return
      }
      case 'slash': {
        const account = this.#mutable(op.account)
        let remaining = op.amount
        const fromStake = Math.min(account.staked, remaining)
        account.staked -= fromStake
        remaining -= fromStake
        for (let index = account.unbonding.length - 1; index >= 0 && remaining > 0; index -= 1) {
          const entry = account.unbonding[index]!
          const taken = Math.min(entry.amount, remaining)
          entry.amount -= taken
          remaining -= taken
        }
        account.unbonding = account.unbonding.filter((entry) => entry.amount > 0)
        const paid = this.#payouts(op.payouts, 'payouts')
        for (const payout of op.payouts) this.#mutable(payout.to).balance += payout.amount
        this.#burned += op.amount - paid
        return
      }
    }
  }

  /** Checks an operation without applying it; throws {@link LedgerRejectedError} when it would be refused. */
  check(op: LedgerOp, atMs: number): void {
    if (!Number.isSafeInteger(atMs) || atMs < this.#lastAtMs) {
      reject('time-went-back', `atMs ${atMs} is before the last operation's ${this.#lastAtMs}`, 'atMs')
    }
    this.#check(op, atMs)
  }

  #check(op: LedgerOp, atMs: number): void {
    if (op === null || typeof op !== 'object') reject('bad-op', 'an operation must be an object', 'op')
    switch (op.op) {
      case 'mint': {
        checkAmount(op.amount)
        if (op.reason === 'faucet') {
          const fauceted = this.account(op.to).fauceted
          if (fauceted + op.amount > this.params.faucetCapPerAccount) {
            reject(
              'faucet-cap',
              `the faucet gives at most ${this.params.faucetCapPerAccount} credits per account; ${op.to} had ${fauceted}`,
              'amount',
            )
          }
        } else if (this.#genesisMinted + op.amount > this.params.genesisCap) {
          reject('genesis-cap', `genesis may mint at most ${this.params.genesisCap} credits`, 'amount')
        }
        this.#checkDid(op.to, 'to')
        return
      }
      case 'transfer':
        checkAmount(op.amount)
        if (op.from === op.to) reject('self-transfer', 'a transfer needs two different accounts', 'to')
        this.#checkDid(op.to, 'to')
        this.#checkFunds(op.from, op.amount)
        return
      case 'escrow':
        checkAmount(op.amount)
        if (this.#escrows.has(op.id) || this.#closedEscrows.has(op.id)) {
          reject('duplicate-escrow', `escrow ${op.id} already exists: an escrow is opened once`, 'id')
        }
        this.#checkFunds(op.from, op.amount)
        return
      case 'release': {
        const escrow = this.#escrows.get(op.id)
        if (!escrow) reject('unknown-escrow', `no open escrow ${op.id}`, 'id')
        checkAmount(op.burn, 'burn', true)
        checkAmount(op.refund, 'refund', true)
        const paid = this.#payouts(op.payouts, 'payouts')
        if (paid + op.burn + op.refund !== escrow.amount) {
          reject(
            'unbalanced-release',
            `payouts ${paid} + burn ${op.burn} + refund ${op.refund} ≠ escrow ${escrow.amount}`,
            'payouts',
          )
        }
        for (const [index, payout] of op.payouts.entries()) this.#checkDid(payout.to, `payouts.${index}.to`)
        return
      }
      case 'stake':
        checkAmount(op.amount)
        this.#checkFunds(op.account, op.amount)
        return
      case 'unbond': {
        checkAmount(op.amount)
        const staked = this.account(op.account).staked
        if (staked < op.amount)
          reject('insufficient-stake', `${op.account} has ${staked} staked, ${op.amount} asked`, 'amount')
        return
      }
      case 'withdraw':
        if (!this.account(op.account).unbonding.some((entry) => entry.releaseAtMs <= atMs)) {
          reject('nothing-due', `${op.account} has no unbonded stake due by ${atMs}`, 'account')
        }
        return
      case 'slash': {
        checkAmount(op.amount)
        const account = this.account(op.account)
        const slashable = account.staked + account.unbonding.reduce((sum, entry) => sum + entry.amount, 0)
        if (slashable < op.amount)
          reject(
            'insufficient-stake',
            `${op.account} has ${slashable} slashable, ${op.amount} asked`,
            'amount',
          )
        if (this.#payouts(op.payouts, 'payouts') > op.amount)
          reject('unbalanced-slash', 'payouts exceed the slashed amount', 'payouts')
        for (const [index, payout] of op.payouts.entries()) this.#checkDid(payout.to, `payouts.${index}.to`)
        return
      }
      default:
        reject('unknown-op', `unknown ledger operation ${String((op as { op: unknown }).op)}`, 'op')
    }
  }

  #checkFunds(did: Did, amount: number): void {
    this.#checkDid(did, 'account')
    const balance = this.account(did).balance
    if (balance < amount)
      reject('insufficient-funds', `${did} holds ${balance} credits, ${amount} needed`, 'amount')
  }

  /** Conservation: Σ accounts + Σ escrows = minted − burned. Returns the difference (0 when it holds). */
  conservationGap(): number {
    let held = 0
    for (const account of this.#accounts.values()) {
      held +=
        account.balance + account.staked + account.unbonding.reduce((sum, entry) => sum + entry.amount, 0)
    }
    for (const escrow of this.#escrows.values()) held += escrow.amount
    return held - (this.#minted - this.#burned)
  }

  /**
   * Forgets that these escrows were closed (an id once closed may never open again). For escrows of
   * a thread settled for good whose envelopes can no longer reach the ledger (docs/PROTOCOL.md §9.6),
   * so that closed ids do not pile up for ever. Open escrows are left alone.
   */
  forgetClosed(ids: Iterable<string>): void {
    for (const id of ids) this.#closedEscrows.delete(id)
  }

  /** Escrow ids remembered as closed. */
  get closedEscrows(): number {
    return this.#closedEscrows.size
  }

  /** An independent copy: the same accounts, escrows, supply and time. */
  clone(): Ledger {
    const copy = new Ledger(this.params)
    for (const [did, account] of this.#accounts) {
      copy.#accounts.set(did, { ...account, unbonding: account.unbonding.map((entry) => ({ ...entry })) })
    }
    for (const [id, escrow] of this.#escrows) copy.#escrows.set(id, { ...escrow })
    copy.#closedEscrows = new Set(this.#closedEscrows)
    copy.#minted = this.#minted
    copy.#burned = this.#burned
    copy.#genesisMinted = this.#genesisMinted
    copy.#lastAtMs = this.#lastAtMs
    return copy
  }

  /** A deterministic plain snapshot (for hashing and comparing replicas). */
  canonical(): unknown {
    return {
      accounts: this.accounts().map((did) => {
        const a = this.#accounts.get(did)!
        return [did, a.balance, a.staked, a.unbonding.map((e) => [e.amount, e.releaseAtMs]), a.fauceted]
      }),
      escrows: [...this.#escrows.values()]
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map((e) => [e.id, e.owner, e.amount, e.purpose, e.openedAtMs]),
      minted: this.#minted,
      burned: this.#burned,
    }
  }
}
