/**
 * Serving and pulling envelope sync over libp2p (protocol.ts; reconciliation in reconcile.ts). A
 * pull is one session: one stream, requests one at a time. Frames are length-prefixed, at most
 * {@link MAX_SYNC_MESSAGE_BYTES} either way, and the read buffer is set to match (a stream's
 * default would be 4 MiB). The server bounds what each remote peer may cost it: sessions at once,
 * requests per second and answer bytes per second (token buckets), refusing the rest with a
 * typed answer instead of working.
 *
 * @example
 * ```ts
 * const index = new SyncIndex<AnyEnvelope>()
 * const stop = await serveSync(libp2p, index)
 * await pullEnvelopes(libp2p, peerId, { index, deliver: async (page) => { … } })
 * ```
 */
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { decodeEnvelope, encodeEnvelope } from '../core/codec.ts'
import { MalformedEnvelopeError } from '../core/errors.ts'
import type { AnyEnvelope } from '../core/types.ts'
import {
  DEFAULT_PAGE_BYTES,
  decodeSyncRequest,
  decodeSyncResponse,
  encodeSyncRequest,
  encodeSyncResponse,
  MAX_SYNC_MESSAGE_BYTES,
  SYNC_PROTOCOL,
  SyncRefusedError,
  type SyncRequest,
  type SyncResponse,
} from './protocol.ts'
import { answerSyncRequest, type ReconcileReport, reconcile, threadRange } from './reconcile.ts'
import { SyncIndex } from './sync-index.ts'

/** What a server serves: its live index, or a fixed set of envelopes (indexed once, at start). */
export type SyncSource = SyncIndex<AnyEnvelope> | { envelopes(): Iterable<AnyEnvelope> }

/** Limits of {@link serveSync}; every one is per remote peer unless it says otherwise. */
export interface ServeSyncOptions {
  /** Longest wait for a session's next request, ms. @default 10 000 */
  timeoutMs?: number
  /** Sessions at once. @default 2 */
  maxSessionsPerPeer?: number
  /** Sessions at once, all peers together. @default 64 */
  maxSessions?: number
  /** Request tokens per second (a `ranges` request costs one per 16 ranges, others one). @default 50 */
  requestsPerSecond?: number
  /** Request tokens held at most (a burst). @default 100 */
  requestBurst?: number
  /** Answer bytes per second. @default 33 554 432 (32 MiB) */
  bytesPerSecond?: number
  /** Answer bytes held at most. @default 67 108 864 (64 MiB) */
  byteBurst?: number
  /** Envelope bytes after which a page ends. @default {@link DEFAULT_PAGE_BYTES} */
  pageBytes?: number
  /** libp2p's limit of inbound sync streams per connection. @default 4 */
  maxInboundStreams?: number
}

/** Defaults of {@link ServeSyncOptions}. */
export const SYNC_SERVER_DEFAULTS = Object.freeze({
  timeoutMs: 10_000,
  maxSessionsPerPeer: 2,
  maxSessions: 64,
  requestsPerSecond: 50,
  requestBurst: 100,
  bytesPerSecond: 32 * 1024 * 1024,
  byteBurst: 64 * 1024 * 1024,
  pageBytes: DEFAULT_PAGE_BYTES,
  maxInboundStreams: 4,
})

/** Remote peers whose budgets a server remembers (the idle ones are forgotten first). */
export const MAX_TRACKED_PEERS = 4096

/** Options of the length-prefixed framing, both ends. */
const FRAMING = { maxDataLength: MAX_SYNC_MESSAGE_BYTES, maxBufferSize: MAX_SYNC_MESSAGE_BYTES + 16 }

/** A token bucket: `rate` tokens a second, at most `burst` held. */
class TokenBucket {
  readonly rate: number
  readonly burst: number
  #tokens: number
  #at: number
  constructor(rate: number, burst: number) {
    this.rate = rate
    this.burst = burst
    this.#tokens = burst
    this.#at = Date.now()
  }

