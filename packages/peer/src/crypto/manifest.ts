/**
 * Verifier manifests (docs/PROTOCOL.md §9): how a verifier joins the pool. A manifest is signed by the
 * verifier's own key and declares its org, ASN and region (what the diversity caps of committee
 * selection count) and the stake it keeps bonded while in the pool; `stake: 0` leaves the pool
 * (its stake goes through unbonding). A newer manifest (higher `seq`) replaces an older one.
 *
 * The signature covers the canonical DAG-CBOR encoding of every field but `sig` — the network id
 * `net` among them, so a manifest signed for one network is refused by another — and a manifest
 * travels as JSON (HTTP, files) and verifies anywhere. A manifest mints nothing (A7): the stake it
 * declares must already be the verifier's.
 *
 * @example
 * ```ts
 * const manifest = await signManifest(identity, { net, org: 'acme', asn: 'AS64500', region: 'eu-west', stake: 300, seq: 1 })
 * await verifyManifest(JSON.parse(JSON.stringify(manifest))) // the same manifest, checked
 * ```
 */
import { base64url } from 'multiformats/bases/base64'
import { z } from 'zod'
import { cidProblem, didKeyProblem, encodeCanonical, publicKeyFromDid } from '../core/codec.ts'
import { BadSignatureError, MalformedEnvelopeError, SchemaViolationError } from '../core/errors.ts'
import type { Did } from '../core/types.ts'
import { type Identity, verifySignature } from './ed25519.ts'

export const MANIFEST_VERSION = 2

const label = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[\w.:-]+$/, 'letters, digits and . _ : - only')

const manifestSchema = z
  .object({
    v: z.literal(MANIFEST_VERSION),
    net: z.string().refine((value) => cidProblem(value) === undefined, 'must be a network id (CID)'),
    did: z
      .string()
      .refine((value) => didKeyProblem(value) === undefined, 'must be the did:key of an Ed25519 key'),
    org: label,
    asn: z.string().regex(/^AS\d{1,10}$/, 'must look like AS64500'),
    region: label,
    stake: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    sig: z.string().min(1).max(200),
  })
  .strict()

/** A verifier's signed declaration. */
export type VerifierManifest = z.infer<typeof manifestSchema> & { did: Did }

/** What a verifier declares (its did and the signature are added by {@link signManifest}). */
export type ManifestFields = Pick<VerifierManifest, 'net' | 'org' | 'asn' | 'region' | 'stake' | 'seq'>

function signedBytes(manifest: Omit<VerifierManifest, 'sig'>): Uint8Array {
  const { v, net, did, org, asn, region, stake, seq } = manifest
  return encodeCanonical({ v, net, did, org, asn, region, stake, seq })
}

/** Signs a manifest as `identity`. */
export async function signManifest(identity: Identity, fields: ManifestFields): Promise<VerifierManifest> {
  const unsigned = { v: MANIFEST_VERSION, did: identity.did, ...fields } as const
  const sig = base64url.baseEncode(await identity.sign(signedBytes(unsigned)))
  return verifyShape({ ...unsigned, sig })
}

function verifyShape(value: unknown): VerifierManifest {
  const parsed = manifestSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const field = issue.path.join('.') || 'manifest'
    throw new SchemaViolationError(`manifest ${field}: ${issue.message}`, field)
  }
  return parsed.data as VerifierManifest
}

/**
 * Checks a received manifest: its shape, its network (when `network` is given), then its
 * signature by the key inside its `did`.
 *
 * @throws {SchemaViolationError} naming the field that is wrong (`net` for another network).
 * @throws {BadSignatureError} when the signature is not the did's.
 */
/** Largest manifest text, in bytes (a manifest is a few hundred). */
export const MAX_MANIFEST_BYTES = 4096

/**
 * Parses a manifest's JSON text as it arrives (the body of `PUT /api/pool/<did>`), refusing text
 * over {@link MAX_MANIFEST_BYTES} before parsing it: megabytes of nested brackets never reach the
 * JSON parser. The result still has to pass {@link verifyManifest}.
 *
 * @throws {MalformedEnvelopeError} field `body` when the text is too long or not JSON.
 */
export function manifestFromJson(bytes: Uint8Array): unknown {
  if (bytes.length > MAX_MANIFEST_BYTES)
    throw new MalformedEnvelopeError(
      `a manifest is at most ${MAX_MANIFEST_BYTES} bytes, not ${bytes.length}`,
      'body',
    )
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (error) {
    throw new MalformedEnvelopeError(`a manifest must be JSON (${(error as Error).message})`, 'body')
  }
}

export async function verifyManifest(value: unknown, network?: string): Promise<VerifierManifest> {
  const manifest = verifyShape(value)
  if (network !== undefined && manifest.net !== network) {
    throw new SchemaViolationError(`manifest net: ${manifest.net} is not this network (${network})`, 'net')
  }
  let signature: Uint8Array
  try {
    signature = base64url.baseDecode(manifest.sig)
  } catch {
    throw new BadSignatureError('manifest sig is not base64url', 'sig')
  }
  if (!(await verifySignature(publicKeyFromDid(manifest.did), signedBytes(manifest), signature))) {
    throw new BadSignatureError(`manifest of ${manifest.did} is not signed by its key`, 'sig')
  }
  return manifest
}
