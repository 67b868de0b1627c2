/**
 * The anchor's live ledger: credits, stake, escrows and pending payouts derived from every thread
 * the anchor follows, its faucet grants and its verifiers' manifests, in the anchors' order (see
 * `deriveLedger` in the peer package, A7). It is recomputed when the anchor has heard new
 * envelopes, granted or accepted a manifest, or when `maxAgeMs` has passed (payouts fall due as
 * time goes by), so reading it is cheap and always reflects signed records only. It also answers
 * the anchor's funding check before a DECIDE.
 *
 * Threads settled for good (docs/PROTOCOL.md §9.6) move into the ledger's settled base
 * `settleHorizonMs` after their seal, and are handed to `onSettled` so that the anchor lets them go
 * (their envelopes stay in the log on disk): what the anchor holds in memory for the ledger is the
 * threads of the last lifetime, not the whole history.
 */
import type { FaucetGrant, FundingCheck, NetworkParams, PoolEntry, ThreadReplica } from '@can-swarm/peer'
import {
  type AcceptedManifest,
  type AccountView,
  accountView,
  type DerivedLedger,
  type GenesisRule,
  LedgerTimeline,
} from '@can-swarm/peer'

export interface LiveLedgerOptions {
  params: NetworkParams
  /** The threads to settle. */
  replicas: () => Iterable<ThreadReplica>
  /** Changes whenever the anchor accepts an envelope (e.g. its log's size). */
  version: () => number
  clock?: () => number
  /** Longest a derived ledger is served before it is derived again. @default 1 000 */
  maxAgeMs?: number
  /**
   * Derivation walks every thread held, so it is not run more often than this many times its own
   * last duration: the ledger takes at most 1 / this of the anchor's time. Applies only with
   * `decides` (without it every new envelope makes the next read derive). @default 20
   */
  costFactor?: number
  /**
   * Subscribes to DECIDEs as they are placed (returns the unsubscribe): the budgets a ledger
   * derived before them does not hold in escrow yet, which funding checks take off the balance.
   */
  decides?: (listener: (decided: DecidedNeed) => void) => () => void
  genesis?: Partial<GenesisRule>
  /** Verifiers of the genesis pool (they stake at genesis). */
  genesisVerifiers?: readonly string[]
  /** Signature-checked verifier manifests, and a number that changes when they do. */
  manifests?: { all(): AcceptedManifest[]; readonly version: number }
  /** Signature-checked faucet grants, a number that changes when they do, and how to learn another anchor's. */
  grants?: { all(): readonly FaucetGrant[]; readonly version: number; learn?(did: string): Promise<boolean> }
  /**
   * How long a thread stays in memory after its seal (§9.6) before it moves into the settled base:
   * room for envelopes still on their way (gossip admits them up to 2 minutes old). @default 5 min
   */
  settleHorizonMs?: number
  /** How far behind the settled base's cut a late DECIDE is still settled. @default 1 h */
  lateWindowMs?: number
  /**
   * Hears of threads the ledger no longer needs (settled into its base, or decided too long before
   * its cut): the anchor retires them. Called outside the read that settled them.
   */
  onSettled?: (threads: readonly ThreadReplica[]) => void
}

/** Default of {@link LiveLedgerOptions.settleHorizonMs}. */
export const DEFAULT_SETTLE_HORIZON_MS = 300_000

/** A NEED whose DECIDE was placed: its requester and the budget its escrow takes. */
export interface DecidedNeed {
  thread: string
  requester: string
  budget: number
}

/** Totals of the live ledger, as `/api/ledger` serves them. */
export interface LedgerSummary {
  minted: number
  burned: number
  circulating: number
  accounts: number
  openEscrows: number
  escrowed: number
  pending: number
  slashes: number
  upheldChallenges: number
  frivolousChallenges: number
  refused: number
  /** Decided threads whose requester could not fund them. */
  unfunded: number
  /** Threads settled into the ledger's base (no longer held in memory). */
  settledThreads: number
  /** Faucet grants admitted. */
  grants: number
  /** Σ holdings − (minted − burned): 0 unless something is wrong. */
  conservationGap: number
  atMs: number
}

export class LiveLedger {
  readonly #options: LiveLedgerOptions
  #cached: { derived: DerivedLedger; version: string; atMs: number } | undefined
  /** How long the last derivation took, in ms. */
  #lastDeriveMs = 0
  /** Per requester, NEEDs decided since the ledger was last derived (their escrows are not in it yet). */
  #decidedSince = new Map<string, Map<string, number>>()
  #derivations = 0
  readonly #timeline: LedgerTimeline

