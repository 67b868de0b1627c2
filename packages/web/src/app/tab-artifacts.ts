/**
 * The tab's artifacts: Helia (IPFS) on the tab's own libp2p node, blocks in IndexedDB, so what
 * the tab put or fetched survives a reload and is served to other peers over bitswap. `put` keeps
 * the bytes in the tab; the anchor, hearing the NEED that references them, fetches and pins them
 * by bitswap (and workers fetch them from the tab or the anchor). `get` looks in the tab, then asks
 * connected peers by bitswap for up to `bitswapWaitMs`, and only then, as a fallback read path, the
 * anchor's HTTP gateway (whose bytes are checked against the CID before they are kept).
 *
 * Helia itself is opened by the `open` function the session passes (a dynamic import, so that the
 * page's first chunks stay small), once, on {@link TabArtifacts.start} or the first use.
 *
 * @example
 * ```ts
 * const artifacts = new TabArtifacts({
 *   open: async () => {
 *     const { createHeliaArtifacts, openArtifactStorage } = await import('@can-swarm/peer/artifacts')
 *     return createHeliaArtifacts({ libp2p, storage: await openArtifactStorage('can-swarm-artifacts'), fetchTimeoutMs: 5000 })
 *   },
 *   gateway: new AnchorArtifactStore({ anchorUrl: '' }),
 * })
 * const cid = await artifacts.put(bytes)
 * artifacts.sourceOf(cid) // 'this browser'
 * ```
 */
import { type ArtifactStore, artifactCid } from '@can-swarm/peer'
import type { HeliaArtifacts } from '@can-swarm/peer/artifacts'

/** Where the tab got an artifact's bytes from. */
export type ArtifactSource = 'this browser' | 'bitswap' | 'anchor gateway'

/** A read-only artifact source (the anchor's HTTP gateway fits: {@link AnchorArtifactStore}). */
export interface ArtifactReader {
  get(cid: string, options?: { signal?: AbortSignal }): Promise<Uint8Array | undefined>
}

/** Options of {@link TabArtifacts}. */
export interface TabArtifactsOptions {
  /**
   * Opens the Helia store on the tab's libp2p node. Its `fetchTimeoutMs` is how long a `get` asks
   * connected peers by bitswap before the gateway is tried (a few seconds).
   */
  open: () => Promise<HeliaArtifacts>
  /** The fallback read path. @default none: bitswap only */
  gateway?: ArtifactReader
}

/** How the tab's reads and writes went since it started. */
export interface TabArtifactStats {
  /** Artifacts put into the tab's store. */
  put: number
  /** Reads answered from the tab's own IndexedDB blockstore. */
  local: number
  /** Reads answered by connected peers over bitswap. */
  bitswap: number
  /** Reads answered by the anchor's HTTP gateway after bitswap found nothing. */
  gateway: number
  /** Reads nobody answered. */
  missing: number
}

/** Most artifact sources remembered for the UI. */
const MAX_SOURCES = 1024

/** The tab's {@link ArtifactStore}: Helia over the tab's libp2p node, the anchor's gateway as fallback. */
export class TabArtifacts implements ArtifactStore {
  readonly #open: () => Promise<HeliaArtifacts>
  readonly #gateway: ArtifactReader | undefined
  #store: Promise<HeliaArtifacts> | undefined
  #stopped = false
  readonly #stats: TabArtifactStats = { put: 0, local: 0, bitswap: 0, gateway: 0, missing: 0 }
  readonly #sources = new Map<string, ArtifactSource>()

  constructor(options: TabArtifactsOptions) {
    this.#open = options.open
    this.#gateway = options.gateway
  }

  /** Opens Helia (once); resolves when the tab serves its stored blocks over bitswap. */
  start(): Promise<HeliaArtifacts> {
    if (this.#stopped) return Promise.reject(new Error('the artifact store is stopped'))
    this.#store ??= this.#open()
    // A failed open (e.g. IndexedDB refused) may be retried by the next use.
    this.#store.catch(() => {
      this.#store = undefined
    })
    return this.#store
  }

  /** Keeps the bytes in the tab (IndexedDB) and offers them to peers; returns their CID. */
  async put(bytes: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<string> {
    const store = await this.start()
    const cid = await store.put(bytes, options)
    this.#stats.put += 1
    this.#remember(cid, 'this browser')
    return cid
  }

  /**
   * The bytes of `cid`: from the tab, else from connected peers by bitswap, else from the gateway
   * (then kept in the tab). Undefined when nobody has them; bytes always match the CID.
   */
  async get(cid: string, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    const store = await this.start()
    const local = await store.get(cid, { ...options, offline: true })
    if (local) return this.#found(cid, local, 'this browser', 'local')
    const fetched = await store.get(cid, options)
    if (fetched) return this.#found(cid, fetched, 'bitswap', 'bitswap')
    const fallback = await this.#gateway?.get(cid, options).catch(() => undefined)
    if (fallback && artifactCid(fallback) === cid) {
      await store.put(fallback, options)
      return this.#found(cid, fallback, 'anchor gateway', 'gateway')
    }
    this.#stats.missing += 1
    return undefined
  }

  /** Where the tab got `cid` from (put here, bitswap, gateway); undefined when it never held it. */
  sourceOf(cid: string): ArtifactSource | undefined {
    return this.#sources.get(cid)
  }

  /** Counters since the tab started (a copy). */
  stats(): TabArtifactStats {
    return { ...this.#stats }
  }

  /** Stops Helia and closes IndexedDB (leaves the libp2p node running). Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true
    const store = await this.#store?.catch(() => undefined)
    await store?.stop()
  }

  #found(
    cid: string,
    bytes: Uint8Array,
    source: ArtifactSource,
    counter: 'local' | 'bitswap' | 'gateway',
  ): Uint8Array {
    this.#stats[counter] += 1
    if (!this.#sources.has(cid)) this.#remember(cid, source)
    return bytes
  }

  #remember(cid: string, source: ArtifactSource): void {
    if (this.#sources.size >= MAX_SOURCES) this.#sources.delete(this.#sources.keys().next().value!)
    this.#sources.set(cid, source)
  }
}
