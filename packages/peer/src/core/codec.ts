/**
 * Envelopes on the wire (docs/PROTOCOL.md §2): the validating readers of DAG-CBOR bytes and dag-json
 * text, the dag-json writer and the protocol's total order, with the canonical bytes, ids and
 * `did:key`s of `canonical.ts` re-exported.
 *
 * Pure and isomorphic: no `node:` modules, no DOM, no WebCrypto. SHA-256 comes from
 * `@noble/hashes` so that ids are computed synchronously in every runtime.
 *
 * @example
 * ```ts
 * const bytes = encodeEnvelope(envelope)   // the wire form (no `id`)
 * const received = decodeEnvelope(bytes)   // validated, `id` recomputed from the bytes
 * received.id === envelope.id              // true for an unaltered envelope
 * ```
 */

import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import {
  cidOfDagCbor,
  encodeEnvelopeObject,
  errorText,
  MAX_ENVELOPE_BYTES,
  MAX_PAYLOAD_BYTES,
  wireObject,
} from './canonical.ts'
import { checkCborBudget, ENVELOPE_CBOR_BUDGET } from './cbor-budget.ts'
import { compactDecoded, intern } from './compact.ts'
import { decodeDagJson, type JsonBudget } from './dag-json.ts'
import {
  InvalidArgumentError,
  MalformedEnvelopeError,
  OversizedEnvelopeError,
  WrongIdError,
} from './errors.ts'
import { validateEnvelopeStructure } from './schemas.ts'
import type { AnyEnvelope, Envelope } from './types.ts'

export {
  cidOfDagCbor,
  cidProblem,
  computeEnvelopeId,
  didFromPublicKey,
  didKeyProblem,
  encodeCanonical,
  encodeEnvelope,
  hashCanonical,
  MAX_CID_CHARS,
  MAX_ENVELOPE_BYTES,
  MAX_PAYLOAD_BYTES,
  publicKeyFromDid,
  sha256Hex,
  signingBytes,
  threadIdOf,
} from './canonical.ts'

/**
 * Longest dag-json text {@link envelopeFromJson} reads, in UTF-16 code units. JSON is larger than
 * CBOR (base64 bytes, escapes), so the text limit is looser; the canonical encoding of what it
 * holds must still fit {@link MAX_ENVELOPE_BYTES}.
 */
export const MAX_ENVELOPE_JSON_CHARS = 3 * MAX_ENVELOPE_BYTES

/**
 * The structure dag-json text of one envelope may carry: the CBOR budget of an envelope, and far
 * more object keys than a schema-valid envelope has (64 embedded attestations, 256 tasks).
 */
export const ENVELOPE_JSON_BUDGET: JsonBudget = Object.freeze({ ...ENVELOPE_CBOR_BUDGET, maxKeys: 16_384 })

const textDecoder = new TextDecoder('utf-8', { fatal: true })

/**
 * Reads an envelope from its wire form: checks the size limit, decodes DAG-CBOR, validates the
 * structure and payload ({@link validateEnvelope}), requires the bytes to be canonical and
 * computes the `id` from them. Does not verify the signature (see `verifyEnvelope`).
 *
 * @throws {OversizedEnvelopeError} field `envelope` over {@link MAX_ENVELOPE_BYTES}, or field
 *   `payload` over {@link MAX_PAYLOAD_BYTES}.
 * @throws {MalformedEnvelopeError} when the bytes are not canonical DAG-CBOR of an envelope.
 * @throws {SchemaViolationError} when the payload does not match its kind's schema.
 * @throws {UnsupportedVersionError} / {UnknownKindError} for a version or kind this peer lacks.
 */
export function decodeEnvelope(bytes: Uint8Array): AnyEnvelope {
  if (!(bytes instanceof Uint8Array)) {
    throw new InvalidArgumentError('bytes must be a Uint8Array holding a DAG-CBOR envelope', 'bytes')
  }
  if (bytes.length > MAX_ENVELOPE_BYTES) {
    throw new OversizedEnvelopeError('envelope', bytes.length, MAX_ENVELOPE_BYTES)
  }
  // The shape is bounded before anything is built (a megabyte of empty maps is no envelope).
  checkCborBudget(bytes, ENVELOPE_CBOR_BUDGET, 'envelope')
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (error) {
    throw new MalformedEnvelopeError(
      `envelope bytes are not valid DAG-CBOR (${errorText(error)}): send the output of encodeEnvelope`,
      undefined,
      { cause: error },
    )
  }
  if (typeof value === 'object' && value !== null && Object.hasOwn(value, 'id')) {
    throw new MalformedEnvelopeError(
      'the wire form of an envelope carries no id (the receiver computes it): encode with encodeEnvelope',
      'id',
    )
  }
  // A payload cannot be larger than the whole envelope, so small envelopes skip the payload re-encode.
  const signed = validateEnvelopeStructure(value, { payloadMayBeOversized: bytes.length > MAX_PAYLOAD_BYTES })
  const canonical = encodeEnvelopeObject(wireObject(signed))
  if (!bytesEqual(canonical, bytes)) {
    throw new MalformedEnvelopeError(
      'envelope bytes are not the canonical DAG-CBOR encoding of the envelope (keys unsorted, floats, or non-minimal lengths): encode with encodeEnvelope',
    )
  }
  // Kept for as long as its thread: no view into the input (a frame), repeated strings shared.
  const envelope = compactDecoded(signed) as AnyEnvelope
  envelope.id = intern(cidOfDagCbor(bytes))
  if (envelope.kind === 'DECIDE') sharePool(envelope as Envelope<'DECIDE'>)
  return envelope
}

