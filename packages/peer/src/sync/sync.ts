/**
 * Serving and pulling envelope sync over libp2p (see protocol.ts).
 *
 * @example
 * ```ts
 * await serveSync(libp2p, { envelopes: () => allEnvelopes() })
 * const missing = await pullEnvelopes(libp2p, peerId, { have: myIds })
 * ```
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { compareEnvelopes } from '../core/codec.ts'
import type { AnyEnvelope, Cid } from '../core/types.ts'
import {
  decodeSyncRequest,
  decodeSyncResponse,
  encodeSyncRequest,
  encodeSyncResponse,
  MAX_PAGE_ENVELOPES,
  MAX_SYNC_MESSAGE_BYTES,
  SYNC_PROTOCOL,
} from './protocol.ts'

export interface SyncSource {
  /** Every envelope this peer serves (of the given threads, or all). */
  envelopes(threads?: readonly string[]): Iterable<AnyEnvelope>
}

/** Serves sync pulls. Returns a function that stops serving. */
export async function serveSync(
  libp2p: Libp2p,
  source: SyncSource,
  options: { timeoutMs?: number; maxInboundStreams?: number } = {},
): Promise<() => Promise<void>> {
  const handle = async (stream: Stream): Promise<void> => {
    const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000)
    const framed = lpStream(stream, { maxDataLength: MAX_SYNC_MESSAGE_BYTES })
    try {
      const request = decodeSyncRequest((await framed.read({ signal })).subarray())
      const have = new Set(request.have)
      const missing: AnyEnvelope[] = []
      for (const env of source.envelopes(request.threads)) if (!have.has(env.id)) missing.push(env)
      missing.sort(compareEnvelopes)
      await framed.write(
        encodeSyncResponse({
          envelopes: missing.slice(0, MAX_PAGE_ENVELOPES),
          more: missing.length > MAX_PAGE_ENVELOPES,
        }),
        { signal },
      )
      await stream.close()
    } catch (error) {
      stream.abort(error instanceof Error ? error : new Error(String(error)))
    }
  }
  await libp2p.handle(SYNC_PROTOCOL, (stream) => void handle(stream), {
    maxInboundStreams: options.maxInboundStreams ?? 8,
  })
  return () => libp2p.unhandle(SYNC_PROTOCOL)
}

/**
 * Pulls every envelope `peer` has that `have` lacks, page by page (at most `maxPages`). The caller
 * verifies and delivers what comes back.
 */
export async function pullEnvelopes(
  libp2p: Libp2p,
  peer: PeerId | Multiaddr,
  options: {
    have: Iterable<Cid>
    threads?: string[]
    timeoutMs?: number
    maxPages?: number
    signal?: AbortSignal
  },
): Promise<AnyEnvelope[]> {
  const have = new Set(options.have)
  const pulled: AnyEnvelope[] = []
  for (let page = 0; page < (options.maxPages ?? 64); page += 1) {
    const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000)
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
    const stream = await libp2p.dialProtocol(peer, SYNC_PROTOCOL, { signal })
    let more = false
    try {
      const framed = lpStream(stream, { maxDataLength: MAX_SYNC_MESSAGE_BYTES })
      const request =
        options.threads === undefined ? { have: [...have] } : { have: [...have], threads: options.threads }
      await framed.write(encodeSyncRequest(request), { signal })
      const response = decodeSyncResponse((await framed.read({ signal })).subarray())
      for (const env of response.envelopes) {
        if (have.has(env.id)) continue
        have.add(env.id)
        pulled.push(env)
      }
      more = response.more && response.envelopes.length > 0
    } finally {
      await stream.close().catch(() => stream.abort(new Error('closed')))
    }
    if (!more) break
  }
  return pulled
}
