/**
 * What one gossip message carries: either one envelope's wire bytes (then the gossip message id is
 * the SHA-256 inside the envelope's CID, so gossip dedupe is envelope dedupe), or a batch frame —
 * the DAG-CBOR array of several envelopes' wire bytes published together in one short window.
 * An envelope's wire form is a CBOR map, a batch a CBOR array, so the first byte tells them apart.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import { checkCborBudget } from '../core/cbor-budget.ts'
import { MAX_ENVELOPE_BYTES } from '../core/codec.ts'
import { MalformedEnvelopeError, OversizedEnvelopeError } from '../core/errors.ts'

/** Most envelopes in one batch frame. */
export const MAX_BATCH_ENVELOPES = 256
/** Largest gossip message, in bytes (one envelope at its size limit, or a batch). */
export const MAX_FRAME_BYTES = MAX_ENVELOPE_BYTES + 1024

/** The gossip message id of a frame: SHA-256 of its bytes (for a single envelope, its id's digest). */
export function frameId(data: Uint8Array): Uint8Array {
  return sha256(data)
}

/** True when `data` is a batch frame (a CBOR array), false for a single envelope (a CBOR map). */
export function isBatchFrame(data: Uint8Array): boolean {
  const major = (data[0] ?? 0) >> 5
  return major === 4
}

/** Encodes envelopes' wire bytes as one frame: the bytes themselves for one, else a batch. */
export function encodeFrame(envelopes: readonly Uint8Array[], forceBatch = false): Uint8Array {
  if (envelopes.length === 1 && !forceBatch) return envelopes[0]!
  return dagCbor.encode(envelopes)
}

/**
 * The envelopes' wire bytes in a frame.
 *
 * @throws {OversizedEnvelopeError} when the frame is over {@link MAX_FRAME_BYTES}.
 * @throws {MalformedEnvelopeError} when a batch is not an array of 1…256 byte strings.
 */
export function decodeFrame(data: Uint8Array): Uint8Array[] {
  if (data.length > MAX_FRAME_BYTES) throw new OversizedEnvelopeError('frame', data.length, MAX_FRAME_BYTES)
  if (!isBatchFrame(data)) return [data]
  // A batch is a flat array of byte strings: checked before anything is built.
  checkCborBudget(data, { maxItems: MAX_BATCH_ENVELOPES + 1, maxDepth: 1 }, 'frame')
  let value: unknown
  try {
    value = dagCbor.decode(data)
  } catch (error) {
    throw new MalformedEnvelopeError('batch frame is not valid DAG-CBOR', 'frame', { cause: error })
  }
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    value.length > MAX_BATCH_ENVELOPES ||
    !value.every((item) => item instanceof Uint8Array)
  ) {
    throw new MalformedEnvelopeError(
      `a batch frame is an array of 1 to ${MAX_BATCH_ENVELOPES} envelope byte strings`,
      'frame',
    )
  }
  return value as Uint8Array[]
}