  #refill(): void {
    const now = Date.now()
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rate) / 1000)
    this.#at = now
  }

  /** Ms until `cost` tokens are there (0: there now). */
  wait(cost: number): number {
    this.#refill()
    return this.#tokens >= cost ? 0 : Math.ceil(((cost - this.#tokens) * 1000) / this.rate)
  }

  /** Takes `cost` tokens (the balance may go below zero: later requests wait for it). */
  take(cost: number): void {
    this.#refill()
    this.#tokens -= cost
  }
}

interface PeerBudget {
  sessions: number
  requests: TokenBucket
  bytes: TokenBucket
}

function indexOf(source: SyncSource): SyncIndex<AnyEnvelope> {
  if (source instanceof SyncIndex) return source
  const index = new SyncIndex<AnyEnvelope>()
  for (const env of source.envelopes()) index.add(env)
  return index
}

function isEndOfStream(stream: Stream, error: unknown): boolean {
  return stream.remoteWriteStatus !== 'writable' && (error as Error)?.name === 'UnexpectedEOFError'
}

/** Serves sync pulls from `source`. Returns a function that stops serving. */
export async function serveSync(
  libp2p: Libp2p,
  source: SyncSource,
  options: ServeSyncOptions = {},
): Promise<() => Promise<void>> {
  const limits = { ...SYNC_SERVER_DEFAULTS, ...options }
  const index = indexOf(source)
  const budgets = new Map<string, PeerBudget>()
  let sessions = 0

  const budgetOf = (peer: string): PeerBudget => {
    let budget = budgets.get(peer)
    if (budget) return budget
    if (budgets.size >= MAX_TRACKED_PEERS) {
      for (const [key, other] of budgets) {
        if (other.sessions > 0) continue
        budgets.delete(key)
        break
      }
    }
    budget = {
      sessions: 0,
      requests: new TokenBucket(limits.requestsPerSecond, limits.requestBurst),
      bytes: new TokenBucket(limits.bytesPerSecond, limits.byteBurst),
    }
    budgets.set(peer, budget)
    return budget
  }

  const handle = async (stream: Stream, connection: Connection): Promise<void> => {
    const framed = lpStream(stream, FRAMING)
    const send = (response: SyncResponse): Promise<void> =>
      framed.write(encodeSyncResponse(response), { signal: AbortSignal.timeout(limits.timeoutMs) })
    const budget = budgetOf(connection.remotePeer.toString())
    try {
      if (budget.sessions >= limits.maxSessionsPerPeer || sessions >= limits.maxSessions) {
        await send({ op: 'refused', reason: 'busy', retryMs: 1000 })
        await stream.close()
        return
      }
    } catch (error) {
      stream.abort(error instanceof Error ? error : new Error(String(error)))
      return
    }
    budget.sessions += 1
    sessions += 1
    try {
      for (;;) {
        let bytes: Uint8Array
        try {
          bytes = (await framed.read({ signal: AbortSignal.timeout(limits.timeoutMs) })).subarray()
        } catch (error) {
          if (isEndOfStream(stream, error)) break
          throw error
        }
        let request: SyncRequest
        try {
          request = decodeSyncRequest(bytes)
        } catch (error) {
          if (!(error instanceof MalformedEnvelopeError)) throw error
          await send({
            op: 'refused',
            reason: 'malformed',
            retryMs: 0,
            ...(error.field ? { field: error.field } : {}),
          })
          break
        }
        const cost = request.op === 'ranges' ? Math.ceil(request.ranges.length / 16) : 1
        const wait = Math.max(budget.requests.wait(cost), budget.bytes.wait(0))
        if (wait > 0) {
          await send({ op: 'refused', reason: 'rate', retryMs: wait })
          continue
        }
        budget.requests.take(cost)
        const answer = encodeSyncResponse(answerSyncRequest(index, request, encodeEnvelope, limits))
        budget.bytes.take(answer.length)
        await framed.write(answer, { signal: AbortSignal.timeout(limits.timeoutMs) })
      }
      await stream.close()
    } catch (error) {
      stream.abort(error instanceof Error ? error : new Error(String(error)))
    } finally {
      budget.sessions -= 1
      sessions -= 1
    }
  }
  await libp2p.handle(SYNC_PROTOCOL, (stream, connection) => void handle(stream, connection), {
    maxInboundStreams: limits.maxInboundStreams,
  })
  return () => libp2p.unhandle(SYNC_PROTOCOL)
}

