/**
 * Artifacts over Helia (IPFS) on the swarm's own libp2p node: `put(bytes)` → CID, `get(CID)` from
 * this peer's blockstore or from any connected peer holding it (bitswap), `pin`/`unpin`, `gc`.
 *
 * Helia is built light (`createHeliaLight`): no HTTP gateways, no delegated routing, no libp2p node
 * of its own. {@link withSwarmLibp2p} attaches the node `createNetwork` already runs (and never
 * stops it: the network owns it); `withBitswap` exchanges blocks with connected peers. The only
 * content routing is the swarm's own Kad-DHT when the network runs one (`NetworkOptions.dht`).
 *
 * One artifact is one raw block, whatever its size up to {@link MAX_ARTIFACT_BYTES} (4 MiB − 4 KiB,
 * just under the largest block bitswap carries): its id is `artifactCid(bytes)` (CIDv1, raw,
 * sha2-256), the id verifiers recompute from the bytes they produce themselves, so an artifact's
 * id never depends on how it was chunked. Larger data is several artifacts. (Kubo and other
 * boxo-based IPFS nodes take blocks up to 2 MiB, so they can fetch the artifacts up to that size.)
 *
 * @example
 * ```ts
 * const network = await createNetwork({ identity })
 * const artifacts = await createHeliaArtifacts({ libp2p: network.libp2p })
 * const cid = await artifacts.put(new TextEncoder().encode('hello'))
 * await artifacts.pin(cid)
 * // on another peer connected to this one:
 * const bytes = await other.get(cid, { signal: AbortSignal.timeout(10_000) })
 * await artifacts.stop()   // before network.stop()
 * ```
 */
import { type BitswapOptions, withBitswap } from '@helia/bitswap'
import * as dagCbor from '@ipld/dag-cbor'
import type { Libp2p } from '@libp2p/interface'
import { MemoryBlockstore } from 'blockstore-core'
import type { Helia, Provider, Router } from 'helia'
import { createHeliaLight } from 'helia'
import type { Blockstore } from 'interface-blockstore'
import { CID } from 'multiformats/cid'
import { type ArtifactStore, artifactCid } from '../core/artifacts.ts'
import { InvalidArgumentError, OversizedArtifactError } from '../core/errors.ts'
import type { Cid } from '../core/types.ts'
import { memoryPinSet, type PinSet } from './pin-set.ts'

/**
 * Largest artifact, in bytes: 4 MiB − 4 KiB. Bitswap refuses to send a block over 4 193 648
 * bytes (and a message over 4 MiB); this leaves room for the block's framing.
 */
export const MAX_ARTIFACT_BYTES = 4 * 1024 * 1024 - 4096

/** Multihash code of SHA2-256. */
const SHA2_256 = 0x12

/** Where a Helia artifact store keeps blocks and pins. */
export interface ArtifactStorage {
  readonly blockstore: Blockstore
  readonly pins: PinSet
  /** Where things are, for logs. */
  readonly description: string
  close(): Promise<void>
}

/** Blocks and pins in memory. */
export function memoryArtifactStorage(): ArtifactStorage {
  return {
    blockstore: new MemoryBlockstore(),
    pins: memoryPinSet(),
    description: 'blocks and pins in memory',
    close: async () => undefined,
  }
}

/** Options of {@link createHeliaArtifacts}. */
export interface HeliaArtifactsOptions {
  /**
   * The swarm's started libp2p node (`createNetwork(...).libp2p`). Its owner starts and stops it.
   * @default none: an offline store that only holds what is put into it
   */
  libp2p?: Libp2p
  /** Blocks and pins (see `openArtifactStorage` in `#artifacts/storage`). @default in memory */
  storage?: ArtifactStorage
  /** Largest artifact `put` accepts, in bytes; at most {@link MAX_ARTIFACT_BYTES}. @default MAX_ARTIFACT_BYTES */
  maxArtifactBytes?: number
  /** Pin every artifact `put` stores (anchors: durable pinning). @default false */
  pinOnPut?: boolean
  /** How long `get` and `pin` look for a block on the network, in ms. @default 30 000 */
  fetchTimeoutMs?: number
  /** Bitswap tuning. @default bitswap's defaults */
  bitswap?: BitswapOptions
}

/** Options of one network read. */
export interface FetchOptions {
  signal?: AbortSignal
  /** Look only in the local blockstore. @default false */
  offline?: boolean
}

