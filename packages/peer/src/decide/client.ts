/**
 * Client of the DECIDE service: asks an anchor to decide a NEED with a self-contained quorum and
 * returns its answer. The DECIDE it brings back is signed by the anchor and verifiable by anyone.
 *
 * @example
 * ```ts
 * const answer = await requestDecide(network.libp2p, anchorPeerId, { need, proposal, envelopes })
 * if (answer.outcome === 'decided') await agent.deliver(answer.decide)
 * ```
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import {
  DECIDE_PROTOCOL,
  type DecideServiceRequest,
  type DecideServiceResponse,
  decodeResponse,
  encodeRequest,
  MAX_MESSAGE_BYTES,
} from './protocol.ts'

export interface RequestDecideOptions {
  /** Gives up after this long. @default 10 000 */
  timeoutMs?: number
  /** Cancels the request. @default none */
  signal?: AbortSignal
}

export async function requestDecide(
  libp2p: Libp2p,
  anchor: PeerId | Multiaddr,
  request: DecideServiceRequest,
  options: RequestDecideOptions = {},
): Promise<DecideServiceResponse> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 10_000)
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  const stream = await libp2p.dialProtocol(anchor, DECIDE_PROTOCOL, { signal })
  try {
    const framed = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
    await framed.write(encodeRequest(request), { signal })
    const answer = await framed.read({ signal })
    return decodeResponse(answer.subarray())
  } finally {
    await stream.close().catch(() => stream.abort(new Error('closed')))
  }
}
