/**
 * Canonical encoding of envelopes (docs/PROTOCOL.md §2): DAG-CBOR bytes, CIDv1 ids, `did:key`
 * identifiers, dag-json text, and the protocol's total order.
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
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as digest from 'multiformats/hashes/digest'
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
import type { AnyEnvelope, Cid, Did, Envelope, UnsignedEnvelope } from './types.ts'

/** Largest canonical (DAG-CBOR) encoding of an envelope's `payload`, in bytes (1 MiB, docs/PROTOCOL.md §10). */
export const MAX_PAYLOAD_BYTES = 1_048_576

/** Largest wire encoding of a whole envelope, in bytes: the payload limit plus 64 KiB for the header. */
export const MAX_ENVELOPE_BYTES = 1_048_576 + 65_536

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

/** Multicodec code of DAG-CBOR, the codec of envelope ids. */
const DAG_CBOR_CODE = 0x71
/** Multihash code of SHA2-256. */
const SHA2_256_CODE = 0x12
/** Multicodec prefix of an Ed25519 public key (`ed25519-pub`, varint 0xed). */
const ED25519_PUB_PREFIX_0 = 0xed
const ED25519_PUB_PREFIX_1 = 0x01
/** Length of an Ed25519 public key, in bytes. */
const ED25519_PUBLIC_KEY_BYTES = 32
const DID_KEY_PREFIX = 'did:key:'
/** Longest string accepted as a `did:key` (an Ed25519 one is 56 characters). */
const MAX_DID_CHARS = 128
/**
 * Longest string accepted as a CID (a sha2-256 CIDv1 in base32 is 59 characters). With this bound
 * the header of a schema-valid envelope stays well under the 64 KiB that MAX_ENVELOPE_BYTES allows
 * beside the payload.
 */
export const MAX_CID_CHARS = 128

const textDecoder = new TextDecoder('utf-8', { fatal: true })

// ---------------------------------------------------------------- bytes and hashes

/**
 * The canonical (deterministic) DAG-CBOR encoding of a value: map keys sorted, integers minimal,
 * the same bytes in every runtime. `undefined`, `NaN`, `Infinity` and non-plain values cannot be
 * encoded; omit `undefined` properties before encoding.
 *
 * @throws {InvalidArgumentError} field `value` when the value has no DAG-CBOR encoding.
 */
export function encodeCanonical(value: unknown): Uint8Array {
  try {
    return dagCbor.encode(value)
  } catch (error) {
    throw new InvalidArgumentError(
      `value has no canonical DAG-CBOR encoding (${errorText(error)}): use only plain objects, arrays, strings, integers, booleans, null and Uint8Array`,
      'value',
    )
  }
}

/** Lowercase hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return bytesToHex(sha256(bytes))
}

/**
 * Lowercase hex SHA-256 of the canonical encoding of `value` ({@link encodeCanonical}); the core
 * uses it for state hashes that must match byte for byte on every peer.
 *
 * @throws {InvalidArgumentError} field `value` when the value has no DAG-CBOR encoding.
 */
export function hashCanonical(value: unknown): string {
  return sha256Hex(encodeCanonical(value))
}

/**
 * The CIDv1 (dag-cbor, sha2-256, base32) of already-canonical DAG-CBOR bytes: for an envelope's
 * wire bytes ({@link encodeEnvelope}), its id.
 */
export function cidOfDagCbor(bytes: Uint8Array): Cid {
  return CID.createV1(DAG_CBOR_CODE, digest.create(SHA2_256_CODE, sha256(bytes))).toString()
}

// ---------------------------------------------------------------- envelopes

/**
 * The envelope fields that are signed, as a plain object ready for DAG-CBOR: fields are picked by
 * name (so stray properties such as `id` or `sig` never leak in) and `undefined` optionals omitted.
 */
function unsignedObject(unsigned: UnsignedEnvelope): Record<string, unknown> {
  const object: Record<string, unknown> = {
    v: unsigned.v,
    net: unsigned.net,
    kind: unsigned.kind,
    thread: unsigned.thread,
    sender: unsigned.sender,
    lamport: unsigned.lamport,
    ts: unsigned.ts,
    payload: unsigned.payload,
    refs: unsigned.refs,
    policy: unsigned.policy,
    epoch: unsigned.epoch,
  }
  if (unsigned.evalDigest !== undefined) object.evalDigest = unsigned.evalDigest
  if (unsigned.fence !== undefined) object.fence = unsigned.fence
  return object
}

/** The wire object of a signed envelope: every field but `id`. */
function wireObject(signed: Omit<Envelope, 'id'>): Record<string, unknown> {
  const object = unsignedObject(signed)
  object.sig = signed.sig
  return object
}

/** Encodes an envelope-shaped object, turning encoder failures into a typed error. */
function encodeEnvelopeObject(object: Record<string, unknown>): Uint8Array {
  try {
    return dagCbor.encode(object)
  } catch (error) {
    throw new MalformedEnvelopeError(
      `envelope has no canonical DAG-CBOR encoding (${errorText(error)}): validate it with validateEnvelope first`,
      undefined,
      { cause: error },
    )
  }
}

/**
 * The bytes a sender signs: the canonical DAG-CBOR encoding of every envelope field except `id`
 * and `sig`. Undefined optional fields (`evalDigest`, `fence`) are omitted.
 *
 * @throws {MalformedEnvelopeError} when a field has no DAG-CBOR encoding.
 */
export function signingBytes(unsigned: UnsignedEnvelope): Uint8Array {
  return encodeEnvelopeObject(unsignedObject(unsigned))
}

