/**
 * The anchor's place in the swarm: a libp2p node with a circuit relay server and TCP, WebSocket
 * and WebRTC-direct listeners (browsers reach it over WebSockets and find each other through it), the gossip bus,
 * and an agent with the decider role whose DECIDEs go through the anchor's durable consensus
 * store. Everything it hears or says is kept in the envelope log first. Its artifacts are pinned in
 * Helia on the same node (artifacts.ts). It follows every thread's plan document (plan sync, kept
 * under `<data>/automerge`), so that any peer can catch up with a thread from it.
 */
import { join } from 'node:path'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { Agent } from '../../../peer/src/agent/agent.ts'
import { type EnvelopeSink, SeededRandom } from '../../../peer/src/agent/ports.ts'
import type { ConsensusStore } from '../../../peer/src/core/consensus.ts'
import type { NetworkParams } from '../../../peer/src/core/thread/params.ts'
import type { AnyEnvelope } from '../../../peer/src/core/types.ts'
import type { LocalIdentity } from '../../../peer/src/crypto/ed25519.ts'
import { attachAgent, systemClock } from '../../../peer/src/net/agent-bus.ts'
import { createBus, type GossipBus } from '../../../peer/src/net/bus.ts'
import { createNetwork, type Network } from '../../../peer/src/net/network.ts'
import { createPlanSync, type PlanSync } from '../../../peer/src/plan-sync/plan-sync.ts'
import { planStorage } from '../../../peer/src/plan-sync/storage.ts'
import { AnchorArtifacts, type AnchorArtifactsOptions } from './artifacts.ts'
import { serveDecide } from './decide-service.ts'
import type { EnvelopeLog } from './log.ts'
import { startSync } from './sync.ts'

export interface SwarmOptions {
  identity: LocalIdentity
  /** The anchor's data directory (artifacts in `blocks/` and `pins.log`, plan documents in `automerge/`). */
  data: string
  artifacts?: AnchorArtifactsOptions
  params: NetworkParams
  consensus: ConsensusStore
  log: EnvelopeLog
  /** Envelopes restored from the log. */
  restored: readonly AnyEnvelope[]
  host: string
  tcpPort: number
  wsPort: number
  /** UDP port of the WebRTC-direct listener (0: any; -1: none). */
  webrtcPort: number
  /** Other anchors or relays to stay connected to. */
  bootstrap: readonly string[]
  onError: (error: unknown) => void
}

export interface AnchorSwarm {
  readonly network: Network
  readonly bus: GossipBus
  readonly agent: Agent
  /** The pinned artifact store (Helia on this node). */
  readonly artifacts: AnchorArtifacts
  /** Artifacts moved in from an earlier version's stand-in store when it opened. */
  readonly importedArtifacts: number
  /** Plan sync: the anchor follows every thread's plan document. */
  readonly planSync: PlanSync
  multiaddrs(): string[]
  stop(): Promise<void>
}

export async function startSwarm(options: SwarmOptions): Promise<AnchorSwarm> {
  const family = options.host.includes(':') ? 'ip6' : 'ip4'
  const network = await createNetwork({
    identity: options.identity,
    listen: [
      `/${family}/${options.host}/tcp/${options.tcpPort}`,
      `/${family}/${options.host}/tcp/${options.wsPort}/ws`,
      ...(options.webrtcPort >= 0
        ? [`/${family}/${options.host}/udp/${options.webrtcPort}/webrtc-direct`]
        : []),
    ],
    bootstrap: options.bootstrap,
    webRTC: options.webrtcPort >= 0,
    webRTCBindAddress: options.host,
    services: {
      relay: circuitRelayServer({ reservations: { maxReservations: 256 } }) as (components: never) => unknown,
    },
  })
  const { artifacts, imported } = await AnchorArtifacts.open(options.data, network.libp2p, {
    onPinError: (cid, error) => options.onError(new Error(`could not pin artifact ${cid}: ${String(error)}`)),
    ...options.artifacts,
  })
  const inner = createBus(network)
  const log = options.log
  // What the agent publishes is logged before it leaves; what arrives is logged before delivery.
  const bus: EnvelopeSink = {
    publish(env: AnyEnvelope) {
      log.append(env)
      inner.publish(env)
    },
  }
  inner.onEnvelope((env) => {
    log.append(env)
    artifacts.pinReferenced(env)
  })
  const agent = new Agent({
    identity: options.identity,
    params: options.params,
    bus,
    clock: systemClock(),
    random: new SeededRandom(Date.now() >>> 0),
    artifacts: artifacts.store,
    consensus: options.consensus,
    roles: { decider: true },
    onError: options.onError,
  })
  await agent.restore(options.restored)
  // Whatever earlier runs could not pin yet is looked for again.
  for (const env of options.restored) artifacts.pinReferenced(env)
  const attached = attachAgent(inner, agent, { onError: options.onError })
  const stopService = await serveDecide({ network, agent, log, consensus: options.consensus, relay: inner })
  const planSync = await createPlanSync({
    libp2p: network.libp2p,
    agent,
    storage: planStorage(join(options.data, 'automerge')),
    onEnvelope: (env) => {
      log.append(env)
      artifacts.pinReferenced(env)
    },
    onError: options.onError,
  })
  const sync = await startSync({
    network,
    agent,
    log,
    consensus: options.consensus,
    onEnvelope: (env) => artifacts.pinReferenced(env),
    onError: options.onError,
  })
  return {
    network,
    bus: inner,
    agent,
    artifacts,
    importedArtifacts: imported,
    planSync,
    multiaddrs: () => network.libp2p.getMultiaddrs().map(String),
    async stop() {
      await sync.stop()
      await planSync.stop()
      await stopService()
      attached.detach()
      agent.stop()
      await inner.flush().catch(() => undefined)
      await artifacts.stop()
      await network.stop()
      log.sync()
    },
  }
}