/** Options of {@link pullEnvelopes}. */
export interface PullOptions {
  /** What this peer holds (the puller compares fingerprints against it). */
  index: SyncIndex<AnyEnvelope>
  /** Takes each page of envelopes this peer lacked, decoded but not verified, in the set's order. */
  deliver(envelopes: AnyEnvelope[]): Promise<void>
  /** Ids held but not in `index` (pending, refused): not fetched again. */
  holds?(id: string): boolean
  /** Only these threads. @default all */
  threads?: readonly string[]
  /** Longest wait for one answer, ms. @default 10 000 */
  timeoutMs?: number
  /** Most requests in this pull (the next pull goes on). @default 4 096 */
  maxRequests?: number
  /** Times one request is sent again after a `rate` refusal. @default 8 */
  maxRetries?: number
  /** Stops the pull. @default none */
  signal?: AbortSignal
}

/** Waits `ms`, or rejects with `signal`'s reason as soon as it aborts. */
function waitOrAbort(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const done = (): void => {
      signal?.removeEventListener('abort', aborted)
      resolve()
    }
    const aborted = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', aborted, { once: true })
  })
}

/** Longest wait a `rate` refusal can impose on a puller, ms. */
export const MAX_RETRY_WAIT_MS = 5_000

/**
 * Pulls every envelope `peer` has that `index` lacks, in one session, handing pages to `deliver`.
 * @throws {SyncRefusedError} when the server refuses (`busy`, `malformed`, or `rate` too often)
 * @throws {MalformedEnvelopeError} when it answers outside the protocol
 */
export async function pullEnvelopes(
  libp2p: Libp2p,
  peer: PeerId | Multiaddr,
  options: PullOptions,
): Promise<ReconcileReport> {
  const timeoutMs = options.timeoutMs ?? 10_000
  const signalFor = (): AbortSignal => {
    const timeout = AbortSignal.timeout(timeoutMs)
    return options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  }
  const stream = await libp2p.dialProtocol(peer, SYNC_PROTOCOL, { signal: signalFor() })
  const framed = lpStream(stream, FRAMING)
  const exchange = async (request: SyncRequest): Promise<SyncResponse> => {
    const bytes = encodeSyncRequest(request)
    for (let attempt = 0; ; attempt += 1) {
      const signal = signalFor()
      await framed.write(bytes, { signal })
      const response = decodeSyncResponse((await framed.read({ signal })).subarray())
      if (response.op !== 'refused') return response
      if (response.reason !== 'rate' || attempt >= (options.maxRetries ?? 8))
        throw new SyncRefusedError(response.reason, response.retryMs, response.field)
      await waitOrAbort(Math.min(response.retryMs, MAX_RETRY_WAIT_MS), options.signal)
    }
  }
  try {
    const report = await reconcile({
      index: options.index,
      exchange,
      decode: decodeEnvelope,
      deliver: options.deliver,
      ...(options.holds ? { holds: options.holds } : {}),
      ...(options.threads ? { ranges: [...options.threads].sort().map(threadRange) } : {}),
      ...(options.maxRequests === undefined ? {} : { maxRequests: options.maxRequests }),
    })
    await stream.close({ signal: signalFor() })
    return report
  } catch (error) {
    stream.abort(error instanceof Error ? error : new Error(String(error)))
    throw error
  }
}
