/**
 * Typed, bounded challenge proofs (docs/PROTOCOL.md §5 step 10): each proof type has a fixed cost of
 * checking it, and a challenger's declared bond must cover that cost. The bond is escrowed only if
 * the challenger holds it (§9.4): a funded flood of frivolous challenges costs the flooder its bonds;
 * an unfunded challenger is paid nothing even when upheld, though judging it still costs the judges
 * (§14). The pure checks live here; checks that need artifacts or re-execution are the judging
 * agent's (it fetches, then calls these).
 */
import type { AnyEnvelope, ChallengeProof, Cid, Did, Envelope } from '../types.ts'

/** What checking a proof costs a judge, in work units. */
export const PROOF_COST: Readonly<Record<ChallengeProof['type'], number>> = Object.freeze({
  'output-mismatch': 10, // re-execute the capability
  'schema-violation': 4, // fetch and parse one output
  'missing-artifact': 6, // try to fetch one artifact
  'contradicting-attestations': 2, // compare two signed envelopes
})

/** Credits of bond per unit of proof cost. */
export const BOND_PER_COST_UNIT = 1

/** The smallest bond a CHALLENGE with this proof must carry. */
export function requiredBond(proof: ChallengeProof): number {
  return PROOF_COST[proof.type] * BOND_PER_COST_UNIT
}

/**
 * A `contradicting-attestations` proof: two ATTESTs of `commit` from one verifier with opposite
 * verdicts. Returns the equivocating verifier, or undefined when the proof does not hold.
 */
export function contradictingVerifier(
  proof: Extract<ChallengeProof, { type: 'contradicting-attestations' }>,
  commit: Cid,
  lookup: (id: Cid) => AnyEnvelope | undefined,
): Did | undefined {
  if (proof.attestations.length !== 2) return undefined
  const [a, b] = proof.attestations.map(lookup) as [AnyEnvelope | undefined, AnyEnvelope | undefined]
  if (a?.kind !== 'ATTEST' || b?.kind !== 'ATTEST' || a.id === b.id) return undefined
  const pa = (a as Envelope<'ATTEST'>).payload
  const pb = (b as Envelope<'ATTEST'>).payload
  if (a.sender !== b.sender || pa.commit !== commit || pb.commit !== commit) return undefined
  return pa.verdict !== pb.verdict ? a.sender : undefined
}

/** A `schema-violation` proof holds when an output that must be JSON does not parse. */
export function violatesJsonSchema(producesType: string, output: Uint8Array): boolean {
  if (producesType !== 'application/json') return false
  try {
    JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(output))
    return false
  } catch {
    return true
  }
}
