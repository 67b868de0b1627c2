import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { until } from '../../../test-support/peers.ts'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { createNetwork, type Network } from '../src/net/network.ts'
import { type ConnectedRelay, watchRelayReservation } from '../src/net/relay-watch.ts'

const RELAY = '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWRelay'

/** A host that holds a reservation or not as told, on a clock the test moves. */
function fakeHost() {
  const state = {
    reserved: false,
    relays: [{ peer: '12D3KooWRelay', address: multiaddr('/ip4/127.0.0.1/tcp/4001') }] as ConnectedRelay[],
    calls: [] as string[],
    now: 0,
  }
  const host = {
    hasCircuitAddress: () => state.reserved,
    connectedRelays: async () => state.relays,
    hangUp: async (peer: string) => {
      state.calls.push(`hangUp ${peer}`)
    },
    dial: async (address: { toString(): string }) => {
      state.calls.push(`dial ${address.toString()}`)
    },
  }
  return { state, host }
}

describe('watchRelayReservation', () => {
  it('reconnects to a connected relay after afterMs without a reservation, doubling the wait, and resets once reserved', async () => {
    const { state, host } = fakeHost()
    const watch = watchRelayReservation(host, {
      afterMs: 1000,
      maxAfterMs: 4000,
      tickMs: 0,
      now: () => state.now,
    })
    await watch.tick() // the wait starts now
    state.now = 999
    await watch.tick()
    expect(watch.reconnects).toBe(0)
    state.now = 1000
    await watch.tick()
    expect(watch.reconnects).toBe(1)
    expect(state.calls).toEqual(['hangUp 12D3KooWRelay', `dial ${RELAY.replace('/p2p/12D3KooWRelay', '')}`])
    // Still nothing: the next try waits twice as long (2 s, counted from the first look after the
    // reconnect), then 4 s, and never more than maxAfterMs (4 s).
    const triesAt: number[] = []
    for (state.now = 1000; state.now <= 20_000; state.now += 100) {
      const before = watch.reconnects
      await watch.tick()
      if (watch.reconnects > before) triesAt.push(state.now)
    }
    expect(triesAt.slice(0, 4)).toEqual([3000, 7100, 11_200, 15_300])
    // A reservation resets the wait to afterMs.
    state.reserved = true
    await watch.tick()
    state.reserved = false
    const from = state.now
    await watch.tick()
    const count = watch.reconnects
    state.now = from + 1000
    await watch.tick()
    expect(watch.reconnects).toBe(count + 1)
    watch.stop()
  })

  it('does nothing while the node holds a reservation or is connected to no relay', async () => {
    const { state, host } = fakeHost()
    const watch = watchRelayReservation(host, { afterMs: 1000, tickMs: 0, now: () => state.now })
    state.reserved = true
    for (state.now = 0; state.now < 10_000; state.now += 500) await watch.tick()
    state.reserved = false
    state.relays = []
    for (; state.now < 20_000; state.now += 500) await watch.tick()
    // Connected again: the wait starts from the connection, not from when the reservation went.
    state.relays = [{ peer: 'R2', address: multiaddr('/ip4/127.0.0.1/tcp/4002') }]
    await watch.tick()
    state.now += 900
    await watch.tick()
    expect(watch.reconnects).toBe(0)
    expect(state.calls).toEqual([])
    state.now += 100
    await watch.tick()
    expect(state.calls).toEqual(['hangUp R2', 'dial /ip4/127.0.0.1/tcp/4002'])
    watch.stop()
  })
})

describe('a node behind a relay that refused its reservation once', () => {
  const started: Network[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map((network) => network.stop()))
  })

  /**
   * The relay has one slot, held by another client for 2 s after that client leaves. The node's
   * one request (made when it connects) is refused; libp2p never asks again on that connection.
   */
  async function refusedOnce(relayRecoveryMs: number): Promise<{ node: Network; relay: Network }> {
    const base = { webRTC: false, pubsubDiscovery: false, reputationPingMs: 0 } as const
    const relay = await createNetwork({
      ...base,
      identity: await createIdentity(),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      services: {
        relay: circuitRelayServer({ reservations: { maxReservations: 1, reservationTtl: 2000 } }) as (
          components: never,
        ) => unknown,
      },
    })
    started.push(relay)
    const address = `${relay.libp2p.getMultiaddrs()[0]!.toString()}`
    const squatter = await createNetwork({
      ...base,
      identity: await createIdentity(),
      listen: ['/p2p-circuit'],
      bootstrap: [address],
      relayRecoveryMs: 0,
    })
    started.push(squatter)
    await until(
      'the squatter reserved',
      () =>
        squatter.libp2p.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit')) ? true : undefined,
      15_000,
    )
    await squatter.stop()
    const node = await createNetwork({
      ...base,
      identity: await createIdentity(),
      listen: ['/p2p-circuit'],
      bootstrap: [address],
      relayRecoveryMs,
    })
    started.push(node)
    await until(
      'the node connected to the relay',
      () => (node.libp2p.getConnections(relay.peerId).length > 0 ? true : undefined),
      15_000,
    )
    return { node, relay }
  }

  it('stays unreachable without the watch (the failure the watch exists for)', {
    timeout: 30_000,
  }, async () => {
    const { node } = await refusedOnce(0)
    await new Promise((resolve) => setTimeout(resolve, 6000))
    expect(node.libp2p.getMultiaddrs().map(String)).toEqual([])
  })

  it('gets a reservation back with the watch', { timeout: 30_000 }, async () => {
    const { node, relay } = await refusedOnce(1500)
    await until(
      'a circuit address through the relay',
      () =>
        node.libp2p.getMultiaddrs().some((a) => a.toString().includes(`/p2p/${relay.peerId}/p2p-circuit`))
          ? true
          : undefined,
      20_000,
    )
  })
})
