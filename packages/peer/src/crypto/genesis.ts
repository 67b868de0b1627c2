/**
 * Signing and verifying genesis records (docs/PROTOCOL.md §3): every anchor of the set signs the
 * network id (under a domain tag, so a genesis signature is never an envelope signature).
 *
 * @example
 * ```ts
 * const genesis = await signGenesis(genesisBody({ createdMs: Date.now(), anchors: [a.did] }), [a])
 * await verifyGenesis(genesis)   // throws naming the anchor whose signature is missing or wrong
 * ```
 */
import { publicKeyFromDid } from '../core/codec.ts'
import { BadSignatureError, InvalidArgumentError } from '../core/errors.ts'
import {
  checkGenesisBody,
  type Genesis,
  type GenesisBody,
  type GenesisSignature,
  genesisId,
  genesisSigningBytes,
} from '../core/genesis.ts'
import { type Identity, verifySignature } from './ed25519.ts'

/**
 * Signs a genesis body with the given anchors' keys. Signers must be anchors of the body; a
 * genesis is complete when every anchor has signed (add the rest with {@link addGenesisSignature}).
 * @throws {InvalidArgumentError} field `signers` when a signer is not one of the body's anchors.
 */
export async function signGenesis(body: GenesisBody, signers: readonly Identity[]): Promise<Genesis> {
  const checked = checkGenesisBody(body)
  let genesis: Genesis = { id: genesisId(checked), body: checked, signatures: [] }
  for (const signer of signers) genesis = await addGenesisSignature(genesis, signer)
  return genesis
}

/** Adds (or replaces) one anchor's signature. */
export async function addGenesisSignature(genesis: Genesis, signer: Identity): Promise<Genesis> {
  if (!genesis.body.anchors.includes(signer.did)) {
    throw new InvalidArgumentError(`${signer.did} is not an anchor of this genesis`, 'signers')
  }
  const sig = await signer.sign(genesisSigningBytes(genesis.id))
  const signatures: GenesisSignature[] = [
    ...genesis.signatures.filter((entry) => entry.did !== signer.did),
    { did: signer.did, sig },
  ].sort((a, b) => (a.did < b.did ? -1 : 1))
  return { ...genesis, signatures }
}

/**
 * Checks a genesis: the id is the hash of the body, and every anchor of the set — and nobody
 * else — signed it.
 * @throws {BadSignatureError} naming the anchor whose signature is missing or does not verify.
 * @throws {InvalidArgumentError} for a body that does not validate or an id that is not its hash.
 */
export async function verifyGenesis(genesis: Genesis): Promise<Genesis> {
  const body = checkGenesisBody(genesis.body)
  const id = genesisId(body)
  if (genesis.id !== id) {
    throw new InvalidArgumentError(`genesis id ${genesis.id} is not the hash of its body (${id})`, 'id')
  }
  const bytes = genesisSigningBytes(id)
  const byDid = new Map(genesis.signatures.map((entry) => [entry.did, entry.sig]))
  for (const did of byDid.keys()) {
    if (!body.anchors.includes(did))
      throw new BadSignatureError(`genesis signed by ${did}, who is not an anchor`, 'signatures')
  }
  for (const anchor of body.anchors) {
    const sig = byDid.get(anchor)
    if (!sig) throw new BadSignatureError(`anchor ${anchor} has not signed the genesis`, 'signatures')
    if (!(await verifySignature(publicKeyFromDid(anchor), bytes, sig))) {
      throw new BadSignatureError(`the genesis signature of anchor ${anchor} does not verify`, 'signatures')
    }
  }
  return { id, body, signatures: genesis.signatures }
}
