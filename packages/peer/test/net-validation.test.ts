/** The bus's building blocks without a network: frames, topics, frame validation, reputation. */
import { describe, expect, it } from 'vitest'
import { TEST_NET, testParams } from '../../../test-support/envelopes.ts'
import { computeEnvelopeId, decodeEnvelope, encodeEnvelope, signingBytes } from '../src/core/codec.ts'
import { BUILTIN_POLICY_HASH } from '../src/core/digest.ts'
import { poolSnapshotOf } from '../src/core/thread/params.ts'
import { type AnyEnvelope, PROTOCOL_VERSION } from '../src/core/types.ts'
import { createIdentity, type LocalIdentity } from '../src/crypto/ed25519.ts'
import { signEnvelope } from '../src/crypto/envelopes.ts'
import { decodeFrame, encodeFrame, frameId, isBatchFrame } from '../src/net/frame.ts'
import { PeerReputation } from '../src/net/reputation.ts'
import { allShardTopics, capabilityTopic, shardOf, threadTopic } from '../src/net/topics.ts'
import { validateFrame } from '../src/net/validation.ts'

const NOW = 1_700_000_000_000
/** An envelope id standing for a PROPOSE. */
const PROPOSAL = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const context = { from: 'peer-a', topic: 'can-swarm/1/shard/0' }

async function envelope(identity: LocalIdentity, ts = NOW, thread = 'need-1'): Promise<AnyEnvelope> {
  return (await signEnvelope(
    {
      v: PROTOCOL_VERSION,
      net: TEST_NET,
      kind: 'ATTEST_PLAN',
      thread,
      sender: identity.did,
      lamport: 1,
      ts,
      payload: { need: thread, proposal: PROPOSAL, verdict: 'accept' },
      refs: [],
      policy: BUILTIN_POLICY_HASH,
      epoch: 1,
    },
    identity,
  )) as AnyEnvelope
}

describe('frames and topics', () => {
  it('uses the envelope digest as the message id of a single-envelope frame', async () => {
    const env = await envelope(await createIdentity())
    const bytes = encodeEnvelope(env)
    const frame = encodeFrame([bytes])
    expect(isBatchFrame(frame)).toBe(false)
    const digest = frameId(frame)
    expect(env.id).toBe(decodeEnvelope(frame).id)
    // the CID's multihash ends with the SHA-256 digest of the bytes
    const { CID } = await import('multiformats/cid')
    expect(CID.parse(env.id).multihash.digest).toEqual(digest)
  })

  it('round-trips batches and refuses malformed ones', async () => {
    const identity = await createIdentity()
    const bytes = [
      encodeEnvelope(await envelope(identity)),
      encodeEnvelope(await envelope(identity, NOW + 1)),
    ]
    const frame = encodeFrame(bytes)
    expect(isBatchFrame(frame)).toBe(true)
    expect(decodeFrame(frame)).toEqual(bytes)
    expect(isBatchFrame(encodeFrame([bytes[0]!], true))).toBe(true)
    expect(() => decodeFrame(encodeFrame([], true))).toThrow(/batch frame/)
  })

  it('maps threads to a bounded set of shard topics', () => {
    expect(allShardTopics(8)).toHaveLength(8)
    const shards = new Set(Array.from({ length: 200 }, (_, i) => shardOf(`need-${i}`, 8)))
    expect(shards.size).toBe(8)
    expect(threadTopic('need-1', 8)).toBe(`can-swarm/1/shard/${shardOf('need-1', 8)}`)
    expect(capabilityTopic('sha256')).toBe('can-swarm/1/cap/sha256')
  })
})

describe('validateFrame', () => {
  it('accepts valid envelopes and batches', async () => {
    const identity = await createIdentity()
    const a = await envelope(identity)
    const b = await envelope(identity, NOW + 5)
    const result = await validateFrame(encodeFrame([encodeEnvelope(a), encodeEnvelope(b)]), context, {
      now: () => NOW,
    })
    expect(result.ok && result.envelopes.map((e) => e.id)).toEqual([a.id, b.id])
  })

  it('rejects a forged signature, a whole batch with it, stale and future envelopes, and ingress denials', async () => {
    const identity = await createIdentity()
    const good = await envelope(identity)
    const forged = encodeEnvelope({ ...good, payload: { ...good.payload, verdict: 'reject' } } as AnyEnvelope)
    const now = () => NOW
    expect(await validateFrame(forged, context, { now })).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    })
    expect(await validateFrame(encodeFrame([encodeEnvelope(good), forged]), context, { now })).toMatchObject({
      ok: false,
      reason: 'bad-signature',
    })
    // Moved to another network: its signature covers net.
    const moved = encodeEnvelope({ ...good, net: PROPOSAL } as AnyEnvelope)
    expect(await validateFrame(moved, context, { now })).toMatchObject({ ok: false, reason: 'bad-signature' })
    const old = encodeEnvelope(await envelope(identity, NOW - 200_000))
    expect(await validateFrame(old, context, { now })).toMatchObject({ ok: false, reason: 'stale' })
    const ahead = encodeEnvelope(await envelope(identity, NOW + 60_000))
    expect(await validateFrame(ahead, context, { now })).toMatchObject({ ok: false, reason: 'future' })
    expect(await validateFrame(new Uint8Array([1, 2, 3]), context, { now })).toMatchObject({
      ok: false,
      reason: 'malformed',
    })
    const seen: string[] = []
    const denied = await validateFrame(encodeEnvelope(good), context, {
      now,
      ingress: (env, ctx) => {
        seen.push(`${env.id}@${ctx.from}`)
        return { allowed: false, reason: 'not on the list' }
      },
    })
    expect(denied).toMatchObject({ ok: false, reason: 'denied', detail: 'not on the list' })
    expect(seen).toEqual([`${good.id}@peer-a`])
    const throwing = await validateFrame(encodeEnvelope(good), context, {
      now,
      ingress: () => Promise.reject(new Error('policy engine down')),
    })
    expect(throwing).toMatchObject({ ok: false, reason: 'denied' })
  })
})

