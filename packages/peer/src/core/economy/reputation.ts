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

/** Decayed points: halved once per elapsed half-life (integer shifts), truncated toward zero. */
export function decayed(points: number, ageMs: number, halfLifeMs: number): number {
  const halvings = Math.floor(Math.max(0, ageMs) / halfLifeMs)
  if (halvings >= 30) return 0
  return Math.trunc(points / 2 ** halvings)
}

/** Scores, per-mille in [0, 1000], of every did that has outcomes, as of `nowMs`. */
export function reputationScores(
  outcomes: readonly Outcome[],
  nowMs: number,
  params: ReputationParams = DEFAULT_REPUTATION_PARAMS,
): Map<Did, number> {
  const sums = new Map<Did, number>()
  for (const outcome of outcomes) {
    const points = decayed(OUTCOME_POINTS[outcome.kind], nowMs - outcome.atMs, params.halfLifeMs)
    sums.set(outcome.did, (sums.get(outcome.did) ?? 0) + points)
  }
  const scores = new Map<Did, number>()
  for (const [did, sum] of [...sums].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    scores.set(did, Math.max(0, Math.min(1000, params.initialPerMille + sum)))
  }
  return scores
}
