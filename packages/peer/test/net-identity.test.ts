/** The libp2p peer id is the agent's Ed25519 key: the same one its did:key names. */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { TEST_NET } from '../../../test-support/envelopes.ts'
import { BUILTIN_POLICY_HASH } from '../src/core/digest.ts'
import { PROTOCOL_VERSION } from '../src/core/types.ts'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { signEnvelope } from '../src/crypto/envelopes.ts'
import { didFromPeerId, libp2pKeyFromIdentity, peerIdFromDid } from '../src/net/identity.ts'
import { createNetwork } from '../src/net/network.ts'

describe('peer identity', () => {
  it('derives the libp2p key from the agent seed', async () => {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i * 7)
    const identity = await createIdentity({ seed })
    const key = await libp2pKeyFromIdentity(identity)
    expect(key.publicKey.raw).toEqual(identity.publicKey)
    expect(peerIdFromPrivateKey(key).equals(peerIdFromDid(identity.did))).toBe(true)
    expect(didFromPeerId(peerIdFromDid(identity.did))).toBe(identity.did)
    // a libp2p signature by the derived key verifies as the identity's (same key, same scheme)
    const message = new TextEncoder().encode('same key')
    expect(await key.publicKey.verify(message, await identity.sign(message))).toBe(true)
  })

  it('gives different peers different ids', async () => {
    const a = await createIdentity({ seed: new Uint8Array(32).fill(1) })
    const b = await createIdentity({ seed: new Uint8Array(32).fill(2) })
    expect(peerIdFromDid(a.did).equals(peerIdFromDid(b.did))).toBe(false)
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    expect(didFromPeerId(other)).not.toBe(a.did)
  })

  it('runs a node whose peer id is the did:key of the envelopes it signs', async () => {
    const identity = await createIdentity()
    const network = await createNetwork({
      identity,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      webRTC: false,
      pubsubDiscovery: false,
      reputationPingMs: 0,
    })
    try {
      expect(network.peerId.equals(peerIdFromDid(identity.did))).toBe(true)
      for (const address of network.libp2p.getMultiaddrs())
        expect(String(address)).toMatch(/^\/ip4\/127\.0\.0\.1\//)
      const env = await signEnvelope(
        {
          v: PROTOCOL_VERSION,
          net: TEST_NET,
          kind: 'ATTEST_PLAN',
          thread: 'need-x',
          sender: identity.did,
          lamport: 1,
          ts: 0,
          payload: {
            need: 'need-x',
            proposal: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
            verdict: 'accept',
          },
          refs: [],
          policy: BUILTIN_POLICY_HASH,
          epoch: 1,
        },
        identity,
      )
      expect(didFromPeerId(network.peerId)).toBe(env.sender)
    } finally {
      await network.stop()
    }
  })
})
