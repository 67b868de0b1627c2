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
  /** NATS messages waiting to be checked; beyond it they are dropped (and counted). @default 1 024 */
  maxQueuedMessages?: number
  /** NATS messages checked at once. @default 16 */
  maxInFlight?: number
  /** Largest NATS message taken, in bytes. @default MAX_FRAME_BYTES */
  maxMessageBytes?: number
  /** Name of the NATS connection (server monitoring shows it). @default 'can-swarm-bridge' */
  name?: string
  onError?: (error: unknown) => void
}

/** Counters of a {@link NatsBridge}. */
export interface NatsBridgeStats {
  fromNats: {
    /** NATS messages received. */
    messages: number
    /** Envelopes new here, delivered (and relayed with `relay`). */
    envelopes: number
    /** Envelopes this peer already had. */
    duplicates: number
    /** Messages refused by the bus's gate, by reason. */
    rejected: Partial<Record<RejectReason, number>>
    /** Messages dropped because the queue was full or they were over `maxMessageBytes`. */
    dropped: number
  }
  toNats: {
    /** Envelopes published on NATS. */
    envelopes: number
    /** Publications that failed (over the server's max_payload, connection closed…). */
    errors: number
  }
}

/** A running bridge. */
export interface NatsBridge {
  /** The source name the bus charges NATS traffic to. */
  readonly source: string
  stats(): NatsBridgeStats
  /** Unsubscribes, drains the connection and stops forwarding. Idempotent. */
  close(): Promise<void>
}

const SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/** A subject token from any text (NATS tokens cannot hold dots, spaces, `*` or `>`). */
export function natsToken(text: string): string {
  const token = text.replace(/[^A-Za-z0-9_-]/g, '_')
  return token.length > 0 ? token : '_'
}

/**
 * Connects to NATS and bridges it with `bus`.
 * @throws {InvalidArgumentError} naming the option that is out of range; the connection's error
 *   when no server can be reached.
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
  const maxInFlight = positive(options.maxInFlight ?? 16, 'maxInFlight')
  const maxBytes = positive(options.maxMessageBytes ?? MAX_FRAME_BYTES, 'maxMessageBytes')
  const relay = options.relay ?? true
  const onError = options.onError ?? (() => undefined)
  const source = `nats:${servers.join(',')}`
  const stats: NatsBridgeStats = {
    fromNats: { messages: 0, envelopes: 0, duplicates: 0, rejected: {}, dropped: 0 },
    toNats: { envelopes: 0, errors: 0 },
  }

  const { connect } = await import('nats')
  const connection: NatsConnection = await connect({
    servers,
    noEcho: true,
    name: options.name ?? 'can-swarm-bridge',
    maxReconnectAttempts: -1,
  })
  let closed = false

  // NATS → here, through the bus's gate, a bounded number at a time.
  const queue: Uint8Array[] = []
  let inFlight = 0
  const pump = (): void => {
    while (!closed && inFlight < maxInFlight && queue.length > 0) {
      const data = queue.shift()!
      inFlight += 1
      void bus
        .ingest(data, { from: source, relay })
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
  const subscription: Subscription = connection.subscribe(`${options.subjectPrefix}.*`, {
    callback: (error, message) => {
      if (error) {
        onError(error)
        return
      }
      stats.fromNats.messages += 1
      if (closed || message.data.length > maxBytes || queue.length >= maxQueued) {
        stats.fromNats.dropped += 1
        return
      }
      queue.push(message.data)
      pump()
    },
  })

  // Here → NATS: what gossip brought (not what NATS did) and what this peer publishes.
  const forward = (env: AnyEnvelope): void => {
    if (closed) return
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

  let closing: Promise<void> | undefined
  return {
    source,
    stats: () => structuredClone(stats),
    close() {
      closing ??= (async () => {
        closed = true
        offEnvelope()
        offPublish()
        queue.length = 0
        subscription.unsubscribe()
        try {
          await connection.drain()
        } catch (error) {
          if (!connection.isClosed()) onError(error)
        }
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
          subjectPrefix: options.subjectPrefix ?? `can-swarm.${natsToken(components.params.network)}`,
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

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new InvalidArgumentError(`${name} must be a positive integer`, name)
  return value
}
