/**
 * The anchor's DECIDE service over its own libp2p protocol (`/can-swarm/decide/1.0.0`). A peer
 * sends a self-contained quorum (NEED, PROPOSE, ATTEST_PLAN envelopes); the anchor verifies every
 * signature, feeds the envelopes to its decider agent — the same path gossip takes, so K_plan,
 * eligibility and the create-if-absent in the consensus store are applied once, in one place —
 * and answers with the signed DECIDE that won (which may be another proposal's), or why there is
 * none.
 */

import type { Agent, ConsensusStore, Envelope, EnvelopeSink } from '@can-swarm/peer'
import {
  CanSwarmError,
  compareEnvelopes,
  DECIDE_PROTOCOL,
  type DecideServiceResponse,
  decodeRequest,
  encodeResponse,
  MAX_MESSAGE_BYTES,
  MalformedEnvelopeError,
  QuotaExceededError,
  verifyEnvelopes,
} from '@can-swarm/peer'
import type { Network } from '@can-swarm/peer/net'
import {
  ByteBudget,
  DEFAULT_MAX_CLOCK_SKEW_MS,
  DEFAULT_MAX_ENVELOPE_AGE_MS,
  type RateBudget,
  RateLimiter,
} from '@can-swarm/peer/net'
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'

export interface DecideServiceOptions {
  network: Network
  agent: Agent
  /** The anchor's consensus store: asked directly when another anchor won the NEED. */
  consensus: ConsensusStore
  /** Where envelopes that arrive through the service are relayed, so the whole swarm learns them. */
  relay: EnvelopeSink
  /** How long one request may wait for its DECIDE. @default 5 000 */
  timeoutMs?: number
  /** Requests served at once per connection. @default 16 */
  maxInboundStreams?: number
  /** Requests one remote peer may make. @default 100/s, burst 200 */
  perPeer?: RateBudget
  /**
   * Bytes of requests read and held at once over all connections: a request's declared length is
   * reserved before its body is read, and one that does not fit is refused (`QUOTA_EXCEEDED`).
   * @default 33 554 432 (32 MiB)
   */
  maxInFlightBytes?: number
  onRequest?: (outcome: DecideServiceResponse['outcome'], ms: number) => void
}

/** Default of {@link DecideServiceOptions.perPeer}. */
export const DEFAULT_DECIDE_PER_PEER: Readonly<RateBudget> = Object.freeze({ perSecond: 100, burst: 200 })
/** Default of {@link DecideServiceOptions.maxInFlightBytes}. */
export const DEFAULT_DECIDE_IN_FLIGHT_BYTES = 32 * 1024 * 1024

/** An unsigned varint of at most 5 bytes from `bytes` (RangeError while incomplete, as lpStream expects). */
function decodeLengthPrefix(bytes: { byteLength: number; get(index: number): number }): number {
  let value = 0
  for (let index = 0; index < bytes.byteLength; index += 1) {
    const byte = bytes.get(index)
    value += (byte & 0x7f) * 2 ** (7 * index)
    if ((byte & 0x80) === 0) return value
    if (index >= 4) throw new MalformedEnvelopeError('request length prefix is longer than 5 bytes', 'length')
  }
  throw new RangeError('incomplete length prefix')
}

export async function serveDecide(options: DecideServiceOptions): Promise<() => Promise<void>> {
  const timeoutMs = options.timeoutMs ?? 5_000
  const perPeer = new RateLimiter({ ...(options.perPeer ?? DEFAULT_DECIDE_PER_PEER) })
  const inFlight = new ByteBudget(options.maxInFlightBytes ?? DEFAULT_DECIDE_IN_FLIGHT_BYTES)
  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const started = performance.now()
    const peer = connection.remotePeer.toString()
    let release: (() => void) | undefined
    // The declared length is checked and reserved before the body is read (nothing is allocated
    // for a request that is too large or does not fit the process's budget).
    const framed = lpStream(stream, {
      maxDataLength: MAX_MESSAGE_BYTES,
      lengthDecoder: (prefix) => {
        const length = decodeLengthPrefix(prefix)
        if (length > MAX_MESSAGE_BYTES)
          throw new MalformedEnvelopeError(
            `request of ${length} bytes is over ${MAX_MESSAGE_BYTES}`,
            'length',
          )
        release = inFlight.tryAcquire(length)
        if (!release)
          throw new QuotaExceededError(
            `the DECIDE service holds ${inFlight.used} of ${inFlight.limitBytes} bytes of requests: try again shortly`,
            'length',
            100,
          )
        return length
      },
    })
    const signal = AbortSignal.timeout(timeoutMs + 1_000)
    let response: DecideServiceResponse
    try {
      if (!perPeer.take(peer)) {
        throw new QuotaExceededError(
          `peer ${peer} is over its DECIDE request rate (${perPeer.budget.perSecond}/s)`,
          'peer',
          perPeer.waitMs(peer),
        )
      }
      const request = decodeRequest((await framed.read({ signal })).subarray())
      response = await decide(options, request, timeoutMs)
    } catch (error) {
      response = {
        outcome: 'refused',
        reason:
          error instanceof CanSwarmError
            ? `${error.code}: ${error.message}`
            : `MALFORMED_ENVELOPE: ${error instanceof Error ? error.message : String(error)}`,
      }
    }
    try {
      await framed.write(encodeResponse(response), { signal })
      await stream.close()
    } catch {
      stream.abort(new Error('decide service: could not answer'))
    }
    release?.()
    options.onRequest?.(response.outcome, performance.now() - started)
  }
  await options.network.libp2p.handle(
    DECIDE_PROTOCOL,
    (stream, connection) => void handle(stream, connection),
    {
      maxInboundStreams: options.maxInboundStreams ?? 16,
    },
  )
  return () => options.network.libp2p.unhandle(DECIDE_PROTOCOL)
}

