/**
 * Scoped consensus (docs/PROTOCOL.md §7): the contract every DECIDE store keeps, the merge rule for
 * conflicting DECIDEs, and the quorum sizes.
 *
 * The unit of exclusivity is one NEED. A store offers an atomic create-if-absent keyed by the
 * NEED; retrying the same proposal returns the stored record, a different proposal gets the
 * stored record back as a conflict. Stores refuse writes that carry a stale epoch (P4).
 *
 * @example
 * ```ts
 * const store = new MemoryConsensusStore()
 * const result = await store.tryDecide({ need, proposal, epoch: 1, lamport: 9, kPlan: 1, decider })
 * if (result.outcome === 'conflict') console.log('lost to', result.record.proposal)
 * ```
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { utf8ToBytes } from '@noble/hashes/utils.js'
import { InvalidArgumentError, StaleEpochError } from './errors.ts'
import { type Did, MAX_EPOCH, MAX_LAMPORT } from './types.ts'

/**
 * The largest step a store's epoch may take at once (A3: epochs rise by bounded steps): a merge,
 * a heal or a pool adoption advances it by a little, never to the end of the number line.
 */
export const MAX_EPOCH_STEP = 1_024

/**
 * Checks that `next` is an epoch a store may move to from `current`: an integer above `current`,
 * at most {@link MAX_EPOCH_STEP} above it and at most {@link MAX_EPOCH} (A3, A4).
 * @throws {InvalidArgumentError} field `epoch` otherwise.
 */
export function checkEpochStep(next: number, current: number): void {
  if (!Number.isSafeInteger(next) || next <= current) {
    throw new InvalidArgumentError(`epoch ${next} does not advance ${current}`, 'epoch')
  }
  if (next > MAX_EPOCH || next - current > MAX_EPOCH_STEP) {
    throw new InvalidArgumentError(
      `epoch ${next} is more than ${MAX_EPOCH_STEP} above ${current} (or past ${MAX_EPOCH}): epochs rise by bounded steps`,
      'epoch',
    )
  }
}

/** Number of key-space buckets; a NEED's bucket is the first byte of SHA-256(need). */
export const BUCKET_COUNT = 256

/** The bucket (0–255) a NEED's decision lives in. */
export function bucketOf(need: string): number {
  return sha256(utf8ToBytes(need))[0]!
}

/** What a decider asks the store to record. */
export interface DecideRequest {
  need: string
  proposal: string
  epoch: number
  lamport: number
  kPlan: number
  decider: Did
}

/** What the store holds for a decided NEED. */
export interface DecideRecord extends DecideRequest {
  bucket: number
}

/**
 * Outcome of {@link ConsensusStore.tryDecide}:
 * - `decided`: this call created the record;
 * - `existing`: the same proposal was already decided (an idempotent retry), record returned;
 * - `conflict`: a different proposal holds the NEED; the stored record is returned.
 */
export type DecideResult =
  | { outcome: 'decided'; record: DecideRecord }
  | { outcome: 'existing'; record: DecideRecord }
  | { outcome: 'conflict'; record: DecideRecord }

/** The contract of a scoped-consensus store (embedded, etcd, or the simulator's). */
export interface ConsensusStore {
  /**
   * Atomic create-if-absent of the decision for `request.need`. The request's epoch is its fence
   * token and must equal the store's current epoch ({@link checkFence}).
   * @throws StaleEpochError when `request.epoch` is older than the store's epoch.
   */
  tryDecide(request: DecideRequest, options?: { signal?: AbortSignal }): Promise<DecideResult>
  /** The stored decision for a NEED, if any. */
  getDecide(need: string, options?: { signal?: AbortSignal }): Promise<DecideRecord | undefined>
  /** The store's current epoch (the fence every write must carry). */
  currentEpoch(options?: { signal?: AbortSignal }): Promise<number>
}

