/**
 * The peer's public API, the same file in Node and in Chromium: join the swarm of
 * `setup/swarm.global.ts` through its anchor, meet the worker through the anchor's relay, upgrade
 * to a direct WebRTC connection, post a NEED and follow it to FINAL with the right result.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { RUNTIME } from '#net/transports'
import { until } from '../../../test-support/peers.ts'
import { builtinCapabilities } from '../src/agent/capabilities.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import { createPeer, fetchNetwork, type Peer, requestCredits } from '../src/index.ts'

const swarm = inject('swarm')
const peers: Peer[] = []

afterAll(async () => {
  for (const peer of peers) await peer.stop()
})

describe(`the peer API in ${RUNTIME}`, () => {
  it('joins through the anchor, goes direct over WebRTC to the worker, and runs a NEED to FINAL', {
    timeout: 150_000,
  }, async () => {
    // The network comes from the anchor: its signed genesis, checked here.
    const { params, genesis } = await fetchNetwork(swarm.anchorUrl)
    expect(genesis.body.anchors).toEqual([swarm.anchorDid])
    const peer = await createPeer({
      params,
      bootstrap: [swarm.anchorWs],
      network: { listen: ['/p2p-circuit', '/webrtc'], allowPrivateDial: true },
      syncIntervalMs: 1000,
    })
    peers.push(peer)
    expect(peer.did).toMatch(/^did:key:z6Mk/)
    const libp2p = peer.network.libp2p
    await until('the anchor connected', () =>
      libp2p.getPeers().some((id) => swarm.anchorWs.endsWith(id.toString())) ? true : undefined,
    )

    // Through the relay, then WebRTC: the connection is direct (no relay limits) and answers pings.
    // The worker is shared by the whole test run: when the anchor has dropped its connection (the
    // anchor sheds connections under load), the worker is making its reservation again, and a dial
    // meanwhile is refused (NO_RESERVATION) or times out. Tried again until a deadline.
    const dialDeadline = Date.now() + 60_000
    let connection: Awaited<ReturnType<typeof libp2p.dial>> | undefined
    while (connection === undefined) {
      connection = await libp2p
        .dial(multiaddr(swarm.workerWebRTC), { signal: AbortSignal.timeout(15_000) })
        .catch((error: Error) => {
          if (Date.now() > dialDeadline) throw error
          return undefined
        })
      if (connection === undefined) await new Promise((resolve) => setTimeout(resolve, 1000))
    }
    expect(connection.remotePeer.toString()).toBe(swarm.workerPeerId)
    expect(connection.remoteAddr.toString()).toContain('/webrtc')
    expect(connection.limits).toBeUndefined()
    const rtt = await libp2p.services.ping.ping(connection.remotePeer, {
      signal: AbortSignal.timeout(10_000),
    })
    expect(rtt).toBeGreaterThanOrEqual(0)

    // A new key holds nothing: the faucet grants it credits (once), so that its NEED is funded.
    const credits = await requestCredits(swarm.anchorUrl, peer.did)
    expect(credits.granted).toBe(true)
    expect((await requestCredits(swarm.anchorUrl, peer.did)).granted).toBe(false)

    const input = new TextEncoder().encode(swarm.input)
    const need = await peer.post({
      requires: ['word-frequency'],
      inputs: [input],
      budget: 10,
      bidWindowMs: 300,
    })
    const decided = await until('the anchor’s DECIDE', () => peer.agent.replica(need)?.state.winner, 45_000)
    expect(decided.decider).toBe(swarm.anchorDid)
    const task = await until(
      'the task FINAL',
      () => {
        const state = peer.agent.replica(need)!.state
        return [...state.tasks.values()].find((t) => t.proposal === decided.proposal && t.state === 'FINAL')
      },
      45_000,
    )
    const expected = artifactCid(await builtinCapabilities().run('word-frequency', [input]))
    expect(task.commit!.outputs).toEqual([expected])
  })
})
