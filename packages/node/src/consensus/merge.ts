/**
 * Healing a split (docs/PROTOCOL.md §7): the decisions of one side are merged into the other by the
 * merge rule ({@link mergeWinner}), the epoch advances past both sides, and the records that lost
 * are returned so that the anchor can annotate them `orphanedByEpoch` and publish a RECONCILE.
 */
import { type ConsensusStore, type DecideRecord, InvalidArgumentError, mergeWinner } from '@can-swarm/peer'
import { byNeed } from './record.ts'
import { throwIfAborted } from './retry.ts'

/** Options of calls that may be cancelled. */
export interface CallOptions {
  /** Cancels the call. @default none */
  signal?: AbortSignal
}

/** The other side of a split, as the merge reads it. `MemoryConsensusStore` fits too. */
export interface MergeSource {
  /** Every decision on that side. */
  records(options?: CallOptions): readonly DecideRecord[] | Promise<readonly DecideRecord[]>
  currentEpoch(options?: CallOptions): Promise<number>
  /** Raises the epoch to at least `epoch` (this package's stores). */
  fenceEpoch?(epoch: number, options?: CallOptions): Promise<number>
  /** Advances the epoch to exactly `to` (MemoryConsensusStore). */
  advanceEpoch?(to?: number): number | Promise<number>
}

/** How a merge runs. */
export interface MergeOptions extends CallOptions {
  /** The epoch after the heal; must be above both sides' epochs. @default max(both) + 1 */
  epoch?: number
  /**
   * Fence the source at the new epoch before reading it, so that no decision is acknowledged
   * there after the merge has read it (it would be lost). Turn off only for a read-only source.
   * @default true
   */
  fenceSource?: boolean
  /** Records merged in parallel. @default 16 */
  concurrency?: number
}

/** What a merge did. */
export interface MergeReport {
  /** The epoch both stores carry after the merge. */
  epoch: number
  /** Decisions that lost to another decision of the same NEED, sorted by NEED (for RECONCILE). */
  losers: DecideRecord[]
  /** NEEDs that only the source had decided, copied in. */
  adopted: number
  /** NEEDs where the source's decision beat the target's and replaced it. */
  replaced: number
}

/** A store that can take part in a merge as its target (this package's stores). */
export interface MergeTarget extends ConsensusStore {
  /**
   * Atomically applies the merge rule to one foreign record: stores it when the NEED is
   * undecided here, replaces the stored record when the foreign one wins, keeps ours otherwise.
   * Returns the record that lost, if the two differ (same rule as `MemoryConsensusStore.mergeFrom`).
   */
  mergeRecord(record: DecideRecord, options?: CallOptions): Promise<MergeStep>
  /** Raises the epoch to at least `epoch`; returns the epoch now in force. */
  fenceEpoch(epoch: number, options?: CallOptions): Promise<number>
}

/** The outcome of merging one record. */
export type MergeStep =
  | { change: 'none' }
  | { change: 'adopted' }
  | { change: 'kept'; loser: DecideRecord }
  | { change: 'replaced'; loser: DecideRecord }

/**
 * The merge rule for one NEED given what is stored: what to write (if anything) and what lost.
 * Same decisions as `MemoryConsensusStore.mergeFrom`.
 */
export function mergeStep(
  ours: DecideRecord | undefined,
  theirs: DecideRecord,
): { step: MergeStep; write: DecideRecord | undefined } {
  if (ours === undefined) return { step: { change: 'adopted' }, write: theirs }
  if (ours.proposal === theirs.proposal && ours.epoch === theirs.epoch) {
    return { step: { change: 'none' }, write: undefined }
  }
  const winner = mergeWinner(ours, theirs)
  return winner === ours
    ? { step: { change: 'kept', loser: theirs }, write: undefined }
    : { step: { change: 'replaced', loser: ours }, write: theirs }
}

async function fence(source: MergeSource, epoch: number, options: CallOptions): Promise<void> {
  if (source.fenceEpoch) {
    await source.fenceEpoch(epoch, options)
    return
  }
  if (source.advanceEpoch && (await source.currentEpoch(options)) < epoch) {
    await source.advanceEpoch(epoch)
    return
  }
  if (!source.advanceEpoch) {
    throw new InvalidArgumentError(
      'the merge source cannot be fenced (no fenceEpoch or advanceEpoch); pass fenceSource: false for a read-only source',
      'fenceSource',
    )
  }
}

/**
 * Merges `source` into `target` (see {@link MergeOptions}): fences the source, applies the merge
 * rule per NEED, then raises the target's epoch. Safe to repeat: a second run finds nothing new.
 */
export async function mergeInto(
  target: MergeTarget,
  source: MergeSource,
  options: MergeOptions = {},
): Promise<MergeReport> {
  const callOptions: CallOptions = options.signal ? { signal: options.signal } : {}
  const ours = await target.currentEpoch(callOptions)
  const theirs = await source.currentEpoch(callOptions)
  const epoch = options.epoch ?? Math.max(ours, theirs) + 1
  if (!Number.isSafeInteger(epoch) || epoch <= Math.max(ours, theirs)) {
    throw new InvalidArgumentError(
      `merge epoch ${epoch} must be an integer above both sides' epochs (${ours}, ${theirs})`,
      'epoch',
    )
  }
  if (options.fenceSource ?? true) await fence(source, epoch, callOptions)
  const records = [...(await source.records(callOptions))]
  const report: MergeReport = { epoch, losers: [], adopted: 0, replaced: 0 }
  const concurrency = Math.max(1, options.concurrency ?? 16)
  let next = 0
  let failed = false
  const worker = async () => {
    while (!failed && next < records.length) {
      throwIfAborted(options.signal)
      const record = records[next]!
      next += 1
      const step = await target.mergeRecord(record, callOptions).catch((error: unknown) => {
        failed = true // the other workers stop too; a failed merge is safe to run again
        throw error
      })
      if (step.change === 'adopted') report.adopted += 1
      if (step.change === 'replaced') report.replaced += 1
      if (step.change === 'kept' || step.change === 'replaced') report.losers.push(step.loser)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, records.length) }, worker))
  report.epoch = await target.fenceEpoch(epoch, callOptions)
  report.losers.sort(byNeed)
  return report
}