/** Validates a request's fields; throws {@link InvalidArgumentError} naming the field. */
export function checkDecideRequest(request: DecideRequest): void {
  if (typeof request.need !== 'string' || request.need.length === 0) {
    throw new InvalidArgumentError('need must be a non-empty string', 'need')
  }
  if (typeof request.proposal !== 'string' || request.proposal.length === 0) {
    throw new InvalidArgumentError('proposal must be a non-empty string', 'proposal')
  }
  for (const field of ['epoch', 'lamport', 'kPlan'] as const) {
    const value = request[field]
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidArgumentError(`${field} must be a non-negative integer, got ${String(value)}`, field)
    }
  }
  if (request.epoch > MAX_EPOCH) throw new InvalidArgumentError(`epoch must be at most ${MAX_EPOCH}`, 'epoch')
  if (request.lamport > MAX_LAMPORT)
    throw new InvalidArgumentError(`lamport must be at most ${MAX_LAMPORT}`, 'lamport')
  if (request.kPlan < 1) throw new InvalidArgumentError('kPlan must be at least 1', 'kPlan')
  if (typeof request.decider !== 'string' || !request.decider.startsWith('did:key:')) {
    throw new InvalidArgumentError('decider must be a did:key', 'decider')
  }
}

/**
 * The fence rule every store applies: a write must carry exactly the store's current epoch. An
 * older epoch is stale (P4); a newer one was never issued by this store (a token from another
 * side of a split) and is refused too.
 */
export function checkFence(epoch: number, currentEpoch: number): void {
  if (epoch < currentEpoch) throw new StaleEpochError(epoch, currentEpoch)
  if (epoch > currentEpoch) {
    throw new InvalidArgumentError(
      `epoch ${epoch} is ahead of this store's epoch ${currentEpoch}: it was not issued here; fetch the current epoch and retry`,
      'epoch',
    )
  }
}

/** The create-if-absent decision shared by every store: what to do given the stored record. */
export function resolveDecide(
  stored: DecideRecord | undefined,
  request: DecideRequest,
): DecideResult | undefined {
  if (stored === undefined) return undefined
  return stored.proposal === request.proposal
    ? { outcome: 'existing', record: stored }
    : { outcome: 'conflict', record: stored }
}

/**
 * An in-memory store with the full contract, for the simulator and unit tests. It can be forked
 * (to model the two sides of a partition, each with its own anchors) and merged back.
 */
export class MemoryConsensusStore implements ConsensusStore {
  #records = new Map<string, DecideRecord>()
  #epoch: number
  /** Every write that succeeded, in order: the simulator's P1 checker reads it. */
  readonly history: DecideRecord[] = []

  constructor(options: { epoch?: number } = {}) {
    this.#epoch = options.epoch ?? 1
  }

  async tryDecide(request: DecideRequest): Promise<DecideResult> {
    return this.tryDecideSync(request)
  }

