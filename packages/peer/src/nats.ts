/**
 * Hybrid NATS mode: a bridge that carries envelopes both ways between a NATS subject tree and a
 * peer's gossip bus (docs/PROTOCOL.md §7.8). Node only (it loads the optional `nats` package).
 *
 * - NATS → here: every message on `<prefix>.*` goes through the bus's own gate
 *   (`GossipBus.ingest`: frame and sender quotas, freshness, signatures, the ingress policy),
 *   charged to one source, `nats:<servers>`; envelopes not seen before reach the agent and, with
 *   `relay` (a bridge), gossip.
 * - here → NATS: every envelope the bus delivers from gossip and every envelope this peer
 *   publishes goes out once on `<prefix>.<shard of its thread>`, as a one-envelope frame.
 *
 * The bus remembers envelope ids, so an envelope crosses at most once each way per bridge, and
 * two bridges on the same NATS and the same swarm do not loop. The connection sets `noEcho`.
 *
 * @example
 * ```ts
 * import { createPeer } from '@can-swarm/peer'
 * import { natsBridgeService } from '@can-swarm/peer/node'
 *
 * // A peer that publishes to both while a swarm moves to (or from) NATS:
 * const peer = await createPeer({ …, services: { nats: natsBridgeService({ servers: 'nats://127.0.0.1:4222' }) } })
 * ```
 */
import type { NatsConnection, Subscription } from 'nats'
import { encodeEnvelope } from './core/codec.ts'
import { InvalidArgumentError } from './core/errors.ts'
import type { AnyEnvelope } from './core/types.ts'
import type { GossipBus } from './net/bus.ts'
import { encodeFrame, MAX_FRAME_BYTES } from './net/frame.ts'
import { checkRateBudget, type RateBudget, RateLimiter } from './net/quota.ts'
import { DEFAULT_SHARD_COUNT, shardOf } from './net/topics.ts'
import type { RejectReason } from './net/validation.ts'
import type { PeerService, PeerServiceFactory } from './peer.ts'

/** Options of {@link startNatsBridge}. */
export interface NatsBridgeOptions {
  /** nats-server URLs (loopback or your own network: no public servers by default). */
  servers: string | readonly string[]
  /** Envelopes travel on `<subjectPrefix>.<shard>`; tokens of `[A-Za-z0-9_-]` joined by dots. */
  subjectPrefix: string
  /** Shards of the swarm's topics. @default DEFAULT_SHARD_COUNT */
  shardCount?: number
  /** Publish what comes from NATS on gossip too (a bridge); false only delivers it here. @default true */
  relay?: boolean
  /**
   * Envelopes from NATS relayed on gossip, per second (burst): neighbours charge what this peer
   * relays to its own forwarding quota (2 000/s by default), so relaying stays well below it and
   * the rest is only delivered here. @default 500/s, burst 1 000
   */
  relayBudget?: RateBudget
  /** NATS messages waiting to be checked; beyond it they are dropped (and counted). @default 1 024 */
  maxQueuedMessages?: number
  /** Bytes of NATS messages waiting to be checked; beyond it they are dropped. @default 32 MiB */
  maxQueuedBytes?: number
  /** NATS messages checked at once. @default 16 */
  maxInFlight?: number
  /** Largest NATS message taken, in bytes. @default MAX_FRAME_BYTES */
  maxMessageBytes?: number
  /** First wait before connecting again after a failed first connection, in ms (doubling to 30 s). @default 1 000 */
  retryMs?: number
  /** Name of the NATS connection (server monitoring shows it). @default 'can-swarm-bridge' */
  name?: string
  onError?: (error: unknown) => void
}

/** Counters of a {@link NatsBridge}. */
export interface NatsBridgeStats {
  /** Whether the NATS connection is up now. */
  connected: boolean
  fromNats: {
    /** NATS messages received. */
    messages: number
    /** Envelopes new here, delivered (and relayed with `relay`, within its budget). */
    envelopes: number
    /** New envelopes delivered here but not relayed (over the relay budget). */
    notRelayed: number
    /** Envelopes this peer already had. */
    duplicates: number
    /** Messages refused by the bus's gate, by reason. */
    rejected: Partial<Record<RejectReason, number>>
    /** Messages dropped: the queue was full (by count or bytes), or one was over `maxMessageBytes`. */
    dropped: number
  }
  toNats: {
    /** Envelopes handed to the NATS connection. */
    envelopes: number
    /** Envelopes not sent because the connection was down (NATS has no sync: they are lost to it). */
    dropped: number
    /** Publications that failed (over the server's max_payload…). */
    errors: number
  }
}

