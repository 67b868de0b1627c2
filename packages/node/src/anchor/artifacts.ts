/**
 * The anchor's artifacts: Helia on the anchor's libp2p node with blocks in `<data>/blocks`
 * (blockstore-fs) and pins in `<data>/pins.log`. The anchor is the swarm's durable pinning node:
 * it pins every artifact it accepts and keeps serving it to peers over bitswap after its author
 * has gone. Browsers that do not run Helia use the thin HTTP gateway over the same store
 * (`PUT/GET /api/artifacts/<cid>`, see http.ts): an upload is kept only when its bytes hash to the
 * CID in the path (raw CIDv1, SHA-256, as `artifactCid`), so the anchor pins what peers made without
 * being able to forge it, and readers check the CID again. A GET of an artifact the anchor lacks
 * asks the swarm for it (bounded by `gatewayFetchTimeoutMs`). Bounded: one artifact ≤
 * `maxArtifactBytes`, all blocks on disk ≤ `maxTotalBytes` (unpinned blocks are collected first).
 *
 * Durable pinning of the swarm's artifacts: every NEED input and COMMIT output the anchor hears of
 * is fetched from the peers holding it and pinned, in the background (a bounded queue, two at a
 * time), so artifacts outlive the peers that made them.
 *
 * Opening also imports the stand-in store of earlier versions (`<data>/artifacts/<cid>` files)
 * and removes each file once its block is pinned.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import {
  createHeliaArtifacts,
  type HeliaArtifacts,
  MAX_ARTIFACT_BYTES,
} from '../../../peer/src/artifacts/helia.ts'
import { openArtifactStorage } from '../../../peer/src/artifacts/storage.ts'
import { artifactCid } from '../../../peer/src/core/artifacts.ts'
import type { AnyEnvelope } from '../../../peer/src/core/types.ts'

/** Why an upload was refused, with the HTTP status that says so. */
export interface ArtifactRefusal {
  status: number
  error: string
}

/** Options of {@link AnchorArtifacts.open}. */
export interface AnchorArtifactsOptions {
  /** Largest artifact accepted, in bytes. @default MAX_ARTIFACT_BYTES (4 MiB − 4 KiB) */
  maxArtifactBytes?: number
  /** Most bytes of blocks kept on disk, in bytes. @default 256 MiB */
  maxTotalBytes?: number
  /** How long a gateway GET asks the swarm for an artifact the anchor lacks, in ms. @default 5 000 */
  gatewayFetchTimeoutMs?: number
  /** How long the background pinner looks for one referenced artifact, in ms. @default 30 000 */
  pinFetchTimeoutMs?: number
  /** Called when the background pinner fails to pin an artifact (nobody reachable holds it, full). */
  onPinError?: (cid: string, error: unknown) => void
}

/** Most referenced artifacts waiting to be pinned; more are dropped (and retried when referenced again). */
const MAX_PENDING_PINS = 4096
/** Referenced artifacts fetched at once. */
const PIN_CONCURRENCY = 2

const CID_PATTERN = /^b[a-z2-7]{20,120}$/

/** The anchor's pinned artifact store and its HTTP gateway operations. */
export class AnchorArtifacts {
  readonly store: HeliaArtifacts
  readonly blocksDir: string
  readonly maxArtifactBytes: number
  readonly maxTotalBytes: number
  readonly #gatewayFetchTimeoutMs: number
  readonly #pinFetchTimeoutMs: number
  readonly #onPinError: (cid: string, error: unknown) => void
  readonly #pending = new Set<string>()
  readonly #stopping = new AbortController()
  readonly #workers = new Set<Promise<void>>()
  #totalBytes: number

  private constructor(store: HeliaArtifacts, blocksDir: string, options: AnchorArtifactsOptions) {
    this.store = store
    this.blocksDir = blocksDir
    this.maxArtifactBytes = options.maxArtifactBytes ?? MAX_ARTIFACT_BYTES
    this.maxTotalBytes = options.maxTotalBytes ?? 256 * 1024 * 1024
    this.#gatewayFetchTimeoutMs = options.gatewayFetchTimeoutMs ?? 5_000
    this.#pinFetchTimeoutMs = options.pinFetchTimeoutMs ?? 30_000
    this.#onPinError = options.onPinError ?? (() => undefined)
    this.#totalBytes = directoryBytes(blocksDir)
  }

  /**
   * Opens the store under `dataDir` on a running libp2p node (which the caller stops, after
   * {@link stop}); imports a stand-in `artifacts/` directory if there is one.
   */
  static async open(
    dataDir: string,
    libp2p: Libp2p,
    options: AnchorArtifactsOptions = {},
  ): Promise<{ artifacts: AnchorArtifacts; imported: number }> {
    const store = await createHeliaArtifacts({
      libp2p,
      storage: await openArtifactStorage(dataDir),
      pinOnPut: true,
      ...(options.maxArtifactBytes === undefined ? {} : { maxArtifactBytes: options.maxArtifactBytes }),
    })
    const artifacts = new AnchorArtifacts(store, join(dataDir, 'blocks'), options)
    const imported = await artifacts.#importStandIn(join(dataDir, 'artifacts'))
    return { artifacts, imported }
  }

