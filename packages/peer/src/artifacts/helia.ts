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
import { createUnsafe } from 'multiformats/block'
import { CID } from 'multiformats/cid'
import { type ArtifactStore, artifactCid } from '../core/artifacts.ts'
import { checkCborBudget } from '../core/cbor-budget.ts'
import { InvalidArgumentError, OversizedArtifactError, QuotaExceededError } from '../core/errors.ts'
import type { Cid } from '../core/types.ts'
import { memoryPinSet, type PinSet } from './pin-set.ts'

/**
 * Largest artifact, in bytes: 4 MiB − 4 KiB. Bitswap refuses to send a block over 4 193 648
 * bytes (and a message over 4 MiB); this leaves room for the block's framing.
 */
export const MAX_ARTIFACT_BYTES = 4 * 1024 * 1024 - 4096

/** Multihash code of SHA2-256. */
const SHA2_256 = 0x12
/** Multicodec of raw blocks (every artifact): they link to nothing, so they are pinned alone. */
export const RAW_CODEC = 0x55
/** Multicodec of DAG-CBOR blocks (thread trees): the only codec whose links a pin follows. */
export const DAG_CBOR_CODEC = 0x71
/** CBOR structure a DAG-CBOR block may carry before its links are read. */
const BLOCK_CBOR_BUDGET = Object.freeze({ maxItems: 100_000, maxDepth: 64 })

/**
 * Bounds of the DAG walk of one pin. A raw block is pinned alone (depth 0) whatever they say; a
 * DAG-CBOR root is walked (and its blocks fetched) at most `maxDepth` links down, and refused once
 * its blocks pass `maxBlocks` or `maxBytes`, before anything is pinned.
 */
export interface PinLimits {
  /** Levels of links below the root followed (0: the root alone). */
  maxDepth: number
  /** Most blocks of one pinned DAG, the root included. */
  maxBlocks: number
  /** Most bytes of one pinned DAG, in bytes. */
  maxBytes: number
}

/** No bounds (a peer pinning what it made itself, such as its thread trees). */
export const UNBOUNDED_PIN_LIMITS: PinLimits = Object.freeze({
  maxDepth: Number.POSITIVE_INFINITY,
  maxBlocks: Number.POSITIVE_INFINITY,
  maxBytes: Number.POSITIVE_INFINITY,
})

