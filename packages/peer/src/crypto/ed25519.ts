/**
 * Ed25519 identities and signatures, isomorphic: WebCrypto (`globalThis.crypto.subtle`,
 * Node ≥ 22, Chrome ≥ 137, Firefox ≥ 129, Safari ≥ 17) is the fast path, `@noble/ed25519` the
 * fallback where WebCrypto lacks Ed25519. No `node:` imports.
 *
 * Both backends accept exactly the same signatures, so peers on different runtimes never disagree
 * about an envelope (P2): the public key must be a canonical encoding of a point that is not of
 * small order (checked with noble on both paths), `S < L`, and the equation is the cofactorless
 * one of RFC 8032 §5.1.7 with `R` compared as bytes — what OpenSSL and BoringSSL implement.
 *
 * @example
 * ```ts
 * const alice = await createIdentity({ seed })         // deterministic from a 32-byte seed
 * const sig = await alice.sign(message)
 * await verifySignature(alice.publicKey, message, sig) // true
 * ```
 */

import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { didFromPublicKey } from '../core/codec.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import type { Did } from '../core/types.ts'

export { didFromPublicKey, publicKeyFromDid } from '../core/codec.ts'

/** Which implementation signs and verifies: WebCrypto's Ed25519 or `@noble/ed25519`. */
export type CryptoBackend = 'webcrypto' | 'noble'

/** Something that can sign as a `did:key` (a local key, later perhaps a remote signer). */
export interface Identity {
  /** The signer's `did:key`; envelopes it signs carry it as `sender`. */
  readonly did: Did
  /** The 32-byte Ed25519 public key inside {@link Identity.did}. */
  readonly publicKey: Uint8Array
  /** Signs `message`, returning the 64-byte Ed25519 signature. */
  sign(message: Uint8Array): Promise<Uint8Array>
}

/** An identity whose private key this process holds, as returned by {@link createIdentity}. */
export interface LocalIdentity extends Identity {
  /**
   * SECRET: the 32-byte Ed25519 seed (private key). Persist it to restore the identity with
   * `createIdentity({ seed })`; never log or send it. Each read returns a fresh copy. It is not an
   * own enumerable property, so `JSON.stringify` and loggers do not reveal it.
   */
  readonly seed: Uint8Array
  /** The backend this identity signs with. */
  readonly backend: CryptoBackend
}

/** Options of {@link createIdentity}. */
export interface CreateIdentityOptions {
  /** 32-byte seed (private key) for a deterministic identity; a random one when absent. @default a random seed */
  seed?: Uint8Array
  /** Backend to sign with. @default the result of {@link detectBackend} */
  backend?: CryptoBackend
}

const SEED_BYTES = 32
const PUBLIC_KEY_BYTES = 32
const SIGNATURE_BYTES = 64
const ED25519 = { name: 'Ed25519' } as const
/** DER prefix of a PKCS#8 Ed25519 private key (RFC 8410 §7), followed by the 32-byte seed. */
const PKCS8_ED25519_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
])
/** How many imported public keys the verifier keeps. */
const MAX_CACHED_KEYS = 4096
/** Order of the Ed25519 base point, L = 2^252 + 27742317777372353535851937790883648493. */
const CURVE_ORDER = ed.Point.CURVE().n

// The synchronous noble API (used on the fallback path) needs a SHA-512; WebCrypto's digest may be
// missing exactly where the fallback runs (insecure browser contexts).
if (ed.hashes.sha512 === undefined) ed.hashes.sha512 = sha512

// ---------------------------------------------------------------- backend detection

let detection: Promise<CryptoBackend> | undefined
let detected: CryptoBackend | undefined

