/**
 * Who gets paid, slashed or burned when work settles (docs/PROTOCOL.md §5 steps 9–11, §9). Each function
 * turns one settled fact into ledger operations; the ledger then checks that every escrow closes
 * exactly (payouts + burn + refund = escrowed), so credits are conserved by construction.
 *
 * Escrow ids: `${need}/budget` (the NEED's budget, requester), `${commit}/bounty` (the verify
 * bounty, worker), `${challenge}/bond` (the challenger's bond).
 */
import { challengeRewardFor } from '../consensus.ts'
import type { Did } from '../types.ts'
import type { LedgerOp, Payout } from './ledger.ts'

export interface SettlementParams {
  /** Share of an invalidated commit's bounty for the challenger, per-mille (doubled in bootstrap, capped). @default 400 */
  challengerPerMille: number
  /** Share for the honest verifiers (failing voters and upholders), per-mille. @default 400 */
  honestPerMille: number
  /** Stake slashed from each verifier that passed an invalidated result, per-mille. @default 200 */
  verifierSlashPerMille: number
  /** Stake slashed from the worker of an invalidated result, per-mille. @default 300 */
  workerSlashPerMille: number
  /** Share of a frivolous challenger's bond paid to the challenged worker, per-mille (rest burned). @default 500 */
  frivolousToWorkerPerMille: number
}

export const DEFAULT_SETTLEMENT_PARAMS: SettlementParams = Object.freeze({
  challengerPerMille: 400,
  honestPerMille: 400,
  verifierSlashPerMille: 200,
  workerSlashPerMille: 300,
  frivolousToWorkerPerMille: 500,
})

/** Decides whether two accounts are related parties (same org or identity graph). */
export type RelatedParties = (a: Did, b: Did) => boolean

function perMille(amount: number, share: number): number {
  return Math.floor((amount * share) / 1000)
}

/** Splits `amount` evenly over `recipients` (sorted); the indivisible remainder is returned. */
function split(amount: number, recipients: readonly Did[]): { payouts: Payout[]; remainder: number } {
  const unique = [...new Set(recipients)].sort()
  if (unique.length === 0 || amount === 0) return { payouts: [], remainder: amount }
  const each = Math.floor(amount / unique.length)
  return {
    payouts: each === 0 ? [] : unique.map((to) => ({ to, amount: each })),
    remainder: amount - each * (each === 0 ? 0 : unique.length),
  }
}

function merge(payouts: readonly Payout[]): Payout[] {
  const totals = new Map<Did, number>()
  for (const payout of payouts) totals.set(payout.to, (totals.get(payout.to) ?? 0) + payout.amount)
  return [...totals]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .filter(([, amount]) => amount > 0)
    .map(([to, amount]) => ({ to, amount }))
}

/**
 * Closes a NEED's budget escrow once all its tasks are FINAL and paid out (after 2 × T_challenge):
 * each worker gets its claimed cost, unless it is related to the requester; the rest is refunded.
 */
export function settleBudget(input: {
  need: string
  requester: Did
  escrowed: number
  payments: readonly { worker: Did; cost: number }[]
  related: RelatedParties
  /** The winning plan's price: workers are paid at most this in all, the rest is refunded. @default escrowed */
  price?: number
}): LedgerOp {
  let payable = Math.min(input.escrowed, input.price ?? input.escrowed)
  const payouts: Payout[] = []
  for (const payment of input.payments) {
    if (input.related(payment.worker, input.requester)) continue
    const amount = Math.min(payment.cost, payable)
    payable -= amount
    payouts.push({ to: payment.worker, amount })
  }
  const paid = payouts.reduce((sum, payout) => sum + payout.amount, 0)
  return {
    op: 'release',
    id: `${input.need}/budget`,
    payouts: merge(payouts),
    burn: 0,
    refund: input.escrowed - paid,
  }
}

/** Pays a FINAL commit's verify bounty to the committee members that passed it (not related to the worker). */
export function settleBounty(input: {
  commit: string
  worker: Did
  bounty: number
  passVoters: readonly Did[]
  related: RelatedParties
}): LedgerOp {
  const eligible = input.passVoters.filter((did) => !input.related(did, input.worker))
  if (eligible.length === 0)
    return { op: 'release', id: `${input.commit}/bounty`, payouts: [], burn: 0, refund: input.bounty }
  const { payouts, remainder } = split(input.bounty, eligible)
  return { op: 'release', id: `${input.commit}/bounty`, payouts, burn: remainder, refund: 0 }
}

/**
 * An upheld challenge: the wrong verifiers and the worker are slashed, the bounty is re-split
 * (challenger, honest verifiers, burn) and the challenger's bond comes back. Slashed stake goes to
 * the challenger's share and the burn in the same proportions.
 */
export function settleInvalidation(input: {
  commit: string
  challenge: string
  challenger: Did
  bond: number
  bounty: number
  worker: { did: Did; staked: number }
  wrongVerifiers: readonly { did: Did; staked: number }[]
  honestVerifiers: readonly Did[]
  bootstrap: boolean
  /**
   * Whether the challenger's bond was escrowed. An unfunded challenger risked nothing and is paid
   * nothing: its share is burned. @default true
   */
  funded?: boolean
  params?: SettlementParams
}): LedgerOp[] {
  const params = input.params ?? DEFAULT_SETTLEMENT_PARAMS
  const challengerShare =
    input.funded === false
      ? 0
      : Math.min(1000 - params.honestPerMille, challengeRewardFor(params.challengerPerMille, input.bootstrap))
  const ops: LedgerOp[] = []
  const toChallenger = perMille(input.bounty, challengerShare)
  const honest = split(perMille(input.bounty, params.honestPerMille), input.honestVerifiers)
  const burn =
    input.bounty - toChallenger - (perMille(input.bounty, params.honestPerMille) - honest.remainder)
  ops.push({
    op: 'release',
    id: `${input.commit}/bounty`,
    payouts: merge([{ to: input.challenger, amount: toChallenger }, ...honest.payouts]),
    burn,
    refund: 0,
  })
  ops.push({ op: 'release', id: `${input.challenge}/bond`, payouts: [], burn: 0, refund: input.bond })
  const slashes = [
    ...input.wrongVerifiers.map((v) => ({
      did: v.did,
      amount: perMille(v.staked, params.verifierSlashPerMille),
    })),
    { did: input.worker.did, amount: perMille(input.worker.staked, params.workerSlashPerMille) },
  ]
  for (const slash of slashes) {
    if (slash.amount === 0) continue
    ops.push({
      op: 'slash',
      account: slash.did,
      amount: slash.amount,
      payouts: merge([{ to: input.challenger, amount: perMille(slash.amount, challengerShare) }]),
      reason: `invalidated ${input.commit}`,
    })
  }
  return ops
}

/** A frivolous challenge (not upheld when the window closed): its bond goes partly to the worker, the rest is burned. */
export function settleFrivolous(input: {
  challenge: string
  bond: number
  worker: Did
  params?: SettlementParams
}): LedgerOp {
  const params = input.params ?? DEFAULT_SETTLEMENT_PARAMS
  const toWorker = perMille(input.bond, params.frivolousToWorkerPerMille)
  return {
    op: 'release',
    id: `${input.challenge}/bond`,
    payouts: merge([{ to: input.worker, amount: toWorker }]),
    burn: input.bond - toWorker,
    refund: 0,
  }
}
