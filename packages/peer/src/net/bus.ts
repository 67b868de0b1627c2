/**
 * The gossip bus: envelopes in and out over `@libp2p/gossipsub`, on the topic scheme of
 * `topics.ts`. Publishing never waits for the network; receiving delivers only envelopes that
 * passed `validation.ts` (as the gossipsub topic validator, so invalid frames are never forwarded
 * and their sender's gossipsub score falls), each envelope once.
 *
 * With `publishWindowMs > 0` the envelopes published to one topic within the window travel as one
 * batch frame (one gossip message, one validation round with all signatures in flight together).
 *
 * @example
 * ```ts
 * const bus = createBus(network, { ingress: (env) => policy.check(env) })
 * const agent = new Agent({ bus, … })
 * bus.onEnvelope((env) => agent.deliver(env))
 * ```
 */
import { type Message, TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { EnvelopeSink } from '../agent/ports.ts'
import { cidOfDagCbor, encodeEnvelope } from '../core/codec.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import type { AnyEnvelope, Envelope } from '../core/types.ts'
import { decodeFrame, encodeFrame, MAX_BATCH_ENVELOPES, MAX_FRAME_BYTES } from './frame.ts'
import type { Network } from './network.ts'
import { checkRateBudget, DEFAULT_MAX_RATE_KEYS, type RateBudget, RateLimiter } from './quota.ts'
import { allShardTopics, capabilityTopic, isSwarmTopic, shardTopic, threadTopic } from './topics.ts'
import {
  DEFAULT_MAX_CLOCK_SKEW_MS,
  type FrameValidationOptions,
  type IngressHook,
  type RejectReason,
  validateFrame,
} from './validation.ts'

/** What a listener learns besides the envelope. */
export interface DeliveryInfo {
  /** The peer that forwarded the envelope to this one. */
  from: string
  topic: string
}

/** Where a frame given to {@link GossipBus.ingest} came from. */
export interface IngestSource {
  /** Who brought it, as quotas and statistics name it (e.g. `nats:nats://127.0.0.1:4222`). */
  from: string
  /** What listeners are told it came on. @default the thread's shard topic */
  topic?: string
  /**
   * Also publish the new envelopes on gossip: all of them, or those the function allows (a relay
   * budget: what is relayed is charged to this peer at its neighbours). @default false
   */
  relay?: boolean | ((env: AnyEnvelope) => boolean)
}

/** What {@link GossipBus.ingest} did with a frame. */
export type IngestResult =
  /** `fresh`: envelopes not seen before (delivered); `duplicates`: those seen before. */
  { ok: true; fresh: AnyEnvelope[]; duplicates: number } | { ok: false; reason: RejectReason; detail: string }

/** Receives each valid envelope once. */
export type EnvelopeListener = (env: AnyEnvelope, info: DeliveryInfo) => void

/** Options of {@link createBus}. */
export interface BusOptions {
  /** The policy ingress gate, run after signature verification. @default none */
  ingress?: IngressHook
  /** Shards to subscribe to. @default 'all' */
  shards?: 'all' | readonly number[]
  /**
   * Batch envelopes per topic over this window, in ms; 0 publishes each at once. An envelope on
   * a topic that sent nothing for a window leaves at once; while a topic is busy, envelopes wait
   * at most this long and leave together as one batch frame. Batching cuts
   * the per-message cost of gossip (framing, encryption, duplicate suppression) several-fold at
   * high rates, for at most this much added latency (bench `bus`).
   * @default 5
   */
  publishWindowMs?: number
  /** Most envelopes in one batch (a full batch is sent at once). @default 64 */
  maxBatchEnvelopes?: number
  /** Most envelopes waiting in publish windows; beyond it `publish` throws. @default 10 000 */
  maxPendingEnvelopes?: number
  /** Envelope ids remembered for deduplication (LRU). @default 100 000 */
  maxKnownIds?: number
  /** Announce NEEDs on their capability topics too. @default true */
  announceNeeds?: boolean
  /** Oldest accepted envelope, future skew, clock: see validation.ts. */
  validation?: Omit<FrameValidationOptions, 'ingress' | 'maxEnvelopeAgeMs' | 'admit'>
  /** Gossip quotas ({@link GossipQuotas}); `false` turns them off. @default DEFAULT_GOSSIP_QUOTAS */
  quotas?: Partial<GossipQuotas> | false
}

/**
 * Gossip quotas (docs/PROTOCOL.md §13). A frame over its forwarding peer's budget is refused before
 * any signature is checked; one carrying an envelope over its signed sender's budget is refused
 * once the signatures are known good (so nobody can spend an honest sender's budget with forged
 * envelopes). Either way the frame is ignored — not delivered, not forwarded — and its forwarder
 * is not penalised (an honest relay of someone else's flood is not at fault); the sender's excess
 * reaches peers only through sync, under sync's own per-peer limits.
 */
export interface GossipQuotas {
  /** Envelopes per second one forwarding peer may bring. @default 2 000/s, burst 4 000 */
  peerEnvelopes: RateBudget
  /** Frame bytes per second one forwarding peer may bring. @default 16 MiB/s, burst 32 MiB */
  peerBytes: RateBudget
  /** Envelopes per second of one sender (its did:key), through all peers. @default 500/s, burst 1 000 */
  senderEnvelopes: RateBudget
  /** Envelope bytes per second of one sender. @default 4 MiB/s, burst 16 MiB */
  senderBytes: RateBudget
  /** Senders never throttled (the network's anchors). @default none */
  exempt?: (sender: string) => boolean
  /** Peers and senders tracked per budget; the least recently charged are forgotten. @default 10 000 */
  maxTracked: number
}

/** Default {@link GossipQuotas}. */
export const DEFAULT_GOSSIP_QUOTAS: Readonly<GossipQuotas> = Object.freeze({
  peerEnvelopes: { perSecond: 2_000, burst: 4_000 },
  peerBytes: { perSecond: 16 * 1024 * 1024, burst: 32 * 1024 * 1024 },
  senderEnvelopes: { perSecond: 500, burst: 1_000 },
  senderBytes: { perSecond: 4 * 1024 * 1024, burst: 16 * 1024 * 1024 },
  maxTracked: DEFAULT_MAX_RATE_KEYS,
})

/** Counters of a bus. */
export interface BusStats {
  published: number
  /** Envelopes not gossiped because receivers would refuse them as stale or ahead (sync carries them). */
  withheld: number
  /** Gossip messages sent (frames). */
  framesPublished: number
  publishErrors: number
  /** Envelopes handed to listeners. */
  delivered: number
  /** Valid envelopes seen again under another frame (NEED announcements, batches). */
  duplicates: number
  /** Frames rejected, by reason (`throttled` frames are ignored, not rejected: nobody is penalised). */
  rejected: Record<RejectReason, number>
  /** Frames ignored because an envelope's sender was over its quota. */
  senderThrottled: number
  /** The latest rejections (bounded), oldest first. */
  recentRejections: Array<{ from: string; reason: RejectReason; ids: string[]; detail: string }>
}

/** The bus: an {@link EnvelopeSink} for agents plus subscription and statistics. */
export interface GossipBus extends EnvelopeSink {
  /** Queues an envelope for gossip (never blocks; errors are counted in stats). */
  publish(env: AnyEnvelope): void
  /** Adds a listener of valid envelopes; returns a function that removes it. */
  onEnvelope(listener: EnvelopeListener): () => void
  /**
   * Adds a listener of the envelopes this peer publishes, as they go out on gossip (not those
   * withheld as stale); returns a function that removes it. A bridge forwards them elsewhere.
   */
  onPublish(listener: (env: AnyEnvelope) => void): () => void
  /**
   * Takes a frame that came another way than gossip (a bridge from NATS, say) through the same
   * gate as gossip: the frame and sender quotas (charged to `source.from`), freshness, signatures,
   * the ingress policy. Envelopes not seen before go to the listeners once, with `source` as their
   * delivery info, and with `relay` also out on gossip (not to `onPublish` listeners). Never throws.
   */
  ingest(data: Uint8Array, source: IngestSource): Promise<IngestResult>
  /** Sends every batch waiting in a publish window now. */
  flush(): Promise<void>
  /**
   * Publishes raw frame bytes on a topic, bypassing every check (tests and fault injection).
   * @internal
   */
  publishFrame(topic: string, data: Uint8Array): Promise<void>
  stats(): BusStats
  /** Unsubscribes and drops pending batches. */
  close(): void
}

const MAX_RECENT_REJECTIONS = 100
/** Bytes a batch frame may hold: the frame limit less the array header. */
const MAX_BATCH_FRAME_BYTES = MAX_FRAME_BYTES - 16
/** CBOR header of one byte string in a batch, at most. */
const BATCH_ITEM_OVERHEAD = 9

/** Topics whose last send time is remembered for the publish window (a bound, not a limit). */
const MAX_TRACKED_TOPICS = 4096
/** Default of {@link BusOptions.publishWindowMs}. */
export const DEFAULT_PUBLISH_WINDOW_MS = 5

/**
 * Attaches a bus to a started network: subscribes to the shard topics (and the network's
 * capability topics) and installs the envelope validator on each.
 *
 * @throws {InvalidArgumentError} naming the option when one is out of range.
 */
export function createBus(network: Network, options: BusOptions = {}): GossipBus {
  const pubsub = network.pubsub
  const { shardCount, capabilities, maxEnvelopeAgeMs } = network.config
  const windowMs = options.publishWindowMs ?? DEFAULT_PUBLISH_WINDOW_MS
  const maxBatch = options.maxBatchEnvelopes ?? 64
  const maxPending = options.maxPendingEnvelopes ?? 10_000
  const maxKnown = options.maxKnownIds ?? 100_000
  if (!(windowMs >= 0 && windowMs <= 1000)) {
    throw new InvalidArgumentError('publishWindowMs must be from 0 to 1000', 'publishWindowMs')
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_BATCH_ENVELOPES) {
    throw new InvalidArgumentError(`maxBatchEnvelopes must be 1…${MAX_BATCH_ENVELOPES}`, 'maxBatchEnvelopes')
  }
  const quotas = options.quotas === false ? undefined : { ...DEFAULT_GOSSIP_QUOTAS, ...options.quotas }
  const clock = options.validation?.now ?? Date.now
  const limiter = (budget: RateBudget, field: keyof GossipQuotas) => {
    checkRateBudget(budget, `quotas.${field}`)
    return new RateLimiter({ ...budget, maxKeys: quotas!.maxTracked, now: clock })
  }
  const limits = quotas && {
    peerEnvelopes: limiter(quotas.peerEnvelopes, 'peerEnvelopes'),
    peerBytes: limiter(quotas.peerBytes, 'peerBytes'),
    senderEnvelopes: limiter(quotas.senderEnvelopes, 'senderEnvelopes'),
    senderBytes: limiter(quotas.senderBytes, 'senderBytes'),
  }
  const validation: FrameValidationOptions = {
    ...options.validation,
    maxEnvelopeAgeMs,
    ...(options.ingress ? { ingress: options.ingress } : {}),
    ...(limits
      ? {
          admit: ({ bytes, envelopes }, { from }) => {
            if (
              limits.peerEnvelopes.available(from) < envelopes.length ||
              limits.peerBytes.available(from) < bytes
            )
              return `peer ${from} is over its gossip quota`
            limits.peerEnvelopes.take(from, envelopes.length)
            limits.peerBytes.take(from, bytes)
            return undefined
          },
        }
      : {}),
  }

  /** Charges each (non-exempt) sender of a verified frame; false, charging nothing, when one is over. */
  const admitSenders = (envelopes: readonly AnyEnvelope[], sizes: readonly number[]): boolean => {
    if (!limits) return true
    const charges = new Map<string, { count: number; bytes: number }>()
    for (const [index, env] of envelopes.entries()) {
      if (quotas?.exempt?.(env.sender)) continue
      const charge = charges.get(env.sender) ?? { count: 0, bytes: 0 }
      charge.count += 1
      charge.bytes += sizes[index] ?? 0
      charges.set(env.sender, charge)
    }
    for (const [sender, charge] of charges) {
      if (
        limits.senderEnvelopes.available(sender) < charge.count ||
        limits.senderBytes.available(sender) < charge.bytes
      )
        return false
    }
    for (const [sender, charge] of charges) {
      limits.senderEnvelopes.take(sender, charge.count)
      limits.senderBytes.take(sender, charge.bytes)
    }
    return true
  }

  const listeners = new Set<EnvelopeListener>()
  const known = new Set<string>()
  const accepted = new WeakMap<Message, AnyEnvelope[]>()
  const stats: BusStats = {
    published: 0,
    withheld: 0,
    framesPublished: 0,
    publishErrors: 0,
    delivered: 0,
    duplicates: 0,
    rejected: { malformed: 0, stale: 0, future: 0, 'bad-signature': 0, denied: 0, throttled: 0 },
    senderThrottled: 0,
    recentRejections: [],
  }

  const remember = (id: string): boolean => {
    if (known.has(id)) return false
    if (known.size >= maxKnown) {
      const oldest = known.values().next().value
      if (oldest !== undefined) known.delete(oldest)
    }
    known.add(id)
    return true
  }

  /** The gate every frame passes, whichever way it came: validation, then the senders' quotas. */
  const screen = async (
    data: Uint8Array,
    from: string,
    topic: string,
  ): Promise<
    | { ok: true; envelopes: AnyEnvelope[] }
    | { ok: false; reason: RejectReason; detail: string; sender?: true }
  > => {
    const result = await validateFrame(data, { from, topic }, validation)
    if (!result.ok) {
      stats.rejected[result.reason] += 1
      stats.recentRejections.push({ from, reason: result.reason, ids: result.ids, detail: result.detail })
      if (stats.recentRejections.length > MAX_RECENT_REJECTIONS) stats.recentRejections.shift()
      return result
    }
    if (!admitSenders(result.envelopes, result.sizes)) {
      stats.senderThrottled += 1
      return {
        ok: false,
        reason: 'throttled',
        detail: 'a sender of the frame is over its quota',
        sender: true,
      }
    }
    return { ok: true, envelopes: result.envelopes }
  }

  const validator = async (from: PeerId, message: Message): Promise<TopicValidatorResult> => {
    const peer = from.toString()
    const result = await screen(message.data, peer, message.topic)
    if (!result.ok) {
      // Over a quota is not misbehaviour of the forwarder, and neither is relaying a well-signed
      // envelope this peer's own policy denies (the forwarder may run another policy, or none): the
      // frame is dropped, nobody penalised. Only what is provably bad costs the forwarder score.
      if (result.reason === 'throttled' || result.reason === 'denied') return TopicValidatorResult.Ignore
      network.reputation.recordInvalid(peer)
      return TopicValidatorResult.Reject
    }
    accepted.set(message, result.envelopes)
    network.reputation.recordDelivery(peer)
    return TopicValidatorResult.Accept
  }

  const topics = [
    ...(options.shards === undefined || options.shards === 'all'
      ? allShardTopics(shardCount)
      : options.shards.map(shardTopic)),
    ...capabilities.map(capabilityTopic),
  ]
  for (const topic of topics) {
    pubsub.topicValidators.set(topic, validator)
    pubsub.subscribe(topic)
  }

  const onMessage = (event: CustomEvent<{ propagationSource: PeerId; msg: Message }>): void => {
    const { msg, propagationSource } = event.detail
    if (!isSwarmTopic(msg.topic)) return
    const envelopes = accepted.get(msg)
    if (!envelopes) return
    accepted.delete(msg)
    const info: DeliveryInfo = { from: propagationSource.toString(), topic: msg.topic }
    for (const env of envelopes) {
      if (!remember(env.id)) {
        stats.duplicates += 1
        continue
      }
      stats.delivered += 1
      for (const listener of listeners) listener(env, info)
    }
  }
  pubsub.addEventListener('gossipsub:message', onMessage as never)

  // ---------------------------------------------------------------- publishing

  const send = (topic: string, frame: Uint8Array): Promise<void> => {
    stats.framesPublished += 1
    return pubsub.publish(topic, frame).then(
      () => undefined,
      () => {
        stats.publishErrors += 1
      },
    )
  }

  // Per topic: envelopes waiting for the end of the current window, and when the last frame left.
  // An envelope on a quiet topic leaves at once (no added latency when traffic is sparse); while
  // frames leave less than a window apart, envelopes wait and leave together (Nagle-style).
  const pending = new Map<
    string,
    { frames: Uint8Array[]; bytes: number; timer: ReturnType<typeof setTimeout> }
  >()
  const lastSentAtMs = new Map<string, number>()
  let pendingCount = 0
  const flushTopic = (topic: string): Promise<void> => {
    const batch = pending.get(topic)
    if (!batch) return Promise.resolve()
    pending.delete(topic)
    clearTimeout(batch.timer)
    pendingCount -= batch.frames.length
    if (batch.frames.length === 0) return Promise.resolve()
    lastSentAtMs.set(topic, performance.now())
    return send(topic, encodeFrame(batch.frames))
  }

  const enqueue = (topic: string, bytes: Uint8Array): void => {
    if (windowMs === 0) {
      void send(topic, bytes)
      return
    }
    let batch = pending.get(topic)
    if (!batch) {
      const now = performance.now()
      const quietForMs = now - (lastSentAtMs.get(topic) ?? Number.NEGATIVE_INFINITY)
      if (quietForMs >= windowMs) {
        if (lastSentAtMs.size >= MAX_TRACKED_TOPICS) lastSentAtMs.clear()
        lastSentAtMs.set(topic, now)
        void send(topic, bytes)
        return
      }
      batch = { frames: [], bytes: 0, timer: setTimeout(() => void flushTopic(topic), windowMs - quietForMs) }
      pending.set(topic, batch)
    }
    // A batch is capped by bytes as well as by count: a frame over the limit would be refused (and
    // this peer penalised) by every receiver. An envelope that does not fit goes in the next frame.
    if (batch.frames.length > 0 && batch.bytes + bytes.length + BATCH_ITEM_OVERHEAD > MAX_BATCH_FRAME_BYTES) {
      void flushTopic(topic)
      enqueue(topic, bytes)
      return
    }
    if (pendingCount >= maxPending) {
      stats.publishErrors += 1
      throw new InvalidArgumentError(
        `more than ${maxPending} envelopes wait to be published: slow down or raise maxPendingEnvelopes`,
        'env',
      )
    }
    batch.frames.push(bytes)
    batch.bytes += bytes.length + BATCH_ITEM_OVERHEAD
    pendingCount += 1
    if (batch.frames.length >= maxBatch) void flushTopic(topic)
  }

  let closed = false
  const publishListeners = new Set<(env: AnyEnvelope) => void>()
  /** Puts an envelope out on gossip; false when it is withheld. */
  const gossip = (env: AnyEnvelope): boolean => {
    // Gossip carries fresh envelopes only: one receivers would refuse as stale or ahead of their
    // clocks (and penalise this peer for) is withheld; envelope and plan sync carry old ones.
    const now = (options.validation?.now ?? Date.now)()
    const margin = Math.min(10_000, maxEnvelopeAgeMs / 4)
    const skew = options.validation?.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS
    if (env.ts < now - maxEnvelopeAgeMs + margin || env.ts > now + skew - margin) {
      stats.withheld += 1
      return false
    }
    const bytes = encodeEnvelope(env)
    remember(env.id)
    stats.published += 1
    enqueue(threadTopic(env.thread, shardCount), bytes)
    if (env.kind === 'NEED' && (options.announceNeeds ?? true)) {
      for (const capability of new Set((env as Envelope<'NEED'>).payload.requires)) {
        void send(capabilityTopic(capability), encodeFrame([bytes], true))
      }
    }
    return true
  }
  return {
    publish(env) {
      if (closed || !gossip(env)) return
      for (const listener of publishListeners) listener(env)
    },
    onEnvelope(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    onPublish(listener) {
      publishListeners.add(listener)
      return () => publishListeners.delete(listener)
    },
    async ingest(data, source) {
      if (closed) return { ok: false, reason: 'denied', detail: 'the bus is closed' }
      // Envelopes already seen (another bridge's copy of what gossip brought) are dropped before
      // they cost quota or a signature check; only the rest of the frame goes through the gate.
      let unseen: Uint8Array[]
      let seen = 0
      try {
        // An envelope's id is the CID of its bytes: one hash, no decode, for what is dropped.
        unseen = decodeFrame(data).filter((bytes) => {
          const isKnown = known.has(cidOfDagCbor(bytes))
          if (isKnown) seen += 1
          return !isKnown
        })
      } catch {
        // Malformed: the gate says why (and counts it) as it would for gossip.
        const refused = await screen(data, source.from, source.topic ?? 'ingest')
        return refused.ok
          ? { ok: false, reason: 'malformed', detail: 'the frame does not decode' }
          : { ok: false, reason: refused.reason, detail: refused.detail }
      }
      if (seen > 0) {
        stats.duplicates += seen
        if (unseen.length === 0) return { ok: true, fresh: [], duplicates: seen }
        data = encodeFrame(unseen)
      }
      const result = await screen(data, source.from, source.topic ?? 'ingest')
      if (!result.ok) return { ok: false, reason: result.reason, detail: result.detail }
      const fresh: AnyEnvelope[] = []
      let duplicates = seen
      for (const env of result.envelopes) {
        if (!remember(env.id)) {
          stats.duplicates += 1
          duplicates += 1
          continue
        }
        fresh.push(env)
        stats.delivered += 1
        const info: DeliveryInfo = {
          from: source.from,
          topic: source.topic ?? threadTopic(env.thread, shardCount),
        }
        for (const listener of listeners) listener(env, info)
      }
      const relay = source.relay
      if (relay && !closed) for (const env of fresh) if (relay === true || relay(env)) gossip(env)
      return { ok: true, fresh, duplicates }
    },
    async flush() {
      await Promise.all([...pending.keys()].map(flushTopic))
    },
    publishFrame(topic, data) {
      return send(topic, data)
    },
    stats() {
      return structuredClone(stats)
    },
    close() {
      if (closed) return
      closed = true
      for (const batch of pending.values()) clearTimeout(batch.timer)
      pending.clear()
      pubsub.removeEventListener('gossipsub:message', onMessage as never)
      for (const topic of topics) {
        pubsub.topicValidators.delete(topic)
        pubsub.unsubscribe(topic)
      }
      listeners.clear()
      publishListeners.clear()
    },
  }
}
