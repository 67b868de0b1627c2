/**
 * Hybrid NATS mode with Debian's nats-server: a peer running the bridge carries envelopes both
 * ways between NATS and gossip — its own and gossip's out to NATS once each, NATS's in through the
 * same gate as gossip (forged, stale and malformed frames refused, duplicates dropped, oversized
 * messages dropped) and on to the other gossip peers — and never echoes NATS's back to it.
 */

import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import { connect, type NatsConnection } from 'nats'
import { afterAll, describe, expect, it } from 'vitest'
import { signNeed, testParams } from '../../../test-support/envelopes.ts'
import { type NatsServer, startNatsServer } from '../../../test-support/nats-server.ts'
import { tcpOf, until } from '../../../test-support/peers.ts'
import { need } from '../../../test-support/prerequisites.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import { decodeEnvelope, encodeEnvelope } from '../src/core/codec.ts'
import type { AnyEnvelope } from '../src/core/types.ts'
import { createIdentity, type Identity } from '../src/crypto/ed25519.ts'
import { type NatsBridgeService, natsBridgeService, natsToken } from '../src/nats.ts'
import { decodeFrame, encodeFrame } from '../src/net/frame.ts'
import { shardOf } from '../src/net/topics.ts'
import { createPeer, type Peer } from '../src/peer.ts'

const available = need('nats-server', import.meta.filename)
const network = { webRTC: false, listen: ['/ip4/127.0.0.1/tcp/0'], pubsubDiscovery: false } as const
const cleanup: Array<() => Promise<unknown>> = []
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined)
})

const need_ = (identity: Identity, budget: number, ts = Date.now(), net?: string) =>
  signNeed(
    identity,
    {
      epoch: 1,
      requires: ['word-frequency'],
      inputs: [],
      produces: 'application/json',
      budget,
      deadlineMs: 0,
      bidWindowMs: 1,
    },
    net === undefined ? { ts } : { ts, net },
  )

/** A peer (the network's one anchor) running the bridge service with `options`. */
async function bridgedPeer(
  options: Parameters<typeof natsBridgeService>[0],
  onError?: (error: unknown) => void,
) {
  const identity = await createIdentity()
  const params = testParams({ anchors: [identity.did], verifiers: [], bootstrap: true })
  const bridged: Peer = await createPeer({
    identity,
    params,
    network,
    envelopeSync: false,
    planSync: false,
    ...(onError ? { onError } : {}),
    services: { nats: natsBridgeService(options) },
  })
  cleanup.push(() => bridged.stop())
  return { bridged, params }
}