  /** Synchronous form of {@link tryDecide} (the simulator calls it inside one event). */
  tryDecideSync(request: DecideRequest): DecideResult {
    checkDecideRequest(request)
    checkFence(request.epoch, this.#epoch)
    const existing = resolveDecide(this.#records.get(request.need), request)
    if (existing) return existing
    const record: DecideRecord = { ...request, bucket: bucketOf(request.need) }
    this.#records.set(request.need, record)
    this.history.push(record)
    return { outcome: 'decided', record }
  }

  async getDecide(need: string): Promise<DecideRecord | undefined> {
    return this.#records.get(need)
  }

  getDecideSync(need: string): DecideRecord | undefined {
    return this.#records.get(need)
  }

  async currentEpoch(): Promise<number> {
    return this.#epoch
  }

  get epoch(): number {
    return this.#epoch
  }

  /** Advances the epoch (a fence: older tokens are refused from now on). Returns the new epoch. */
  advanceEpoch(to?: number): number {
    const next = to ?? this.#epoch + 1
    checkEpochStep(next, this.#epoch)
    this.#epoch = next
    return next
  }

  /** A copy that evolves independently (one side of a split), at the given epoch. */
  fork(epoch: number): MemoryConsensusStore {
    const copy = new MemoryConsensusStore({ epoch })
    for (const [need, record] of this.#records) copy.#records.set(need, record)
    return copy
  }

  /**
   * Merges another side's decisions into this store after a heal: for each NEED the merge rule
   * picks one record. Returns the records that lost. The epoch becomes `epoch`.
   */
  mergeFrom(other: MemoryConsensusStore, epoch: number): DecideRecord[] {
    const losers: DecideRecord[] = []
    for (const [need, theirs] of other.#records) {
      const ours = this.#records.get(need)
      if (ours === undefined) {
        this.#records.set(need, theirs)
      } else if (ours.proposal !== theirs.proposal || ours.epoch !== theirs.epoch) {
        const winner = mergeWinner(ours, theirs)
        losers.push(winner === ours ? theirs : ours)
        this.#records.set(need, winner)
      }
    }
    this.#epoch = Math.max(this.#epoch, other.#epoch, epoch)
    return losers
  }

  /** Every stored record, sorted by NEED. */
  records(): DecideRecord[] {
    return [...this.#records.values()].sort((a, b) => (a.need < b.need ? -1 : a.need > b.need ? 1 : 0))
  }
}

/** What the merge rule looks at in a DECIDE. */
export interface DecideRank {
  epoch: number
  lamport: number
  decider: string
  proposal: string
}

/**
 * The merge rule for conflicting DECIDEs of one NEED (docs/PROTOCOL.md §7): the higher epoch wins,
 * then the higher lamport, then the lexicographically lower decider id; the proposal id breaks a
 * last tie so that the rule is a total order. Returns a negative number when `a` wins.
 */
export function compareDecides(a: DecideRank, b: DecideRank): number {
  if (a.epoch !== b.epoch) return b.epoch - a.epoch
  if (a.lamport !== b.lamport) return b.lamport - a.lamport
  if (a.decider !== b.decider) return a.decider < b.decider ? -1 : 1
  if (a.proposal !== b.proposal) return a.proposal < b.proposal ? -1 : 1
  return 0
}

/** The winner of two DECIDEs under {@link compareDecides}. */
export function mergeWinner<T extends DecideRank>(a: T, b: T): T {
  return compareDecides(a, b) <= 0 ? a : b
}

// ---------------------------------------------------------------- quorum sizes

/** Parameters of the quorum rules (docs/PROTOCOL.md §7). */
export interface QuorumParams {
  /** Target quorum size. @default 5 */
  kTarget: number
  /** Fraction of active verifiers, in per-mille to stay in integers. @default 300 (α = 0.3) */
  alphaPerMille: number
  /** Below this many active staked verifiers the network is in bootstrap mode. @default 10 */
  bootstrapThreshold: number
  /** How long the threshold must hold before leaving bootstrap. @default 24 h */
  bootstrapStableMs: number
}

export const DEFAULT_QUORUM_PARAMS: QuorumParams = Object.freeze({
  kTarget: 5,
  alphaPerMille: 300,
  bootstrapThreshold: 10,
  bootstrapStableMs: 24 * 60 * 60 * 1000,
})

function fractionOf(active: number, perMille: number): number {
  return Math.floor((active * perMille) / 1000)
}

/** K_plan = max(1, min(K_target, ⌊active × α⌋)); 1 in bootstrap mode. */
export function kPlanFor(
  active: number,
  bootstrap: boolean,
  params: QuorumParams = DEFAULT_QUORUM_PARAMS,
): number {
  if (bootstrap) return 1
  return Math.max(1, Math.min(params.kTarget, fractionOf(active, params.alphaPerMille)))
}

/** K_result = min(K_target, max(2, ⌊active × α⌋)); 1 in bootstrap mode. */
export function kResultFor(
  active: number,
  bootstrap: boolean,
  params: QuorumParams = DEFAULT_QUORUM_PARAMS,
): number {
  if (bootstrap) return 1
  return Math.min(params.kTarget, Math.max(2, fractionOf(active, params.alphaPerMille)))
}

/** Challenge rewards are doubled in bootstrap mode. */
export function challengeRewardFor(baseReward: number, bootstrap: boolean): number {
  return bootstrap ? baseReward * 2 : baseReward
}

/** State of the bootstrap monitor: pure, advanced by {@link observeVerifiers}. */
export interface BootstrapState {
  bootstrap: boolean
  /** Since when (ms, injected clock) the active count has been at or above the threshold. */
  aboveSinceMs: number | undefined
}

export const INITIAL_BOOTSTRAP_STATE: BootstrapState = Object.freeze({
  bootstrap: true,
  aboveSinceMs: undefined,
})

/**
 * Feeds one observation of the active staked verifier count at time `nowMs`. The network leaves
 * bootstrap once the count has stayed ≥ threshold for `bootstrapStableMs`; it re-enters bootstrap
 * when the count falls below the threshold.
 */
export function observeVerifiers(
  state: BootstrapState,
  active: number,
  nowMs: number,
  params: QuorumParams = DEFAULT_QUORUM_PARAMS,
): BootstrapState {
  if (active < params.bootstrapThreshold) return { bootstrap: true, aboveSinceMs: undefined }
  const aboveSinceMs = state.aboveSinceMs ?? nowMs
  const bootstrap = state.bootstrap && nowMs - aboveSinceMs < params.bootstrapStableMs
  return { bootstrap, aboveSinceMs }
}
