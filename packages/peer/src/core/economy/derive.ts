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
import { type Outcome, ReputationBuckets } from './reputation.ts'
import type { PoolEntry } from './selection.ts'
import type { RelatedParties } from './settlement.ts'
import { settleThread, type ThreadSettlementReport, threadTimes } from './thread-settlement.ts'

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
  /** Operations applied (the settled base's included). */
  readonly applied: number
  /** Operations refused since the settled base (the ledger's tail). */
  readonly refused: { op: LedgerOp['op']; reason: string }[]
  /** Operations refused, the settled base's included. */
  readonly refusedTotal: number
  readonly slashes: number
  readonly upheldChallenges: number
  readonly frivolousChallenges: number
  /** Decided threads past the settled base whose requester could not fund the budget (A7). */
  readonly unfunded: readonly string[]
  /** Decided threads that were not funded, the settled base's included. */
  readonly unfundedTotal: number
  /** Threads settled into the base (their replicas may be gone). */
  readonly settledThreads: number
  /** Faucet grants the faucet rule admitted (the rest minted nothing). */
  readonly grants: number
  /** Per decided thread past the settled base: what settling it did. */
  readonly threads: ReadonlyMap<string, ThreadSettlementReport>
  /** Settled outcomes of the threads past the settled base (the base keeps them as counts). */
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

function compareSteps(a: Step, b: Step): number {
  return a.atMs !== b.atMs
    ? a.atMs - b.atMs
    : a.rank !== b.rank
      ? a.rank - b.rank
      : a.key < b.key
        ? -1
        : a.key > b.key
          ? 1
          : 0
}

/** What the ledger is derived from at one time. */
export interface LedgerInputs {
  replicas: Iterable<ThreadReplica>
  nowMs: number
  /** Signature-checked faucet grants of anchors of this network. */
  grants?: readonly FaucetGrant[]
  /** Signature-checked verifier manifests: each verifier's stake is brought to what it declares. */
  manifests?: readonly AcceptedManifest[]
}

export interface LedgerTimelineOptions {
  params: NetworkParams
  /** The genesis rule. @default {@link DEFAULT_GENESIS} */
  genesis?: Partial<GenesisRule>
  /** Verifiers of the genesis pool, who stake `verifierStake` at genesis. @default none */
  genesisVerifiers?: readonly Did[]
  /** The ledger's limits. @default the ledger's own, with the faucet cap of the genesis rule */
  ledgerParams?: Partial<LedgerParams>
  /** @default related by each thread's pool */
  related?: RelatedParties
  /**
   * How far before the settled base's cut a thread's DECIDE may lie and still be settled when it
   * arrives late (a partition healing): later than this it is refused, as it may have been settled
   * and forgotten already (§9.6). Threads settled within it are remembered, so none settles twice.
   * @default 1 h
   */
  lateWindowMs?: number
  /**
   * Most settled threads remembered for the late window. Past it the oldest is forgotten and the
   * window shrinks to what is remembered: a late DECIDE no later than a forgotten one is refused
   * as too late, so none settles twice and the memory does not grow with throughput.
   * @default {@link DEFAULT_MAX_SETTLED_THREADS} (65 536)
   */
  maxSettledThreads?: number
  /**
   * How long a decided thread that is still open may hold the settled base back. Past it the base
   * carries the thread: the escrows it opened so far are settled in place (at its DECIDE), and
   * everything else it does — payouts, refunds, slashes, new escrows — applies after the base,
   * when it happens, until it seals (§9.6). So one thread left undone cannot keep every later
   * thread in memory for its whole lifetime. @default 10 min
   */
  carryAfterMs?: number
}

/** Default of {@link LedgerTimelineOptions.carryAfterMs}. */
export const DEFAULT_CARRY_AFTER_MS = 600_000

/** Counters of a ledger's history. */
interface Totals {
  clock: number
  applied: number
  refused: number
  slashes: number
  upheldChallenges: number
  frivolousChallenges: number
  unfunded: number
  grants: number
  settledThreads: number
}

type OperationHook = (op: LedgerOp, applied: boolean, ledger: Ledger, thread: string | undefined) => void