async function decide(
  options: DecideServiceOptions,
  request: ReturnType<typeof decodeRequest>,
  timeoutMs: number,
): Promise<DecideServiceResponse> {
  const { agent } = options
  for (const [index, env] of request.envelopes.entries()) {
    if (env.thread !== request.need)
      return { outcome: 'refused', reason: `envelopes.${index} belongs to another thread` }
  }
  if (!request.envelopes.some((env) => env.kind === 'PROPOSE' && env.id === request.proposal)) {
    return { outcome: 'refused', reason: `the request carries no PROPOSE of ${request.proposal}` }
  }
  // Freshness as at the gossip edge: what this anchor does not hold yet must be as fresh as gossip
  // takes it (old envelopes travel by sync); relaying stale ones would get the anchor penalised.
  const now = Date.now()
  for (const [index, env] of request.envelopes.entries()) {
    if (agent.holds(env)) continue
    if (env.ts < now - DEFAULT_MAX_ENVELOPE_AGE_MS || env.ts > now + DEFAULT_MAX_CLOCK_SKEW_MS) {
      return {
        outcome: 'refused',
        reason: `envelopes.${index}: stale or ahead of this anchor's clock (ts ${env.ts}); old envelopes travel by sync`,
      }
    }
  }
  const errors = await verifyEnvelopes(request.envelopes)
  const bad = errors.findIndex((error) => error !== undefined)
  if (bad >= 0) return { outcome: 'refused', reason: `envelopes.${bad}: ${errors[bad]!.message}` }
  for (const env of [...request.envelopes].sort(compareEnvelopes)) {
    if (agent.holds(env)) continue
    // The agent runs every gate (network, policy ingress) and logs what it takes in; only that is
    // relayed to the swarm (A8). A denial answers the request in words.
    const outcome = await agent.deliver(env)
    if (outcome?.startsWith('policy') || outcome === 'wrong-network' || outcome === 'thread-id-mismatch') {
      return { outcome: 'refused', reason: `envelopes.${request.envelopes.indexOf(env)}: ${outcome}` }
    }
    if (agent.holds(env)) options.relay.publish(env)
  }
  const deadline = Date.now() + timeoutMs
  let nextStoreCheck = 0
  for (;;) {
    const replica = agent.replica(request.need)
    const winner = replica?.state.winner
    if (winner) return { outcome: 'decided', decide: replica!.get(winner.env) as Envelope<'DECIDE'> }
    if (replica && Date.now() >= nextStoreCheck) {
      // Another anchor may have won: its signed DECIDE can be in our log before our fold accepts it.
      nextStoreCheck = Date.now() + 50
      const record = await options.consensus.getDecide(request.need)
      const decide = record
        ? replica
            .envelopes()
            .find(
              (env): env is Envelope<'DECIDE'> =>
                env.kind === 'DECIDE' &&
                env.payload.proposal === record.proposal &&
                env.payload.epoch === record.epoch,
            )
        : undefined
      if (decide) return { outcome: 'decided', decide }
    }
    if (Date.now() > deadline) {
      const quorum = replica?.state.quorum
      const reason = quorum
        ? `quorum reached for ${quorum.proposal} but no DECIDE yet (consensus store slow or unavailable)`
        : `no quorum: ${request.proposal} lacks K_plan eligible accepting attestations`
      return { outcome: 'pending', reason }
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