/** DECIDE pools recently decoded, by the hash of their encoding (each DECIDE embeds the pool). */
const pools = new Map<string, Envelope<'DECIDE'>['payload']['pool']>()
/** Distinct pools {@link sharePool} remembers. */
export const SHARED_POOLS = 64

/**
 * Every DECIDE under one pool snapshot carries all of it (up to 256 verifier entries): a thread
 * held for long keeps a copy each. Equal pools (equal canonical bytes) share one frozen object.
 */
function sharePool(decide: Envelope<'DECIDE'>): void {
  const key = bytesToHex(sha256(encodeEnvelopeObject({ pool: decide.payload.pool })))
  const known = pools.get(key)
  if (known) {
    decide.payload.pool = known
    return
  }
  if (pools.size >= SHARED_POOLS) pools.delete(pools.keys().next().value!)
  pools.set(key, deepFreeze(decide.payload.pool))
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

/**
 * The deterministic dag-json text of a signed envelope, `id` included. Byte strings appear as
 * `{"/":{"bytes":"<base64>"}}`; keys are sorted, so equal envelopes give equal text.
 *
 * @throws {InvalidArgumentError} field `env` when a field has no dag-json encoding.
 */
export function envelopeToJson(env: Envelope): string {
  const object = wireObject(env)
  object.id = env.id
  let bytes: Uint8Array
  try {
    bytes = dagJson.encode(object)
  } catch (error) {
    throw new InvalidArgumentError(
      `envelope has no dag-json encoding (${errorText(error)}): validate it with validateEnvelope first`,
      'env',
    )
  }
  return textDecoder.decode(bytes)
}

/**
 * Reads an envelope from dag-json text ({@link envelopeToJson}): validates it, computes its id and,
 * when the text carries an `id`, checks it. Does not verify the signature.
 *
 * @throws {OversizedEnvelopeError} field `envelope` when the text or its canonical encoding is over
 *   the limit, field `payload` when the payload is.
 * @throws {MalformedEnvelopeError} when the text is not dag-json of an envelope.
 * @throws {SchemaViolationError} when the payload does not match its kind's schema.
 * @throws {WrongIdError} when the carried `id` is not the envelope's content hash.
 */
export function envelopeFromJson(text: string): AnyEnvelope {
  if (typeof text !== 'string') {
    throw new InvalidArgumentError('text must be a string holding a dag-json envelope', 'text')
  }
  if (text.length > MAX_ENVELOPE_JSON_CHARS) {
    throw new OversizedEnvelopeError('envelope', text.length, MAX_ENVELOPE_JSON_CHARS)
  }
  let value: unknown
  try {
    // Bounded and linear in the text (the reference decoder costs ~100 ns and tens of bytes per byte).
    value = decodeDagJson(text, ENVELOPE_JSON_BUDGET, 'envelope')
  } catch (error) {
    throw new MalformedEnvelopeError(
      `envelope text is not valid dag-json (${errorText(error)}): send the output of envelopeToJson`,
      undefined,
      { cause: error },
    )
  }
  let carriedId: unknown
  let withoutId: unknown = value
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.hasOwn(value, 'id')) {
    const { id, ...rest } = value as Record<string, unknown>
    carriedId = id
    withoutId = rest
  }
  if (carriedId !== undefined && typeof carriedId !== 'string') {
    throw new MalformedEnvelopeError('id must be a CID string', 'id')
  }
  const signed = validateEnvelopeStructure(withoutId, { payloadMayBeOversized: true })
  const canonical = encodeEnvelopeObject(wireObject(signed))
  if (canonical.length > MAX_ENVELOPE_BYTES) {
    throw new OversizedEnvelopeError('envelope', canonical.length, MAX_ENVELOPE_BYTES)
  }
  const id = cidOfDagCbor(canonical)
  if (carriedId !== undefined && carriedId !== id) throw new WrongIdError(id, carriedId)
  const envelope = compactDecoded(signed) as AnyEnvelope
  envelope.id = intern(id)
  return envelope
}

/**
 * The protocol's total order (docs/PROTOCOL.md §2): by `lamport`, then `sender`, then `id`, comparing
 * strings by UTF-16 code units (`<`), never by locale. Returns a negative number, zero or a
 * positive number, as `Array.prototype.sort` expects.
 */
export function compareEnvelopes(
  a: Pick<Envelope, 'lamport' | 'sender' | 'id'>,
  b: Pick<Envelope, 'lamport' | 'sender' | 'id'>,
): number {
  if (a.lamport !== b.lamport) return a.lamport < b.lamport ? -1 : 1
  if (a.sender !== b.sender) return a.sender < b.sender ? -1 : 1
  if (a.id !== b.id) return a.id < b.id ? -1 : 1
  return 0
}

// ---------------------------------------------------------------- helpers

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
