/**
 * Keeps an agent in step with the peers around it: serves `/can-swarm/sync/1.0.0` from the agent's
 * threads, pulls from every peer that serves it when they meet (identify) and every `intervalMs`,
 * verifies what arrives and hands it to the agent in total order. Gossip carries what is published
 * while peers are connected; this carries what was missed (a partition, a restart, a late join).
 *
 * @example
 * ```ts
 * const sync = await syncAgent({ libp2p: network.libp2p, agent })
 * await sync.pullNow()
 * await sync.stop()
 * ```
 */
import type { Libp2p } from '@libp2p/interface'
import type { Agent } from '../agent/agent.ts'
import { compareEnvelopes } from '../core/codec.ts'
import type { AnyEnvelope } from '../core/types.ts'
import { verifyEnvelopes } from '../crypto/envelopes.ts'
import { SYNC_PROTOCOL } from './protocol.ts'
import { pullEnvelopes, serveSync } from './sync.ts'

export interface SyncAgentOptions {
  libp2p: Libp2p
  agent: Agent
  /** Pull from every sync peer this often; 0 pulls only when peers meet. @default 5 000 */
  intervalMs?: number
  /** Called with each pulled, verified envelope before the agent gets it (e.g. to log it). */
  onEnvelope?: (env: AnyEnvelope) => void
  /** Called after each round of pulls (e.g. to heal a consensus store). */
  afterPull?: () => Promise<void>
  onError?: (error: unknown) => void
}

export interface AgentSync {
  /** Pulls from every connected peer that serves sync; resolves with the number of envelopes taken in. */
  pullNow(): Promise<number>
  stop(): Promise<void>
}

export async function syncAgent(options: SyncAgentOptions): Promise<AgentSync> {
  const { libp2p, agent } = options
  const onError = options.onError ?? (() => undefined)
  const stopServing = await serveSync(libp2p, {
    *envelopes(threads) {
      for (const thread of threads ?? agent.threads()) yield* agent.replica(thread)?.envelopes() ?? []
    },
  })

  const deliver = async (pulled: AnyEnvelope[]): Promise<number> => {
    if (pulled.length === 0) return 0
    const errors = await verifyEnvelopes(pulled)
    const valid = pulled.filter((_, index) => errors[index] === undefined).sort(compareEnvelopes)
    for (const env of valid) {
      if (agent.replica(env.thread)?.has(env.id)) continue
      options.onEnvelope?.(env)
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
            onError(error)
          }
        }
        await options.afterPull?.()
      } finally {
        running = undefined
      }
      return total
    })()
    return running
  }

  const onIdentify = (event: CustomEvent<{ protocols: string[] }>): void => {
    if (event.detail.protocols.includes(SYNC_PROTOCOL)) void pullNow().catch(onError)
  }
  libp2p.addEventListener('peer:identify', onIdentify as never)
  const intervalMs = options.intervalMs ?? 5_000
  const timer = intervalMs > 0 ? setInterval(() => void pullNow().catch(onError), intervalMs) : undefined
  if (timer && typeof timer === 'object' && 'unref' in timer) timer.unref()
  return {
    pullNow,
    async stop() {
      if (timer) clearInterval(timer)
      libp2p.removeEventListener('peer:identify', onIdentify as never)
      await running?.catch(() => undefined)
      await stopServing()
    },
  }
}
