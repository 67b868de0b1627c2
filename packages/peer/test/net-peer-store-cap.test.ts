import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { FsDatastore } from 'datastore-fs'
import { afterEach, describe, expect, it } from 'vitest'
import { until } from '../../../test-support/peers.ts'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { createNetwork, type Network } from '../src/net/network.ts'
import { capPeerStore } from '../src/net/peer-store-cap.ts'

async function peerIds(n: number): Promise<PeerId[]> {
  return Promise.all(
    Array.from({ length: n }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))),
  )
}

/** An in-memory store whose updates the test drives. */
function fakeStore(initial: PeerId[]) {
  const stored = new Map(initial.map((id) => [id.toString(), id]))
  const connected = new Set<string>()
  let listener: ((peer: PeerId) => void) | undefined
  return {
    stored,
    connected,
    update(peer: PeerId) {
      stored.set(peer.toString(), peer)
      listener?.(peer)
    },
    host: {
      storedPeers: async () => [...stored.values()],
      isConnected: (peer: PeerId) => connected.has(peer.toString()),
      deletePeer: async (peer: PeerId) => {
        stored.delete(peer.toString())
      },
      onUpdate: (next: (peer: PeerId) => void) => {
        listener = next
        return () => {
          listener = undefined
        }
      },
    },
  }
}

describe('capPeerStore', () => {
  it('trims what is stored at start, then deletes the least recently updated peer that is not connected', async () => {
    const ids = await peerIds(12)
    const store = fakeStore(ids.slice(0, 6))
    const cap = capPeerStore(store.host, 4)
    await cap.ready
    expect(store.stored.size).toBe(4)
    expect(cap.evicted).toBe(2)
    // ids[2..5] are left; ids[2] is connected, ids[3] was updated again: ids[4] is the oldest free one.
    store.connected.add(ids[2]!.toString())
    store.update(ids[3]!)
    store.update(ids[6]!)
    expect([...store.stored.keys()].sort()).toEqual([ids[2], ids[3], ids[5], ids[6]].map(String).sort())
    // However many fresh ids arrive, the store never holds more than the bound.
    for (const id of ids.slice(7)) {
      store.update(id)
      expect(store.stored.size).toBeLessThanOrEqual(4)
    }
    expect(store.stored.has(ids[2]!.toString())).toBe(true)
    cap.stop()
    store.update(ids[0]!)
    expect(store.stored.size).toBe(5)
  })
})

describe('a peer store on disk under fresh peer ids', () => {
  const started: Network[] = []
  const dirs: string[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map((network) => network.stop()))
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })))
  })

  /** An anchor-like node on a disk datastore met by `strangers` fresh keys, one after another. */
  async function flooded(maxStoredPeers: number, strangers: number, dir: string): Promise<Network> {
    const base = { webRTC: false, pubsubDiscovery: false, reputationPingMs: 0 } as const
    const datastore = new FsDatastore(dir)
    await datastore.open()
    const anchor = await createNetwork({
      ...base,
      identity: await createIdentity(),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      datastore,
      inboundConnectionsPerSecond: 1000,
      maxStoredPeers,
    })
    started.push(anchor)
    const address = anchor.libp2p.getMultiaddrs()[0]!.toString()
    for (let i = 0; i < strangers; i += 5) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(5, strangers - i) }, async () =>
          createNetwork({ ...base, identity: await createIdentity(), listen: [], bootstrap: [address] }),
        ),
      )
      // Each is identified by the anchor (its record written), then leaves.
      await until(
        'the strangers identified',
        async () => {
          const stored = new Set((await anchor.libp2p.peerStore.all()).map((peer) => peer.id.toString()))
          return batch.every((peer) => stored.has(peer.peerId.toString())) || undefined
        },
        15_000,
      ).catch(() => undefined)
      await Promise.all(batch.map((peer) => peer.stop()))
    }
    return anchor
  }

  it('keeps at most maxStoredPeers records, across a restart with a lower bound', {
    timeout: 60_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'can-swarm-peerstore-'))
    dirs.push(dir)
    const anchor = await flooded(10, 30, dir)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect((await anchor.libp2p.peerStore.all()).length).toBeLessThanOrEqual(10)
    await anchor.stop()
    // Reopened with a lower bound, the store is trimmed at start.
    const datastore = new FsDatastore(dir)
    await datastore.open()
    const again = await createNetwork({
      identity: await createIdentity(),
      webRTC: false,
      pubsubDiscovery: false,
      reputationPingMs: 0,
      listen: [],
      datastore,
      maxStoredPeers: 3,
    })
    started.push(again)
    await until(
      'the store trimmed',
      async () => ((await again.libp2p.peerStore.all()).length <= 3 ? true : undefined),
      10_000,
    )
  })

  it('grows with every stranger without a bound (what the cap prevents)', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'can-swarm-peerstore-'))
    dirs.push(dir)
    const anchor = await flooded(1_000_000, 20, dir)
    expect((await anchor.libp2p.peerStore.all()).length).toBeGreaterThanOrEqual(18)
  })
})
