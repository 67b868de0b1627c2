/**
 * Reputation from outcomes (docs/PROTOCOL.md §9): each outcome moves a verifier's or worker's score,
 * with a half-life so that old behaviour fades, and abuse patterns weigh heavily. Integer
 * arithmetic only: every peer computes the same score from the same outcomes.
 */
import type { Did } from '../types.ts'

export type OutcomeKind =
  | 'finalized' // a worker's result became FINAL
  | 'honest-attestation' // a verifier's verdict matched the final outcome
  | 'wrong-attestation' // a verifier passed a result that was invalidated (or failed a valid one)
  | 'invalidated' // a worker's result was invalidated
  | 'timeout' // a lease expired without a COMMIT
  | 'upheld-challenge' // a challenger was right
  | 'frivolous-challenge' // a challenger was wrong
  | 'self-challenge' // abuse: challenging a result of one's own entity
  | 'bounty-spike' // abuse: a bounty far above the task class norm

/** Points per outcome, in per-mille of the score range. */
export const OUTCOME_POINTS: Readonly<Record<OutcomeKind, number>> = Object.freeze({
  finalized: 20,
  'honest-attestation': 10,
  'wrong-attestation': -150,
  invalidated: -200,
  timeout: -30,
  'upheld-challenge': 40,
  'frivolous-challenge': -60,
  'self-challenge': -300,
  'bounty-spike': -100,
})

export interface Outcome {
  did: Did
  kind: OutcomeKind
  atMs: number
}

export interface ReputationParams {
  /** Score of a newcomer, per-mille. @default 500 */
  initialPerMille: number
  /** An outcome's weight halves every this many ms. @default 7 days */
  halfLifeMs: number
}

export const DEFAULT_REPUTATION_PARAMS: ReputationParams = Object.freeze({
  initialPerMille: 500,
  halfLifeMs: 7 * 24 * 3_600_000,
})

/** Halvings after which an outcome counts for nothing (its points are shifted out). */
export const MAX_HALVINGS = 30

/**
 * Decayed points: halved once per half-life boundary crossed since the outcome (integer shifts),
 * truncated toward zero. Boundaries are fixed multiples of the half-life, not counted from each
 * outcome, so that outcomes of one half-life period decay together and a ledger can keep them as
 * counts per period ({@link ReputationBuckets}) instead of one record each.
 */
export function decayed(points: number, atMs: number, nowMs: number, halfLifeMs: number): number {
  const halvings = Math.max(0, periodOf(nowMs, halfLifeMs) - periodOf(atMs, halfLifeMs))
  if (halvings >= MAX_HALVINGS) return 0
  return Math.trunc(points / 2 ** halvings)
}

function periodOf(ms: number, halfLifeMs: number): number {
  return Math.floor(ms / halfLifeMs)
}

const KINDS = Object.keys(OUTCOME_POINTS) as OutcomeKind[]

/**
 * Outcomes kept as counts per identity, half-life period and kind: what reputation needs of
 * settled history, in memory bounded by identities × {@link MAX_HALVINGS} periods × kinds however
 * many threads settled (periods that have decayed to nothing are dropped by {@link prune}).
 */
export class ReputationBuckets {
  readonly params: ReputationParams
  /** did → period → counts by kind (index in KINDS). */
  readonly #counts = new Map<Did, Map<number, number[]>>()

  constructor(params: ReputationParams = DEFAULT_REPUTATION_PARAMS) {
    this.params = params
  }

  add(outcome: Outcome): void {
    const period = periodOf(outcome.atMs, this.params.halfLifeMs)
    let periods = this.#counts.get(outcome.did)
    if (!periods) {
      periods = new Map()
      this.#counts.set(outcome.did, periods)
    }
    let counts = periods.get(period)
    if (!counts) {
      counts = KINDS.map(() => 0)
      periods.set(period, counts)
    }
    counts[KINDS.indexOf(outcome.kind)]! += 1
  }

  /** Identities with outcomes still held. */
  get size(): number {
    return this.#counts.size
  }

  /** Drops periods whose outcomes count for nothing at `nowMs` (and identities left with none). */
  prune(nowMs: number): void {
    const current = periodOf(nowMs, this.params.halfLifeMs)
    for (const [did, periods] of this.#counts) {
      for (const period of periods.keys()) if (current - period >= MAX_HALVINGS) periods.delete(period)
      if (periods.size === 0) this.#counts.delete(did)
    }
  }

  /** Decayed point sums per identity at `nowMs`, with `more` outcomes added on top (not kept). */
  sums(nowMs: number, more: readonly Outcome[] = []): Map<Did, number> {
    const halfLife = this.params.halfLifeMs
    const sums = new Map<Did, number>()
    for (const [did, periods] of this.#counts) {
      let sum = 0
      for (const [period, counts] of periods) {
        for (const [index, count] of counts.entries()) {
          if (count === 0) continue
          sum += count * decayed(OUTCOME_POINTS[KINDS[index]!], period * halfLife, nowMs, halfLife)
        }
      }
      sums.set(did, sum)
    }
    for (const outcome of more) {
      const points = decayed(OUTCOME_POINTS[outcome.kind], outcome.atMs, nowMs, halfLife)
      sums.set(outcome.did, (sums.get(outcome.did) ?? 0) + points)
    }
    return sums
  }

  /** Scores, per-mille in [0, 1000], at `nowMs`, with `more` outcomes added on top (not kept). */
  scores(nowMs: number, more: readonly Outcome[] = []): Map<Did, number> {
    const scores = new Map<Did, number>()
    for (const [did, sum] of [...this.sums(nowMs, more)].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      scores.set(did, Math.max(0, Math.min(1000, this.params.initialPerMille + sum)))
    }
    return scores
  }

  /** A copy (the base of a ledger is copied before its tail is applied). */
  clone(): ReputationBuckets {
    const copy = new ReputationBuckets(this.params)
    for (const [did, periods] of this.#counts) {
      copy.#counts.set(did, new Map([...periods].map(([period, counts]) => [period, [...counts]])))
    }
    return copy
  }
}

/** Scores, per-mille in [0, 1000], of every did that has outcomes, as of `nowMs`. */
export function reputationScores(
  outcomes: readonly Outcome[],
  nowMs: number,
  params: ReputationParams = DEFAULT_REPUTATION_PARAMS,
): Map<Did, number> {
  return new ReputationBuckets(params).scores(nowMs, outcomes)
}