describe('validateFrame with embedded attestations', () => {
  /** A DECIDE signed by its decider, carrying two ATTEST_PLANs; `spoil` breaks the second one. */
  async function decide(spoil: boolean, voterNet = TEST_NET): Promise<Uint8Array> {
    const [decider, voter] = [await createIdentity(), await createIdentity()]
    const thread = 'need-embedded'
    const base = {
      v: PROTOCOL_VERSION,
      net: TEST_NET,
      thread,
      lamport: 5,
      ts: NOW,
      refs: [],
      policy: BUILTIN_POLICY_HASH,
      epoch: 1,
    }
    const attestations = []
    for (const signer of [decider, voter]) {
      attestations.push(
        await signEnvelope(
          {
            ...base,
            net: signer === voter ? voterNet : TEST_NET,
            kind: 'ATTEST_PLAN',
            sender: signer.did,
            payload: { need: thread, proposal: PROPOSAL, verdict: 'accept' },
          },
          signer,
        ),
      )
    }
    if (spoil) {
      const forged = {
        ...attestations[1]!,
        payload: { ...attestations[1]!.payload, verdict: 'reject' as const },
      }
      attestations[1] = { ...forged, id: computeEnvelopeId(forged) }
    }
    const unsigned = {
      ...base,
      kind: 'DECIDE' as const,
      sender: decider.did,
      payload: {
        need: thread,
        proposal: PROPOSAL,
        epoch: 1,
        lamport: 5,
        kPlan: 2,
        decider: decider.did,
        attestations,
        pool: poolSnapshotOf(testParams()),
      },
    }
    if (voterNet === TEST_NET) return encodeEnvelope(await signEnvelope(unsigned, decider))
    // signEnvelope refuses to sign a DECIDE whose attestations are of another network: sign it by hand.
    const signed = { ...unsigned, sig: await decider.sign(signingBytes(unsigned)) }
    return encodeEnvelope({ ...signed, id: computeEnvelopeId(signed) })
  }

  it('verifies the attestations a DECIDE embeds, not only its own signature', async () => {
    const now = () => NOW
    expect((await validateFrame(await decide(false), context, { now })).ok).toBe(true)
    const spoiled = await validateFrame(await decide(true), context, { now })
    expect(spoiled).toMatchObject({ ok: false, reason: 'bad-signature' })
    expect(spoiled.ok === false && spoiled.detail).toMatch(/attestations\.1/)
  })

  it('refuses as malformed a DECIDE embedding an attestation of another network', async () => {
    const now = () => NOW
    const foreign = await validateFrame(await decide(false, PROPOSAL), context, { now })
    expect(foreign).toMatchObject({ ok: false, reason: 'malformed' })
    expect(foreign.ok === false && foreign.detail).toMatch(/attestations\.1\.net/)
  })
})

describe('PeerReputation', () => {
  it('denies a peer below the threshold for a while, then lets it back', () => {
    let now = 0
    const denied: string[] = []
    const reputation = new PeerReputation({
      now: () => now,
      invalidPenalty: 10,
      disconnectThreshold: -25,
      denyMs: 1000,
      onDeny: (peer) => denied.push(peer),
    })
    reputation.recordDelivery('a')
    expect(reputation.score('a')).toBeGreaterThan(0)
    reputation.recordInvalid('b')
    reputation.recordInvalid('b')
    expect(reputation.isDenied('b')).toBe(false)
    reputation.recordInvalid('b')
    expect(reputation.isDenied('b')).toBe(true)
    expect(denied).toEqual(['b'])
    now = 999
    expect(reputation.isDenied('b')).toBe(true)
    now = 1001
    expect(reputation.isDenied('b')).toBe(false)
    expect(reputation.score('b')).toBeGreaterThan(-25)
    reputation.recordPing('c', 5000)
    reputation.recordPing('c', undefined)
    reputation.recordPing('d', 3)
    expect(reputation.score('c')).toBe(-2)
    expect(reputation.score('d')).toBe(0)
  })

  it('bounds the score from above and the peers it tracks', () => {
    const reputation = new PeerReputation({ maxScore: 1, deliveryReward: 0.6, maxPeers: 2 })
    for (let i = 0; i < 5; i += 1) reputation.recordDelivery('a')
    expect(reputation.score('a')).toBe(1)
    reputation.recordDelivery('b')
    reputation.recordDelivery('c')
    expect(Object.keys(reputation.snapshot()).sort()).toEqual(['b', 'c'])
    expect(() => new PeerReputation({ disconnectThreshold: 1 })).toThrow(/negative/)
  })
})
