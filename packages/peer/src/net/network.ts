/**
 * The libp2p node factory. One call builds a started libp2p 3 node for this runtime (Node: TCP,
 * WebSockets, WebRTC; browser: WebSockets, WebRTC, circuit relay) with Noise, yamux, identify,
 * ping and gossipsub tuned for CAN Swarm, its peer id derived from the agent's Ed25519 seed.
 *
 * Safe by default: it listens on 127.0.0.1 only, dials nobody it is not told about (no public
 * bootstrap list, no mDNS, no AutoNAT, no UPnP, no STUN), and WebRTC gathers loopback candidates
 * only. Operators opt into real networks through `listen`, `bootstrap`, `iceServers` and `mdns`.
 *
 * @example
 * ```ts
 * const identity = await createIdentity({ seed })
 * const network = await createNetwork({ identity, bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…'] })
 * const bus = createBus(network, { onEnvelope: (env) => agent.deliver(env) })
 * console.log(network.libp2p.getMultiaddrs().map(String))
 * await network.stop()
 * ```
 */

import { bootstrap } from '@libp2p/bootstrap'
import { type GossipSub, type GossipsubOpts, gossipsub, StrictNoSign } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'
import { identify } from '@libp2p/identify'
import type {
  ConnectionGater,
  Ed25519PrivateKey,
  IdentifyResult,
  PeerDiscovery,
  PeerId,
} from '@libp2p/interface'
import { keychain } from '@libp2p/keychain'
import { noise } from '@libp2p/noise'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Ping, ping } from '@libp2p/ping'
import { pubsubPeerDiscovery } from '@libp2p/pubsub-peer-discovery'
import { yamux } from '@libp2p/yamux'
import type { Datastore } from 'interface-datastore'
import { createLibp2p, type Libp2p } from 'libp2p'
import { DEFAULT_LISTEN, mdnsDiscovery, RUNTIME, transportsFor } from '#net/transports'
import { InvalidArgumentError } from '../core/errors.ts'
import type { LocalIdentity } from '../crypto/ed25519.ts'
import { frameId } from './frame.ts'
import { libp2pKeyFromIdentity } from './identity.ts'
import { type Keeper, keepConnected } from './keeper.ts'
import { capPeerStore } from './peer-store-cap.ts'
import { watchRelayReservation } from './relay-watch.ts'
import { PeerReputation, type ReputationOptions } from './reputation.ts'
import { allShardTopics, capabilityTopic, checkShardCount, DEFAULT_SHARD_COUNT } from './topics.ts'
import { DEFAULT_MAX_ENVELOPE_AGE_MS } from './validation.ts'

/** The services every CAN Swarm libp2p node runs. */
export interface SwarmServices {
  pubsub: GossipSub
  identify: unknown
  ping: Ping
  [name: string]: unknown
}

/** A CAN Swarm libp2p node. */
export type SwarmLibp2p = Libp2p<SwarmServices>