/** An {@link ArtifactStore} over Helia, with pinning. */
export interface HeliaArtifacts extends ArtifactStore {
  /** The Helia node (with `libp2p` when one was given). */
  readonly helia: Helia
  /** Largest artifact accepted, in bytes. */
  readonly maxArtifactBytes: number
  /**
   * Stores bytes as one raw block and announces them to peers that want them; returns
   * `artifactCid(bytes)`. Idempotent.
   * @throws {OversizedArtifactError} when `bytes` is larger than `maxArtifactBytes`.
   */
  put(bytes: Uint8Array, options?: { signal?: AbortSignal }): Promise<Cid>
  /**
   * The bytes of a CID from this store or, unless `offline`, from connected peers (within
   * `fetchTimeoutMs`). Bytes are checked against the CID, here and by Helia for fetched blocks.
   * Undefined when nobody reachable has them or `cid` is not a CID; throws only when `signal` aborts.
   */
  get(cid: Cid, options?: FetchOptions): Promise<Uint8Array | undefined>
  /** True when the block is in the local blockstore (no network). */
  has(cid: Cid, options?: { signal?: AbortSignal }): Promise<boolean>
  /**
   * Keeps an artifact through `gc` (and, with durable storage, restarts); fetches it first when it
   * is not held. Idempotent.
   * @throws {InvalidArgumentError} field `cid` when it is not a CID or cannot be fetched.
   */
  pin(cid: Cid, options?: { signal?: AbortSignal }): Promise<void>
  /** Lets `gc` remove the artifact again. Idempotent. */
  unpin(cid: Cid, options?: { signal?: AbortSignal }): Promise<void>
  /** The pinned CIDs. */
  pins(): Cid[]
  /** True when `cid` is pinned. */
  isPinned(cid: Cid): boolean
  /** Deletes every unpinned block; resolves with how many were deleted. */
  gc(options?: { signal?: AbortSignal }): Promise<number>
  /** Stops Helia (bitswap) and closes the storage; leaves the libp2p node running. Idempotent. */
  stop(): Promise<void>
}

/**
 * Attaches a libp2p node that already runs to a Helia node, as `@helia/libp2p`'s
 * `withLibp2pLight` attaches one it creates: `helia.libp2p` is the node, and when the node runs
 * a DHT (`services.dht`) it becomes Helia's one content router. Helia never starts or stops it.
 */
export function withSwarmLibp2p<H extends Helia>(helia: H, libp2p: Libp2p): H & { libp2p: Libp2p } {
  Object.defineProperty(helia, 'libp2p', { value: libp2p, enumerable: true, configurable: true })
  helia.addMixin({
    name: 'libp2p',
    start(node: Helia) {
      if ((libp2p.services as Record<string, unknown>).dht !== undefined && !node.hasRouter(ROUTER_NAME)) {
        node.addRouter(swarmContentRouter(libp2p))
      }
    },
  })
  return helia as H & { libp2p: Libp2p }
}

const ROUTER_NAME = 'can-swarm-libp2p'

/** Helia content routing through the libp2p node's own content routers (the swarm DHT). */
function swarmContentRouter(libp2p: Libp2p): Router {
  return {
    name: ROUTER_NAME,
    async provide(cid, options) {
      await libp2p.contentRouting.provide(cid, options)
    },
    async cancelReprovide(cid, options) {
      await libp2p.contentRouting.cancelReprovide(cid, options)
    },
    async *findProviders(cid, options): AsyncIterable<Provider> {
      for await (const info of libp2p.contentRouting.findProviders(cid, options)) {
        yield { id: info.id.toCID(), multiaddrs: info.multiaddrs, router: ROUTER_NAME, fallback: false }
      }
    },
  }
}

/**
 * Creates and starts a Helia artifact store. See {@link HeliaArtifactsOptions} for the defaults.
 *
 * @throws {InvalidArgumentError} field `maxArtifactBytes` unless it is an integer in 1…{@link MAX_ARTIFACT_BYTES}.
 */