  constructor(options: LiveLedgerOptions) {
    this.#options = options
    this.#timeline = new LedgerTimeline({
      params: options.params,
      ...(options.genesis ? { genesis: options.genesis } : {}),
      ...(options.genesisVerifiers ? { genesisVerifiers: options.genesisVerifiers } : {}),
      ...(options.lateWindowMs === undefined ? {} : { lateWindowMs: options.lateWindowMs }),
    })
    options.decides?.((decided) => this.noteDecided(decided))
  }

  /** The settled base: threads settled, those remembered against a second settlement, its cut. */
  get settled(): LedgerTimeline['settled'] & { cutMs: number } {
    return { ...this.#timeline.settled, cutMs: this.#timeline.cutMs }
  }

  /**
   * Moves into the settled base every thread sealed more than `settleHorizonMs` ago (in the
   * anchors' order) and hands the threads the ledger no longer needs to `onSettled`. Returns how
   * many it handed over. Run on every derivation, and by the anchor on a timer; while the anchor
   * replays its log, `asOfMs` is the latest time the replay has reached.
   */
  settle(asOfMs?: number): number {
    const now = (this.#options.clock ?? Date.now)()
    const replicas = [...this.#options.replicas()]
    // While the log is replayed, as of the time the replay has reached (what the anchor held then).
    const asOf = Math.min(now, asOfMs ?? now)
    this.#timeline.settle({
      replicas,
      nowMs: now,
      untilMs: asOf - (this.#options.settleHorizonMs ?? DEFAULT_SETTLE_HORIZON_MS),
      ...(this.#options.manifests ? { manifests: this.#options.manifests.all() } : {}),
      ...(this.#options.grants ? { grants: this.#options.grants.all() } : {}),
    })
    // Settled now, settled before and given again, or decided too long before the cut: not needed.
    const done = replicas.filter((replica) => {
      const winner = replica.state.winner
      return winner !== undefined && this.#timeline.isSettled(replica.thread, winner.ts)
    })
    const onSettled = this.#options.onSettled
    if (done.length > 0 && onSettled) setImmediate(() => onSettled(done))
    return done.length
  }

  /** Derivations run so far (each walks every thread held). */
  get derivations(): number {
    return this.#derivations
  }

  /**
   * A DECIDE of a NEED was placed: until the ledger is derived again its escrow is not in it, so
   * funding checks take its budget off the requester's balance (a ledger served between two
   * derivations never lets a requester fund more than it has).
   */
  noteDecided(decided: DecidedNeed): void {
    const threads = this.#decidedSince.get(decided.requester) ?? new Map<string, number>()
    threads.set(decided.thread, decided.budget)
    this.#decidedSince.set(decided.requester, threads)
  }

  /**
   * The ledger now: derived again when something changed, but not more often than
   * `costFactor` × the last derivation's duration (nor less often than `maxAgeMs` when idle).
   */
  current(): { derived: DerivedLedger; atMs: number } {
    const clock = this.#options.clock ?? Date.now
    const now = clock()
    // Grants and manifests are rare and someone waits on each (a faucet answer, a stake): they are
    // in the next read at once. New envelopes are, within the cost bound.
    const records = `${this.#options.manifests?.version ?? 0}/${this.#options.grants?.version ?? 0}`
    const version = `${this.#options.version()}/${records}`
    const cached = this.#cached
    if (cached?.version.endsWith(`/${records}`)) {
      const age = now - cached.atMs
      const fresh = cached.version === version && age < (this.#options.maxAgeMs ?? 1_000)
      const tooSoon =
        this.#options.decides !== undefined && age < (this.#options.costFactor ?? 20) * this.#lastDeriveMs
      if (fresh || tooSoon) return cached
    }
    const started = performance.now()
    this.settle()
    const derived = this.#timeline.derive({
      replicas: this.#options.replicas(),
      nowMs: now,
      ...(this.#options.manifests ? { manifests: this.#options.manifests.all() } : {}),
      ...(this.#options.grants ? { grants: this.#options.grants.all() } : {}),
    })
    this.#lastDeriveMs = performance.now() - started
    this.#derivations += 1
    this.#decidedSince.clear()
    this.#cached = { derived, version, atMs: now }
    return this.#cached
  }

  account(did: string): AccountView & { atMs: number } {
    const { derived, atMs } = this.current()
    return { ...accountView(derived, did), atMs }
  }

  /**
   * The funding check of the anchor's DECIDEs (A7): the requester's spendable balance now, less what
   * DECIDEs in flight already take, must cover the budget (a DECIDE just published is in the log,
   * so the ledger is derived again).
   */
  funding(): FundingCheck {
    return async (need, _thread, reserved, inFlight) => {
      await this.#options.grants?.learn?.(need.requester)
      const balance =
        this.account(need.requester).balance - reserved - this.#notInLedger(need.requester, inFlight)
      return balance >= need.budget
        ? undefined
        : `its requester can spend ${balance} credits and the budget is ${need.budget} (ask the faucet: POST /api/faucet/<did>)`
    }
  }

  /** Budgets of the requester's NEEDs decided since the ledger was derived, less those in flight (in `reserved`). */
  #notInLedger(requester: string, inFlight: ReadonlySet<string> | undefined): number {
    let sum = 0
    for (const [thread, budget] of this.#decidedSince.get(requester) ?? [])
      if (!inFlight?.has(thread)) sum += budget
    return sum
  }

  /**
   * Whether `requester` can spend `budget` now, by the ledger as last derived less the budgets of
   * its NEEDs decided since (O(its decided NEEDs since); no derivation unless one is due).
   */
  canFund(requester: string, budget: number): boolean {
    const balance = this.current().derived.ledger.account(requester).balance
    return balance - this.#notInLedger(requester, undefined) >= budget
  }

  /** The verifier pool now: what committee selection draws from. */
  pool(): { atMs: number; entries: readonly PoolEntry[] } {
    const { derived, atMs } = this.current()
    return { atMs, entries: derived.pool }
  }

  summary(): LedgerSummary {
    const { derived, atMs } = this.current()
    const supply = derived.ledger.supply
    const escrows = derived.ledger.escrows()
    return {
      minted: supply.minted,
      burned: supply.burned,
      circulating: supply.circulating,
      accounts: derived.ledger.accounts().length,
      openEscrows: escrows.length,
      escrowed: escrows.reduce((sum, escrow) => sum + escrow.amount, 0),
      pending: [...derived.pending.values()].reduce((sum, amount) => sum + amount, 0),
      slashes: derived.slashes,
      upheldChallenges: derived.upheldChallenges,
      frivolousChallenges: derived.frivolousChallenges,
      refused: derived.refusedTotal,
      unfunded: derived.unfundedTotal,
      settledThreads: derived.settledThreads,
      grants: derived.grants,
      conservationGap: derived.ledger.conservationGap(),
      atMs,
    }
  }
}