/** Steps applied to one ledger: the base when settling, a copy of it when deriving. */
class Run {
  readonly refused: { op: LedgerOp['op']; reason: string }[] = []
  readonly threads = new Map<string, ThreadSettlementReport>()
  readonly unfunded: string[] = []
  readonly outcomes: Outcome[] = []
  readonly pending = new Map<Did, number>()
  readonly ledger: Ledger
  readonly totals: Totals
  readonly params: NetworkParams
  readonly related: RelatedParties | undefined
  readonly onOperation: OperationHook | undefined
  #current: string | undefined

  constructor(
    ledger: Ledger,
    totals: Totals,
    params: NetworkParams,
    related: RelatedParties | undefined,
    onOperation: OperationHook | undefined,
  ) {
    this.ledger = ledger
    this.totals = totals
    this.params = params
    this.related = related
    this.onOperation = onOperation
  }

  apply = (op: LedgerOp): boolean => {
    this.totals.clock += 1
    let ok = false
    try {
      this.ledger.apply(op, this.totals.clock)
      this.totals.applied += 1
      if (op.op === 'slash') this.totals.slashes += 1
      ok = true
    } catch (error) {
      if (!(error instanceof LedgerRejectedError)) throw error
      this.totals.refused += 1
      this.refused.push({ op: op.op, reason: error.reason })
    }
    this.onOperation?.(op, ok, this.ledger, this.#current)
    return ok
  }

  /**
   * Applies one step. A thread that was carried (`carry`) has its escrows held already: an escrow
   * op it recorded answers as it did then (held, or refused), without applying anything. With
   * `carry.onlyEscrows` the thread is being carried now: only its escrows are applied (and
   * recorded), nothing else, and nothing is reported.
   */
  step(
    step: Step,
    nowMs: number,
    closing: boolean,
    carry?: { escrows: Map<string, boolean>; onlyEscrows: boolean },
  ): void {
    if (step.rank === 0) {
      this.totals.grants += 1
      this.apply({ op: 'mint', to: step.grant.to, amount: step.grant.amount, reason: 'faucet' })
      return
    }
    if (step.rank === 1) {
      const op = stakeOpFor(step.manifest, this.ledger.account(step.manifest.did))
      if (op) this.apply(op)
      return
    }
    this.#current = step.replica.thread
    const apply =
      carry === undefined
        ? this.apply
        : (op: LedgerOp): boolean => {
            if (op.op !== 'escrow') return carry.onlyEscrows ? false : this.apply(op)
            const held = carry.escrows.get(op.id)
            if (held !== undefined) return held
            const ok = this.apply(op)
            if (carry.onlyEscrows) carry.escrows.set(op.id, ok)
            return ok
          }
    const report = settleThread(
      step.replica,
      { escrow: (id) => this.ledger.escrow(id), account: (did) => this.ledger.account(did), apply },
      { params: this.params, nowMs, closing, ...(this.related ? { related: this.related } : {}) },
    )
    this.#current = undefined
    if (carry?.onlyEscrows) return
    this.threads.set(step.replica.thread, report)
    if (report.unfunded) {
      this.totals.unfunded += 1
      this.unfunded.push(step.replica.thread)
    }
    this.totals.upheldChallenges += report.upheldChallenges
    this.totals.frivolousChallenges += report.frivolousChallenges
    for (const payout of report.pending)
      this.pending.set(payout.to, (this.pending.get(payout.to) ?? 0) + payout.amount)
    this.outcomes.push(...report.outcomes)
  }
}

/** Escrow ids a thread's settlement may open: its budget, its COMMITs' bounties, its CHALLENGEs' bonds. */
function escrowIdsOf(replica: ThreadReplica): string[] {
  const ids = [`${replica.thread}/budget`]
  for (const env of replica.envelopes()) {
    if (env.kind === 'COMMIT') ids.push(`${env.id}/bounty`)
    else if (env.kind === 'CHALLENGE') ids.push(`${env.id}/bond`)
  }
  return ids
}

/**
 * The ledger's timeline (A7) with a settled base (docs/PROTOCOL.md §9.6). `derive` gives the ledger
 * at a time: the base, then every step not in it, in the anchors' order. `settle` moves into the
 * base the longest prefix of steps that can no longer change — faucet grants, manifests, and
 * threads past their seal — so that their replicas may leave memory: the base keeps balances,
 * reputation counts per half-life period and counters, never the threads.
 *
 * Without `settle` the result is exactly the full derivation of every step. With it the result is
 * the same for every thread that reached the ledger before it was settled; a thread whose DECIDE
 * arrives after the base's cut (it was not there when the base moved on) is settled at the cut,
 * and one older than `lateWindowMs` before the cut is refused (docs/PROTOCOL.md §9.6).
 */
export class LedgerTimeline {
  readonly params: NetworkParams
  readonly #genesis: GenesisRule
  readonly #options: LedgerTimelineOptions
  readonly #base: Ledger
  readonly #totals: Totals
  readonly #reputation = new ReputationBuckets()
  readonly #lastActiveMs = new Map<Did, number>()
  /** Latest step settled into the base (the cut). */
  #cutMs = Number.NEGATIVE_INFINITY
  readonly #settledGrants = new Set<string>()
  readonly #settledManifests = new Set<string>()
  /**
   * Threads the base has passed while they were still open ({@link LedgerTimelineOptions.carryAfterMs}):
   * per escrow id they opened then, whether it was held. Kept until they seal.
   */
  readonly #carried = new Map<string, Map<string, boolean>>()
  /** Threads settled into the base, by their DECIDE time (kept for `lateWindowMs` behind the cut). */
  readonly #settledThreads = new Map<string, number>()
  /** The latest DECIDE time of a settled thread forgotten for {@link LedgerTimelineOptions.maxSettledThreads}. */
  #forgottenUntilMs = Number.NEGATIVE_INFINITY
  #genesisApplied = false

