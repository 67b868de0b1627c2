/**
 * The canonical bytes of CAN Swarm (docs/PROTOCOL.md §2): DAG-CBOR encoding, SHA-256, CIDv1 ids of
 * envelopes and threads, and `did:key` identifiers. The validating readers of envelopes
 * (`decodeEnvelope`, `envelopeFromJson`) are in `codec.ts`, which builds on this module and on the
 * schemas; the schemas build on this module only (so the three import in one direction).
 *
 * Pure and isomorphic: no `node:` modules, no DOM, no WebCrypto. SHA-256 comes from
 * `@noble/hashes` so that ids are computed synchronously in every runtime.
 */

import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as digest from 'multiformats/hashes/digest'
import { InvalidArgumentError, MalformedEnvelopeError } from './errors.ts'
import type { Cid, Did, Envelope, UnsignedEnvelope } from './types.ts'

/** Largest canonical (DAG-CBOR) encoding of an envelope's `payload`, in bytes (1 MiB, docs/PROTOCOL.md §10). */
export const MAX_PAYLOAD_BYTES = 1_048_576

/** Largest wire encoding of a whole envelope, in bytes: the payload limit plus 64 KiB for the header. */
export const MAX_ENVELOPE_BYTES = 1_048_576 + 65_536

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

/** The wire object of a signed envelope: every field but `id`. @internal */
export function wireObject(signed: Omit<Envelope, 'id'>): Record<string, unknown> {
  const object = unsignedObject(signed)
  object.sig = signed.sig
  return object
}

/** Encodes an envelope-shaped object, turning encoder failures into a typed error. @internal */
export function encodeEnvelopeObject(object: Record<string, unknown>): Uint8Array {
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

/** The message of an error, or its text. @internal */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
