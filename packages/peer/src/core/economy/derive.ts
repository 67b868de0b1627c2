/**
 * A live ledger derived from signed threads: what an anchor (or any peer holding the threads)
 * computes to show credits, stake and pending payouts. Replayable by construction — the same
 * threads, grants, manifests, parameters and `nowMs` give the same ledger on every peer.
 *
 * Order (A7, docs/PROTOCOL.md §9.2) is the anchors' sequence, never one a sender can pick: the
 * genesis allocations first, then every anchor act on one timeline by the anchor's clock — faucet
 * grants (`atMs`), verifier manifests (when an anchor accepted them) and decided threads (their
 * winning DECIDE's `ts`). A thread settles as a whole at its DECIDE: its budget is escrowed there,
 * so a NEED decided later can never take the budget of one decided earlier, and a NEED its
 * requester cannot fund pays nobody. Credits are minted only by the genesis allocations and the
 * faucet rule (grants.ts); no envelope and no manifest mints anything.
 */
import { DEFAULT_FAUCET, type GenesisEconomy } from '../genesis.ts'
import type { NetworkParams } from '../thread/params.ts'
import type { ThreadReplica } from '../thread/replica.ts'
import type { Did } from '../types.ts'
import { admittedGrants, type FaucetGrant } from './grants.ts'
import { Ledger, type LedgerOp, type LedgerParams, LedgerRejectedError } from './ledger.ts'
import { latestManifests, type PoolManifest, poolSnapshot, stakeOpFor } from './pool.ts'
import { type Outcome, reputationScores } from './reputation.ts'
import type { PoolEntry } from './selection.ts'
import type { RelatedParties } from './settlement.ts'
import { settleThread, type ThreadSettlementReport } from './thread-settlement.ts'

/** The genesis rule of the ledger: allocations, the stake of the genesis verifiers, the faucet. */
export type GenesisRule = GenesisEconomy

/** No allocations, verifiers stake 300, the default faucet. */
export const DEFAULT_GENESIS: GenesisRule = Object.freeze({
  allocations: [],
  verifierStake: 300,
  faucet: DEFAULT_FAUCET,
})

/** A manifest as an anchor accepted it: `atMs` is the anchor's clock at acceptance. */
export type AcceptedManifest = PoolManifest & { atMs?: number }

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
  /** Decided threads whose requester could not fund the budget (A7). */
  readonly unfunded: readonly string[]
  /** Faucet grants the faucet rule admitted (the rest minted nothing). */
  readonly grants: number
  /** Per decided thread: what settling it did. */
  readonly threads: ReadonlyMap<string, ThreadSettlementReport>
  /** Settled outcomes of every thread (for reputation). */
  readonly outcomes: readonly Outcome[]
  /** Reputation per identity from the outcomes, per-mille. */
  readonly reputation: ReadonlyMap<Did, number>
  /** The verifier pool: manifests in force with their bonded stake, reputation and recency. */
  readonly pool: readonly PoolEntry[]
}

/** One step of the ledger's timeline. */
type Step =
  | { atMs: number; rank: 0; key: string; grant: FaucetGrant }
  | { atMs: number; rank: 1; key: string; manifest: PoolManifest }
  | { atMs: number; rank: 2; key: string; replica: ThreadReplica }