  constructor(options: LedgerTimelineOptions) {
    this.params = options.params
    this.#options = options
    this.#genesis = {
      ...DEFAULT_GENESIS,
      ...options.genesis,
      faucet: { ...DEFAULT_GENESIS.faucet, ...options.genesis?.faucet },
    }
    this.#base = new Ledger({
      faucetCapPerAccount: this.#genesis.faucet.grantCredits,
      ...options.ledgerParams,
    })
    this.#totals = {
      clock: 0,
      applied: 0,
      refused: 0,
      slashes: 0,
      upheldChallenges: 0,
      frivolousChallenges: 0,
      unfunded: 0,
      grants: 0,
      settledThreads: 0,
    }
  }

  /** Manifests of this network: one of another counts for nothing here, whoever forgot to check it (A7). */
  #manifestsOf(input: LedgerInputs): AcceptedManifest[] {
    const network = this.params.network
    return (input.manifests ?? []).filter(
      (manifest) => manifest.net === undefined || manifest.net === network,
    )
  }

  /** The genesis operations, applied to the base before anything else (once). */
  #ensureGenesis(onOperation: OperationHook | undefined): void {
    if (this.#genesisApplied) return
    this.#genesisApplied = true
    const run = new Run(this.#base, this.#totals, this.params, this.#options.related, onOperation)
    for (const allocation of this.#genesis.allocations) {
      if (allocation.amount > 0)
        run.apply({ op: 'mint', to: allocation.did, amount: allocation.amount, reason: 'genesis' })
    }
    if (this.#genesis.verifierStake > 0) {
      for (const did of this.#options.genesisVerifiers ?? [])
        run.apply({ op: 'stake', account: did, amount: this.#genesis.verifierStake })
    }
  }

  /** The base's cut: the time of the latest step settled into it (−∞ before any). */
  get cutMs(): number {
    return this.#cutMs
  }

  /** Threads settled into the base, those still remembered, and closed escrow ids still held. */
  get settled(): {
    threads: number
    carried: number
    remembered: number
    closedEscrows: number
    reputationIds: number
  } {
    return {
      threads: this.#totals.settledThreads,
      carried: this.#carried.size,
      remembered: this.#settledThreads.size,
      closedEscrows: this.#base.closedEscrows,
      reputationIds: this.#reputation.size,
    }
  }

  /**
   * Whether a thread decided at `decidedMs` is settled into the base, or too old to be settled now
   * (its DECIDE lies more than `lateWindowMs` behind the cut): either way the ledger never needs its
   * replica again.
   */
  isSettled(thread: string, decidedMs: number): boolean {
    return (
      this.#settledThreads.has(thread) ||
      decidedMs < this.#cutMs - (this.#options.lateWindowMs ?? DEFAULT_LATE_WINDOW_MS) ||
      decidedMs <= this.#forgottenUntilMs
    )
  }

  /** Steps not in the base, in the anchors' order. */
  #steps(input: LedgerInputs, replicas: readonly ThreadReplica[]): Step[] {
    const network = this.params.network
    const grants = admittedGrants(
      (input.grants ?? []).filter((grant) => grant.net === network),
      this.#genesis.faucet,
    )
    const steps: Step[] = []
    for (const grant of grants) {
      const key = `${grant.to}|${grant.anchor}|${grant.atMs}`
      if (!this.#settledGrants.has(key)) steps.push({ atMs: grant.atMs, rank: 0, key, grant })
    }
    for (const manifest of latestManifests(this.#manifestsOf(input))) {
      const atMs = (manifest as AcceptedManifest).atMs ?? 0
      if (!this.#settledManifests.has(`${manifest.did}|${atMs}`))
        steps.push({ atMs, rank: 1, key: manifest.did, manifest })
    }
    for (const replica of replicas) {
      const winner = replica.state.winner
      if (winner === undefined || this.isSettled(replica.thread, winner.ts)) continue
      steps.push({ atMs: winner.ts, rank: 2, key: replica.thread, replica })
    }
    // A step arriving behind the cut goes at the cut: nothing goes before the base.
    for (const step of steps) step.atMs = Math.max(step.atMs, this.#cutMs)
    return steps.sort(compareSteps)
  }

  /**
   * Settles into the base, in order, every step up to `untilMs` that can no longer change (a thread
   * once its seal is at or before `untilMs`), stopping at the first that can. Returns the threads
   * settled: the ledger no longer needs their replicas.
   */
  settle(input: LedgerInputs & { untilMs: number }): string[] {
    this.#ensureGenesis(undefined)
    const replicas = [...input.replicas]
    const settled: string[] = []
    const run = new Run(this.#base, this.#totals, this.params, this.#options.related, undefined)
    const carryAfter = this.#options.carryAfterMs ?? DEFAULT_CARRY_AFTER_MS
    for (const step of this.#steps(input, replicas)) {
      if (step.atMs > input.untilMs) break
      let carried: Map<string, boolean> | undefined
      if (step.rank === 2) {
        const thread = step.replica.thread
        carried = this.#carried.get(thread)
        const times = threadTimes(step.replica, this.params)
        if (times === undefined || times.sealMs > input.untilMs) {
          // Carried already: it no longer holds the base back.
          if (carried) continue
          if (input.untilMs - step.replica.state.winner!.ts < carryAfter) break
          // Open too long: its escrows go into the base here, the rest of it later (§9.6).
          const escrows = new Map<string, boolean>()
          run.step(step, input.nowMs, false, { escrows, onlyEscrows: true })
          this.#carried.set(thread, escrows)
          this.#cutMs = Math.max(this.#cutMs, step.atMs)
          continue
        }
      }
      run.step(step, input.nowMs, false, carried ? { escrows: carried, onlyEscrows: false } : undefined)
      if (step.rank === 2) this.#carried.delete(step.replica.thread)
      this.#cutMs = Math.max(this.#cutMs, step.atMs)
      if (step.rank === 0) this.#settledGrants.add(step.key)
      else if (step.rank === 1) this.#settledManifests.add(`${step.key}|${step.atMs}`)
      else {
        const replica = step.replica
        this.#settledThreads.set(replica.thread, replica.state.winner!.ts)
        this.#totals.settledThreads += 1
        this.#base.forgetClosed(escrowIdsOf(replica))
        noteActivity(this.#lastActiveMs, replica, input.nowMs)
        settled.push(replica.thread)
      }
    }
    for (const outcome of run.outcomes) this.#reputation.add(outcome)
    const late = this.#options.lateWindowMs ?? DEFAULT_LATE_WINDOW_MS
    for (const [thread, decidedMs] of this.#settledThreads) {
      if (decidedMs < this.#cutMs - late) this.#settledThreads.delete(thread)
    }
    const most = this.#options.maxSettledThreads ?? DEFAULT_MAX_SETTLED_THREADS
    for (const [thread, decidedMs] of this.#settledThreads) {
      if (this.#settledThreads.size <= most) break
      this.#settledThreads.delete(thread)
      this.#forgottenUntilMs = Math.max(this.#forgottenUntilMs, decidedMs)
    }
    this.#reputation.prune(input.nowMs)
    return settled
  }

  /** The ledger at `nowMs`: the base, then every step not in it. */
  derive(
    input: LedgerInputs & {
      /** Every thread is over: refund whatever escrow is still open (the simulator's end). @default false */
      closing?: boolean
      /** Called after every operation applied or refused, with the ledger (checkers hook in here). */
      onOperation?: OperationHook
    },
  ): DerivedLedger {
    this.#ensureGenesis(input.onOperation)
    const replicas = [...input.replicas]
    const totals = { ...this.#totals }
    const run = new Run(this.#base.clone(), totals, this.params, this.#options.related, input.onOperation)
    const lastActiveMs = new Map(this.#lastActiveMs)
    for (const replica of replicas) {
      const winner = replica.state.winner
      if (winner !== undefined && this.isSettled(replica.thread, winner.ts)) continue
      noteActivity(lastActiveMs, replica, input.nowMs)
    }
    for (const step of this.#steps(input, replicas)) {
      const carried = step.rank === 2 ? this.#carried.get(step.replica.thread) : undefined
      run.step(
        step,
        input.nowMs,
        input.closing ?? false,
        carried ? { escrows: carried, onlyEscrows: false } : undefined,
      )
    }
    const nowMs = Number.isFinite(input.nowMs) ? input.nowMs : 0
    const reputation = this.#reputation.scores(nowMs, run.outcomes)
    const pool = poolSnapshot({
      manifests: latestManifests(this.#manifestsOf(input)),
      account: (did) => run.ledger.account(did),
      reputationPerMille: reputation,
      lastActiveMs,
    })
    return {
      ledger: run.ledger,
      pending: run.pending,
      applied: totals.applied,
      refused: run.refused,
      refusedTotal: totals.refused,
      slashes: totals.slashes,
      upheldChallenges: totals.upheldChallenges,
      frivolousChallenges: totals.frivolousChallenges,
      unfunded: run.unfunded,
      unfundedTotal: totals.unfunded,
      grants: totals.grants,
      settledThreads: totals.settledThreads,
      threads: run.threads,
      outcomes: run.outcomes,
      reputation,
      pool,
    }
  }
}

/** How far behind the base's cut a late DECIDE is still settled. @default 1 h */
export const DEFAULT_LATE_WINDOW_MS = 3_600_000

/** Default of {@link LedgerTimelineOptions.maxSettledThreads}: settled threads remembered for the late window. */
export const DEFAULT_MAX_SETTLED_THREADS = 65_536

/** Records, per sender, the latest time it signed an accepted envelope of `replica` (never after now). */
function noteActivity(lastActiveMs: Map<Did, number>, replica: ThreadReplica, nowMs: number): void {
  for (const env of replica.envelopes()) {
    if (replica.state.rejected.has(env.id)) continue
    // A sender's ts is its own claim: never later than now.
    const atMs = Math.min(env.ts, Number.isFinite(nowMs) ? nowMs : env.ts)
    lastActiveMs.set(env.sender, Math.max(lastActiveMs.get(env.sender) ?? 0, atMs))
  }
}

/** Derives the ledger that `replicas` imply at `nowMs` (every step, no settled base). */
export function deriveLedger(
  input: LedgerInputs &
    Omit<LedgerTimelineOptions, 'lateWindowMs'> & {
      closing?: boolean
      onOperation?: OperationHook
    },
): DerivedLedger {
  return new LedgerTimeline(input).derive(input)
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
