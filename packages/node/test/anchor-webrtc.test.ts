import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createIdentity, createPeer, fetchNetwork, type Peer, requestCredits } from '@can-swarm/peer'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAnchors, type StartedAnchor, startAnchorProcess } from '../../../test-support/anchor-process.ts'
import { until } from '../../../test-support/peers.ts'

let dir: string
let anchor: StartedAnchor | undefined
let peer: Peer | undefined

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-webrtc-'))
})
afterAll(async () => {
  await peer?.stop()
  await anchor?.stop()
  killAnchors()
  await rm(dir, { recursive: true, force: true })
})

describe('the anchor’s WebRTC-direct listener', () => {
  it('is published with its certificate hash and carries a peer’s whole NEED to a DECIDE, with no TCP or WebSocket connection', {
    timeout: 90_000,
  }, async () => {
    const identity = await createIdentity()
    anchor = await startAnchorProcess(['--data', join(dir, 'anchor'), '--verifiers', identity.did])
    const direct = anchor.multiaddrs.filter((address) => address.includes('/webrtc-direct/'))
    expect(direct).toHaveLength(1)
    expect(direct[0]).toMatch(
      /^\/ip4\/127\.0\.0\.1\/udp\/\d+\/webrtc-direct\/certhash\/u[\w-]+\/p2p\/12D3Koo/,
    )

    // The peer learns the network over HTTP, then is told only the WebRTC-direct address, and listens
    // on nothing the anchor could dial back.
    const { params } = await fetchNetwork(anchor.url)
    expect((await requestCredits(anchor.url, identity.did)).granted).toBe(true)
    peer = await createPeer({
      identity,
      params,
      bootstrap: direct,
      roles: { planner: true, worker: true, verifier: true },
      network: { listen: [], webRTC: true },
      syncIntervalMs: 1000,
    })
    const libp2p = peer.network.libp2p
    const anchorPeer = multiaddr(direct[0]!)
      .getComponents()
      .find((c) => c.name === 'p2p')!.value!
    const connections = await until('a connection to the anchor', () => {
      const open = libp2p.getConnections().filter((c) => c.remotePeer.toString() === anchorPeer)
      return open.length > 0 ? open : undefined
    })
    for (const connection of connections)
      expect(connection.remoteAddr.toString()).toContain('/webrtc-direct/')

    const need = await peer.post({
      requires: ['sha256'],
      inputs: [new TextEncoder().encode('over udp, straight to the anchor')],
      budget: 5,
      bidWindowMs: 200,
    })
    const winner = await until('the anchor’s DECIDE', () => peer!.agent.replica(need)?.state.winner, 60_000)
    expect(winner.decider).toBe(anchor.did)
    const all = libp2p.getConnections().filter((c) => c.remotePeer.toString() === anchorPeer)
    expect(all.every((c) => c.remoteAddr.toString().includes('/webrtc-direct/'))).toBe(true)
  })
})

describe('the anchor’s libp2p datastore', () => {
  it('keeps the WebRTC-direct certificate across a restart: the /certhash stays the same', {
    timeout: 90_000,
  }, async () => {
    const data = join(dir, 'restarting')
    const certhash = (started: StartedAnchor) =>
      started.multiaddrs
        .find((address) => address.includes('/webrtc-direct/'))
        ?.match(/\/certhash\/([^/]+)/)?.[1]
    const first = await startAnchorProcess(['--data', data])
    const before = certhash(first)
    expect(before).toMatch(/^u/)
    expect(await first.stop()).toBe(0)
    const second = await startAnchorProcess(['--data', data])
    try {
      expect(certhash(second)).toBe(before)
    } finally {
      await second.stop()
    }
    // A new data directory is a new certificate.
    const other = await startAnchorProcess(['--data', join(dir, 'other')])
    try {
      expect(certhash(other)).not.toBe(before)
    } finally {
      await other.stop()
    }
  })
})
