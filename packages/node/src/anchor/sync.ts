/**
 * Keeping anchors (and anyone serving sync) in step: the anchor serves `/can-swarm/sync/1.0.0`,
 * pulls from every peer that serves it when they meet and then every `intervalMs`, verifies what
 * it pulls, logs it and hands it to its agent. After a partition this is how each side learns the
 * other's DECIDEs; the merge rule then picks one winner everywhere, and the anchor
 * - adopts decisions taken elsewhere into its own store (so it never decides them again), and
 * - advances its store's epoch past every epoch it has seen in conflicting DECIDEs (the fence
 *   against stale writers after a heal).
 */

import type { Agent } from '../../../peer/src/agent/agent.ts'
import { bucketOf, type ConsensusStore, type DecideRecord } from '../../../peer/src/core/consensus.ts'
import type { AnyEnvelope } from '../../../peer/src/core/types.ts'
import type { Network } from '../../../peer/src/net/network.ts'
import { syncAgent } from '../../../peer/src/sync/agent-sync.ts'
import type { EnvelopeLog } from './log.ts'

/** What an anchor's store offers beyond the DECIDE contract (both durable stores have it). */
export interface HealingStore extends ConsensusStore {
  mergeRecord?(record: DecideRecord): Promise<unknown>
  fenceEpoch?(epoch: number): Promise<number>
}

export interface SyncOptions {
  network: Network
  agent: Agent
  log: EnvelopeLog
  consensus: HealingStore
  /** Pull from every sync peer this often. @default 5 000 */
  intervalMs?: number
  /** Called for every envelope pulled, after it is logged. */
  onEnvelope?: (env: AnyEnvelope) => void
  onError: (error: unknown) => void
}

export async function startSync(
  options: SyncOptions,
): Promise<{ stop(): Promise<void>; pullNow(): Promise<number> }> {
  const { agent, log } = options
  const adopted = new Set<string>()
  let fenced = 0

  const heal = async (): Promise<void> => {
    const store = options.consensus
    for (const thread of agent.threads()) {
      const state = agent.replica(thread)!.state
      const winner = state.winner
      if (!winner) continue
      const conflicting = new Set([...state.decides.values()].map((decide) => decide.proposal)).size > 1
      if (conflicting && store.fenceEpoch) {
        const highest = Math.max(...[...state.decides.values()].map((decide) => decide.epoch))
        if (highest + 1 > fenced) fenced = await store.fenceEpoch(highest + 1)
      }
      if (winner.decider === agent.did || !store.mergeRecord) continue
      const key = `${thread}|${winner.env}`
      if (adopted.has(key)) continue
      const record: DecideRecord = {
        need: winner.need,
        proposal: winner.proposal,
        epoch: winner.epoch,
        lamport: winner.lamport,
        kPlan: winner.kPlan,
        decider: winner.decider,
        bucket: bucketOf(winner.need),
      }
      await store.mergeRecord(record)
      adopted.add(key)
    }
  }

  return syncAgent({
    libp2p: options.network.libp2p,
    agent,
    intervalMs: options.intervalMs ?? 5_000,
    onEnvelope: (env) => {
      log.append(env)
      options.onEnvelope?.(env)
    },
    afterPull: heal,
    onError: options.onError,
  })
}
