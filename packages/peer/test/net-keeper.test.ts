import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { keepConnected, MAX_KEPT_PEERS } from '../src/net/keeper.ts'
import { createNetwork, type Network } from '../src/net/network.ts'

async function peerId(): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

/** A host whose dials succeed or fail as told, on a clock the test moves. */
class FakeHost {
  connected = new Set<string>()
  dialsTo: string[] = []
  pending: Array<{ peer: string; settle: (ok: boolean) => void }> = []
  getConnections(peer?: PeerId): readonly unknown[] {
    return peer !== undefined && this.connected.has(peer.toString()) ? [{}] : []
  }
  dial(address: { toString(): string }): Promise<unknown> {
    const peer = address.toString().split('/p2p/').at(-1)!
    this.dialsTo.push(peer)
    return new Promise((resolve, reject) => {
      this.pending.push({
        peer,
        settle: (ok) => {
          if (ok) {
            this.connected.add(peer)
            resolve({})
          } else reject(new Error('refused'))
        },
      })
    })
  }
  async settleAll(ok: boolean): Promise<void> {
    const pending = this.pending.splice(0)
    for (const dial of pending) dial.settle(ok)
    await new Promise((resolve) => setTimeout(resolve, 0))
  }
}

/** One peer kept on a clock the test moves (`clock.now`), from 1 s up to `maxDelayMs`, no jitter. */
async function keptOne(maxDelayMs: number) {
  const host = new FakeHost()
  const clock = { now: 0 }
  const id = await peerId()
  const keeper = keepConnected(host, [`/ip4/127.0.0.1/tcp/4001/p2p/${id}`], {
    minDelayMs: 1000,
    maxDelayMs,
    tickMs: 0,
    now: () => clock.now,
    random: () => 0.5,
  })
  return { host, clock, keeper }
}