/** A running bridge. */
export interface NatsBridge {
  /** The source name the bus charges NATS traffic to (`nats:` and the servers, without credentials). */
  readonly source: string
  /** Resolves once the first connection is up (rejects if the bridge closes first). */
  connected(): Promise<void>
  stats(): NatsBridgeStats
  /** Unsubscribes, drains the connection (at most 2 s) and stops forwarding. Idempotent. */
  close(): Promise<void>
}

const SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/
/** How long closing waits for the connection to drain before closing it. */
const DRAIN_TIMEOUT_MS = 2_000
const MAX_RETRY_MS = 30_000

/** A subject token from any text (NATS tokens cannot hold dots, spaces, `*` or `>`). */
export function natsToken(text: string): string {
  const token = text.replace(/[^A-Za-z0-9_-]/g, '_')
  return token.length > 0 ? token : '_'
}

/** The subject prefix a network's envelopes travel under by default: `can-swarm.<network id>`. */
export function natsSubjectPrefix(network: string): string {
  return `can-swarm.${natsToken(network)}`
}

/** A server URL as it may be shown: without user and password. */
function withoutCredentials(server: string): string {
  try {
    const url = new URL(server)
    url.username = ''
    url.password = ''
    return url.toString().replace(/\/$/, '')
  } catch {
    return server.replace(/\/\/[^@/]*@/, '//')
  }
}

/**
 * Bridges NATS with `bus`. Returns at once: the bridge connects in the background (and again,
 * with back-off, until it first succeeds); while the connection is down nothing crosses.
 * @throws {InvalidArgumentError} naming the option that is out of range
 */