/** Options of one {@link HeliaArtifacts.pin}. */
export interface PinOptions {
  signal?: AbortSignal
  /** Bounds of this pin's walk. @default the store's `pinLimits` */
  limits?: PinLimits
  /** Hears of every block the walk reads: its CID, size in bytes, and whether it came from the network. */
  onBlock?: (cid: Cid, bytes: number, fetched: boolean) => void
}

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
  /** Bounds of every pin's DAG walk, re-pinning at start included. @default {@link UNBOUNDED_PIN_LIMITS} */
  pinLimits?: PinLimits
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
   * is not held: a raw block alone, a DAG-CBOR root with the blocks it links to, within the pin
   * limits (walked and fetched before anything is pinned). Idempotent.
   * @throws {InvalidArgumentError} field `cid` when it is not a CID or cannot be fetched.
   * @throws {QuotaExceededError} field `cid` when its DAG is larger than the pin limits allow.
   */
  pin(cid: Cid, options?: PinOptions): Promise<void>
  /** Lets `gc` remove the artifact again. Idempotent. */
  unpin(cid: Cid, options?: { signal?: AbortSignal }): Promise<void>
  /** The pinned CIDs. */
  pins(): Cid[]
  /** True when `cid` is pinned. */
  isPinned(cid: Cid): boolean
  /** True when a pin keeps the block of `cid` (its own, or one of a DAG holding it). */
  isBlockPinned(cid: Cid): Promise<boolean>
  /**
   * Deletes the block of `cid` now unless a pin keeps it (one block, without waiting for `gc` or
   * for network reads in progress); resolves to whether it was deleted.
   */
  evict(cid: Cid): Promise<boolean>
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
  const pinLimits = options.pinLimits ?? UNBOUNDED_PIN_LIMITS
  const storage = options.storage ?? memoryArtifactStorage()
  const light = createHeliaLight({ blockstore: storage.blockstore, codecs: [dagCbor] })
  let helia: Helia = light
  if (options.libp2p) {
    helia = withBitswap(withSwarmLibp2p(light, options.libp2p) as never, options.bitswap ?? {})
  }
  await helia.start()
  const routed = options.libp2p !== undefined && helia.hasRouter(ROUTER_NAME)

  // Helia's pin records live in its in-memory datastore; the durable set rebuilds them (as deep as
  // the limits let a pin go: what lies deeper was never fetched for it).
  for (const cid of storage.pins.values()) {
    const parsed = parseCid(cid)
    if (parsed && (await storage.blockstore.has(parsed)))
      await drainPins(helia.pins.add(parsed, { depth: pinDepth(parsed, pinLimits) }))
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

  /**
   * Reads (fetching what is missing) every block a pin of `root` keeps, breadth first, within
   * `limits`; throws before the limits are passed, having pinned nothing.
   */
  const walk = async (root: CID, limits: PinLimits, pin: PinOptions): Promise<void> => {
    const depth = pinDepth(root, limits)
    // Blocks to read, in order, each once: at most `maxBlocks` ever enter, whatever a block links to.
    const order: Array<{ cid: CID; level: number }> = [{ cid: root, level: 0 }]
    const queued = new Set([root.toString()])
    let bytes = 0
    for (let index = 0; index < order.length; index += 1) {
      const next = order[index]!
      const id = next.cid.toString()
      const held = await helia.blockstore.has(next.cid)
      const block = await read(next.cid, held || !options.libp2p, pin.signal)
      if (block === undefined) {
        throw new InvalidArgumentError(
          `artifact ${id} is neither held here nor offered by a connected peer: put it or connect to a peer holding it first`,
          'cid',
        )
      }
      bytes += block.length
      pin.onBlock?.(id, block.length, !held)
      if (bytes > limits.maxBytes)
        throw new QuotaExceededError(`the DAG under ${root} holds more than ${limits.maxBytes} bytes`, 'cid')
      if (next.level >= depth) continue
      checkCborBudget(block, BLOCK_CBOR_BUDGET, 'cid')
      for (const [, link] of createUnsafe({ bytes: block, cid: next.cid, codec: dagCbor }).links()) {
        const linked = link.toString()
        if (queued.has(linked)) continue
        queued.add(linked)
        if (queued.size > limits.maxBlocks)
          throw new QuotaExceededError(
            `the DAG under ${root} has more than ${limits.maxBlocks} blocks`,
            'cid',
          )
        order.push({ cid: link, level: next.level + 1 })
      }
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
    async pin(id, pin = {}) {
      const cid = parseCid(id)
      if (!cid) throw new InvalidArgumentError(`"${String(id).slice(0, 130)}" is not a CID`, 'cid')
      if (storage.pins.has(id) && (await hasPinRecord(helia, cid))) return
      const limits = pin.limits ?? pinLimits
      await walk(cid, limits, pin)
      storage.pins.add(id)
      if (!(await hasPinRecord(helia, cid))) {
        const depth = pinDepth(cid, limits)
        await drainPins(helia.pins.add(cid, { depth, ...(pin.signal ? { signal: pin.signal } : {}) }))
      }
    },
    async unpin(id, { signal } = {}) {
      const cid = parseCid(id)
      if (!cid) return
      storage.pins.delete(id)
      if (await hasPinRecord(helia, cid)) await drainPins(helia.pins.rm(cid, signal ? { signal } : {}))
    },
    pins: () => storage.pins.values(),
    isPinned: (id) => storage.pins.has(id),
    async isBlockPinned(id) {
      const cid = parseCid(id)
      return cid !== undefined && helia.pins.isPinned(cid)
    },
    async evict(id) {
      const cid = parseCid(id)
      if (!cid || (await helia.pins.isPinned(cid)) || !(await storage.blockstore.has(cid))) return false
      await storage.blockstore.delete(cid)
      return true
    },
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

/**
 * The id of the block `cid` names, whatever its codec: the raw CIDv1 of its multihash (blockstores
 * key blocks by multihash), or undefined when `cid` is not a CID.
 */
export function blockId(cid: Cid): Cid | undefined {
  const parsed = parseCid(cid)
  return parsed && CID.createV1(RAW_CODEC, parsed.multihash).toString()
}

/** How many levels of links a pin of `cid` keeps: none for anything but DAG-CBOR. */
function pinDepth(cid: CID, limits: PinLimits): number {
  return cid.code === DAG_CBOR_CODEC ? limits.maxDepth : 0
}

/** True when Helia holds a pin record for `cid` itself (not only for a DAG that holds it). */
async function hasPinRecord(helia: Helia, cid: CID): Promise<boolean> {
  try {
    await helia.pins.get(cid)
    return true
  } catch {
    return false
  }
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
