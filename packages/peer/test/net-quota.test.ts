/**
 * Quotas (docs/PROTOCOL.md §13): token buckets and byte budgets by the rule, then the gossip bus
 * between two real libp2p nodes on 127.0.0.1 — a sender over its budget is dropped without its
 * forwarder being penalised, forged envelopes cannot spend an honest sender's budget, anchors are
 * never throttled, and a forwarding peer over its budget is refused before any signature check.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { sign } from '../../../test-support/envelopes.ts'
import { encodeEnvelope } from '../src/core/codec.ts'
import type { AnyEnvelope } from '../src/core/types.ts'
import { createIdentity, type LocalIdentity } from '../src/crypto/ed25519.ts'
import { createBus, type GossipBus, type GossipQuotas } from '../src/net/bus.ts'
import { encodeFrame } from '../src/net/frame.ts'
import { createNetwork, type Network } from '../src/net/network.ts'
import { ByteBudget, RateLimiter } from '../src/net/quota.ts'
import { threadTopic } from '../src/net/topics.ts'

describe('RateLimiter and ByteBudget', () => {
  it('allows a burst, refills at the rate, and takes nothing from a request it refuses', () => {
    let now = 0
    const limiter = new RateLimiter({ perSecond: 10, burst: 5, now: () => now })
    expect(limiter.take('a', 5)).toBe(true)
    expect(limiter.take('a')).toBe(false)
    expect(limiter.waitMs('a')).toBe(100)
    now = 250
    expect(limiter.available('a')).toBeCloseTo(2.5)
    expect(limiter.take('a', 3)).toBe(false)
    expect(limiter.take('a', 2)).toBe(true)
    now = 100_000
    expect(limiter.available('a')).toBe(5)
    // Keys are independent.
    expect(limiter.take('b', 5)).toBe(true)
  })

  it('tracks at most maxKeys keys, forgetting the least recently charged', () => {
    const limiter = new RateLimiter({ perSecond: 1, burst: 1, maxKeys: 3, now: () => 0 })
    for (const key of ['a', 'b', 'c', 'd']) expect(limiter.take(key)).toBe(true)
    expect(limiter.size).toBe(3)
    // 'a' was forgotten (a fresh bucket), 'd' is still empty.
    expect(limiter.take('a')).toBe(true)
    expect(limiter.take('d')).toBe(false)
    expect(() => new RateLimiter({ perSecond: 0, burst: 1 })).toThrow(/perSecond/)
    expect(() => new RateLimiter({ perSecond: 1, burst: 0 })).toThrow(/burst/)
  })

  it('a byte budget refuses what does not fit and gets each release back once', () => {
    const budget = new ByteBudget(100)
    const first = budget.tryAcquire(60)!
    expect(budget.tryAcquire(50)).toBeUndefined()
    const second = budget.tryAcquire(40)!
    expect(budget.used).toBe(100)
    first()
    first()
    expect(budget.used).toBe(40)
    second()
    expect(budget.used).toBe(0)
  })
})

const base = { webRTC: false, pubsubDiscovery: false, reputationPingMs: 0, listen: ['/ip4/127.0.0.1/tcp/0'] }
const THREAD = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const PROPOSAL = 'bafyreib2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zya'

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

let lamport = 1
function vote(identity: LocalIdentity): Promise<AnyEnvelope> {
  lamport += 1
  return sign(
    identity,
    'ATTEST_PLAN',
    THREAD,
    { need: THREAD, proposal: PROPOSAL, verdict: 'accept' },
    { lamport, ts: Date.now() },
  )
}

const networks: Network[] = []
afterAll(async () => {
  for (const network of networks) await network.stop().catch(() => undefined)
})

/** A publisher and a receiver whose bus has `quotas`; resolves once gossip flows between them. */
async function pair(
  quotas: Partial<GossipQuotas>,
  receiverReputation: { invalidPenalty?: number } = {},
): Promise<{
  publisher: Network
  receiver: Network
  publisherBus: GossipBus
  receiverBus: GossipBus
  heard: AnyEnvelope[]
}> {
  const publisher = await createNetwork({ ...base, identity: await createIdentity() })
  const receiver = await createNetwork({
    ...base,
    identity: await createIdentity(),
    bootstrap: [publisher.libp2p.getMultiaddrs()[0]!.toString()],
    reputation: receiverReputation,
  })
  networks.push(publisher, receiver)
  const publisherBus = createBus(publisher, { publishWindowMs: 0, quotas: false })
  const receiverBus = createBus(receiver, { quotas })
  const heard: AnyEnvelope[] = []
  receiverBus.onEnvelope((env) => heard.push(env))
  const probe = await createIdentity()
  await until(() => {
    if (heard.some((env) => env.sender === probe.did)) return true
    void vote(probe).then((env) => publisherBus.publish(env))
    return false
  }, 'gossip between the pair')
  heard.length = 0
  return { publisher, receiver, publisherBus, receiverBus, heard }
}

