/**
 * @packageDocumentation
 * The anchor's DECIDE stores, behind the `ConsensusStore` contract of the protocol core:
 * {@link EmbeddedConsensusStore} (one anchor, zero setup, durable) and {@link EtcdConsensusStore}
 * (a group of anchors sharing an etcd cluster), plus the merge that heals a split.
 *
 * @example
 * ```ts
 * import { EmbeddedConsensusStore } from '@can-swarm/node'
 * const store = await EmbeddedConsensusStore.open({ path: 'data/consensus.sqlite' })
 * const result = await store.tryDecide({ need, proposal, epoch: await store.currentEpoch(), lamport, kPlan, decider })
 * ```
 */
export { EmbeddedConsensusStore, type EmbeddedConsensusStoreOptions } from './embedded.ts'
export { EtcdConsensusStore, type EtcdConsensusStoreOptions, isTransientEtcdError } from './etcd.ts'
export {
  type CallOptions,
  type MergeOptions,
  type MergeReport,
  type MergeSource,
  type MergeStep,
  type MergeTarget,
  mergeInto,
  mergeStep,
} from './merge.ts'
export { decodeRecord, encodeRecord, recordOf } from './record.ts'
export { type RetryOptions, resolveRetryOptions } from './retry.ts'
