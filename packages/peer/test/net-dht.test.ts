/** The opt-in Kad-DHT (the swarm's own protocol id): a peer finds another it never met, through a third. */
import { peerIdFromString } from '@libp2p/peer-id'
import { afterAll, describe, expect, it } from 'vitest'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { createNetwork, type Network } from '../src/net/network.ts'

const base = { webRTC: false, pubsubDiscovery: false, reputationPingMs: 0, dialDiscoveredBelow: 0 }

describe('Kad-DHT peer routing', () => {
  const networks: Network[] = []
  afterAll(async () => {
    await Promise.all(networks.map((network) => network.stop()))
  })

  it('is off by default and finds peers through the swarm DHT when on', async () => {
    const plain = await createNetwork({
      ...base,
      identity: await createIdentity(),
      listen: ['/ip4/127.0.0.1/tcp/0'],
    })
    networks.push(plain)
    expect(plain.libp2p.getProtocols().some((protocol) => protocol.includes('kad'))).toBe(false)

    const hub = await createNetwork({
      ...base,
      identity: await createIdentity(),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      dht: 'server',
    })
    networks.push(hub)
    expect(hub.libp2p.getProtocols()).toContain('/can-swarm/kad/1.0.0')
    const hubAddress = hub.libp2p.getMultiaddrs()[0]!.toString()
    const [a, b] = await Promise.all(
      [0, 1].map(async () =>
        createNetwork({
          ...base,
          identity: await createIdentity(),
          listen: ['/ip4/127.0.0.1/tcp/0'],
          bootstrap: [hubAddress],
          dht: 'server',
        }),
      ),
    )
    networks.push(a!, b!)
    // both know the hub; a has never heard of b
    const deadline = Date.now() + 20_000
    let found: string[] = []
    while (Date.now() < deadline) {
      try {
        const info = await a!.libp2p.peerRouting.findPeer(peerIdFromString(b!.peerId.toString()), {
          signal: AbortSignal.timeout(3000),
        })
        found = info.multiaddrs.map(String)
        if (found.length > 0) break
      } catch {}
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    expect(found.length).toBeGreaterThan(0)
    for (const address of found) expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\//)
  }, 60_000)
})
