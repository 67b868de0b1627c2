/**
 * One key, two names: the agent's Ed25519 seed signs envelopes (as a `did:key`) and, through
 * `@libp2p/crypto`, is the libp2p private key, so the peer id a connection authenticates with Noise
 * is the envelope signer.
 *
 * @example
 * ```ts
 * const identity = await createIdentity({ seed })
 * const privateKey = await libp2pKeyFromIdentity(identity)   // pass as createNetwork({ privateKey })
 * peerIdFromDid(identity.did).equals(peerIdFromPrivateKey(privateKey)) // true
 * ```
 */
import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey, PeerId } from '@libp2p/interface'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { didFromPublicKey, publicKeyFromDid } from '../core/codec.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import type { Did } from '../core/types.ts'
import type { LocalIdentity } from '../crypto/ed25519.ts'

/**
 * The libp2p Ed25519 private key made from the same 32-byte seed as the agent's identity.
 *
 * @throws {InvalidArgumentError} field `identity` when the derived key does not match the identity's
 *   public key (a corrupted identity object).
 */
export async function libp2pKeyFromIdentity(identity: LocalIdentity): Promise<Ed25519PrivateKey> {
  const privateKey = await generateKeyPairFromSeed('Ed25519', identity.seed)
  const derived = privateKey.publicKey.raw
  if (!equalBytes(derived, identity.publicKey)) {
    throw new InvalidArgumentError('the identity seed does not produce its own public key', 'identity')
  }
  return privateKey
}

/**
 * The libp2p peer id of a `did:key` (an Ed25519 key): identical to the id of the node whose private
 * key is {@link libp2pKeyFromIdentity} of that identity.
 *
 * @throws {InvalidArgumentError} field `did` when it is not an Ed25519 `did:key`.
 */
export function peerIdFromDid(did: Did): PeerId {
  return peerIdFromPublicKey(publicKeyFromRaw(publicKeyFromDid(did)))
}

/** The did:key of a libp2p peer id whose key is Ed25519, or `undefined` for other key types. */
export function didFromPeerId(peerId: PeerId): Did | undefined {
  if (peerId.type !== 'Ed25519' || peerId.publicKey === undefined) return undefined
  return didFromPublicKey(peerId.publicKey.raw)
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
