/**
 * The relay/bootstrap node: a CAN Swarm libp2p node with a circuit relay v2 server, a WebSocket
 * listener (browsers reach it) and pubsub peer discovery (peers that bootstrap to it find each
 * other), and a persistent identity. It runs no agent and subscribes to no envelope topic.
 *
 * @example
 * ```ts
 * const relay = await startRelay({ dataDir: '/var/lib/can-swarm-relay' })
 * console.log(relay.multiaddrs)   // loopback TCP + WebSocket addresses with /p2p/<id>
 * await relay.stop()
 * ```
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createIdentity, type LocalIdentity } from '@can-swarm/peer/crypto'
import { createNetwork, type Network, originListed } from '@can-swarm/peer/net'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'

/** Options of {@link startRelay}. */
export interface RelayOptions {
  /** Directory holding the relay's identity (`identity.key`, created on first start). */
  dataDir: string
  /** Host to listen on. Anything but loopback must be asked for. @default '127.0.0.1' */
  host?: string
  /** TCP port. @default 0 (any free port) */
  tcpPort?: number
  /** WebSocket port. @default 0 (any free port) */
  wsPort?: number
  /** Listen multiaddrs, replacing host/ports entirely. @default the host and ports above */
  listen?: readonly string[]
  /** Most relay reservations held at once. @default 128 */
  maxReservations?: number
  /**
   * Web pages (origins) whose browsers may open a WebSocket to the relay: exact origins,
   * `scheme://host:*` or `*`. A request without an `Origin` (not from a browser) is accepted.
   * @default none: every browser page is refused
   */
  allowedOrigins?: readonly string[]
  /** Most open connections. @default 512 */
  maxConnections?: number
  /** Inbound connections accepted per second from one host. @default 100 */
  inboundConnectionsPerSecond?: number
}

/** A running relay. */
export interface Relay {
  readonly network: Network
  /** Its peer id (stable across restarts with the same data directory). */
  readonly peerId: string
  /** Dialable multiaddrs, each ending in `/p2p/<peerId>`. */
  readonly multiaddrs: string[]
  stop(): Promise<void>
}

const IDENTITY_FILE = 'identity.key'

/** Loads the relay identity from `dataDir`, creating it (mode 0600) on first use. */
export async function loadOrCreateIdentity(dataDir: string): Promise<LocalIdentity> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const file = join(dataDir, IDENTITY_FILE)
  let hex: string | undefined
  try {
    hex = (await readFile(file, 'utf8')).trim()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  if (hex !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(hex)) {
      throw new Error(`${file} does not hold a 32-byte hex seed: remove it to create a new identity`)
    }
    return createIdentity({ seed: Uint8Array.from(Buffer.from(hex, 'hex')) })
  }
  const identity = await createIdentity()
  await writeFile(file, `${Buffer.from(identity.seed).toString('hex')}\n`, { mode: 0o600, flag: 'wx' })
  await chmod(file, 0o600)
  return identity
}

/** Starts a relay. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const identity = await loadOrCreateIdentity(options.dataDir)
  const host = options.host ?? '127.0.0.1'
  const family = host.includes(':') ? 'ip6' : 'ip4'
  const listen = options.listen ?? [
    `/${family}/${host}/tcp/${options.tcpPort ?? 0}`,
    `/${family}/${host}/tcp/${options.wsPort ?? 0}/ws`,
  ]
  const network = await createNetwork({
    identity,
    listen,
    webRTC: false,
    allowWebSocketOrigin: (origin) =>
      origin === undefined || originListed(origin, options.allowedOrigins ?? []),
    dialDiscoveredBelow: 0,
    reputationPingMs: 0,
    maxConnections: options.maxConnections ?? 512,
    inboundConnectionsPerSecond: options.inboundConnectionsPerSecond ?? 100,
    services: {
      relay: circuitRelayServer({
        reservations: { maxReservations: options.maxReservations ?? 128 },
      }) as (components: never) => unknown,
    },
  })
  return {
    network,
    peerId: network.peerId.toString(),
    multiaddrs: network.libp2p.getMultiaddrs().map(String),
    stop: () => network.stop(),
  }
}