describe.skipIf(!available)('the NATS bridge', () => {
  it('carries envelopes both ways through the same gate as gossip, once each way', {
    timeout: 150_000,
  }, async () => {
    const server: NatsServer = await startNatsServer()
    cleanup.push(() => server.stop())
    const { bridged, params } = await bridgedPeer({ servers: server.url, maxMessageBytes: 64 * 1024 })
    const other: Peer = await createPeer({
      identity: await createIdentity(),
      params,
      network,
      bootstrap: [tcpOf(bridged)],
      envelopeSync: false,
      planSync: false,
    })
    cleanup.push(() => other.stop())
    const bridge = (bridged.services.nats as NatsBridgeService).bridge()!
    await bridge.connected()
    const prefix = `can-swarm.${natsToken(params.network)}`

    // The NATS side: a plain client that hears everything under the prefix.
    const client: NatsConnection = await connect({ servers: server.url, noEcho: true })
    cleanup.push(() => client.close())
    const heard: Array<{ subject: string; env: AnyEnvelope }> = []
    client.subscribe(`${prefix}.*`, {
      callback: (_error, message) => {
        for (const bytes of decodeFrame(message.data))
          heard.push({ subject: message.subject, env: decodeEnvelope(bytes) })
      },
    })
    await client.flush()
    const heardOf = (id: string) => heard.filter((entry) => entry.env.id === id)
    const toNats = (env: AnyEnvelope) =>
      client.publish(`${prefix}.${shardOf(env.thread)}`, encodeFrame([encodeEnvelope(env)]))

    const author = await createIdentity()
    // Gossip between the two peers first (the mesh forms within a heartbeat or two).
    let probe = 0
    await until('gossip between the two peers', async () => {
      const env = await need_(author, 1_000 + probe++)
      other.bus.publish(env)
      await new Promise((resolve) => setTimeout(resolve, 200))
      return bridged.agent.replica(env.thread) ? true : undefined
    })

    // 1. What this peer publishes goes to NATS, on its thread's shard subject.
    const own = await need_(author, 1)
    bridged.bus.publish(own)
    await until('its own envelope on NATS', () => (heardOf(own.id).length > 0 ? true : undefined), 10_000)
    expect(heardOf(own.id)[0]!.subject).toBe(`${prefix}.${shardOf(own.thread)}`)

    // 2. What gossip brings goes to NATS.
    const gossiped = await need_(author, 2)
    other.bus.publish(gossiped)
    await until(
      'a gossiped envelope on NATS',
      () => (heardOf(gossiped.id).length > 0 ? true : undefined),
      10_000,
    )

    // 3. What NATS brings reaches this peer's agent and, relayed, the other gossip peer; it is not
    //    sent back to NATS.
    const fromNats = await need_(author, 3)
    toNats(fromNats)
    await until('the NATS envelope at the other gossip peer', () =>
      other.agent.replica(fromNats.thread) ? true : undefined,
    )
    expect(bridged.agent.replica(fromNats.thread)).toBeDefined()

    // 4. The same envelope again: a duplicate, not delivered or relayed again.
    toNats(fromNats)
    await until('the duplicate counted', () => (bridge.stats().fromNats.duplicates >= 1 ? true : undefined))

    // 5. A forged envelope (payload changed after signing), a stale one, junk and an oversized
    //    message: refused or dropped, nothing delivered.
    const signed = await need_(author, 4)
    const forged = { ...signed, payload: { ...signed.payload, budget: 999 } } as AnyEnvelope
    toNats(forged)
    const stale = await need_(author, 5, Date.now() - 60 * 60_000)
    toNats(stale)
    client.publish(`${prefix}.0`, new Uint8Array([0xff, 0x00, 0x13]))
    client.publish(`${prefix}.0`, new Uint8Array(70 * 1024))
    await until('the bad messages judged', () => {
      const { rejected, dropped } = bridge.stats().fromNats
      return (rejected['bad-signature'] ?? 0) >= 1 &&
        (rejected.stale ?? 0) >= 1 &&
        (rejected.malformed ?? 0) >= 1 &&
        dropped >= 1
        ? true
        : undefined
    })
    expect(bridged.agent.replica(stale.thread)).toBeUndefined()
    expect(bridged.agent.replica(signed.thread)).toBeUndefined()

    // 6. Another network's envelope is denied (the peer's bus takes only its own network's).
    const foreign = await need_(
      author,
      7,
      Date.now(),
      artifactCid(new TextEncoder().encode('another network')),
    )
    toNats(foreign)
    await until('the foreign envelope denied', () =>
      (bridge.stats().fromNats.rejected.denied ?? 0) >= 1 ? true : undefined,
    )
    expect(bridged.agent.replica(foreign.thread)).toBeUndefined()

    // 7. A batch: one forged envelope refuses the whole frame (its good one is not delivered); a
    //    batch of a known and a new envelope delivers only the new one, the known one dropped first.
    const good = await need_(author, 8)
    const honest = await need_(author, 9)
    const bad = { ...honest, payload: { ...honest.payload, budget: 1 } } as AnyEnvelope
    client.publish(`${prefix}.0`, encodeFrame([encodeEnvelope(good), encodeEnvelope(bad)], true))
    await until('the forged batch refused', () =>
      (bridge.stats().fromNats.rejected['bad-signature'] ?? 0) >= 2 ? true : undefined,
    )
    expect(bridged.agent.replica(good.thread)).toBeUndefined()
    const duplicatesBefore = bridge.stats().fromNats.duplicates
    client.publish(`${prefix}.0`, encodeFrame([encodeEnvelope(fromNats), encodeEnvelope(good)], true))
    await until('the new one of the batch delivered', () =>
      bridged.agent.replica(good.thread) ? true : undefined,
    )
    expect(bridge.stats().fromNats.duplicates).toBe(duplicatesBefore + 1)

    await client.flush()
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(heardOf(fromNats.id)).toHaveLength(0)
    expect(heardOf(good.id)).toHaveLength(0)
    expect(heardOf(own.id)).toHaveLength(1)
    expect(heardOf(gossiped.id)).toHaveLength(1)
    const stats = bridge.stats()
    expect(stats.fromNats.envelopes).toBe(2)
    expect(stats.fromNats.notRelayed).toBe(0)
    expect(stats.toNats).toMatchObject({ errors: 0, dropped: 0 })
    expect(stats.connected).toBe(true)

    // Stopping the peer closes the bridge: nothing more goes to NATS.
    await bridged.stop()
    const after = await need_(author, 6)
    other.bus.publish(after)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(heardOf(after.id)).toHaveLength(0)
  })

  it('starts while NATS is down and connects when it comes up; relays within its budget only', async () => {
    // A free port, for a server started later.
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as AddressInfo).port
    await new Promise((resolve) => probe.close(resolve))
    const errors: string[] = []
    const { bridged, params } = await bridgedPeer(
      {
        servers: `nats://user:secret@127.0.0.1:${port}`,
        retryMs: 100,
        relayBudget: { perSecond: 0.001, burst: 1 },
      },
      (error) => errors.push(String(error)),
    )
    const bridge = (bridged.services.nats as NatsBridgeService).bridge()!
    expect(bridge.source).toBe(`nats:nats://127.0.0.1:${port}`)
    const author = await createIdentity()
    // Down: what this peer publishes cannot reach NATS, and is counted.
    bridged.bus.publish(await need_(author, 1))
    expect(bridge.stats()).toMatchObject({ connected: false, toNats: { dropped: 1, envelopes: 0 } })
    await until('a failed connection reported', () =>
      errors.some((e) => e.includes('cannot connect')) ? true : undefined,
    )
    expect(errors.join('\n')).not.toContain('secret')

    const server = await startNatsServer(port)
    cleanup.push(() => server.stop())
    await bridge.connected()
    const client: NatsConnection = await connect({ servers: server.url })
    cleanup.push(() => client.close())
    const prefix = `can-swarm.${natsToken(params.network)}`
    const first = await need_(author, 2)
    const second = await need_(author, 3)
    for (const env of [first, second])
      client.publish(`${prefix}.${shardOf(env.thread)}`, encodeFrame([encodeEnvelope(env)]))
    await until('both delivered here', () =>
      bridged.agent.replica(first.thread) && bridged.agent.replica(second.thread) ? true : undefined,
    )
    // One relay token: the second is delivered here but not put on gossip.
    expect(bridge.stats().fromNats).toMatchObject({ envelopes: 2, notRelayed: 1 })
  })
})
