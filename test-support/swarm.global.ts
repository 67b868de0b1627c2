/**
 * Vitest global setup (runs in Node, for both the `node` and the `chromium` projects): a small real
 * swarm for `peer-api.test.ts` to join with the public API — an anchor (relay, DECIDE service,
 * embedded store) and a Node peer that plans, works and verifies, reachable through the anchor's
 * relay over WebRTC. The test gets their addresses through `inject('swarm')`.
 *
 * The worker holds the test's input text already (artifacts are content-addressed, so the NEED's
 * input CID names bytes the worker has).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Anchor, resolveConfig, startAnchor } from '@can-swarm/node'
import { createPeer, MemoryArtifactStore, type Peer } from '@can-swarm/peer'
import { pino } from 'pino'
import type { TestProject } from 'vitest/node'

/** What the test is given. */
export interface SwarmFixture {
  /** The anchor's HTTP endpoint (genesis, status, faucet). */
  anchorUrl: string
  /** The anchor's WebSocket multiaddr (with /p2p/…): what a browser can dial. */
  anchorWs: string
  anchorDid: string
  /** The worker peer's id and its relayed WebRTC address. */
  workerPeerId: string
  workerWebRTC: string
  /** Text the worker holds as an artifact. */
  input: string
}

declare module 'vitest' {
  export interface ProvidedContext {
    swarm: SwarmFixture
  }
}

const INPUT = 'the peer api runs the same in node and in chromium'

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const data = await mkdtemp(join(tmpdir(), 'can-swarm-peer-api-'))
  let anchor: Anchor | undefined
  let worker: Peer | undefined
  const teardown = async () => {
    await worker?.stop().catch(() => undefined)
    await anchor?.stop().catch(() => undefined)
    await rm(data, { recursive: true, force: true })
  }
  try {
    anchor = await startAnchor(
      resolveConfig(
        {
          data,
          port: 0,
          p2pPort: 0,
          wsPort: 0,
          webrtcPort: -1,
          logLevel: 'silent',
          // The chromium project's test page is served by Vitest from a port of its own: another
          // origin than the anchor's, which the anchor's WebSocket listener refuses unless listed.
          allowedOrigins: ['http://127.0.0.1:*', 'http://localhost:*'],
        },
        {},
      ),
      { logger: pino({ level: 'silent' }) },
    )
    const anchorWs = anchor.multiaddrs().find((address) => address.includes('/ws/'))!
    const artifacts = new MemoryArtifactStore()
    await artifacts.put(new TextEncoder().encode(INPUT))
    worker = await createPeer({
      params: anchor.params,
      bootstrap: [anchorWs],
      roles: { planner: true, worker: true, verifier: true },
      artifacts,
      network: { listen: ['/ip4/127.0.0.1/tcp/0', '/p2p-circuit', '/webrtc'] },
      syncIntervalMs: 1000,
    })
    const libp2p = worker.network.libp2p
    let workerWebRTC: string | undefined
    for (let waited = 0; !workerWebRTC && waited < 15_000; waited += 100) {
      workerWebRTC = libp2p
        .getMultiaddrs()
        .map(String)
        .find((address) => address.includes('/p2p-circuit/webrtc'))
      if (!workerWebRTC) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    if (!workerWebRTC) throw new Error('the worker got no relay reservation on the anchor')
    project.provide('swarm', {
      anchorUrl: anchor.url,
      anchorWs,
      anchorDid: anchor.did,
      workerPeerId: libp2p.peerId.toString(),
      workerWebRTC,
      input: INPUT,
    })
  } catch (error) {
    await teardown()
    throw error
  }
  return teardown
}
