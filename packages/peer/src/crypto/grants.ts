/**
 * Signed faucet grants (A7): an anchor mints credits to an account by signing a grant of its
 * network. The signature covers the canonical encoding of every field but `sig` under a domain
 * tag, so a grant travels as JSON and verifies anywhere; the faucet rule (core/economy/grants.ts)
 * then decides whether it mints anything.
 *
 * @example
 * ```ts
 * const grant = await signGrant(anchor, { net, to: tab.did, amount: 1000, atMs: Date.now() })
 * await verifyGrant(JSON.parse(JSON.stringify(grant)), { network: net, anchors: [anchor.did] })
 * ```
 */
import { base64url } from 'multiformats/bases/base64'
import { z } from 'zod'
import { cidProblem, didKeyProblem, encodeCanonical, publicKeyFromDid } from '../core/codec.ts'
import type { FaucetGrant } from '../core/economy/grants.ts'
import { BadSignatureError, SchemaViolationError } from '../core/errors.ts'
import { type Identity, verifySignature } from './ed25519.ts'

export const GRANT_VERSION = 1

const did = z
  .string()
  .refine((value) => didKeyProblem(value) === undefined, 'must be the did:key of an Ed25519 key')

const grantSchema = z
  .object({
    v: z.literal(GRANT_VERSION),
    net: z.string().refine((value) => cidProblem(value) === undefined, 'must be a network id (CID)'),
    to: did,
    amount: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    atMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    anchor: did,
    sig: z.string().min(1).max(200),
  })
  .strict()

/** A faucet grant as an anchor signs it. */
export type SignedGrant = FaucetGrant & { v: typeof GRANT_VERSION; sig: string }

function signedBytes(grant: FaucetGrant): Uint8Array {
  const { net, to, amount, atMs, anchor } = grant
  return encodeCanonical({ domain: 'can-swarm/faucet-grant/1', net, to, amount, atMs, anchor })
}

/** Signs a grant as the anchor `identity`. */
export async function signGrant(
  identity: Identity,
  fields: Omit<FaucetGrant, 'anchor'>,
): Promise<SignedGrant> {
  const unsigned: FaucetGrant = { ...fields, anchor: identity.did }
  const sig = base64url.baseEncode(await identity.sign(signedBytes(unsigned)))
  return shape({ v: GRANT_VERSION, ...unsigned, sig })
}

function shape(value: unknown): SignedGrant {
  const parsed = grantSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const field = issue.path.join('.') || 'grant'
    throw new SchemaViolationError(`grant ${field}: ${issue.message}`, field)
  }
  return parsed.data as SignedGrant
}

/**
 * Checks a received grant: its shape, its network, that an anchor of the network signed it.
 * @throws {SchemaViolationError} naming the field that is wrong (`net` for another network).
 * @throws {BadSignatureError} when the signer is no anchor or the signature is not its own.
 */
export async function verifyGrant(
  value: unknown,
  network: { network: string; anchors: readonly string[] },
): Promise<SignedGrant> {
  const grant = shape(value)
  if (grant.net !== network.network) {
    throw new SchemaViolationError(`grant net: ${grant.net} is not this network (${network.network})`, 'net')
  }
  if (!network.anchors.includes(grant.anchor)) {
    throw new BadSignatureError(`grant signed by ${grant.anchor}, who is no anchor of this network`, 'anchor')
  }
  let signature: Uint8Array
  try {
    signature = base64url.baseDecode(grant.sig)
  } catch {
    throw new BadSignatureError('grant sig is not base64url', 'sig')
  }
  if (!(await verifySignature(publicKeyFromDid(grant.anchor), signedBytes(grant), signature))) {
    throw new BadSignatureError(`grant is not signed by anchor ${grant.anchor}`, 'sig')
  }
  return grant
}
