/**
 * The DECIDE service protocol (`/can-swarm/decide/1.0.0`): a peer that holds a plan quorum asks
 * an anchor to decide the NEED. The request is self-contained — the NEED, the PROPOSE and the
 * ATTEST_PLAN envelopes, signed by their senders — so the anchor needs nothing from gossip; the
 * answer carries the signed DECIDE (whichever proposal won) or says why there is none yet.
 * Messages are DAG-CBOR, one length-prefixed message each way.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { checkCborBudget } from '../core/cbor-budget.ts'
import { decodeEnvelope, encodeEnvelope } from '../core/codec.ts'
import { MalformedEnvelopeError } from '../core/errors.ts'
import type { AnyEnvelope, Envelope } from '../core/types.ts'

export const DECIDE_PROTOCOL = '/can-swarm/decide/1.0.0'
/** Most envelopes in one request (NEED + PROPOSE + up to 64 attestations). */
export const MAX_REQUEST_ENVELOPES = 66
/** Largest request or response, in bytes. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024

export interface DecideServiceRequest {
  need: string
  proposal: string
  /** NEED, PROPOSE and the ATTEST_PLAN envelopes of the quorum. */
  envelopes: AnyEnvelope[]
}

export type DecideServiceResponse =
  | { outcome: 'decided'; decide: Envelope<'DECIDE'> }
  | { outcome: 'refused'; reason: string }
  | { outcome: 'pending'; reason: string }

export function encodeRequest(request: DecideServiceRequest): Uint8Array {
  return dagCbor.encode({
    need: request.need,
    proposal: request.proposal,
    envelopes: request.envelopes.map((env) => encodeEnvelope(env)),
  })
}

function fail(message: string, field: string): never {
  throw new MalformedEnvelopeError(`decide request: ${message}`, field)
}

export function decodeRequest(bytes: Uint8Array): DecideServiceRequest {
  if (bytes.length > MAX_MESSAGE_BYTES) fail(`${bytes.length} bytes is over ${MAX_MESSAGE_BYTES}`, 'request')
  checkCborBudget(bytes, { maxItems: 16 + MAX_REQUEST_ENVELOPES, maxDepth: 2 }, 'request')
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (error) {
    fail(`not DAG-CBOR (${(error as Error).message})`, 'request')
  }
  const record = value as { need?: unknown; proposal?: unknown; envelopes?: unknown }
  if (typeof record?.need !== 'string' || typeof record.proposal !== 'string')
    fail('need and proposal must be strings', 'need')
  if (!Array.isArray(record.envelopes) || record.envelopes.length > MAX_REQUEST_ENVELOPES) {
    fail(`envelopes must be a list of at most ${MAX_REQUEST_ENVELOPES}`, 'envelopes')
  }
  const envelopes = record.envelopes.map((item, index) => {
    if (!(item instanceof Uint8Array)) fail('each envelope must be bytes', `envelopes.${index}`)
    return decodeEnvelope(item)
  })
  return { need: record.need, proposal: record.proposal, envelopes }
}

export function encodeResponse(response: DecideServiceResponse): Uint8Array {
  return dagCbor.encode(
    response.outcome === 'decided'
      ? { outcome: 'decided', decide: encodeEnvelope(response.decide) }
      : { outcome: response.outcome, reason: response.reason },
  )
}

export function decodeResponse(bytes: Uint8Array): DecideServiceResponse {
  if (bytes.length > MAX_MESSAGE_BYTES) fail(`${bytes.length} bytes is over ${MAX_MESSAGE_BYTES}`, 'response')
  checkCborBudget(bytes, { maxItems: 16, maxDepth: 1 }, 'response')
  let value: { outcome?: unknown; decide?: unknown; reason?: unknown }
  try {
    value = dagCbor.decode(bytes)
  } catch (error) {
    fail(`not DAG-CBOR (${(error as Error).message})`, 'response')
  }
  if (value?.outcome === 'decided' && value.decide instanceof Uint8Array) {
    const decide = decodeEnvelope(value.decide)
    if (decide.kind !== 'DECIDE') fail('the answer is not a DECIDE', 'decide')
    return { outcome: 'decided', decide: decide as Envelope<'DECIDE'> }
  }
  if ((value?.outcome === 'refused' || value?.outcome === 'pending') && typeof value.reason === 'string') {
    return { outcome: value.outcome, reason: value.reason }
  }
  fail('unknown response', 'outcome')
}
