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
import { compareEnvelopes } from '../../../peer/src/core/codec.ts'
import { bucketOf, type ConsensusStore, type DecideRecord } from '../../../peer/src/core/consensus.ts'
import type { AnyEnvelope } from '../../../peer/src/core/types.ts'
import { verifyEnvelopes } from '../../../peer/src/crypto/envelopes.ts'
import type { Network } from '../../../peer/src/net/network.ts'
import { SYNC_PROTOCOL } from '../../../peer/src/sync/protocol.ts'
import { pullEnvelopes, serveSync } from '../../../peer/src/sync/sync.ts'
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
  onError: (error: unknown) => void
  onPulled?: (count: number) => void
}

export async function startSync(
  options: SyncOptions,
): Promise<{ stop(): Promise<void>; pullNow(): Promise<number> }> {
  const { network, agent, log } = options
  const libp2p = network.libp2p
  const stopServing = await serveSync(libp2p, {
    *envelopes(threads) {
      for (const thread of threads ?? agent.threads()) yield* agent.replica(thread)?.envelopes() ?? []
    },
  })
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
        if (highest + 1 > fenced) {
          fenced = await store.fenceEpoch(highest + 1)
        }
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

  const deliver = async (pulled: AnyEnvelope[]): Promise<number> => {
    if (pulled.length === 0) return 0
    const errors = await verifyEnvelopes(pulled)
    const valid = pulled.filter((_, index) => errors[index] === undefined).sort(compareEnvelopes)
    for (const env of valid) {
      if (agent.replica(env.thread)?.has(env.id)) continue
      log.append(env)
      await agent.deliver(env)
    }
    return valid.length
  }

  let running: Promise<number> | undefined
  const pullNow = (): Promise<number> => {
    running ??= (async () => {
      let total = 0
      try {
        for (const connection of libp2p.getConnections()) {
          const peer = connection.remotePeer
          let protocols: string[] = []
          try {
            protocols = (await libp2p.peerStore.get(peer)).protocols
          } catch {
            continue
          }
          if (!protocols.includes(SYNC_PROTOCOL)) continue
          const have = agent.threads().flatMap((thread) =>
            agent
              .replica(thread)!
              .envelopes()
              .map((env) => env.id),
          )
          try {
            total += await deliver(await pullEnvelopes(libp2p, peer, { have, timeoutMs: 10_000 }))
          } catch (error) {
            options.onError(error)
          }
        }
        await heal()
      } finally {
        running = undefined
      }
      options.onPulled?.(total)
      return total
    })()
    return running
  }

  const onIdentify = (event: CustomEvent<{ protocols: string[] }>): void => {
    if (event.detail.protocols.includes(SYNC_PROTOCOL)) void pullNow().catch(options.onError)
  }
  libp2p.addEventListener('peer:identify', onIdentify as never)
  const timer = setInterval(() => void pullNow().catch(options.onError), options.intervalMs ?? 5_000)
  timer.unref?.()
  return {
    pullNow,
    async stop() {
      clearInterval(timer)
      libp2p.removeEventListener('peer:identify', onIdentify as never)
      await running?.catch(() => undefined)
      await stopServing()
    },
  }
}