/** Options of {@link createNetwork}. */
export interface NetworkOptions {
  /** The agent's identity; its seed becomes the libp2p key, so peer id and envelope signer agree. */
  identity: LocalIdentity
  /**
   * Multiaddrs to listen on.
   * @default Node: `/ip4/127.0.0.1/tcp/0`, `/ip4/127.0.0.1/tcp/0/ws`, `/webrtc`; browser: `/webrtc`
   */
  listen?: readonly string[]
  /**
   * Multiaddrs (with `/p2p/<id>`) dialled at start and kept connected: one that drops is dialled
   * again, after 1 s doubling to {@link NetworkOptions.bootstrapRedialMaxMs}, for as long as the node
   * runs (see keeper.ts). @default []
   */
  bootstrap?: readonly string[]
  /** Longest wait between redials of a lost bootstrap peer, in ms. @default 30 000 */
  bootstrapRedialMaxMs?: number
  /** Discover peers announced on the pubsub discovery topic. @default true */
  pubsubDiscovery?: boolean
  /** How often this peer announces itself on the discovery topic, in ms. @default 2000 */
  pubsubDiscoveryIntervalMs?: number
  /** Multicast DNS discovery (LAN): only inside networks you own. @default false */
  mdns?: boolean
  /**
   * Run a Kad-DHT on the swarm's own protocol id (`/can-swarm/kad/1.0.0`, never the public
   * IPFS DHT) for peer routing: `'server'` answers queries (anchors, relays, well-connected Node
   * peers), `'client'` only asks (browsers, short-lived peers). @default false
   */
  dht?: false | 'client' | 'server'
  /** Add the WebRTC transport. @default true */
  webRTC?: boolean
  /** ICE servers (STUN/TURN) for WebRTC. @default [] (no public STUN: loopback/LAN only) */
  iceServers?: readonly RTCIceServer[]
  /** Address node-datachannel binds WebRTC ICE to on Node. @default '127.0.0.1' */
  webRTCBindAddress?: string
  /**
   * Which `Origin` headers the WebSocket listener accepts upgrades from (`undefined`: no Origin, a
   * client that is not a browser); others get 403 (Node only). @default every origin
   */
  allowWebSocketOrigin?: (origin: string | undefined) => boolean
  /** Most open connections. @default 100 */
  maxConnections?: number
  /**
   * Inbound connections accepted per second from one host; more are refused. Raise it for
   * meshes where every peer shares one address (loopback tests). @default 5 (libp2p's default)
   */
  inboundConnectionsPerSecond?: number
  /**
   * Let this node dial private and loopback addresses in a browser (libp2p refuses them there by
   * default). Node always may. @default false
   */
  allowPrivateDial?: boolean
  /** Number of shard topics (a swarm constant, see topics.ts). @default 8 */
  shardCount?: number
  /** Capability topics whose validator and score parameters are installed. @default [] */
  capabilities?: readonly string[]
  /**
   * How long gossipsub remembers a message id, in ms. Must exceed the validator's
   * `maxEnvelopeAgeMs` so that a second arrival is either a dropped duplicate or stale.
   * @default maxEnvelopeAgeMs + 10 000
   */
  seenTtlMs?: number
  /** Oldest envelope the bus accepts, in ms (see validation.ts). @default 120 000 */
  maxEnvelopeAgeMs?: number
  /**
   * Gossipsub overrides (mesh degree, heartbeat, …) for experiments and benchmarks.
   * @default {@link SWARM_GOSSIP_DEFAULTS} on top of gossipsub's own defaults
   */
  gossip?: Partial<GossipsubOpts>
  /** Application-level reputation tuning. */
  reputation?: Omit<ReputationOptions, 'onDeny'>
  /** Interval of reputation pings to connected peers, in ms; 0 disables them. @default 10 000 */
  reputationPingMs?: number
  /**
   * Dial discovered peers while this node has fewer connections than this (libp2p 3 does not
   * dial discovered peers by itself); 0 disables it. @default 8
   */
  dialDiscoveredBelow?: number
  /** Extra libp2p services (a relay adds its circuit relay server here). @default {} */
  services?: Record<string, (components: never) => unknown>
  /**
   * Where libp2p keeps what should outlive a restart: the peer store (addresses and protocols of
   * the peers met) and, through a keychain, the WebRTC-direct certificate, so a listener's
   * `/certhash` stays the same across restarts. A directory on Node (`FsDatastore` of
   * datastore-fs), an IndexedDB name in browsers (datastore-idb), or any datastore.
   * @default in memory (a restart forgets both and a WebRTC-direct listener gets a new certhash)
   */
  datastore?: Datastore
  /**
   * A node listening on `/p2p-circuit` that is connected to a relay yet holds no reservation for
   * this long reconnects to the relay to ask again (relay-watch.ts); the wait doubles per try, up
   * to 16 times. In ms; 0 turns the watch off.
   * @default 15 000
   */
  relayRecoveryMs?: number
  /**
   * Most peer records libp2p's peer store keeps (peer-store-cap.ts): past it the least recently
   * updated peer that is not connected is deleted, so fresh peer ids cannot grow the store (on
   * disk, with a `datastore`) without end.
   * @default 10 000
   */
  maxStoredPeers?: number
}