describe('gossip quotas between two nodes', () => {
  it('drops a sender over its budget without penalising the forwarder; others and anchors pass', async () => {
    const flooder = await createIdentity()
    const honest = await createIdentity()
    const anchor = await createIdentity()
    const { publisher, receiver, publisherBus, receiverBus, heard } = await pair({
      senderEnvelopes: { perSecond: 1, burst: 5 },
      exempt: (did) => did === anchor.did,
    })
    for (let i = 0; i < 30; i += 1) publisherBus.publish(await vote(flooder))
    for (let i = 0; i < 30; i += 1) publisherBus.publish(await vote(anchor))
    for (let i = 0; i < 3; i += 1) publisherBus.publish(await vote(honest))
    await until(() => heard.filter((env) => env.sender === honest.did).length === 3, 'the honest votes')
    await until(() => heard.filter((env) => env.sender === anchor.did).length === 30, "the anchor's votes")
    await new Promise((resolve) => setTimeout(resolve, 500))
    const fromFlooder = heard.filter((env) => env.sender === flooder.did).length
    expect(fromFlooder).toBeGreaterThanOrEqual(5)
    expect(fromFlooder).toBeLessThanOrEqual(10)
    expect(receiverBus.stats().senderThrottled).toBeGreaterThanOrEqual(20)
    // The forwarder relayed someone's flood: it is not at fault.
    expect(receiver.reputation.score(publisher.libp2p.peerId.toString())).toBeGreaterThanOrEqual(0)
  })

  it('forged envelopes cannot spend an honest sender’s budget; a peer over its budget is refused unchecked', async () => {
    const honest = await createIdentity()
    // A small penalty per forgery, so that ten of them do not get the forwarder disconnected.
    const { publisher, receiver, publisherBus, receiverBus, heard } = await pair(
      { senderEnvelopes: { perSecond: 1, burst: 3 }, peerEnvelopes: { perSecond: 1, burst: 40 } },
      { invalidPenalty: 1 },
    )
    // Ten envelopes claiming the honest sender with broken signatures: rejected as forgeries.
    const genuine = await vote(honest)
    for (let i = 0; i < 10; i += 1) {
      const forged = { ...genuine, lamport: genuine.lamport + 1_000 + i, sig: new Uint8Array(64).fill(i + 1) }
      await publisherBus.publishFrame(
        threadTopic(THREAD, publisher.config.shardCount),
        encodeEnvelope(forged as never),
      )
    }
    await until(() => receiverBus.stats().rejected['bad-signature'] >= 10, 'the forgeries to be rejected')
    publisherBus.publish(genuine)
    await until(() => heard.some((env) => env.id === genuine.id), 'the genuine envelope')
    // The forwarder of forgeries was penalised for them (that is misbehaviour, unlike a flood).
    expect(receiver.reputation.score(publisher.libp2p.peerId.toString())).toBeLessThan(0)
    // Frames past the peer's envelope budget (40 in a burst, 1/s after) are not even checked.
    const others = await createIdentity()
    const batch: Uint8Array[] = []
    for (let i = 0; i < 50; i += 1) batch.push(encodeEnvelope((await vote(others)) as never))
    const before = receiverBus.stats()
    await publisherBus.publishFrame(
      threadTopic(THREAD, publisher.config.shardCount),
      encodeFrame(batch, true),
    )
    await until(
      () => receiverBus.stats().rejected.throttled > before.rejected.throttled,
      'the frame to be throttled',
    )
    expect(receiverBus.stats().rejected['bad-signature']).toBe(before.rejected['bad-signature'])
    expect(heard.filter((env) => env.sender === others.did)).toHaveLength(0)
  })
})