/**
 * The envelope id: CIDv1 (dag-cbor codec, sha2-256) of the canonical encoding of every field but
 * `id` — that is, of the wire form {@link encodeEnvelope} — as a base32 string (`bafyrei…`).
 *
 * @throws {MalformedEnvelopeError} when a field has no DAG-CBOR encoding.
 */
export function computeEnvelopeId(signed: Omit<Envelope, 'id'>): Cid {
  return cidOfDagCbor(encodeEnvelopeObject(wireObject(signed)))
}

/**
 * The id of the thread a NEED opens (A1): the CID of the canonical encoding of the NEED's signed
 * fields with `thread` and `payload.need` left empty. A NEED is valid only under this id, so
 * exactly one NEED can ever open a thread, and only its requester can sign it (its key is among
 * the hashed fields). Compute it from the unsigned NEED, then fill in both fields and sign.
 *
 * @throws {MalformedEnvelopeError} when a field has no DAG-CBOR encoding.
 */
export function threadIdOf(need: Omit<UnsignedEnvelope<'NEED'>, 'thread'> & { thread?: string }): Cid {
  const object = unsignedObject({
    ...need,
    thread: '',
    payload: { ...need.payload, need: '' },
  } as UnsignedEnvelope)
  return cidOfDagCbor(encodeEnvelopeObject(object))
}

/**
 * The wire form of an envelope: the DAG-CBOR encoding of every field except `id` (the receiver
 * recomputes the id from these bytes, so a sender cannot lie about it).
 *
 * @throws {MalformedEnvelopeError} when a field has no DAG-CBOR encoding.
 */
export function encodeEnvelope(env: Envelope): Uint8Array {
  return encodeEnvelopeObject(wireObject(env))
}

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

// ---------------------------------------------------------------- did:key

/**
 * The `did:key` of an Ed25519 public key: `did:key:z` + base58btc(0xed 0x01 ‖ key).
 *
 * @throws {InvalidArgumentError} field `publicKey` unless it is 32 bytes.
 */
export function didFromPublicKey(publicKey: Uint8Array): Did {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw new InvalidArgumentError(
      `publicKey must be a ${ED25519_PUBLIC_KEY_BYTES}-byte Ed25519 public key`,
      'publicKey',
    )
  }
  const bytes = new Uint8Array(2 + ED25519_PUBLIC_KEY_BYTES)
  bytes[0] = ED25519_PUB_PREFIX_0
  bytes[1] = ED25519_PUB_PREFIX_1
  bytes.set(publicKey, 2)
  return DID_KEY_PREFIX + base58btc.encode(bytes)
}

/** Decodes a `did:key` to its 32-byte Ed25519 key, or returns a reason why it is not one. */
function decodeDidKey(did: unknown): Uint8Array | string {
  if (typeof did !== 'string') return 'must be a string'
  if (did.length > MAX_DID_CHARS) return `is longer than ${MAX_DID_CHARS} characters`
  if (!did.startsWith(`${DID_KEY_PREFIX}z`)) return 'must start with did:key:z (base58btc)'
  let bytes: Uint8Array
  try {
    bytes = base58btc.decode(did.slice(DID_KEY_PREFIX.length))
  } catch {
    return 'is not valid base58btc'
  }
  if (bytes[0] !== ED25519_PUB_PREFIX_0 || bytes[1] !== ED25519_PUB_PREFIX_1) {
    return 'is not an Ed25519 key (multicodec prefix 0xed 0x01)'
  }
  if (bytes.length !== 2 + ED25519_PUBLIC_KEY_BYTES) {
    return `does not hold a ${ED25519_PUBLIC_KEY_BYTES}-byte key`
  }
  return bytes.slice(2)
}

/**
 * The 32-byte Ed25519 public key inside a `did:key`.
 *
 * @throws {InvalidArgumentError} field `did` when it is not the `did:key` of an Ed25519 key.
 */
export function publicKeyFromDid(did: Did): Uint8Array {
  const result = decodeDidKey(did)
  if (typeof result === 'string') {
    throw new InvalidArgumentError(`did ${result}: expected did:key:z6Mk… of an Ed25519 key`, 'did')
  }
  return result
}

/** Bounded memo of strings known to be Ed25519 `did:key`s (senders repeat; decoding costs ~2 µs). */
const knownDids = new Set<string>()
const MAX_KNOWN_DIDS = 4096

/**
 * Why `value` is not the `did:key` of an Ed25519 key, or `undefined` when it is one.
 * Used by the schemas; never throws.
 */
export function didKeyProblem(value: unknown): string | undefined {
  if (typeof value === 'string' && knownDids.has(value)) return undefined
  const result = decodeDidKey(value)
  if (typeof result === 'string') return result
  if (knownDids.size >= MAX_KNOWN_DIDS) knownDids.clear()
  knownDids.add(value as string)
  return undefined
}

/**
 * Why `value` is not a CIDv1 in base32 (`b…`), or `undefined` when it is one. Never throws.
 * multiformats rejects non-zero trailing bits, so each CID has exactly one accepted spelling.
 */
export function cidProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string'
  if (value.length > MAX_CID_CHARS) return `is longer than ${MAX_CID_CHARS} characters`
  if (value.charCodeAt(0) !== 0x62 /* 'b' */) return 'must be a CIDv1 in base32 (starting with b)'
  try {
    const cid = CID.parse(value)
    if (cid.version !== 1) return 'must be a CIDv1'
  } catch {
    return 'is not a valid CID'
  }
  return undefined
}

// ---------------------------------------------------------------- helpers

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