/** A started CAN Swarm network node. */
export interface Network {
  readonly libp2p: SwarmLibp2p
  readonly pubsub: GossipSub
  readonly reputation: PeerReputation
  readonly peerId: PeerId
  readonly identity: LocalIdentity
  /** The options in force, defaults filled in. */
  readonly config: ResolvedNetworkConfig
  /** Stops pings and the libp2p node. Idempotent. */
  stop(): Promise<void>
}

/** The options of {@link createNetwork} with every default filled in. */
export interface ResolvedNetworkConfig {
  shardCount: number
  capabilities: readonly string[]
  maxEnvelopeAgeMs: number
  seenTtlMs: number
  runtime: typeof RUNTIME
}

/**
 * Gossipsub settings CAN Swarm changes from the library defaults. CPU per delivered message is the
 * budget (every peer verifies every envelope), so the mesh is a little thinner than gossipsub's
 * D = 6 and a publisher sends to its mesh only (`floodPublish: false`) instead of to every
 * subscriber: fewer duplicate copies per envelope; gossip (IHAVE/IWANT) repairs what a thin mesh
 * misses. Measured with the `bus` benchmark.
 */
export const SWARM_GOSSIP_DEFAULTS: Readonly<Partial<GossipsubOpts>> = Object.freeze({
  D: 4,
  Dlo: 3,
  Dhi: 8,
  Dout: 2,
  Dscore: 2,
  Dlazy: 4,
  floodPublish: false,
})

/** Protocol id of the swarm's own Kad-DHT (kept apart from the public IPFS DHT). */
export const DHT_PROTOCOL = '/can-swarm/kad/1.0.0'

/** The circuit relay v2 protocol a relay serves reservations on. */
const RELAY_HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

function isCircuit(address: { toString(): string }): boolean {
  return address.toString().includes('/p2p-circuit')
}

/**
 * Runs the relay watch (relay-watch.ts) on `libp2p`; returns its stop. Which connected peers are
 * relays comes from identify as they connect (and goes when they leave), so a look costs no peer
 * store read: at most one entry per connected peer.
 */
function watchRelays(libp2p: SwarmLibp2p, afterMs: number): () => void {
  const relays = new Set<string>()
  const onIdentify = (event: CustomEvent<IdentifyResult>) => {
    const peer = event.detail.peerId.toString()
    if (event.detail.protocols.includes(RELAY_HOP_PROTOCOL)) relays.add(peer)
    else relays.delete(peer)
  }
  const onDisconnect = (event: CustomEvent<PeerId>) => relays.delete(event.detail.toString())
  libp2p.addEventListener('peer:identify', onIdentify)
  libp2p.addEventListener('peer:disconnect', onDisconnect)
  // Peers identified before the watch began listening (at start): read once from the peer store.
  for (const connection of libp2p.getConnections()) {
    const peer = connection.remotePeer
    libp2p.peerStore.get(peer).then(
      (stored) => {
        if (stored.protocols.includes(RELAY_HOP_PROTOCOL) && libp2p.getConnections(peer).length > 0)
          relays.add(peer.toString())
      },
      () => undefined,
    )
  }
  const watch = watchRelayReservation(
    {
      hasCircuitAddress: () => libp2p.getMultiaddrs().some(isCircuit),
      connectedRelays: async () =>
        libp2p
          .getConnections()
          .filter(
            (connection) =>
              connection.limits === undefined &&
              !isCircuit(connection.remoteAddr) &&
              relays.has(connection.remotePeer.toString()),
          )
          .map((connection) => ({ peer: connection.remotePeer.toString(), address: connection.remoteAddr })),
      hangUp: (peer) => libp2p.hangUp(peerIdFromString(peer)),
      dial: (address, dialOptions) => libp2p.dial(address, dialOptions),
    },
    { afterMs, maxAfterMs: afterMs * 16 },
  )
  return () => {
    watch.stop()
    libp2p.removeEventListener('peer:identify', onIdentify)
    libp2p.removeEventListener('peer:disconnect', onDisconnect)
  }
}

/** Weight of gossipsub's invalid-message penalty (P4) on every swarm topic. */
const INVALID_MESSAGE_WEIGHT = -10

/**
 * Creates and starts a libp2p node for this runtime. See {@link NetworkOptions} for the defaults.
 *
 * @throws {InvalidArgumentError} naming the option when an option is out of range.
 */
