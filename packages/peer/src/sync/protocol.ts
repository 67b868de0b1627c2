/**
 * Envelope sync (`/can-swarm/sync/1.0.0`): a pull-based anti-entropy protocol. Gossip delivers
 * what is published while peers are connected; sync fills in what one side missed — a partition,
 * a restart, a late join. The puller sends the ids it holds; the server answers with envelopes the
 * puller lacks, in the protocol's total order, a page at a time. Receivers verify every envelope
 * as they would from gossip: sync carries signed facts, never trust.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { checkCborBudget } from '../core/cbor-budget.ts'
import { decodeEnvelope, encodeEnvelope } from '../core/codec.ts'
import { MalformedEnvelopeError } from '../core/errors.ts'
import type { AnyEnvelope, Cid } from '../core/types.ts'

export const SYNC_PROTOCOL = '/can-swarm/sync/1.0.0'
/** Most ids one pull may list. */
export const MAX_HAVE_IDS = 200_000
/** Most envelopes in one answer (the puller asks again while `more` is set). */
export const MAX_PAGE_ENVELOPES = 512
/** Largest message, in bytes. */
export const MAX_SYNC_MESSAGE_BYTES = 16 * 1024 * 1024

export interface SyncRequest {
  /** Ids of every envelope the puller holds (of the threads it cares about). */
  have: Cid[]
  /** Only these threads; all when absent. */
  threads?: string[]
}

export interface SyncResponse {
  envelopes: AnyEnvelope[]
  /** More envelopes are waiting: pull again with the new ids added. */
  more: boolean
}

function fail(message: string, field: string): never {
  throw new MalformedEnvelopeError(`sync: ${message}`, field)
}

export function encodeSyncRequest(request: SyncRequest): Uint8Array {
  return dagCbor.encode(
    request.threads === undefined ? { have: request.have } : { have: request.have, threads: request.threads },
  )
}

export function decodeSyncRequest(bytes: Uint8Array): SyncRequest {
  checkCborBudget(bytes, { maxItems: MAX_HAVE_IDS + 1024, maxDepth: 2 }, 'request')
  let value: { have?: unknown; threads?: unknown }
  try {
    value = dagCbor.decode(bytes)
  } catch (error) {
    fail(`not DAG-CBOR (${(error as Error).message})`, 'request')
  }
  if (
    !Array.isArray(value?.have) ||
    value.have.length > MAX_HAVE_IDS ||
    value.have.some((id) => typeof id !== 'string')
  ) {
    fail(`have must list at most ${MAX_HAVE_IDS} ids`, 'have')
  }
  if (
    value.threads !== undefined &&
    (!Array.isArray(value.threads) || value.threads.some((t) => typeof t !== 'string'))
  ) {
    fail('threads must list thread ids', 'threads')
  }
  return value.threads === undefined
    ? { have: value.have as Cid[] }
    : { have: value.have as Cid[], threads: value.threads as string[] }
}

export function encodeSyncResponse(response: SyncResponse): Uint8Array {
  return dagCbor.encode({
    envelopes: response.envelopes.map((env) => encodeEnvelope(env)),
    more: response.more,
  })
}

export function decodeSyncResponse(bytes: Uint8Array): SyncResponse {
  checkCborBudget(bytes, { maxItems: MAX_PAGE_ENVELOPES + 16, maxDepth: 2 }, 'response')
  let value: { envelopes?: unknown; more?: unknown }
  try {
    value = dagCbor.decode(bytes)
  } catch (error) {
    fail(`not DAG-CBOR (${(error as Error).message})`, 'response')
  }
  if (
    !Array.isArray(value?.envelopes) ||
    value.envelopes.length > MAX_PAGE_ENVELOPES ||
    typeof value.more !== 'boolean'
  ) {
    fail('malformed answer', 'envelopes')
  }
  return {
    envelopes: value.envelopes.map((item, index) => {
      if (!(item instanceof Uint8Array)) fail('each envelope must be bytes', `envelopes.${index}`)
      return decodeEnvelope(item)
    }),
    more: value.more,
  }
}
