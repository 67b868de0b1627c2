/**
 * Keeping anchors (and anyone serving sync) in step: the anchor serves `/can-swarm/sync/2.0.0`
 * (range-based reconciliation, docs/PROTOCOL.md §7.6) from an index of every envelope its agent
 * placed, pulls from every peer that serves it when they meet and then every `intervalMs`,
 * verifies what it pulls, logs it and hands it to its agent. After a partition this is how each
 * side learns the other's DECIDEs; the merge rule then picks one winner everywhere, and after each
 * round of pulls the anchor, for every thread that took in an envelope since the last round,
 * - adopts decisions taken elsewhere into its own store (so it never decides them again), and
 * - advances its store's epoch past every epoch it has seen in conflicting DECIDEs (the fence
 *   against stale writers after a heal).
 */

import type { Agent } from '@can-swarm/peer'
import { bucketOf, type ConsensusStore, type DecideRecord, MAX_EPOCH, syncAgent } from '@can-swarm/peer'
import type { Network } from '@can-swarm/peer/net'

/** What an anchor's store offers beyond the DECIDE contract (both durable stores have it). */
export interface HealingStore extends ConsensusStore {
  mergeRecord?(record: DecideRecord): Promise<unknown>
  fenceEpoch?(epoch: number): Promise<number>
}

export interface SyncOptions {
  network: Network
  agent: Agent
  consensus: HealingStore
  /** Pull from every sync peer this often. @default 5 000 */
  intervalMs?: number
  onError: (error: unknown) => void
}

/** Largest step a heal raises the store's epoch by at once (A3: epochs rise by bounded steps). */
export const MAX_HEAL_EPOCH_STEP = 1_024

export async function startSync(
  options: SyncOptions,
): Promise<{ stop(): Promise<void>; pullNow(): Promise<number> }> {
  const { agent } = options
  // Per thread, the winning DECIDE already merged into the store; a settled thread's entry goes
  // (merging again is harmless: the store keeps the record it has).
  const adopted = new Map<string, string>()
  const unsettled = agent.onSettled((thread) => adopted.delete(thread))
  let fenced = 0
  // Threads to look at after the next round: every one at start, then those that took anything in
  // (by sync, gossip or the DECIDE service), so that a round costs what changed, not every thread.
  const touched = new Set(agent.threads())
  const unobserve = agent.observe((env) => touched.add(env.thread))

  const heal = async (): Promise<void> => {
    for (const thread of [...touched]) {
      await healThread(thread)
      touched.delete(thread)
    }
  }

  const healThread = async (thread: string): Promise<void> => {
    const store = options.consensus
    const replica = agent.replica(thread)
    if (!replica) return
    const state = replica.state
    const winner = state.winner
    if (!winner) return
    const conflicting = new Set([...state.decides.values()].map((decide) => decide.proposal)).size > 1
    if (conflicting && store.fenceEpoch) {
      // Only anchors' DECIDEs are in state.decides (A3); their epochs are still bounded here, so
      // that no record can push the store where it cannot decide any more.
      const highest = Math.max(...[...state.decides.values()].map((decide) => decide.epoch))
      const current = await store.currentEpoch()
      const target = Math.min(highest + 1, current + MAX_HEAL_EPOCH_STEP, MAX_EPOCH)
      if (target > fenced && target > current) fenced = await store.fenceEpoch(target)
    }
    if (winner.decider === agent.did || !store.mergeRecord) return
    if (adopted.get(thread) === winner.env) return
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
    adopted.set(thread, winner.env)
  }

  const sync = await syncAgent({
    libp2p: options.network.libp2p,
    agent,
    intervalMs: options.intervalMs ?? 5_000,
    afterPull: heal,
    onError: options.onError,
  })
  return {
    pullNow: () => sync.pullNow(),
    async stop() {
      await sync.stop()
      unobserve()
      unsettled()
    },
  }
}
