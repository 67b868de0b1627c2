/**
 * Network parameters every replica of a thread must share so that it reaches the same state
 * (docs/PROTOCOL.md §7, §8, §11): the network id and its anchor set, the quorum, window, lease and
 * clock bounds from the genesis record, and a verifier pool.
 *
 * Two kinds of pool live here. The fold of a thread never reads `verifiers`, `pool` or
 * `bootstrap` from these parameters once the thread is decided: it reads them from the pool
 * snapshot its winning DECIDE carries ({@link withPool}), so that replicas which know different
 * pools never fold a thread differently. The pool given here is this peer's current view (the
 * genesis pool, or the newest snapshot an anchor adopted): what an agent uses to decide whether to
 * attest a plan, and what an anchor embeds in its DECIDEs.
 */
import { DEFAULT_QUORUM_PARAMS, kPlanFor, kResultFor, type QuorumParams } from '../consensus.ts'
import type { PoolEntry } from '../economy/selection.ts'
import { InvalidArgumentError } from '../errors.ts'
import type { Did, PoolSnapshot } from '../types.ts'

export interface NetworkParams {
  /** The network id (the genesis record's id); envelopes of any other network are refused. @default '' (none: nothing applies) */
  network: string
  /** The anchor set of the genesis: the only senders of DECIDE, GRANT, RELEASE (scavenging), FINALIZE, RECONCILE and CHECKPOINT. @default [] */
  anchors: readonly Did[]
  /**
   * The eligible (staked) verifiers; their number is the active count of the K rules. An empty
   * pool in bootstrap mode is an open pool: any peer may verify (a fresh network with no stake yet).
   */
  verifiers: readonly Did[]
  /**
   * The verifier pool's entries (stake, reputation, recency, org/ASN/region, identity graph) from
   * the verifiers' signed manifests and the ledger. When present, result committees are drawn by
   * stake × reputation × recency with diversity caps (economy/selection.ts), related parties of the
   * worker excluded; otherwise by hash rank. @default none
   */
  pool?: readonly PoolEntry[]
  /** Time the pool snapshot describes (recency is measured against it). @default 0 */
  poolSnapshotMs?: number
  /** Epoch of the pool snapshot (0: the genesis pool). @default 0 */
  poolEpoch?: number
  /** Bootstrap mode (docs/PROTOCOL.md §7): K_plan = K_result = 1 and self-attestation is allowed. */
  bootstrap: boolean
  quorum: QuorumParams
  /** Challenge window after a result quorum before an anchor may FINALIZE. @default 10 000 */
  tChallengeMs: number
  /** Extra verifiers drawn into a result committee beyond K_result (spares for the absent). @default 2 */
  committeeSpares: number
  /** Grace an anchor adds to a lease before it scavenges it. @default 500 */
  leaseGraceMs: number
  /** Bounds of a lease a CLAIM may ask for. @default 100 ms … 1 h */
  minLeaseTtlMs: number
  maxLeaseTtlMs: number
  /** Proposals one planner may have accepted per NEED; its later ones are refused. @default 2 */
  maxProposalsPerPlanner: number
  /**
   * A4: how far an envelope's `lamport` may lie above the highest lamport already placed in its
   * thread (0 for a NEED). Beyond it the envelope waits, unfolded, until the gap fills. @default 4 096
   */
  maxLamportStep: number
  /**
   * How long a decided thread may take (docs/PROTOCOL.md §9.6): from its winning DECIDE's `ts`, by
   * the anchor's clock. Results finalized later are not paid; once it has passed (and the payouts
   * finalized in time fell due) the thread settles for good and every escrow still open is
   * refunded, so no thread holds credits, or a ledger's memory, forever. @default 24 h
   */
  threadLifetimeMs: number
}