export async function createHeliaArtifacts(options: HeliaArtifactsOptions = {}): Promise<HeliaArtifacts> {
  const maxArtifactBytes = options.maxArtifactBytes ?? MAX_ARTIFACT_BYTES
  if (
    !Number.isSafeInteger(maxArtifactBytes) ||
    maxArtifactBytes <= 0 ||
    maxArtifactBytes > MAX_ARTIFACT_BYTES
  ) {
    throw new InvalidArgumentError(
      `maxArtifactBytes must be an integer from 1 to ${MAX_ARTIFACT_BYTES} (bytes): bitswap carries no larger block`,
      'maxArtifactBytes',
    )
  }
  const fetchTimeoutMs = options.fetchTimeoutMs ?? 30_000
  const storage = options.storage ?? memoryArtifactStorage()
  const light = createHeliaLight({ blockstore: storage.blockstore, codecs: [dagCbor] })
  let helia: Helia = light
  if (options.libp2p) {
    helia = withBitswap(withSwarmLibp2p(light, options.libp2p) as never, options.bitswap ?? {})
  }
  await helia.start()
  const routed = options.libp2p !== undefined && helia.hasRouter(ROUTER_NAME)

  // Helia's pin records live in its in-memory datastore; the durable set rebuilds them.
  for (const cid of storage.pins.values()) {
    const parsed = parseCid(cid)
    if (parsed && (await storage.blockstore.has(parsed))) await drainPins(helia.pins.add(parsed))
  }

  const read = async (cid: CID, offline: boolean, signal: AbortSignal | undefined) => {
    const timeout = AbortSignal.timeout(fetchTimeoutMs)
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout
    try {
      const bytes = await concat(helia.blockstore.get(cid, { offline, signal: combined }))
      return (await matches(cid, bytes)) ? bytes : undefined
    } catch (error) {
      signal?.throwIfAborted()
      if (offline || timeout.aborted || isNotFound(error)) return undefined
      throw error
    }
  }

  let stopped: Promise<void> | undefined
  const store: HeliaArtifacts = {
    helia,
    maxArtifactBytes,
    async put(bytes, { signal } = {}) {
      if (bytes.length > maxArtifactBytes) {
        throw new OversizedArtifactError('bytes', bytes.length, maxArtifactBytes)
      }
      const id = artifactCid(bytes)
      const cid = CID.parse(id)
      await helia.blockstore.put(cid, bytes.slice(), signal ? { signal } : {})
      if (options.pinOnPut) await store.pin(id, signal ? { signal } : {})
      if (routed) helia.routing.provide(cid).catch(() => undefined)
      return id
    },
    async get(id, { signal, offline = false } = {}) {
      const cid = parseCid(id)
      if (!cid) return undefined
      return read(cid, offline || !options.libp2p, signal)
    },
    async has(id, { signal } = {}) {
      const cid = parseCid(id)
      return cid !== undefined && helia.blockstore.has(cid, signal ? { signal } : {})
    },
    async pin(id, { signal } = {}) {
      const cid = parseCid(id)
      if (!cid) throw new InvalidArgumentError(`"${String(id).slice(0, 130)}" is not a CID`, 'cid')
      if (storage.pins.has(id) && (await helia.pins.isPinned(cid))) return
      if ((await read(cid, !options.libp2p, signal)) === undefined) {
        throw new InvalidArgumentError(
          `artifact ${id} is neither held here nor offered by a connected peer: put it or connect to a peer holding it first`,
          'cid',
        )
      }
      storage.pins.add(id)
      if (!(await helia.pins.isPinned(cid))) await drainPins(helia.pins.add(cid, signal ? { signal } : {}))
    },
    async unpin(id, { signal } = {}) {
      const cid = parseCid(id)
      if (!cid) return
      storage.pins.delete(id)
      if (await helia.pins.isPinned(cid)) await drainPins(helia.pins.rm(cid, signal ? { signal } : {}))
    },
    pins: () => storage.pins.values(),
    isPinned: (id) => storage.pins.has(id),
    async gc({ signal } = {}) {
      let deleted = 0
      await helia.gc({
        ...(signal ? { signal } : {}),
        onProgress: (event) => {
          if (event.type === 'helia:gc:deleted') deleted += 1
        },
      })
      return deleted
    },
    stop() {
      stopped ??= (async () => {
        await helia.stop()
        await storage.close()
      })()
      return stopped
    },
  }
  return store
}

/** The CID in `text`, or undefined when it is not one. */
function parseCid(text: string): CID | undefined {
  if (typeof text !== 'string' || text.length > 256) return undefined
  try {
    return CID.parse(text)
  } catch {
    return undefined
  }
}

/** True when `bytes` hash to `cid` (checked for sha2-256, the hash of every artifact; others pass). */
async function matches(cid: CID, bytes: Uint8Array): Promise<boolean> {
  if (cid.multihash.code !== SHA2_256) return true
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
  const expected = cid.multihash.digest
  if (digest.length !== expected.length) return false
  for (let index = 0; index < digest.length; index += 1) if (digest[index] !== expected[index]) return false
  return true
}

async function concat(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  let length = 0
  for await (const chunk of chunks) {
    parts.push(chunk)
    length += chunk.length
  }
  // A plain, unshared Uint8Array: blocks arrive as Node Buffers viewing larger messages.
  if (parts.length === 1 && parts[0]!.constructor === Uint8Array) return parts[0]!
  const bytes = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    bytes.set(part, offset)
    offset += part.length
  }
  return bytes
}

async function drainPins(source: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of source) {
    // walking the DAG is the work
  }
}

function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name ?? ''
  return /NotFound|LoadBlockFailed|Aggregate|Abort|Timeout/.test(name)
}
