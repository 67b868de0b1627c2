/**
 * Envelope validation at the gossip edge: what a frame must pass before this peer delivers it or
 * forwards it. Runs as the gossipsub topic validator, once per gossip message per peer (gossipsub
 * deduplicates by message id before validating):
 *
 * 1. frame decoding and the size limits;
 * 2. `decodeEnvelope` (canonical DAG-CBOR, schema, id computed from the bytes);
 * 3. freshness: `ts` within `maxEnvelopeAgeMs` in the past and `maxClockSkewMs` in the future —
 *    with gossipsub's duplicate window set longer than `maxEnvelopeAgeMs`, an envelope arriving a
 *    second time is either a harmless duplicate (dropped by gossipsub) or older than the window,
 *    so a replay is always rejected;
 * 4. the sender's signature (the id is already the hash of the received bytes; DECIDE and
 *    FINALIZE take the full `verifyEnvelope` with their embedded attestations), all envelopes of
 *    a batch in flight together;
 * 5. the optional ingress hook (the policy gate).
 *
 * Any failure rejects the whole frame: it is not delivered, not forwarded, and the peer that sent
 * it is penalised.
 */
import { decodeEnvelope, publicKeyFromDid, signingBytes } from '../core/codec.ts'
import { CanSwarmError } from '../core/errors.ts'
import type { AnyEnvelope } from '../core/types.ts'
import { type CryptoBackend, verifySignature } from '../crypto/ed25519.ts'
import { verifyEnvelope } from '../crypto/envelopes.ts'
import { decodeFrame } from './frame.ts'

/** What the ingress hook answers. */
export interface IngressDecision {
  allowed: boolean
  /** Why not, when `allowed` is false. */
  reason?: string
}

/** The policy ingress gate: decides whether a verified envelope may enter this peer. */
export type IngressHook = (
  env: AnyEnvelope,
  context: { from: string; topic: string },
) => Promise<IngressDecision> | IngressDecision

/** Options of {@link validateFrame}. */
export interface FrameValidationOptions {
  /** Oldest accepted envelope `ts`, relative to now, in ms. @default 120 000 */
  maxEnvelopeAgeMs?: number
  /** Furthest accepted envelope `ts` in the future, in ms. @default 30 000 */
  maxClockSkewMs?: number
  /** The policy gate, run last. @default none (everything verified is allowed) */
  ingress?: IngressHook
  /** Signature backend. @default detected */
  backend?: CryptoBackend
  /** The clock, in ms since the epoch. @default Date.now */
  now?: () => number
  /**
   * Admission before any signature is checked (the forwarder's quota): returns why the frame is not
   * admitted, or `undefined`. A frame not admitted is `throttled`, which costs its forwarder nothing.
   */
  admit?: (
    frame: { bytes: number; envelopes: readonly AnyEnvelope[] },
    context: { from: string },
  ) => string | undefined
}

/** Why a frame was rejected (stable codes, counted in the bus statistics). */
export type RejectReason = 'malformed' | 'stale' | 'future' | 'bad-signature' | 'denied' | 'throttled'

/** Outcome of {@link validateFrame}. */
export type FrameValidation =
  /** `sizes[i]`: the encoded bytes of `envelopes[i]`. */
  | { ok: true; envelopes: AnyEnvelope[]; sizes: number[] }
  | { ok: false; reason: RejectReason; detail: string; ids: string[] }

/** Signatures checked together (in flight at once) before the next group of a batch. */
const SIGNATURE_GROUP = 16

/** Default of {@link FrameValidationOptions.maxEnvelopeAgeMs}. */
export const DEFAULT_MAX_ENVELOPE_AGE_MS = 120_000
/** Default of {@link FrameValidationOptions.maxClockSkewMs}. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 30_000

/** Validates one gossip frame; never throws. */
export async function validateFrame(
  data: Uint8Array,
  context: { from: string; topic: string },
  options: FrameValidationOptions = {},
): Promise<FrameValidation> {
  const envelopes: AnyEnvelope[] = []
  const sizes: number[] = []
  try {
    for (const bytes of decodeFrame(data)) {
      envelopes.push(decodeEnvelope(bytes))
      sizes.push(bytes.length)
    }
  } catch (error) {
    return { ok: false, reason: 'malformed', detail: describe(error), ids: [] }
  }
  const ids = envelopes.map((env) => env.id)
  const now = (options.now ?? Date.now)()
  const maxAge = options.maxEnvelopeAgeMs ?? DEFAULT_MAX_ENVELOPE_AGE_MS
  const maxSkew = options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS
  for (const env of envelopes) {
    if (env.ts < now - maxAge) {
      return { ok: false, reason: 'stale', detail: `envelope ${env.id} is ${now - env.ts} ms old`, ids }
    }
    if (env.ts > now + maxSkew) {
      return { ok: false, reason: 'future', detail: `envelope ${env.id} is ${env.ts - now} ms ahead`, ids }
    }
  }
  const refused = options.admit?.({ bytes: data.length, envelopes }, context)
  if (refused !== undefined) return { ok: false, reason: 'throttled', detail: refused, ids }
  // Signatures in groups, stopping at the first bad one: a batch with a forged envelope first costs
  // the receiver one group of checks, not the whole batch.
  for (let start = 0; start < envelopes.length; start += SIGNATURE_GROUP) {
    const group = envelopes.slice(start, start + SIGNATURE_GROUP)
    const failures = await Promise.all(group.map((env) => checkSignature(env, options.backend)))
    const failed = failures.find((failure) => failure !== undefined)
    if (failed !== undefined) return { ok: false, reason: 'bad-signature', detail: failed, ids }
  }
  if (options.ingress) {
    for (const env of envelopes) {
      let decision: IngressDecision
      try {
        decision = await options.ingress(env, context)
      } catch (error) {
        decision = { allowed: false, reason: `ingress hook failed: ${describe(error)}` }
      }
      if (!decision.allowed) {
        return { ok: false, reason: 'denied', detail: decision.reason ?? 'denied by the ingress hook', ids }
      }
    }
  }
  return { ok: true, envelopes, sizes }
}

/**
 * The signature check of `verifyEnvelope`, minus what `decodeEnvelope` already guarantees: the id
 * was computed from the received canonical bytes, so it is the content hash by construction and
 * is not recomputed. Envelopes that embed signed attestations (DECIDE, FINALIZE) take the full
 * `verifyEnvelope`. Returns why the check failed, or `undefined`.
 */
async function checkSignature(
  env: AnyEnvelope,
  backend: CryptoBackend | undefined,
): Promise<string | undefined> {
  if (env.kind === 'DECIDE' || env.kind === 'FINALIZE') {
    try {
      await verifyEnvelope(env, backend ? { backend } : {})
      return undefined
    } catch (error) {
      return describe(error)
    }
  }
  let publicKey: Uint8Array
  try {
    publicKey = publicKeyFromDid(env.sender)
  } catch (error) {
    return describe(error)
  }
  const valid = await verifySignature(publicKey, signingBytes(env), env.sig, backend)
  return valid ? undefined : `BAD_SIGNATURE: signature does not verify against sender ${env.sender}`
}

function describe(error: unknown): string {
  if (error instanceof CanSwarmError) {
    return `${error.code}${error.field ? ` (${error.field})` : ''}: ${error.message}`
  }
  return error instanceof Error ? error.message : String(error)
}
