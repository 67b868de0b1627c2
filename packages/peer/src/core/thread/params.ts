/**
 * Network parameters every replica of a thread must share so that it reaches the same state:
 * the eligible verifier pool, bootstrap mode and the quorum and window sizes.
 */
import { DEFAULT_QUORUM_PARAMS, kPlanFor, kResultFor, type QuorumParams } from '../consensus.ts'
import type { PoolEntry } from '../economy/selection.ts'
import { InvalidArgumentError } from '../errors.ts'
import type { Did } from '../types.ts'

export interface NetworkParams {
  /**
   * The eligible (staked) verifiers; their number is the active count of the K rules. An empty
   * pool in bootstrap mode is an open pool: any peer may verify (a fresh network with no stake yet).
   */
  verifiers: readonly Did[]
  /**
   * The verifier pool's snapshot (stake, reputation, recency, org/ASN/region, identity graph) from
   * the verifiers' signed manifests and the ledger. When present, result committees are drawn by
   * stake × reputation × recency with diversity caps (economy/selection.ts), related parties of the
   * worker excluded; otherwise by hash rank. @default none
   */
  pool?: readonly PoolEntry[]
  /** Time the pool snapshot describes (recency is measured against it). @default 0 */
  poolSnapshotMs?: number
  /** Bootstrap mode (PROTOCOL.md §6): K_plan = K_result = 1 and self-attestation is allowed. */
  bootstrap: boolean
  quorum: QuorumParams
  /** Challenge window after a result quorum before FINALIZE may be published. @default 10 000 */
  tChallengeMs: number
  /** Extra verifiers drawn into a result committee beyond K_result (spares for the absent). @default 2 */
  committeeSpares: number
  /** Grace added to a lease before a peer scavenges it. @default 500 */
  leaseGraceMs: number
  /** Bounds of a lease a CLAIM may ask for. @default 100 ms … 1 h */
  minLeaseTtlMs: number
  maxLeaseTtlMs: number
  /** Proposals accepted per NEED; later ones are rejected. @default 16 */
  maxProposalsPerNeed: number
}

/** Defaults, with an empty verifier pool (bootstrap). */
export const DEFAULT_NETWORK_PARAMS: NetworkParams = Object.freeze({
  verifiers: [],
  bootstrap: true,
  quorum: DEFAULT_QUORUM_PARAMS,
  tChallengeMs: 10_000,
  committeeSpares: 2,
  leaseGraceMs: 500,
  minLeaseTtlMs: 100,
  maxLeaseTtlMs: 3_600_000,
  maxProposalsPerNeed: 16,
})

/** Builds parameters from defaults plus overrides, checking them. */
export function networkParams(overrides: Partial<NetworkParams> = {}): NetworkParams {
  const params = { ...DEFAULT_NETWORK_PARAMS, ...overrides }
  if (new Set(params.verifiers).size !== params.verifiers.length) {
    throw new InvalidArgumentError('verifiers must not repeat', 'verifiers')
  }
  for (const key of [
    'tChallengeMs',
    'committeeSpares',
    'leaseGraceMs',
    'minLeaseTtlMs',
    'maxLeaseTtlMs',
    'maxProposalsPerNeed',
  ] as const) {
    if (!Number.isSafeInteger(params[key]) || params[key] < 0) {
      throw new InvalidArgumentError(`${key} must be a non-negative integer`, key)
    }
  }
  if (params.pool) {
    const listed = new Set(params.verifiers)
    const missing = params.pool.find((entry) => !listed.has(entry.did))
    if (missing) throw new InvalidArgumentError(`pool entry ${missing.did} is not in verifiers`, 'pool')
  }
  return Object.freeze({ ...params, verifiers: Object.freeze([...params.verifiers].sort()) })
}

/** An open pool: bootstrap mode with no verifier listed, so any peer may verify (K = 1). */
export function isOpenPool(params: NetworkParams): boolean {
  return params.bootstrap && params.verifiers.length === 0
}

/** Whether `did` may attest plans and results, and uphold challenges. */
export function isEligibleVerifier(params: NetworkParams, did: Did): boolean {
  return isOpenPool(params) || params.verifiers.includes(did)
}

/** Whether `did` may attest a commit whose drawn committee is `committee` (anyone, in an open pool). */
export function inCommittee(committee: readonly Did[], did: Did, params: NetworkParams): boolean {
  return isOpenPool(params) || committee.includes(did)
}

/** K_plan under these parameters. */
export function kPlanOf(params: NetworkParams): number {
  return kPlanFor(params.verifiers.length, params.bootstrap, params.quorum)
}

/** Base K_result under these parameters (raised per task by each invalidation). */
export function kResultOf(params: NetworkParams): number {
  return Math.min(
    Math.max(1, params.verifiers.length),
    kResultFor(params.verifiers.length, params.bootstrap, params.quorum),
  )
}
