/**
 * Policy evaluation digests (docs/PROTOCOL.md §10): `evalDigest = H(input ‖ decision ‖ policyHash)`.
 * Verifiers attach one to every ATTEST; two verifiers that evaluated the same input under the same
 * policy must produce the same digest, so a mismatch surfaces policy divergence at once.
 */
import { hashCanonical, MAX_PAYLOAD_BYTES } from './codec.ts'
import { KINDS } from './types.ts'

/** The evaluation digest of one policy decision. */
export function evalDigestOf(input: unknown, decision: unknown, policyHash: string): string {
  return hashCanonical({ input, decision, policy: policyHash })
}

/**
 * Hash of the built-in base rules (allowed kinds, payload ≤ 1 MiB) that hold until a compiled
 * policy capsule is loaded: peers that run the same built-in rules share this hash.
 */
export const BUILTIN_POLICY_HASH: string = hashCanonical({
  name: 'can-swarm/builtin-base',
  version: 1,
  allowedKinds: [...KINDS],
  maxPayloadBytes: MAX_PAYLOAD_BYTES,
})
