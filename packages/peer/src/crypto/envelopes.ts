/**
 * Signing and verifying envelopes (docs/PROTOCOL.md §2): `sig` is Ed25519 over {@link signingBytes},
 * `id` the CID of the wire form. DECIDE and FINALIZE carry their quorum's signed attestations,
 * which are verified with them.
 *
 * @example
 * ```ts
 * const env = await signEnvelope(unsigned, identity)   // preflight-validated, signed, id computed
 * await verifyEnvelope(decodeEnvelope(bytes))          // throws WrongIdError / BadSignatureError
 * const errors = await verifyEnvelopes(batch)          // one result per envelope, in order
 * ```
 */

import { computeEnvelopeId, publicKeyFromDid, signingBytes } from '../core/codec.ts'
import {
  BadSignatureError,
  CanSwarmError,
  InvalidArgumentError,
  MalformedEnvelopeError,
  WrongIdError,
} from '../core/errors.ts'
import { validateUnsignedEnvelope } from '../core/schemas.ts'
import type { Envelope, Kind, UnsignedEnvelope } from '../core/types.ts'
import { type CryptoBackend, type Identity, verifySignature } from './ed25519.ts'

/** Options of {@link verifyEnvelope}. */
export interface VerifyEnvelopeOptions {
  /** Backend to verify with. @default the result of `detectBackend()` */
  backend?: CryptoBackend
}

/** Options of {@link verifyEnvelopes}. */
export interface VerifyEnvelopesOptions extends VerifyEnvelopeOptions {
  /**
   * Most envelopes verified at once. WebCrypto is about twice as fast with requests in flight
   * together; beyond a few dozen nothing is gained.
   * @default 64
   */
  concurrency?: number
  /** Stops starting new verifications; the returned promise rejects with the signal's reason. @default none */
  signal?: AbortSignal
}

/** Default of {@link VerifyEnvelopesOptions.concurrency}. */
export const DEFAULT_VERIFY_CONCURRENCY = 64
/** Largest accepted {@link VerifyEnvelopesOptions.concurrency}. */
export const MAX_VERIFY_CONCURRENCY = 4096

/**
 * Signs an envelope: checks that `identity` is the sender, validates the whole unsigned envelope
 * and its payload (the sender's preflight, so that nothing a receiver would reject gets signed),
 * signs {@link signingBytes} and computes the id. The result holds a validated copy of the input;
 * `sig` and `id` on the input (an envelope signed again) are ignored.
 *
 * @throws {InvalidArgumentError} field `sender` when `unsigned.sender !== identity.did`.
 * @throws {SchemaViolationError} / {MalformedEnvelopeError} / {OversizedEnvelopeError} naming the
 *   offending field when the unsigned envelope is invalid.
 */
export async function signEnvelope<K extends Kind>(
  unsigned: UnsignedEnvelope<K>,
  identity: Identity,
): Promise<Envelope<K>> {
  // A signed envelope passed in to be signed again: its old `sig` and `id` are not signed fields.
  const {
    sig: _oldSig,
    id: _oldId,
    ...fields
  } = unsigned as UnsignedEnvelope<K> & { sig?: unknown; id?: unknown }
  const valid = validateUnsignedEnvelope(fields) as UnsignedEnvelope<K>
  if (valid.sender !== identity.did) {
    throw new InvalidArgumentError(
      `sender ${valid.sender} is not the signing identity ${identity.did}: set sender to identity.did`,
      'sender',
    )
  }
  const sig = await identity.sign(signingBytes(valid))
  const signed: Omit<Envelope<K>, 'id'> = { ...valid, sig }
  return { ...signed, id: computeEnvelopeId(signed) }
}

/**
 * Verifies an envelope: its `id` is the content hash of the rest, its `sig` verifies against the
 * key in `sender`, and for DECIDE and FINALIZE the same holds for every embedded attestation.
 * Assumes a structurally valid envelope (from `decodeEnvelope` / `validateEnvelope`).
 *
 * @throws {WrongIdError} field `id` (or `payload.attestations.<i>.id`) when an id is not the
 *   content hash.
 * @throws {BadSignatureError} field `sig` / `sender` (or `payload.attestations.<i>.sig` / `.sender`)
 *   when a signature does not verify.
 * @throws {MalformedEnvelopeError} when the value cannot be encoded at all.
 */
export async function verifyEnvelope(env: Envelope, options: VerifyEnvelopeOptions = {}): Promise<void> {
  const error = await checkEnvelope(env, '', options.backend)
  if (error !== undefined) throw error
}

/**
 * Verifies many envelopes with up to `concurrency` in flight together. Resolves to one entry per
 * input, in input order: `undefined` when the envelope verifies, else the error
 * {@link verifyEnvelope} would throw. One bad envelope never affects another's result.
 *
 * @throws {InvalidArgumentError} field `concurrency` unless it is an integer in 1…4096.
 */
export async function verifyEnvelopes(
  envs: readonly Envelope[],
  options: VerifyEnvelopesOptions = {},
): Promise<(CanSwarmError | undefined)[]> {
  const concurrency = options.concurrency ?? DEFAULT_VERIFY_CONCURRENCY
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_VERIFY_CONCURRENCY) {
    throw new InvalidArgumentError(
      `concurrency must be an integer from 1 to ${MAX_VERIFY_CONCURRENCY}, got ${String(concurrency)}`,
      'concurrency',
    )
  }
  const { backend, signal } = options
  signal?.throwIfAborted()
  const results = new Array<CanSwarmError | undefined>(envs.length).fill(undefined)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < envs.length) {
      signal?.throwIfAborted()
      const index = next++
      results[index] = await checkEnvelope(envs[index]!, '', backend)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, envs.length) }, worker))
  return results
}

/** Checks one envelope (and its embedded attestations); returns the first error, never throws. */
async function checkEnvelope(
  env: Envelope,
  prefix: string,
  backend: CryptoBackend | undefined,
): Promise<CanSwarmError | undefined> {
  try {
    const expected = computeEnvelopeId(env)
    if (env.id !== expected) return new WrongIdError(expected, String(env.id), `${prefix}id`)
    let publicKey: Uint8Array
    try {
      publicKey = publicKeyFromDid(env.sender)
    } catch (error) {
      const reason = error instanceof CanSwarmError ? error.message : String(error)
      return new BadSignatureError(`sender cannot verify a signature: ${reason}`, `${prefix}sender`)
    }
    const own = verifySignature(publicKey, signingBytes(env), env.sig, backend)
    const embedded =
      env.kind === 'DECIDE' || env.kind === 'FINALIZE'
        ? (env as Envelope<'DECIDE' | 'FINALIZE'>).payload.attestations.map((attestation, index) =>
            checkEnvelope(attestation, `${prefix}payload.attestations.${index}.`, backend),
          )
        : []
    const [valid, ...embeddedErrors] = await Promise.all([own, ...embedded])
    if (!valid) {
      return new BadSignatureError(
        `signature does not verify against sender ${env.sender}: the envelope was not signed by its sender's key`,
        `${prefix}sig`,
      )
    }
    return embeddedErrors.find((error) => error !== undefined)
  } catch (error) {
    if (error instanceof CanSwarmError) return error
    return new MalformedEnvelopeError(
      `envelope could not be verified (${error instanceof Error ? error.message : String(error)}): validate it first`,
      prefix === '' ? undefined : prefix.slice(0, -1),
      { cause: error },
    )
  }
}