export async function startNatsBridge(bus: GossipBus, options: NatsBridgeOptions): Promise<NatsBridge> {
  const servers = typeof options.servers === 'string' ? [options.servers] : [...options.servers]
  if (servers.length === 0) throw new InvalidArgumentError('name at least one NATS server', 'servers')
  if (!SUBJECT_PREFIX.test(options.subjectPrefix))
    throw new InvalidArgumentError(
      'subjectPrefix must be dot-separated [A-Za-z0-9_-] tokens',
      'subjectPrefix',
    )
  const shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT
  const maxQueued = positive(options.maxQueuedMessages ?? 1_024, 'maxQueuedMessages')
  const maxQueuedBytes = positive(options.maxQueuedBytes ?? 32 * 1024 * 1024, 'maxQueuedBytes')
  const maxInFlight = positive(options.maxInFlight ?? 16, 'maxInFlight')
  const maxBytes = positive(options.maxMessageBytes ?? MAX_FRAME_BYTES, 'maxMessageBytes')
  const retryMs = positive(options.retryMs ?? 1_000, 'retryMs')
  const relayBudget = options.relayBudget ?? { perSecond: 500, burst: 1_000 }
  checkRateBudget(relayBudget, 'relayBudget')
  const relayLimiter = new RateLimiter({ ...relayBudget, maxKeys: 1 })
  const relayOn = options.relay ?? true
  const onError = options.onError ?? (() => undefined)
  const source = `nats:${servers.map(withoutCredentials).join(',')}`
  const stats: NatsBridgeStats = {
    connected: false,
    fromNats: { messages: 0, envelopes: 0, notRelayed: 0, duplicates: 0, rejected: {}, dropped: 0 },
    toNats: { envelopes: 0, dropped: 0, errors: 0 },
  }
  const { connect } = await import('nats')
  let connection: NatsConnection | undefined
  let subscription: Subscription | undefined
  let closed = false

  // NATS → here, through the bus's gate, a bounded number (and bytes) at a time.
  const queue: Uint8Array[] = []
  let queuedBytes = 0
  let inFlight = 0
  const relay = (): boolean => {
    if (relayLimiter.take('relay')) return true
    stats.fromNats.notRelayed += 1
    return false
  }
  const pump = (): void => {
    while (!closed && inFlight < maxInFlight && queue.length > 0) {
      const data = queue.shift()!
      queuedBytes -= data.length
      inFlight += 1
      void bus
        .ingest(data, { from: source, relay: relayOn && relay })
        .then((result) => {
          if (result.ok) {
            stats.fromNats.envelopes += result.fresh.length
            stats.fromNats.duplicates += result.duplicates
          } else {
            stats.fromNats.rejected[result.reason] = (stats.fromNats.rejected[result.reason] ?? 0) + 1
          }
        }, onError)
        .finally(() => {
          inFlight -= 1
          pump()
        })
    }
  }
  const take = (data: Uint8Array): void => {
    stats.fromNats.messages += 1
    if (
      closed ||
      data.length > maxBytes ||
      queue.length >= maxQueued ||
      queuedBytes + data.length > maxQueuedBytes
    ) {
      stats.fromNats.dropped += 1
      return
    }
    queue.push(data)
    queuedBytes += data.length
    pump()
  }

  // Here → NATS: what gossip brought (not what NATS did) and what this peer publishes.
  const forward = (env: AnyEnvelope): void => {
    if (closed) return
    if (!connection || !stats.connected) {
      stats.toNats.dropped += 1
      return
    }
    try {
      connection.publish(
        `${options.subjectPrefix}.${shardOf(env.thread, shardCount)}`,
        encodeFrame([encodeEnvelope(env)]),
      )
      stats.toNats.envelopes += 1
    } catch (error) {
      stats.toNats.errors += 1
      onError(error)
    }
  }
  const offEnvelope = bus.onEnvelope((env, info) => {
    if (info.from !== source) forward(env)
  })
  const offPublish = bus.onPublish(forward)

  const watch = async (nc: NatsConnection): Promise<void> => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') stats.connected = false
      else if (status.type === 'reconnect') stats.connected = true
    }
  }
  // The first connection, tried again with back-off until it is made or the bridge closes; after
  // it, the client reconnects by itself.
  const connecting = (async (): Promise<void> => {
    for (let wait = retryMs; !closed; wait = Math.min(wait * 2, MAX_RETRY_MS)) {
      try {
        const nc = await connect({
          servers,
          noEcho: true,
          name: options.name ?? 'can-swarm-bridge',
          maxReconnectAttempts: -1,
        })
        if (closed) {
          await nc.close()
          break
        }
        connection = nc
        stats.connected = true
        subscription = nc.subscribe(`${options.subjectPrefix}.*`, {
          callback: (error, message) => (error ? onError(error) : take(message.data)),
        })
        void watch(nc).catch(onError)
        void nc.closed().then((error) => {
          stats.connected = false
          if (!closed)
            onError(new Error(`the NATS connection closed for good${error ? `: ${error.message}` : ''}`))
        })
        return
      } catch (error) {
        onError(
          new Error(`cannot connect to NATS (${source}), trying again in ${wait} ms: ${describe(error)}`),
        )
        await new Promise((resolve) => setTimeout(resolve, wait))
      }
    }
    throw new Error('the NATS bridge closed before it connected')
  })()
  connecting.catch(() => undefined)

  let closing: Promise<void> | undefined
  return {
    source,
    connected: () => connecting,
    stats: () => structuredClone(stats),
    close() {
      closing ??= (async () => {
        closed = true
        offEnvelope()
        offPublish()
        queue.length = 0
        queuedBytes = 0
        subscription?.unsubscribe()
        const nc = connection
        if (!nc || nc.isClosed()) return
        let timer: ReturnType<typeof setTimeout> | undefined
        await Promise.race([
          nc.drain().catch(() => undefined),
          new Promise((resolve) => {
            timer = setTimeout(resolve, DRAIN_TIMEOUT_MS)
          }),
        ])
        clearTimeout(timer)
        if (!nc.isClosed()) await nc.close().catch(() => undefined)
      })()
      return closing
    },
  }
}

/** A {@link NatsBridge} as a peer service. */
export interface NatsBridgeService extends PeerService {
  bridge(): NatsBridge | undefined
}

/**
 * The bridge as a `createPeer` service, on the peer's own bus: `subjectPrefix` defaults to
 * `can-swarm.<network id>` and `shardCount` to the network's.
 */
export function natsBridgeService(
  options: Omit<NatsBridgeOptions, 'subjectPrefix' | 'shardCount'> & { subjectPrefix?: string },
): PeerServiceFactory<NatsBridgeService> {
  return (components) => {
    let bridge: NatsBridge | undefined
    return {
      bridge: () => bridge,
      async start() {
        bridge = await startNatsBridge(components.bus, {
          onError: components.onError,
          ...options,
          subjectPrefix: options.subjectPrefix ?? natsSubjectPrefix(components.params.network),
          shardCount: components.network.config.shardCount,
        })
        components.logger.info('NATS bridge started', { servers: bridge.source })
      },
      async stop() {
        await bridge?.close()
      },
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new InvalidArgumentError(`${name} must be a positive integer`, name)
  return value
}