export async function createNetwork(options: NetworkOptions): Promise<Network> {
  const shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT
  checkShardCount(shardCount)
  const maxEnvelopeAgeMs = options.maxEnvelopeAgeMs ?? DEFAULT_MAX_ENVELOPE_AGE_MS
  const seenTtlMs = options.seenTtlMs ?? maxEnvelopeAgeMs + 10_000
  if (seenTtlMs <= maxEnvelopeAgeMs) {
    throw new InvalidArgumentError('seenTtlMs must be longer than maxEnvelopeAgeMs', 'seenTtlMs')
  }
  const capabilities = [...(options.capabilities ?? [])]
  const privateKey: Ed25519PrivateKey = await libp2pKeyFromIdentity(options.identity)
  const reputation = new PeerReputation(options.reputation ?? {})

  const topics: Record<string, ReturnType<typeof createTopicScoreParams>> = {}
  for (const topic of [...allShardTopics(shardCount), ...capabilities.map(capabilityTopic)]) {
    topics[topic] = createTopicScoreParams({
      topicWeight: 1,
      timeInMeshWeight: 0,
      firstMessageDeliveriesWeight: 0,
      meshMessageDeliveriesWeight: 0,
      meshFailurePenaltyWeight: 0,
      invalidMessageDeliveriesWeight: INVALID_MESSAGE_WEIGHT,
      invalidMessageDeliveriesDecay: 0.9,
    })
  }

  const gater: ConnectionGater = {
    denyDialPeer: (peer) => reputation.isDenied(peer.toString()),
    denyInboundEncryptedConnection: (peer) => reputation.isDenied(peer.toString()),
    denyOutboundEncryptedConnection: (peer) => reputation.isDenied(peer.toString()),
    ...((RUNTIME as string) === 'browser' && options.allowPrivateDial
      ? { denyDialMultiaddr: () => false }
      : {}),
  }

  const discovery: Array<(components: never) => PeerDiscovery> = []
  if (options.bootstrap && options.bootstrap.length > 0) {
    discovery.push(bootstrap({ list: [...options.bootstrap] }) as (components: never) => PeerDiscovery)
  }
  if (options.pubsubDiscovery ?? true) {
    discovery.push(
      pubsubPeerDiscovery({ interval: options.pubsubDiscoveryIntervalMs ?? 2000 }) as (
        components: never,
      ) => PeerDiscovery,
    )
  }
  // Opt-in modules load only when asked for: mDNS exists only in the Node transports (a browser
  // bundle never holds Node's multicast-dns), and the Kad-DHT's weight is paid only by peers that run it.
  if (options.mdns ?? false) discovery.push((await mdnsDiscovery()) as (components: never) => PeerDiscovery)
  const dht = options.dht ? await import('@libp2p/kad-dht') : undefined

  const libp2p = (await createLibp2p({
    privateKey,
    addresses: { listen: [...(options.listen ?? DEFAULT_LISTEN)] },
    transports: transportsFor({
      webRTC: options.webRTC ?? true,
      iceServers: options.iceServers ?? [],
      bindAddress: options.webRTCBindAddress ?? '127.0.0.1',
      ...(options.allowWebSocketOrigin ? { allowWebSocketOrigin: options.allowWebSocketOrigin } : {}),
    }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: gater,
    connectionManager: {
      maxConnections: options.maxConnections ?? 100,
      inboundConnectionThreshold: options.inboundConnectionsPerSecond ?? 5,
    },
    peerDiscovery: discovery as never,
    ...(options.datastore ? { datastore: options.datastore } : {}),
    services: {
      ...(options.services ?? {}),
      // The keychain keeps the WebRTC-direct certificate's key beside the certificate itself.
      ...(options.datastore ? { keychain: keychain() } : {}),
      ...(dht
        ? {
            dht: dht.kadDHT({
              protocol: DHT_PROTOCOL,
              clientMode: options.dht === 'client',
              // the swarm's own DHT: loopback and private addresses are legitimate here
              peerInfoMapper: dht.passthroughMapper,
            }),
          }
        : {}),
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        ...SWARM_GOSSIP_DEFAULTS,
        globalSignaturePolicy: StrictNoSign,
        msgIdFn: (message) => frameId(message.data),
        fastMsgIdFn: undefined as never,
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        emitSelf: false,
        seenTTL: seenTtlMs,
        scoreParams: {
          topics,
          appSpecificScore: (peer) => reputation.score(peer),
          appSpecificWeight: 1,
          // Many peer ids behind one address (a Sybil swarm on one host) lose score quadratically past
          // the threshold; loopback is exempt (local tests and tools).
          IPColocationFactorWeight: -1,
          IPColocationFactorThreshold: 8,
          IPColocationFactorWhitelist: new Set(['127.0.0.1', '::1']),
          behaviourPenaltyWeight: -1,
        },
        scoreThresholds: {
          gossipThreshold: -20,
          publishThreshold: -40,
          graylistThreshold: -60,
          acceptPXThreshold: 10,
          opportunisticGraftThreshold: 1,
        },
        ...options.gossip,
      }),
    },
  })) as unknown as SwarmLibp2p

  reputation.onDeny = (peer) => {
    for (const connection of libp2p.getConnections()) {
      if (connection.remotePeer.toString() === peer)
        connection.close().catch(() => connection.abort(new Error('denied')))
    }
  }

  const dialBelow = options.dialDiscoveredBelow ?? 8
  if (dialBelow > 0) {
    libp2p.addEventListener('peer:discovery', (event) => {
      const peer = event.detail.id
      if (peer.equals(libp2p.peerId) || libp2p.getConnections(peer).length > 0) return
      if (libp2p.getConnections().length >= dialBelow || reputation.isDenied(peer.toString())) return
      libp2p.dial(peer, { signal: AbortSignal.timeout(10_000) }).catch(() => {})
    })
  }

  const pingEveryMs = options.reputationPingMs ?? 10_000
  let pinger: ReturnType<typeof setInterval> | undefined
  if (pingEveryMs > 0) {
    pinger = setInterval(() => {
      for (const connection of libp2p.getConnections()) {
        const peer = connection.remotePeer
        libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(5000) }).then(
          (rttMs) => reputation.recordPing(peer.toString(), rttMs),
          () => reputation.recordPing(peer.toString(), undefined),
        )
      }
    }, pingEveryMs)
    ;(pinger as { unref?: () => void }).unref?.()
  }

  const keeper: Keeper | undefined =
    options.bootstrap && options.bootstrap.length > 0
      ? keepConnected(libp2p, options.bootstrap, {
          self: libp2p.peerId.toString(),
          maxDelayMs: options.bootstrapRedialMaxMs ?? 30_000,
          allowed: (peer) => !reputation.isDenied(peer),
        })
      : undefined

  const relayRecoveryMs = options.relayRecoveryMs ?? 15_000
  const relayWatch =
    relayRecoveryMs > 0 && (options.listen ?? DEFAULT_LISTEN).includes('/p2p-circuit')
      ? watchRelays(libp2p, relayRecoveryMs)
      : undefined

  const peerStoreCap = capPeerStore(
    {
      storedPeers: async () => (await libp2p.peerStore.all()).map((peer) => peer.id),
      isConnected: (peer) => libp2p.getConnections(peer).length > 0,
      deletePeer: (peer) => libp2p.peerStore.delete(peer),
      onUpdate: (listener) => {
        const handler = (event: CustomEvent<{ peer: { id: PeerId } }>) => listener(event.detail.peer.id)
        libp2p.addEventListener('peer:update', handler)
        return () => libp2p.removeEventListener('peer:update', handler)
      },
    },
    options.maxStoredPeers ?? 10_000,
  )

  let stopping: Promise<void> | undefined
  return {
    libp2p,
    pubsub: libp2p.services.pubsub,
    reputation,
    peerId: libp2p.peerId,
    identity: options.identity,
    config: Object.freeze({ shardCount, capabilities, maxEnvelopeAgeMs, seenTtlMs, runtime: RUNTIME }),
    stop() {
      stopping ??= (async () => {
        if (pinger) clearInterval(pinger)
        keeper?.stop()
        relayWatch?.()
        peerStoreCap.stop()
        await libp2p.stop()
      })()
      return stopping
    },
  }
}
