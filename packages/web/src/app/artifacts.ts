/**
 * Artifacts for tabs that do not run Helia themselves: content-addressed blobs kept by the peer
 * that made them and uploaded to the anchor's HTTP gateway `PUT /api/artifacts/<cid>`, which
 * accepts them only when the bytes hash to the CID and pins them in the anchor's Helia store.
 * Readers fetch `GET /api/artifacts/<cid>` (the anchor answers from its store or asks the swarm
 * over bitswap, so artifacts of Node peers running Helia arrive too) and check the CID again, so
 * the anchor can withhold an artifact but never forge one. Works in browsers and Node (only `fetch`).
 */
import { type ArtifactStore, artifactCid } from '@can-swarm/peer'

/** Where fetched and stored artifacts are cached locally (memory, IndexedDB). */
export interface ArtifactCache {
  get(cid: string): Promise<Uint8Array | undefined>
  set(cid: string, bytes: Uint8Array): Promise<void>
}

/** Options of {@link AnchorArtifactStore}. */
export interface AnchorArtifactStoreOptions {
  /** Base URL of the anchor's HTTP endpoint, e.g. `http://127.0.0.1:7700` or '' for same origin. */
  anchorUrl: string
  /** Local cache. @default an in-memory map */
  cache?: ArtifactCache
  /** Timeout of one HTTP request, in ms. @default 10 000 */
  requestTimeoutMs?: number
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch
}

/** Thrown when an artifact could not be uploaded to the anchor. */
export class ArtifactUploadError extends Error {
  readonly code = 'ARTIFACT_UPLOAD_FAILED'
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'ArtifactUploadError'
  }
}

/** In-memory {@link ArtifactCache}. */
export function memoryArtifactCache(): ArtifactCache {
  const blobs = new Map<string, Uint8Array>()
  return {
    get: async (cid) => blobs.get(cid),
    set: async (cid, bytes) => {
      blobs.set(cid, bytes)
    },
  }
}

/** An {@link ArtifactStore} over a local cache and the anchor's content-addressed HTTP store. */
export class AnchorArtifactStore implements ArtifactStore {
  readonly #base: string
  readonly #cache: ArtifactCache
  readonly #timeoutMs: number
  readonly #fetch: typeof fetch

  constructor(options: AnchorArtifactStoreOptions) {
    this.#base = options.anchorUrl.replace(/\/$/, '')
    this.#cache = options.cache ?? memoryArtifactCache()
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  }

  /** Keeps the bytes locally and uploads them; resolves once the anchor holds them. */
  async put(bytes: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<string> {
    const cid = artifactCid(bytes)
    await this.#cache.set(cid, bytes.slice())
    let response: Response
    try {
      response = await this.#fetch(`${this.#base}/api/artifacts/${cid}`, {
        method: 'PUT',
        body: bytes.slice().buffer as ArrayBuffer,
        headers: { 'content-type': 'application/octet-stream' },
        signal: this.#signal(options.signal),
      })
    } catch (error) {
      throw new ArtifactUploadError(
        `could not upload artifact ${cid} to the anchor at ${this.#base || 'this origin'}: ${(error as Error).message}; is the anchor running?`,
        { cause: error },
      )
    }
    if (!response.ok) {
      const detail = await response.text().catch(() => '')
      throw new ArtifactUploadError(
        `the anchor refused artifact ${cid} (HTTP ${response.status}): ${detail.trim()}`,
      )
    }
    return cid
  }

  /** The bytes of `cid` from the cache, else from the anchor (checked against the CID). */
  async get(cid: string, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    const cached = await this.#cache.get(cid)
    if (cached) return cached
    let response: Response
    try {
      response = await this.#fetch(`${this.#base}/api/artifacts/${cid}`, {
        signal: this.#signal(options.signal),
      })
    } catch {
      return undefined
    }
    if (!response.ok) return undefined
    const bytes = new Uint8Array(await response.arrayBuffer())
    if (artifactCid(bytes) !== cid) return undefined
    await this.#cache.set(cid, bytes)
    return bytes
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    return signal ? AbortSignal.any([signal, timeout]) : timeout
  }
}