/** Defaults, with an empty verifier pool (bootstrap) and no network. */
export const DEFAULT_NETWORK_PARAMS: NetworkParams = Object.freeze({
  network: '',
  anchors: [],
  verifiers: [],
  bootstrap: true,
  quorum: DEFAULT_QUORUM_PARAMS,
  tChallengeMs: 10_000,
  committeeSpares: 2,
  leaseGraceMs: 500,
  minLeaseTtlMs: 100,
  maxLeaseTtlMs: 3_600_000,
  maxProposalsPerPlanner: 2,
  maxLamportStep: 4_096,
  threadLifetimeMs: 86_400_000,
})

const INTEGER_KEYS = [
  'tChallengeMs',
  'committeeSpares',
  'leaseGraceMs',
  'minLeaseTtlMs',
  'maxLeaseTtlMs',
  'maxProposalsPerPlanner',
  'maxLamportStep',
  'threadLifetimeMs',
] as const

/** Builds parameters from defaults plus overrides, checking them. */
export function networkParams(overrides: Partial<NetworkParams> = {}): NetworkParams {
  const params = { ...DEFAULT_NETWORK_PARAMS, ...overrides }
  if (typeof params.network !== 'string') {
    throw new InvalidArgumentError('network must be the genesis id (a CID string)', 'network')
  }
  if (new Set(params.verifiers).size !== params.verifiers.length) {
    throw new InvalidArgumentError('verifiers must not repeat', 'verifiers')
  }
  if (new Set(params.anchors).size !== params.anchors.length) {
    throw new InvalidArgumentError('anchors must not repeat', 'anchors')
  }
  for (const key of INTEGER_KEYS) {
    if (!Number.isSafeInteger(params[key]) || params[key] < 0) {
      throw new InvalidArgumentError(`${key} must be a non-negative integer`, key)
    }
  }
  if (params.maxLamportStep < 1)
    throw new InvalidArgumentError('maxLamportStep must be at least 1', 'maxLamportStep')
  if (params.threadLifetimeMs < 1)
    throw new InvalidArgumentError('threadLifetimeMs must be at least 1', 'threadLifetimeMs')
  if (params.pool) {
    const listed = new Set(params.verifiers)
    const missing = params.pool.find((entry) => !listed.has(entry.did))
    if (missing) throw new InvalidArgumentError(`pool entry ${missing.did} is not in verifiers`, 'pool')
  }
  return Object.freeze({
    ...params,
    anchors: Object.freeze([...params.anchors].sort()),
    verifiers: Object.freeze([...params.verifiers].sort()),
  })
}

/** The pool these parameters describe, as a DECIDE embeds it. */
export function poolSnapshotOf(params: NetworkParams): PoolSnapshot {
  return {
    epoch: params.poolEpoch ?? 0,
    bootstrap: params.bootstrap,
    verifiers: [...params.verifiers],
    entries: (params.pool ?? []).map((entry) => ({ ...entry })),
    snapshotMs: params.poolSnapshotMs ?? 0,
  }
}

const withPoolMemo = new WeakMap<NetworkParams, WeakMap<PoolSnapshot, NetworkParams>>()

/**
 * The parameters of a thread decided under `pool`: the network's fixed parameters with the
 * snapshot's verifiers, entries and bootstrap flag. Memoised per (params, snapshot object).
 */
export function withPool(params: NetworkParams, pool: PoolSnapshot): NetworkParams {
  let byPool = withPoolMemo.get(params)
  if (!byPool) {
    byPool = new WeakMap()
    withPoolMemo.set(params, byPool)
  }
  let derived = byPool.get(pool)
  if (!derived) {
    const { pool: _ownPool, ...fixed } = params
    derived = Object.freeze({
      ...fixed,
      verifiers: Object.freeze([...pool.verifiers]),
      bootstrap: pool.bootstrap,
      poolEpoch: pool.epoch,
      poolSnapshotMs: pool.snapshotMs,
      ...(pool.entries.length > 0 ? { pool: Object.freeze(pool.entries.map((e) => ({ ...e }))) } : {}),
    }) as NetworkParams
    byPool.set(pool, derived)
  }
  return derived
}

/** Whether `did` is one of the network's anchors. */
export function isAnchor(params: NetworkParams, did: Did): boolean {
  return params.anchors.includes(did)
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
