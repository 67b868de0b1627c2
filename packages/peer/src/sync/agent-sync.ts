/**
 * Keeps an agent in step with the peers around it: serves `/can-swarm/sync/2.0.0` from an index of
 * every envelope placed in the agent's threads (kept up to date as the agent places more), pulls
 * from every peer that serves it when they meet (identify) and every `intervalMs`, verifies each
 * page that arrives and hands it to the agent in total order. Gossip carries what is published while
 * peers are connected; this carries what was missed (a partition, a restart, a late join).
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
import { pullEnvelopes, type ServeSyncOptions, serveSync } from './sync.ts'
import { SyncIndex } from './sync-index.ts'

export interface SyncAgentOptions {
  libp2p: Libp2p
  agent: Agent
  /** Pull from every sync peer this often; 0 pulls only when peers meet. @default 5 000 */
  intervalMs?: number
  /** Called with each pulled, verified envelope before the agent gets it (e.g. to log it). @default none */
  onEnvelope?: (env: AnyEnvelope) => void
  /** Called after each round of pulls (e.g. to heal a consensus store). @default none */
  afterPull?: () => Promise<void>
  /** The server's limits. @default the server's own (see ServeSyncOptions) */
  serve?: ServeSyncOptions
  /** Most requests of one pull from one peer (the next round goes on). @default 4 096 */
  maxRequestsPerPull?: number
  /** Errors of pulls and of serving (the next round goes on). @default ignored */
  onError?: (error: unknown) => void
}

export interface AgentSync {
  /**
   * Pulls from every connected peer that serves sync; resolves with the number of envelopes taken
   * in (0 once stopped). One pull runs at a time: a call while one runs shares it.
   */
  pullNow(): Promise<number>
  /** The index served (and compared against when pulling). */
  readonly index: SyncIndex<AnyEnvelope>
  /** Stops pulling (a pull in progress is aborted) and serving. */
  stop(): Promise<void>
}

/**
 * Ids pulled and handed to the agent that it did not place (pending, refused, waiting for their
 * NEED): remembered so that the next pull does not fetch them again, at most this many.
 */
export const MAX_REMEMBERED_UNPLACED = 65_536

export async function syncAgent(options: SyncAgentOptions): Promise<AgentSync> {
  const { libp2p, agent } = options
  const onError = options.onError ?? (() => undefined)
  const index = new SyncIndex<AnyEnvelope>()
  for (const thread of agent.threads())
    for (const env of agent.replica(thread)?.envelopes() ?? []) index.add(env)
  // Insertion-ordered: the oldest is forgotten first. An evicted envelope may be fetched again.
  const unplaced = new Set<string>()
  const unobserve = agent.observe((env) => {
    index.add(env)
    unplaced.delete(env.id)
  })
  // What the agent lets go (an evicted undecided thread, a retired settled one) is not served.
  const unevict = agent.onEvict((env) => {
    unplaced.delete(env.id)
    index.remove(env.id)
  })
  const unretire = agent.onRetire((_thread, envelopes) => {
    for (const env of envelopes) index.remove(env.id)
  })
  const stopServing = await serveSync(libp2p, index, options.serve)

  const deliver = async (page: AnyEnvelope[]): Promise<number> => {
    const errors = await verifyEnvelopes(page)
    const valid = page.filter((_, i) => errors[i] === undefined).sort(compareEnvelopes)
    const fresh = valid.filter((env) => !agent.holds(env))
    for (const env of fresh) options.onEnvelope?.(env)
    // One fold and one round of reactions per thread of the page, not per envelope.
    await agent.deliverMany(fresh)
    for (const env of fresh) {
      if (!index.has(env.id)) {
        unplaced.add(env.id)
        if (unplaced.size > MAX_REMEMBERED_UNPLACED) unplaced.delete(unplaced.values().next().value!)
      }
    }
    return valid.length
  }

  let running: Promise<number> | undefined
  // Stopping aborts a pull in progress (it could otherwise wait out rate refusals for seconds).
  const stopping = new AbortController()
  const pullNow = (): Promise<number> => {
    if (stopping.signal.aborted) return Promise.resolve(0)
    running ??= (async () => {
      let total = 0
      try {
        for (const connection of libp2p.getConnections()) {
          if (stopping.signal.aborted) break
          const peer = connection.remotePeer
          let protocols: string[] = []
          try {
            protocols = (await libp2p.peerStore.get(peer)).protocols
          } catch {
            continue
          }
          if (!protocols.includes(SYNC_PROTOCOL)) continue
          try {
            await pullEnvelopes(libp2p, peer, {
              index,
              holds: (id) => unplaced.has(id),
              deliver: async (page) => {
                total += await deliver(page)
              },
              ...(options.maxRequestsPerPull === undefined
                ? {}
                : { maxRequests: options.maxRequestsPerPull }),
              signal: stopping.signal,
            })
          } catch (error) {
            if (!stopping.signal.aborted) onError(error)
          }
        }
        if (!stopping.signal.aborted) await options.afterPull?.()
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
    index,
    async stop() {
      if (timer) clearInterval(timer)
      libp2p.removeEventListener('peer:identify', onIdentify as never)
      stopping.abort(new Error('envelope sync stopped'))
      await running?.catch(() => undefined)
      unobserve()
      unevict()
      unretire()
      await stopServing()
    },
  }
}