describe('keepConnected', () => {
  it('redials a lost peer for ever, backing off to the cap, and from the start once it is back', async () => {
    const { host, clock, keeper } = await keptOne(8000)
    // Not connected: the first dial comes after the shortest delay, not before.
    keeper.tick()
    expect(host.dialsTo).toHaveLength(0)
    clock.now = 1000
    keeper.tick()
    expect(host.dialsTo).toHaveLength(1)
    // One dial at a time per peer.
    keeper.tick()
    expect(host.dialsTo).toHaveLength(1)
    // Failures double the wait up to the cap, and never stop the keeper.
    const gaps: number[] = []
    let last = clock.now
    for (let failure = 0; failure < 40; failure += 1) {
      await host.settleAll(false)
      const before = host.dialsTo.length
      while (host.dialsTo.length === before) {
        clock.now += 100
        keeper.tick()
      }
      gaps.push(clock.now - last)
      last = clock.now
    }
    expect(gaps.slice(0, 4)).toEqual([2000, 4000, 8000, 8000])
    expect(Math.max(...gaps)).toBe(8000)
    // Back: connected, no more dials; lost again, redialled after the shortest delay.
    await host.settleAll(true)
    const dialsWhenBack = host.dialsTo.length
    clock.now += 60_000
    keeper.tick()
    expect(host.dialsTo).toHaveLength(dialsWhenBack)
    host.connected.clear()
    keeper.tick()
    clock.now += 999
    keeper.tick()
    expect(host.dialsTo).toHaveLength(dialsWhenBack)
    clock.now += 1
    keeper.tick()
    expect(host.dialsTo).toHaveLength(dialsWhenBack + 1)
    keeper.stop()
  })

  it('backs off from a peer that accepts and at once closes the connection', async () => {
    const { host, clock, keeper } = await keptOne(16_000)
    const dialTimes: number[] = []
    for (; clock.now <= 60_000; clock.now += 100) {
      const before = host.dialsTo.length
      keeper.tick()
      if (host.dialsTo.length > before) dialTimes.push(clock.now)
      // Each dial succeeds, and the peer closes the connection before the next look.
      await host.settleAll(true)
      host.connected.clear()
    }
    const gaps = dialTimes.slice(1).map((at, i) => at - dialTimes[i]!)
    expect(gaps.slice(0, 4)).toEqual([2000, 4000, 8000, 16_000])
    expect(dialTimes.length).toBeLessThan(10)
    keeper.stop()
  })

  it('does not keep the node itself when its own list names it', async () => {
    const [own, other] = await Promise.all([peerId(), peerId()])
    const keeper = keepConnected(
      new FakeHost(),
      [`/ip4/127.0.0.1/tcp/1/p2p/${own}`, `/ip4/127.0.0.1/tcp/2/p2p/${other}`],
      { tickMs: 0, self: own },
    )
    expect(keeper.size).toBe(1)
    keeper.stop()
  })

  it('keeps each listed peer once, skips what it cannot name, never dials a denied peer, and is bounded', async () => {
    const ids = await Promise.all(Array.from({ length: 4 }, peerId))
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.constantFrom(...ids).map((id) => `/ip4/127.0.0.1/tcp/4001/p2p/${id}`),
            fc.constantFrom(...ids).map((id) => `/dns4/anchor.example/tcp/443/wss/p2p/${id}`),
            fc.constant('/ip4/127.0.0.1/tcp/4001'),
            fc.string({ maxLength: 20 }),
          ),
          { maxLength: 30 },
        ),
        fc.subarray(ids),
        async (addresses, denied) => {
          const host = new FakeHost()
          let now = 0
          const keeper = keepConnected(host, addresses, {
            tickMs: 0,
            now: () => now,
            allowed: (peer) => !denied.includes(peer),
          })
          const named = new Set(ids.filter((id) => addresses.some((address) => address.endsWith(id))))
          expect(keeper.size).toBe(named.size)
          now = 5000
          keeper.tick()
          expect(new Set(host.dialsTo)).toEqual(new Set([...named].filter((id) => !denied.includes(id))))
          expect(host.dialsTo.length).toBe(new Set(host.dialsTo).size)
          keeper.stop()
          await host.settleAll(false)
        },
      ),
      { numRuns: 100 },
    )
    const many = await Promise.all(Array.from({ length: MAX_KEPT_PEERS + 5 }, peerId))
    const keeper = keepConnected(
      new FakeHost(),
      many.map((id) => `/ip4/127.0.0.1/tcp/1/p2p/${id}`),
      { tickMs: 0 },
    )
    expect(keeper.size).toBe(MAX_KEPT_PEERS)
    keeper.stop()
  })
})

describe('bootstrap peers over real libp2p', () => {
  const started: Network[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map((network) => network.stop()))
  })

  async function waitFor(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!probe()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  it('reconnects to a bootstrap peer that went away and came back on its address', {
    timeout: 60_000,
  }, async () => {
    const anchorIdentity = await createIdentity()
    const base = { webRTC: false, pubsubDiscovery: false, reputationPingMs: 0 } as const
    let anchor = await createNetwork({ ...base, identity: anchorIdentity, listen: ['/ip4/127.0.0.1/tcp/0'] })
    started.push(anchor)
    // The anchor comes back on the port it was given the first time.
    const port = anchor.libp2p.getMultiaddrs()[0]!.toString().split('/')[4]
    const listen = [`/ip4/127.0.0.1/tcp/${port}`]
    const address = `/ip4/127.0.0.1/tcp/${port}/p2p/${anchor.peerId.toString()}`
    const peer = await createNetwork({
      ...base,
      identity: await createIdentity(),
      listen: [],
      bootstrap: [address],
      bootstrapRedialMaxMs: 2000,
    })
    started.push(peer)
    const connected = () => peer.libp2p.getConnections(anchor.peerId).length > 0
    await waitFor('the first connection', connected, 15_000)
    // The anchor goes away for longer than libp2p's own reconnect tries would last, then returns.
    await anchor.stop()
    await waitFor('the connection to close', () => !connected(), 15_000)
    await new Promise((resolve) => setTimeout(resolve, 6000))
    anchor = await createNetwork({ ...base, identity: anchorIdentity, listen })
    started.push(anchor)
    await waitFor('the peer to come back', connected, 20_000)
  })
})