  /** True when `cid` looks like an artifact CID (base32 CIDv1). */
  static isCid(cid: string): boolean {
    return CID_PATTERN.test(cid)
  }

  /** Number of pinned artifacts. */
  get pinned(): number {
    return this.store.pins().length
  }

  /** Bytes of blocks on disk (pinned and cached). */
  get totalBytes(): number {
    return this.#totalBytes
  }

  /** The artifact's bytes, from disk or, failing that, from the swarm; undefined when nobody has them. */
  async get(cid: string): Promise<Uint8Array | undefined> {
    if (!CID_PATTERN.test(cid)) return undefined
    const local = await this.store.get(cid, { offline: true })
    if (local) return local
    const fetched = await this.store
      .get(cid, { signal: AbortSignal.timeout(this.#gatewayFetchTimeoutMs) })
      .catch(() => undefined)
    if (fetched) this.#totalBytes += fetched.length
    return fetched
  }

  /** Keeps and pins `bytes` under `cid`, or says why not. Idempotent. */
  async put(cid: string, bytes: Uint8Array): Promise<ArtifactRefusal | undefined> {
    if (!CID_PATTERN.test(cid)) return { status: 400, error: `"${cid.slice(0, 130)}" is not an artifact CID` }
    if (bytes.length > this.maxArtifactBytes) {
      return { status: 413, error: `artifact of ${bytes.length} bytes exceeds ${this.maxArtifactBytes}` }
    }
    const actual = artifactCid(bytes)
    if (actual !== cid) return { status: 422, error: `the bytes hash to ${actual}, not ${cid}` }
    if (await this.store.has(cid)) {
      await this.store.pin(cid)
      return undefined
    }
    if (this.#totalBytes + bytes.length > this.maxTotalBytes) {
      await this.store.gc()
      this.#totalBytes = directoryBytes(this.blocksDir)
      if (this.#totalBytes + bytes.length > this.maxTotalBytes) {
        return { status: 507, error: `the anchor's artifact store is full (${this.maxTotalBytes} bytes)` }
      }
    }
    await this.store.put(bytes)
    this.#totalBytes += bytes.length
    return undefined
  }

  /**
   * Queues the artifacts `env` references (NEED inputs, COMMIT outputs) to be fetched and pinned.
   * Returns at once; {@link settled} waits for the queue.
   */
  pinReferenced(env: AnyEnvelope): void {
    const refs = env.kind === 'NEED' ? env.payload.inputs : env.kind === 'COMMIT' ? env.payload.outputs : []
    for (const cid of refs) {
      if (this.#pending.size >= MAX_PENDING_PINS || this.#stopping.signal.aborted) return
      this.#pending.add(cid)
    }
    while (this.#workers.size < PIN_CONCURRENCY && this.#pending.size > this.#workers.size) {
      const worker: Promise<void> = this.#pinPending().finally(() => this.#workers.delete(worker))
      this.#workers.add(worker)
    }
  }

  /** Resolves when the background pinner has nothing left to do. */
  async settled(): Promise<void> {
    while (this.#workers.size > 0) await Promise.all(this.#workers)
  }

  async #pinPending(): Promise<void> {
    for (const cid of this.#pending) {
      this.#pending.delete(cid)
      if (this.#stopping.signal.aborted) return
      if (this.store.isPinned(cid) || !CID_PATTERN.test(cid)) continue
      try {
        if (this.#totalBytes >= this.maxTotalBytes)
          throw new Error(`the artifact store is full (${this.maxTotalBytes} bytes)`)
        const held = await this.store.has(cid)
        const signal = AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(this.#pinFetchTimeoutMs)])
        await this.store.pin(cid, { signal })
        if (!held) this.#totalBytes += (await this.store.get(cid, { offline: true }))?.length ?? 0
      } catch (error) {
        if (!this.#stopping.signal.aborted) this.#onPinError(cid, error)
      }
    }
  }

  /** Stops the pinner and Helia and closes the blockstore (not the libp2p node). Idempotent. */
  async stop(): Promise<void> {
    this.#stopping.abort()
    this.#pending.clear()
    await this.settled()
    await this.store.stop()
  }

  /** Moves the stand-in store's files into Helia (pinned), deleting each once it is in. */
  async #importStandIn(dir: string): Promise<number> {
    if (!existsSync(dir)) return 0
    let imported = 0
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (!CID_PATTERN.test(name)) continue
      const bytes = new Uint8Array(readFileSync(path))
      if (artifactCid(bytes) === name && (await this.put(name, bytes)) === undefined) {
        imported += 1
        unlinkSync(path)
      }
    }
    if (readdirSync(dir).length === 0) rmdirSync(dir)
    return imported
  }
}

/** Total size of the files under `dir`, in bytes (0 when it does not exist). */
function directoryBytes(dir: string): number {
  if (!existsSync(dir)) return 0
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size
  }
  return total
}
