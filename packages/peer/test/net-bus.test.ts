/**
 * The bus between two real libp2p nodes on 127.0.0.1 (in this process): capability topics carry
 * NEED announcements to a peer that follows no shard; a peer on both hears each envelope once;
 * batched frames arrive whole; close() stops delivery.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sign, signNeed } from '../../../test-support/envelopes.ts'
import type { AnyEnvelope } from '../src/core/types.ts'
import { createIdentity, type LocalIdentity } from '../src/crypto/ed25519.ts'
import { createBus, type GossipBus } from '../src/net/bus.ts'
import { createNetwork, type Network } from '../src/net/network.ts'
import { capabilityTopic } from '../src/net/topics.ts'

const base = { webRTC: false, pubsubDiscovery: false, reputationPingMs: 0, listen: ['/ip4/127.0.0.1/tcp/0'] }

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** An envelope id standing for a PROPOSE. */
const PROPOSAL = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

/** A fresh NEED (its thread id bound to it, A1); `budget` tells NEEDs apart. */
async function need(identity: LocalIdentity, budget: number): Promise<AnyEnvelope> {
  return (await signNeed(
    identity,
    {
      epoch: 1,
      requires: ['sha256'],
      inputs: ['bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'],
      produces: 'text/plain',
      budget,
      deadlineMs: Date.now() + 60_000,
      bidWindowMs: 500,
    },
    { ts: Date.now() },
  )) as AnyEnvelope
}

function attest(identity: LocalIdentity, thread: string, lamport: number): Promise<AnyEnvelope> {
  return sign(
    identity,
    'ATTEST_PLAN',
    thread,
    { need: thread, proposal: PROPOSAL, verdict: 'accept' },
    { lamport, ts: Date.now() },
  )
}

describe('gossip bus between two nodes', () => {
  let publisherIdentity: LocalIdentity
  let publisher: Network
  let worker: Network
  let full: Network
  let publisherBus: GossipBus
  let workerBus: GossipBus
  let fullBus: GossipBus
  const heardByWorker: string[] = []
  const heardByFull: string[] = []

  beforeAll(async () => {
    publisherIdentity = await createIdentity()
    publisher = await createNetwork({ ...base, identity: publisherIdentity })
    const address = publisher.libp2p.getMultiaddrs()[0]!.toString()
    worker = await createNetwork({
      ...base,
      identity: await createIdentity(),
      bootstrap: [address],
      capabilities: ['sha256'],
    })
    full = await createNetwork({
      ...base,
      identity: await createIdentity(),
      bootstrap: [address],
      capabilities: ['sha256'],
    })
    publisherBus = createBus(publisher, { publishWindowMs: 20 })
    workerBus = createBus(worker, { shards: [] })
    fullBus = createBus(full)
    workerBus.onEnvelope((env) => heardByWorker.push(env.id))
    fullBus.onEnvelope((env) => heardByFull.push(env.id))
    await until(
      () =>
        publisher.pubsub.getSubscribers(capabilityTopic('sha256')).length === 2 &&
        publisher.pubsub.getSubscribers('can-swarm/1/shard/0').length === 1,
      'subscriptions',
    )
    await new Promise((resolve) => setTimeout(resolve, 1500)) // a gossipsub heartbeat grafts the meshes
  }, 60_000)

  afterAll(async () => {
    for (const bus of [publisherBus, workerBus, fullBus]) bus?.close()
    await Promise.all([publisher?.stop(), worker?.stop(), full?.stop()])
  })

  it('announces NEEDs on capability topics and delivers each envelope once', async () => {
    const env = await need(publisherIdentity, 5)
    const other = await attest(publisherIdentity, env.thread, 2)
    publisherBus.publish(env)
    publisherBus.publish(other)
    await until(() => heardByFull.length >= 2 && heardByWorker.length >= 1, 'deliveries')
    await new Promise((resolve) => setTimeout(resolve, 500))
    // the worker follows no shard: it hears the NEED (capability topic) and nothing else
    expect(heardByWorker).toEqual([env.id])
    // the full peer hears the NEED on both topics but delivers it once
    expect(heardByFull.filter((id) => id === env.id)).toHaveLength(1)
    expect(heardByFull).toContain(other.id)
    expect(fullBus.stats().duplicates).toBeGreaterThanOrEqual(1)
  })

  it('batches envelopes published within the window into fewer gossip messages', async () => {
    const before = publisherBus.stats().framesPublished
    const { thread } = await need(publisherIdentity, 6)
    const envs: AnyEnvelope[] = []
    for (let i = 0; i < 10; i += 1) envs.push(await attest(publisherIdentity, thread, 10 + i))
    for (const env of envs) publisherBus.publish(env)
    await publisherBus.flush()
    expect(publisherBus.stats().framesPublished - before).toBeLessThan(envs.length)
    await until(() => envs.every((env) => heardByFull.includes(env.id)), 'batched deliveries')
  })

  it('withholds envelopes receivers would refuse as stale, instead of getting itself penalised', async () => {
    const { thread } = await need(publisherIdentity, 8)
    const old = await sign(
      publisherIdentity,
      'ATTEST_PLAN',
      thread,
      { need: thread, proposal: PROPOSAL, verdict: 'accept' },
      { lamport: 3, ts: Date.now() - 200_000 },
    )
    const before = publisherBus.stats()
    publisherBus.publish(old)
    await publisherBus.flush()
    expect(publisherBus.stats().withheld).toBe(before.withheld + 1)
    expect(publisherBus.stats().framesPublished).toBe(before.framesPublished)
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(heardByFull).not.toContain(old.id)
    expect(fullBus.stats().rejected.stale).toBe(0)
  })

  it('splits a batch by bytes: large envelopes published together all arrive', async () => {
    const { thread } = await need(publisherIdentity, 9)
    const rejectedBefore = fullBus.stats().rejected.malformed
    const large: AnyEnvelope[] = []
    for (let i = 0; i < 4; i += 1) {
      // About 400 KB each: four of them would not fit one frame.
      const ops = Array.from({ length: 100 }, (_, n) => ({
        op: 'ANNOTATE' as const,
        task: `t${n}`,
        key: 'note',
        value: `${i}`.repeat(4000),
      }))
      large.push(
        await sign(publisherIdentity, 'UPDATE_PLAN', thread, { ops }, { lamport: 20 + i, ts: Date.now() }),
      )
    }
    for (const env of large) publisherBus.publish(env)
    await publisherBus.flush()
    await until(() => large.every((env) => heardByFull.includes(env.id)), 'the large envelopes', 30_000)
    expect(fullBus.stats().rejected.malformed).toBe(rejectedBefore)
  })

  it('stops delivering after close()', async () => {
    workerBus.close()
    const count = heardByWorker.length
    const late = await need(publisherIdentity, 7)
    publisherBus.publish(late)
    await publisherBus.flush()
    await until(() => heardByFull.includes(late.id), 'full peer delivery')
    expect(heardByWorker).toHaveLength(count)
  })
})
