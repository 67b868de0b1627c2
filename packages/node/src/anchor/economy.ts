/**
 * The anchor's live ledger: credits, stake, escrows and pending payouts derived from every thread
 * the anchor follows (see `deriveLedger` in the peer package). It is recomputed when the anchor has
 * heard new envelopes or when `maxAgeMs` has passed (payouts fall due as time goes by), so reading
 * it is cheap and always reflects signed envelopes only.
 */
import {
  type AccountView,
  accountView,
  type DerivedLedger,
  deriveLedger,
  type GenesisRule,
} from '../../../peer/src/core/economy/derive.ts'
import type { PoolManifest } from '../../../peer/src/core/economy/pool.ts'
import type { PoolEntry } from '../../../peer/src/core/economy/selection.ts'
import type { NetworkParams } from '../../../peer/src/core/thread/params.ts'
import type { ThreadReplica } from '../../../peer/src/core/thread/replica.ts'

export interface LiveLedgerOptions {
  params: NetworkParams
  /** The threads to settle. */
  replicas: () => Iterable<ThreadReplica>
  /** Changes whenever the anchor accepts an envelope (e.g. its log's size). */
  version: () => number
  clock?: () => number
  /** Longest a derived ledger is served before it is derived again. @default 1 000 */
  maxAgeMs?: number
  genesis?: Partial<GenesisRule>
  /** Signature-checked verifier manifests, and a number that changes when they do. */
  manifests?: { all(): PoolManifest[]; readonly version: number }
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
  /** Σ holdings − (minted − burned): 0 unless something is wrong. */
  conservationGap: number
  atMs: number
}

export class LiveLedger {
  readonly #options: LiveLedgerOptions
  #cached: { derived: DerivedLedger; version: string; atMs: number } | undefined

  constructor(options: LiveLedgerOptions) {
    this.#options = options
  }

  /** The ledger now, derived again if stale. */
  current(): { derived: DerivedLedger; atMs: number } {
    const clock = this.#options.clock ?? Date.now
    const now = clock()
    const version = `${this.#options.version()}/${this.#options.manifests?.version ?? 0}`
    const cached = this.#cached
    if (cached && cached.version === version && now - cached.atMs < (this.#options.maxAgeMs ?? 1_000)) {
      return cached
    }
    const derived = deriveLedger({
      replicas: this.#options.replicas(),
      params: this.#options.params,
      nowMs: now,
      ...(this.#options.genesis ? { genesis: this.#options.genesis } : {}),
      ...(this.#options.manifests ? { manifests: this.#options.manifests.all() } : {}),
    })
    this.#cached = { derived, version, atMs: now }
    return this.#cached
  }

  account(did: string): AccountView & { atMs: number } {
    const { derived, atMs } = this.current()
    return { ...accountView(derived, did), atMs }
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
      refused: derived.refused.length,
      conservationGap: derived.ledger.conservationGap(),
      atMs,
    }
  }
}