/** RFC 8032 §7.1 test 1: secret key, public key and signature of the empty message. */
const RFC8032_SEED = hexBytes('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
const RFC8032_PUBLIC_KEY = hexBytes('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
const RFC8032_SIGNATURE = hexBytes(
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
)

/**
 * The fastest backend this runtime offers: `webcrypto` when `crypto.subtle` imports, signs and
 * verifies Ed25519 correctly (checked once against the RFC 8032 test vector), else `noble`.
 * The answer is cached for the life of the process.
 */
export function detectBackend(): Promise<CryptoBackend> {
  detection ??= probeWebCrypto().then(
    (works): CryptoBackend => {
      detected = works ? 'webcrypto' : 'noble'
      return detected
    },
    (): CryptoBackend => {
      detected = 'noble'
      return detected
    },
  )
  return detection
}

async function probeWebCrypto(): Promise<boolean> {
  const subtle = globalThis.crypto?.subtle
  if (subtle === undefined) return false
  const privateKey = await subtle.importKey('pkcs8', pkcs8(RFC8032_SEED), ED25519, false, ['sign'])
  const signature = new Uint8Array(await subtle.sign(ED25519, privateKey, new Uint8Array(0)))
  const publicKey = await subtle.importKey('raw', buffer(RFC8032_PUBLIC_KEY), ED25519, false, ['verify'])
  const verifies = await subtle.verify(ED25519, publicKey, buffer(RFC8032_SIGNATURE), new Uint8Array(0))
  return verifies && bytesEqual(signature, RFC8032_SIGNATURE)
}

async function resolveBackend(backend: CryptoBackend | undefined): Promise<CryptoBackend> {
  if (backend === undefined) return detected ?? (await detectBackend())
  if (backend !== 'webcrypto' && backend !== 'noble') {
    throw new InvalidArgumentError(
      `backend must be 'webcrypto' or 'noble', got ${String(backend)}`,
      'backend',
    )
  }
  if (backend === 'webcrypto' && (await detectBackend()) !== 'webcrypto') {
    throw new InvalidArgumentError(
      "backend 'webcrypto' was requested but this runtime's WebCrypto lacks Ed25519: use 'noble' or omit backend",
      'backend',
    )
  }
  return backend
}

// ---------------------------------------------------------------- identities

/** A local Ed25519 key; the seed stays in a private field. */
class SeedIdentity implements LocalIdentity {
  readonly did: Did
  readonly publicKey: Uint8Array
  readonly backend: CryptoBackend
  readonly #seed: Uint8Array
  readonly #privateKey: CryptoKey | undefined

  constructor(
    seed: Uint8Array,
    publicKey: Uint8Array,
    backend: CryptoBackend,
    privateKey: CryptoKey | undefined,
  ) {
    this.#seed = seed
    this.#privateKey = privateKey
    this.publicKey = publicKey
    this.did = didFromPublicKey(publicKey)
    this.backend = backend
  }

  get seed(): Uint8Array {
    return this.#seed.slice()
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    if (!(message instanceof Uint8Array)) {
      throw new InvalidArgumentError('message must be a Uint8Array', 'message')
    }
    if (this.#privateKey !== undefined) {
      return new Uint8Array(await globalThis.crypto.subtle.sign(ED25519, this.#privateKey, buffer(message)))
    }
    return ed.sign(message, this.#seed)
  }

  toJSON(): { did: Did; backend: CryptoBackend } {
    return { did: this.did, backend: this.backend }
  }
}

/**
 * Creates an Ed25519 identity, deterministically from a 32-byte `seed` (the simulator's peers,
 * restored identities) or from fresh randomness. With WebCrypto the seed is imported as a
 * non-extractable PKCS#8 key; the public key is derived with noble.
 *
 * @throws {InvalidArgumentError} field `seed` unless it is 32 bytes; field `backend` when the
 *   requested backend is unavailable.
 */
export async function createIdentity(options: CreateIdentityOptions = {}): Promise<LocalIdentity> {
  const backend = await resolveBackend(options.backend)
  let seed: Uint8Array
  if (options.seed === undefined) {
    if (typeof globalThis.crypto?.getRandomValues !== 'function') {
      throw new InvalidArgumentError('this runtime has no secure random source: pass a 32-byte seed', 'seed')
    }
    seed = globalThis.crypto.getRandomValues(new Uint8Array(SEED_BYTES))
  } else {
    if (!(options.seed instanceof Uint8Array) || options.seed.length !== SEED_BYTES) {
      throw new InvalidArgumentError(`seed must be ${SEED_BYTES} bytes (an Ed25519 private key)`, 'seed')
    }
    seed = options.seed.slice()
  }
  const publicKey = ed.getPublicKey(seed)
  const privateKey =
    backend === 'webcrypto'
      ? await globalThis.crypto.subtle.importKey('pkcs8', pkcs8(seed), ED25519, false, ['sign'])
      : undefined
  return new SeedIdentity(seed, publicKey, backend, privateKey)
}

// ---------------------------------------------------------------- verification

/**
 * A public key ready for verification, or `null` when its bytes are not an acceptable key
 * (non-canonical, not on the curve, or of small order): such keys verify nothing, on any backend.
 */
type PreparedKey = { point: ed.Point; cryptoKey: Promise<CryptoKey> | undefined } | null

/** Bounded LRU of prepared keys, keyed by the key's bytes as a binary string. */
const preparedKeys = new Map<string, PreparedKey>()

function prepareKey(publicKey: Uint8Array, backend: CryptoBackend): PreparedKey {
  const cacheKey = String.fromCharCode(...publicKey)
  let prepared = preparedKeys.get(cacheKey)
  if (prepared !== undefined) {
    // Most recently used last: Map iterates in insertion order, so the first key is the oldest.
    preparedKeys.delete(cacheKey)
    preparedKeys.set(cacheKey, prepared)
  } else {
    prepared = decodeKey(publicKey)
    if (preparedKeys.size >= MAX_CACHED_KEYS) {
      const oldest = preparedKeys.keys().next().value
      if (oldest !== undefined) preparedKeys.delete(oldest)
    }
    preparedKeys.set(cacheKey, prepared)
  }
  if (prepared === null) return null
  if (backend === 'webcrypto' && prepared.cryptoKey === undefined) {
    const imported = globalThis.crypto.subtle.importKey('raw', buffer(publicKey), ED25519, false, ['verify'])
    imported.catch(() => {}) // a rejection is seen by the verifier that awaits it
    prepared.cryptoKey = imported
  }
  return prepared
}

function decodeKey(publicKey: Uint8Array): PreparedKey {
  try {
    const point = ed.Point.fromBytes(publicKey, false)
    if (point.isSmallOrder()) return null
    return { point, cryptoKey: undefined }
  } catch {
    return null
  }
}

/**
 * Verifies an Ed25519 signature. Never throws on bad signature or key bytes: returns `false`.
 * Public keys are prepared once and kept in a bounded LRU (4096 keys); with WebCrypto, many
 * verifications in flight together are about twice as fast as one at a time.
 *
 * @param backend - @default the result of {@link detectBackend}
 * @throws {InvalidArgumentError} field `backend` only when the requested backend is unavailable.
 */
export async function verifySignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  backend?: CryptoBackend,
): Promise<boolean> {
  const chosen = await resolveBackend(backend)
  if (
    !(publicKey instanceof Uint8Array) ||
    !(message instanceof Uint8Array) ||
    !(signature instanceof Uint8Array) ||
    publicKey.length !== PUBLIC_KEY_BYTES ||
    signature.length !== SIGNATURE_BYTES
  ) {
    return false
  }
  try {
    const prepared = prepareKey(publicKey, chosen)
    if (prepared === null) return false
    if (chosen === 'webcrypto' && prepared.cryptoKey !== undefined) {
      return await globalThis.crypto.subtle.verify(
        ED25519,
        await prepared.cryptoKey,
        buffer(signature),
        buffer(message),
      )
    }
    return verifyCofactorless(prepared.point, publicKey, message, signature)
  } catch {
    return false
  }
}

/**
 * RFC 8032 §5.1.7 with the cofactorless check `[S]B = R + [k]A`, comparing `R` as bytes — the
 * rule OpenSSL and BoringSSL (hence WebCrypto) apply. noble's own `verify` uses the cofactored
 * equation, which accepts some crafted signatures that WebCrypto rejects.
 */
function verifyCofactorless(
  point: ed.Point,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  const r = signature.subarray(0, 32)
  const s = bytesToNumberLittleEndian(signature.subarray(32, 64))
  if (s >= CURVE_ORDER) return false
  const k = ed.etc.mod(
    bytesToNumberLittleEndian(sha512(ed.etc.concatBytes(r, publicKey, message))),
    CURVE_ORDER,
  )
  const expectedR = ed.Point.BASE.multiply(s, false).subtract(point.multiply(k, false))
  return bytesEqual(expectedR.toBytes(), r)
}

// ---------------------------------------------------------------- helpers

function pkcs8(seed: Uint8Array): ArrayBuffer {
  const der = new Uint8Array(PKCS8_ED25519_PREFIX.length + SEED_BYTES)
  der.set(PKCS8_ED25519_PREFIX)
  der.set(seed, PKCS8_ED25519_PREFIX.length)
  return der.buffer
}

/** The bytes as a `BufferSource` WebCrypto accepts (copied when backed by a SharedArrayBuffer). */
function buffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes)
}

function bytesToNumberLittleEndian(bytes: Uint8Array): bigint {
  let value = 0n
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!)
  return value
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function hexBytes(hex: string): Uint8Array {
  return ed.etc.hexToBytes(hex)
}