/** Derives the ledger that `replicas` imply at `nowMs`. */
export function deriveLedger(input: {
  replicas: Iterable<ThreadReplica>
  params: NetworkParams
  nowMs: number
  /** The genesis rule. @default {@link DEFAULT_GENESIS} */
  genesis?: Partial<GenesisRule>
  /** Verifiers of the genesis pool, who stake `verifierStake` at genesis. @default none */
  genesisVerifiers?: readonly Did[]
  /** Signature-checked faucet grants of anchors of this network. */
  grants?: readonly FaucetGrant[]
  /** Signature-checked verifier manifests: each verifier's stake is brought to what it declares. */
  manifests?: readonly AcceptedManifest[]
  ledgerParams?: Partial<LedgerParams>
  /** @default related by each thread's pool */
  related?: RelatedParties
  /** Every thread is over: refund whatever escrow is still open (the simulator's end). @default false */
  closing?: boolean
  /** Called after every operation applied or refused, with the ledger (checkers hook in here). */
  onOperation?: (op: LedgerOp, applied: boolean, ledger: Ledger, thread: string | undefined) => void
}): DerivedLedger {
  const genesis: GenesisRule = {
    ...DEFAULT_GENESIS,
    ...input.genesis,
    faucet: { ...DEFAULT_GENESIS.faucet, ...input.genesis?.faucet },
  }
  const ledger = new Ledger({ faucetCapPerAccount: genesis.faucet.grantCredits, ...input.ledgerParams })
  const refused: { op: LedgerOp['op']; reason: string }[] = []
  let applied = 0
  let slashes = 0
  let clock = 0
  let current: string | undefined
  const apply = (op: LedgerOp): boolean => {
    clock += 1
    let ok = false
    try {
      ledger.apply(op, clock)
      applied += 1
      if (op.op === 'slash') slashes += 1
      ok = true
    } catch (error) {
      if (!(error instanceof LedgerRejectedError)) throw error
      refused.push({ op: op.op, reason: error.reason })
    }
    input.onOperation?.(op, ok, ledger, current)
    return ok
  }
  const lastActiveMs = new Map<Did, number>()
  const replicas = [...input.replicas]
  for (const replica of replicas) {
    for (const env of replica.envelopes()) {
      if (replica.state.rejected.has(env.id)) continue
      // A sender's ts is its own claim: never later than now.
      const atMs = Math.min(env.ts, Number.isFinite(input.nowMs) ? input.nowMs : env.ts)
      lastActiveMs.set(env.sender, Math.max(lastActiveMs.get(env.sender) ?? 0, atMs))
    }
  }
  // Genesis.
  for (const allocation of genesis.allocations) {
    if (allocation.amount > 0)
      apply({ op: 'mint', to: allocation.did, amount: allocation.amount, reason: 'genesis' })
  }
  if (genesis.verifierStake > 0) {
    for (const did of input.genesisVerifiers ?? [])
      apply({ op: 'stake', account: did, amount: genesis.verifierStake })
  }
  // The anchors' timeline.
  const grants = admittedGrants(
    (input.grants ?? []).filter((grant) => grant.net === input.params.network),
    genesis.faucet,
  )
  // Manifests of another network count for nothing here, whoever forgot to check them (A7).
  const manifests = (input.manifests ?? []).filter(
    (manifest) => manifest.net === undefined || manifest.net === input.params.network,
  )
  const steps: Step[] = [
    ...grants.map((grant) => ({
      atMs: grant.atMs,
      rank: 0 as const,
      key: `${grant.to}|${grant.anchor}`,
      grant,
    })),
    ...latestManifests(manifests).map((manifest) => ({
      atMs: (manifest as AcceptedManifest).atMs ?? 0,
      rank: 1 as const,
      key: manifest.did,
      manifest,
    })),
    ...replicas
      .filter((replica) => replica.state.winner !== undefined)
      .map((replica) => ({ atMs: replica.state.winner!.ts, rank: 2 as const, key: replica.thread, replica })),
  ]
  steps.sort((a, b) =>
    a.atMs !== b.atMs
      ? a.atMs - b.atMs
      : a.rank !== b.rank
        ? a.rank - b.rank
        : a.key < b.key
          ? -1
          : a.key > b.key
            ? 1
            : 0,
  )
  const pending = new Map<Did, number>()
  const outcomes: Outcome[] = []
  const unfunded: string[] = []
  const threads = new Map<string, ThreadSettlementReport>()
  let upheldChallenges = 0
  let frivolousChallenges = 0
  const access = {
    escrow: (id: string) => ledger.escrow(id),
    account: (did: Did) => ledger.account(did),
    apply,
  }
  for (const step of steps) {
    if (step.rank === 0) {
      apply({ op: 'mint', to: step.grant.to, amount: step.grant.amount, reason: 'faucet' })
    } else if (step.rank === 1) {
      const op = stakeOpFor(step.manifest, ledger.account(step.manifest.did))
      if (op) apply(op)
    } else {
      current = step.replica.thread
      const report = settleThread(step.replica, access, {
        params: input.params,
        nowMs: input.nowMs,
        closing: input.closing ?? false,
        ...(input.related ? { related: input.related } : {}),
      })
      current = undefined
      threads.set(step.replica.thread, report)
      if (report.unfunded) unfunded.push(step.replica.thread)
      upheldChallenges += report.upheldChallenges
      frivolousChallenges += report.frivolousChallenges
      for (const payout of report.pending)
        pending.set(payout.to, (pending.get(payout.to) ?? 0) + payout.amount)
      outcomes.push(...report.outcomes)
    }
  }
  const reputation = reputationScores(outcomes, Number.isFinite(input.nowMs) ? input.nowMs : 0)
  const pool = poolSnapshot({
    manifests: latestManifests(manifests),
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
    unfunded,
    grants: grants.length,
    threads,
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
