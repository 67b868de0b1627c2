/**
 * A live ledger derived from signed threads: what an anchor (or any peer holding the threads)
 * computes to show credits, stake and pending payouts. Replayable by construction — the same
 * threads, parameters and `nowMs` give the same ledger on every peer.
 *
 * Genesis rule of a new network (documented in PROTOCOL.md §8 terms, capped by
 * `LedgerParams.faucetCapPerAccount`): every identity that signed an accepted envelope in a thread
 * is granted `faucetGrant` credits once; the verifiers listed in the network parameters then stake
 * `verifierStake` of theirs. Verifiers that signed a manifest are granted too, and their bonded stake
 * is brought to what their newest manifest declares (joining, changing or leaving the pool). Threads
 * settle one after another in the order of their ids; their settled outcomes give reputations, and
 * manifests, ledger and reputations give the pool snapshot.
 */
import type { NetworkParams } from '../thread/params.ts'
import type { ThreadReplica } from '../thread/replica.ts'
import type { Did } from '../types.ts'
import { Ledger, type LedgerOp, type LedgerParams, LedgerRejectedError } from './ledger.ts'
import { latestManifests, type PoolManifest, poolSnapshot, stakeOpFor } from './pool.ts'
import { type Outcome, reputationScores } from './reputation.ts'
import type { PoolEntry } from './selection.ts'
import type { RelatedParties } from './settlement.ts'
import { settleThread } from './thread-settlement.ts'

export interface GenesisRule {
  /** Credits granted once to every identity seen signing. @default 1 000 */
  faucetGrant: number
  /** Stake taken from each listed verifier's grant. @default 300 */
  verifierStake: number
}

export const DEFAULT_GENESIS: GenesisRule = Object.freeze({ faucetGrant: 1_000, verifierStake: 300 })

export interface DerivedLedger {
  readonly ledger: Ledger
  /** Payouts per account still inside their challenge period. */
  readonly pending: ReadonlyMap<Did, number>
  /** Operations applied and refused. */
  readonly applied: number
  readonly refused: { op: LedgerOp['op']; reason: string }[]
  readonly slashes: number
  readonly upheldChallenges: number
  readonly frivolousChallenges: number
  /** Settled outcomes of every thread (for reputation). */
  readonly outcomes: readonly Outcome[]
  /** Reputation per identity from the outcomes, per-mille. */
  readonly reputation: ReadonlyMap<Did, number>
  /** The verifier pool: manifests in force with their bonded stake, reputation and recency. */
  readonly pool: readonly PoolEntry[]
}

/** Derives the ledger that `replicas` imply at `nowMs`. */
export function deriveLedger(input: {
  replicas: Iterable<ThreadReplica>
  params: NetworkParams
  nowMs: number
  genesis?: Partial<GenesisRule>
  /** Signature-checked verifier manifests: each verifier's stake is brought to what it declares. */
  manifests?: readonly PoolManifest[]
  ledgerParams?: Partial<LedgerParams>
  related?: RelatedParties
}): DerivedLedger {
  const genesis = { ...DEFAULT_GENESIS, ...input.genesis }
  const ledger = new Ledger(input.ledgerParams)
  const replicas = [...input.replicas].sort((a, b) =>
    a.thread < b.thread ? -1 : a.thread > b.thread ? 1 : 0,
  )
  const refused: { op: LedgerOp['op']; reason: string }[] = []
  let applied = 0
  let slashes = 0
  let clock = 0
  const apply = (op: LedgerOp): boolean => {
    clock += 1
    try {
      ledger.apply(op, clock)
      applied += 1
      if (op.op === 'slash') slashes += 1
      return true
    } catch (error) {
      if (!(error instanceof LedgerRejectedError)) throw error
      refused.push({ op: op.op, reason: error.reason })
      return false
    }
  }
  const signers = new Set<Did>()
  const lastActiveMs = new Map<Did, number>()
  for (const replica of replicas) {
    for (const env of replica.envelopes()) {
      if (replica.state.rejected.has(env.id)) continue
      signers.add(env.sender)
      lastActiveMs.set(env.sender, Math.max(lastActiveMs.get(env.sender) ?? 0, env.ts))
    }
  }
  const manifests = latestManifests(input.manifests ?? [])
  for (const manifest of manifests) signers.add(manifest.did)
  for (const did of [...signers].sort()) {
    if (genesis.faucetGrant > 0) apply({ op: 'mint', to: did, amount: genesis.faucetGrant, reason: 'faucet' })
  }
  if (genesis.verifierStake > 0) {
    for (const did of input.params.verifiers)
      apply({ op: 'stake', account: did, amount: genesis.verifierStake })
  }
  for (const manifest of manifests) {
    const op = stakeOpFor(manifest, ledger.account(manifest.did))
    if (op) apply(op)
  }
  const pending = new Map<Did, number>()
  const outcomes: Outcome[] = []
  let upheldChallenges = 0
  let frivolousChallenges = 0
  const access = {
    escrow: (id: string) => ledger.escrow(id),
    account: (did: Did) => ledger.account(did),
    apply,
  }
  for (const replica of replicas) {
    const report = settleThread(replica, access, {
      params: input.params,
      nowMs: input.nowMs,
      closing: false,
      ...(input.related ? { related: input.related } : {}),
    })
    upheldChallenges += report.upheldChallenges
    frivolousChallenges += report.frivolousChallenges
    for (const payout of report.pending) pending.set(payout.to, (pending.get(payout.to) ?? 0) + payout.amount)
    outcomes.push(...report.outcomes)
  }
  const reputation = reputationScores(outcomes, Number.isFinite(input.nowMs) ? input.nowMs : 0)
  const pool = poolSnapshot({
    manifests,
    account: (did) => ledger.account(did),
    reputationPerMille: reputation,
    lastActiveMs,
  })
  return {
    ledger,
    pending,
    applied,
    refused,
    slashes,
    upheldChallenges,
    frivolousChallenges,
    outcomes,
    reputation,
    pool,
  }
}

/** One account as a person sees it. */
export interface AccountView {
  did: Did
  /** The ledger holds this account (it signed an accepted envelope, or was paid). */
  known: boolean
  /** Spendable credits. */
  balance: number
  staked: number
  unbonding: number
  /** Credits this account has in open escrows (budgets, bounties, bonds). */
  escrowed: number
  /** Credits owed to this account once challenge periods end. */
  pending: number
}

/** The view of one account in a derived ledger. */
export function accountView(derived: DerivedLedger, did: Did): AccountView {
  const account = derived.ledger.account(did)
  let escrowed = 0
  for (const escrow of derived.ledger.escrows()) if (escrow.owner === did) escrowed += escrow.amount
  return {
    did,
    known: derived.ledger.accounts().includes(did),
    balance: account.balance,
    staked: account.staked,
    unbonding: account.unbonding.reduce((sum, entry) => sum + entry.amount, 0),
    escrowed,
    pending: derived.pending.get(did) ?? 0,
  }
}
