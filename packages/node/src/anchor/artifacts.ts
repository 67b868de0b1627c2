/**
 * The anchor's artifacts: Helia on the anchor's libp2p node with blocks in `<data>/blocks`
 * (blockstore-fs) and pins in `<data>/pins.log`. The anchor is the swarm's durable pinning node: it
 * pins the artifacts the swarm's accepted envelopes reference (NEED inputs, COMMIT outputs) and
 * keeps serving them to peers over bitswap after their authors have gone.
 *
 * Browsers that do not run Helia use the thin HTTP gateway over the same store
 * (`PUT/GET /api/artifacts/<cid>`, see http.ts). An upload is kept only when its bytes hash to the
 * CID in the path (raw CIDv1, SHA-256, as `artifactCid`), and then only as an unpinned **cache**
 * entry charged to the client that sent it: it is pinned when an envelope the agent accepted
 * references it (before or after the upload), and evicted otherwise — after `cacheTtlMs`, or when
 * room is needed, the heaviest client's oldest entry first, so one client's junk evicts its own
 * uploads before anyone else's. A client holds at most `maxCacheBytesPerClient` of the cache, the
 * cache at most `maxCacheBytes` and `maxCacheEntries`, all blocks on disk at most `maxTotalBytes`:
 * an upload that does not fit after the cache is emptied and unpinned blocks are collected is
 * refused (507), which only pinned artifacts can cause. A GET of an artifact the anchor lacks asks
 * the swarm for it (bounded by `gatewayFetchTimeoutMs`) and caches it the same way.
 *
 * Durable pinning: every referenced artifact is pinned in the background. One held in the cache is
 * pinned at once; others wait in a bounded queue (`maxPendingPins`, `maxPendingPinsPerSender`),
 * served sender by sender in turn, `pinConcurrency` at a time, each attempt bounded by
 * `pinFetchTimeoutMs`, retried `pinAttempts` times in all (backing off from `pinRetryMs`): a CID
 * nobody has costs bounded time and never starves the others. What could not be pinned is
 * remembered (bounded) and pinned when its bytes are uploaded. A raw block is pinned alone (depth 0);
 * a DAG-CBOR root is walked within `pinLimits` (depth, blocks, bytes) before anything is pinned.
 * Once every thread that references an artifact has settled, its pin gives way when room is
 * needed (oldest settled first, {@link AnchorArtifacts.threadSettled}); until then it stays.
 *
 * Opening also imports the stand-in store of earlier versions (`<data>/artifacts/<cid>` files,
 * pinned) and indexes the unpinned blocks left on disk as cache entries of an earlier run.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { AnyEnvelope } from '@can-swarm/peer'
import { artifactCid, InvalidArgumentError, QuotaExceededError } from '@can-swarm/peer'
import {
  blockId,
  createHeliaArtifacts,
  type HeliaArtifacts,
  MAX_ARTIFACT_BYTES,
  openArtifactStorage,
  type PinLimits,
} from '@can-swarm/peer/artifacts'
import { listBlockFiles } from '@can-swarm/peer/node'
import type { Libp2p } from '@libp2p/interface'
import { FairEntries } from './fair.ts'

/** Why an upload was refused, with the HTTP status that says so. */
export interface ArtifactRefusal {
  status: number
  error: string
}

/** Options of {@link AnchorArtifacts.open}. */
export interface AnchorArtifactsOptions {
  /** Largest artifact accepted, in bytes. @default MAX_ARTIFACT_BYTES (4 MiB − 4 KiB) */
  maxArtifactBytes?: number
  /** Most bytes of blocks kept on disk, pinned and cached. @default 268 435 456 (256 MiB) */
  maxTotalBytes?: number
  /** Most bytes of unpinned blocks (uploads and gateway reads not referenced yet). @default 67 108 864 (64 MiB) */
  maxCacheBytes?: number
  /** Most bytes of the cache one client's uploads and reads hold. @default 16 777 216 (16 MiB) */
  maxCacheBytesPerClient?: number
  /** Most cached blocks. @default 65 536 */
  maxCacheEntries?: number
  /** How long an unreferenced block stays cached after its last upload or read, in ms. @default 3 600 000 (1 h) */
  cacheTtlMs?: number
  /** Bounds of a pin's DAG walk. @default {@link DEFAULT_PIN_LIMITS} */
  pinLimits?: PinLimits
  /** How long a gateway GET asks the swarm for an artifact the anchor lacks, in ms. @default 5 000 */
  gatewayFetchTimeoutMs?: number
  /** How long one attempt to pin a referenced artifact looks for it, in ms. @default 10 000 */
  pinFetchTimeoutMs?: number
  /** Attempts to pin one referenced artifact before it waits for an upload. @default 3 */
  pinAttempts?: number
  /** Wait before the second attempt, in ms; doubled for each later one. @default 30 000 */
  pinRetryMs?: number
  /** Referenced artifacts waiting to be fetched and pinned. @default 4 096 */
  maxPendingPins?: number
  /** Referenced artifacts of one envelope sender outstanding (waiting, being fetched, waiting to retry). @default 256 */
  maxPendingPinsPerSender?: number
  /** Referenced artifacts fetched at once. @default 4 */
  pinConcurrency?: number
  /** Called when an artifact could not be pinned after every attempt (nobody reachable has it, too large, full). */
  onPinError?: (cid: string, error: unknown) => void
  /** The clock, in ms. @default Date.now */
  now?: () => number
}

/** Default {@link AnchorArtifactsOptions.pinLimits}: 16 levels, 1 024 blocks, 16 MiB per pinned DAG. */
export const DEFAULT_PIN_LIMITS: PinLimits = Object.freeze({
  maxDepth: 16,
  maxBlocks: 1024,
  maxBytes: 16 * 1024 * 1024,
})

/** Referenced artifacts remembered (to pin when uploaded) after their attempts failed. */
const MAX_WANTED = 65_536
/**
 * Artifacts of settled threads kept pinned until room is needed; past it the oldest settled ones
 * are unpinned at once (their blocks then go at the next collection).
 */
export const MAX_SETTLED_PINS = 65_536
/** How often expired cache entries are swept, and at most how often unpinned blocks are collected, in ms. */
const SWEEP_EVERY_MS = 60_000
/** Owner of cache entries found on disk at start (uploaded or read before a restart). */
const EARLIER_RUN = 'earlier-run'
/** Owner of blocks a failed pin fetched. */
const SWARM = 'swarm'

const CID_PATTERN = /^b[a-z2-7]{20,120}$/

interface Pending {
  cid: string
  attempts: number
}

/** The anchor's pinned artifact store, its upload cache and its HTTP gateway operations. */
export class AnchorArtifacts {
  readonly store: HeliaArtifacts
  readonly blocksDir: string
  readonly maxArtifactBytes: number
  readonly maxTotalBytes: number
  /** At most {@link maxTotalBytes}. */
  readonly maxCacheBytes: number
  /** At most {@link maxCacheBytes}. */
  readonly maxCacheBytesPerClient: number
  readonly #maxCacheEntries: number
  readonly #cacheTtlMs: number
  readonly #pinLimits: PinLimits
  readonly #gatewayFetchTimeoutMs: number
  readonly #pinFetchTimeoutMs: number
  readonly #pinAttempts: number
  readonly #pinRetryMs: number
  readonly #maxPendingPins: number
  readonly #maxPendingPinsPerSender: number
  readonly #pinConcurrency: number
  readonly #onPinError: (cid: string, error: unknown) => void
  readonly #now: () => number
  /** Unpinned blocks by block id, charged to the client that uploaded or read them. */
  readonly #cache = new FairEntries<{ atMs: number }>()
  /** Referenced artifacts not pinned yet: block id → CID. Oldest first. */
  readonly #wanted = new Map<string, string>()
  /** Referenced artifacts waiting for a pin attempt, by CID, charged to the envelope sender. */
  readonly #queue = new FairEntries<Pending>()
  /** Artifacts waiting to be attempted again: CID → timer. */
  readonly #retrying = new Map<string, ReturnType<typeof setTimeout>>()
  /** Artifacts the queue's workers are attempting now. */
  readonly #fetching = new Set<string>()
  /** Per sender: referenced artifacts outstanding (queued, being attempted, waiting to retry). */
  readonly #outstanding = new Map<string, number>()
  /** Uploads being written, by block id (a second upload of the same bytes waits for the first). */
  readonly #uploading = new Map<string, Promise<ArtifactRefusal | undefined>>()
  readonly #stopping = new AbortController()
  readonly #workers = new Set<Promise<void>>()
  /** Workers draining the queue now (the others pin cached artifacts). */
  #draining = 0
  /** Pin attempts made, ever. */
  #attempts = 0
  /** Per thread not settled yet: the artifacts pinned for it. */
  readonly #liveThreads = new Map<string, Set<string>>()
  /** Per artifact pinned for threads: how many threads not settled yet reference it. */
  readonly #liveRefs = new Map<string, number>()
  /** Artifacts every referencing thread of which has settled, oldest settled first. */
  readonly #settledPins = new Set<string>()
  /** Bytes each pin walked, for pins made for threads in this run. */
  readonly #pinBytes = new Map<string, number>()
  /** Settled artifacts unpinned to make room, ever. */
  #releasedPins = 0
  /** When unpinned blocks were last collected (a full scan of the blockstore). */
  #collectedAtMs = Number.NEGATIVE_INFINITY
  readonly #sweeper: ReturnType<typeof setInterval>
  #totalBytes: number

  private constructor(store: HeliaArtifacts, blocksDir: string, options: AnchorArtifactsOptions) {
    this.store = store
    this.blocksDir = blocksDir
    this.maxArtifactBytes = options.maxArtifactBytes ?? MAX_ARTIFACT_BYTES
    this.maxTotalBytes = options.maxTotalBytes ?? 256 * 1024 * 1024
    this.maxCacheBytes = options.maxCacheBytes ?? 64 * 1024 * 1024
    this.maxCacheBytesPerClient = options.maxCacheBytesPerClient ?? 16 * 1024 * 1024
    this.#maxCacheEntries = options.maxCacheEntries ?? 65_536
    this.#cacheTtlMs = options.cacheTtlMs ?? 3_600_000
    this.#pinLimits = options.pinLimits ?? DEFAULT_PIN_LIMITS
    this.#gatewayFetchTimeoutMs = options.gatewayFetchTimeoutMs ?? 5_000
    this.#pinFetchTimeoutMs = options.pinFetchTimeoutMs ?? 10_000
    this.#pinAttempts = options.pinAttempts ?? 3
    this.#pinRetryMs = options.pinRetryMs ?? 30_000
    this.#maxPendingPins = options.maxPendingPins ?? 4096
    this.#maxPendingPinsPerSender = options.maxPendingPinsPerSender ?? 256
    this.#pinConcurrency = options.pinConcurrency ?? 4
    this.#onPinError = options.onPinError ?? (() => undefined)
    this.#now = options.now ?? Date.now
    for (const [name, value] of [
      ['maxTotalBytes', this.maxTotalBytes],
      ['maxCacheBytes', this.maxCacheBytes],
      ['maxCacheBytesPerClient', this.maxCacheBytesPerClient],
    ] as const) {
      if (!(Number.isSafeInteger(value) && value > 0))
        throw new InvalidArgumentError(`${name} must be a positive integer (bytes)`, name)
    }
    // The cache lives on the disk budget, a client's share in the cache.
    this.maxCacheBytes = Math.min(this.maxCacheBytes, this.maxTotalBytes)
    this.maxCacheBytesPerClient = Math.min(this.maxCacheBytesPerClient, this.maxCacheBytes)
    this.#totalBytes = directoryBytes(blocksDir)
    this.#sweeper = setInterval(() => void this.sweep().catch(() => undefined), SWEEP_EVERY_MS)
    this.#sweeper.unref()
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
      pinLimits: options.pinLimits ?? DEFAULT_PIN_LIMITS,
      ...(options.maxArtifactBytes === undefined ? {} : { maxArtifactBytes: options.maxArtifactBytes }),
    })
    let artifacts: AnchorArtifacts
    try {
      artifacts = new AnchorArtifacts(store, join(dataDir, 'blocks'), options)
    } catch (error) {
      await store.stop()
      throw error
    }
    // Unpinned blocks of an earlier run (uploads not referenced yet, reads) are cache entries again.
    for (const file of listBlockFiles(artifacts.blocksDir)) {
      if (!(await store.isBlockPinned(file.cid)))
        artifacts.#cache.add(file.cid, EARLIER_RUN, file.bytes, { atMs: file.mtimeMs })
    }
    await artifacts.#fit(undefined, 0)
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

  /** The cache, the pin queue and what waits for an upload, for status pages. */
  stats(): {
    cachedBlocks: number
    cachedBytes: number
    pendingPins: number
    retryingPins: number
    pinAttemptsMade: number
    wanted: number
    settledPins: number
    releasedPins: number
  } {
    return {
      settledPins: this.#settledPins.size,
      releasedPins: this.#releasedPins,
      cachedBlocks: this.#cache.size,
      cachedBytes: this.#cache.weight,
      pendingPins: this.#queue.size,
      retryingPins: this.#retrying.size,
      pinAttemptsMade: this.#attempts,
      wanted: this.#wanted.size,
    }
  }

  /** Evicts the cache entries older than `cacheTtlMs` (done every minute, and before each upload). */
  async sweep(): Promise<void> {
    await this.#fit(undefined, 0)
  }

  /** Bytes of the cache `client` holds. */
  cachedBytesOf(client: string): number {
    return this.#cache.weightOf(client)
  }

  /** True when `cid`'s block is in the cache (held, unpinned). */
  isCached(cid: string): boolean {
    const id = blockId(cid)
    return id !== undefined && this.#cache.has(id)
  }

  /**
   * The artifact's bytes, from disk or, failing that, from the swarm (then cached, charged to
   * `client`); undefined when nobody has them.
   */
  async get(cid: string, client = 'local'): Promise<Uint8Array | undefined> {
    if (!CID_PATTERN.test(cid)) return undefined
    const id = blockId(cid)
    if (id === undefined) return undefined
    const local = await this.store.get(cid, { offline: true })
    if (local) {
      if (this.#cache.has(id)) this.#cache.touch(id, { atMs: this.#now() })
      return local
    }
    const fetched = await this.store
      .get(cid, { signal: AbortSignal.timeout(this.#gatewayFetchTimeoutMs) })
      .catch(() => undefined)
    if (fetched && !(await this.store.isBlockPinned(cid)) && !this.#cache.has(id)) {
      this.#totalBytes += fetched.length
      this.#cache.add(id, client, fetched.length, { atMs: this.#now() })
      if (this.#wanted.has(id)) this.#pinNow(this.#wanted.get(id)!)
      await this.#fit(client, 0)
    }
    return fetched
  }

  /**
   * Keeps `bytes` under `cid` in the cache, charged to `client` (pinned at once if an accepted
   * envelope referenced `cid` already), or says why not. Idempotent.
   */
  async put(cid: string, bytes: Uint8Array, client = 'local'): Promise<ArtifactRefusal | undefined> {
    if (!CID_PATTERN.test(cid)) return { status: 400, error: `"${cid.slice(0, 130)}" is not an artifact CID` }
    if (bytes.length > this.maxArtifactBytes) {
      return { status: 413, error: `artifact of ${bytes.length} bytes exceeds ${this.maxArtifactBytes}` }
    }
    const actual = artifactCid(bytes)
    if (actual !== cid) return { status: 422, error: `the bytes hash to ${actual}, not ${cid}` }
    const id = blockId(cid)!
    const writing = this.#uploading.get(id)
    if (writing) return writing
    const upload = this.#upload(cid, id, bytes, client).finally(() => this.#uploading.delete(id))
    this.#uploading.set(id, upload)
    return upload
  }

  async #upload(
    cid: string,
    id: string,
    bytes: Uint8Array,
    client: string,
  ): Promise<ArtifactRefusal | undefined> {
    if (this.#cache.has(id)) {
      this.#cache.touch(id, { atMs: this.#now() })
      return undefined
    }
    if (this.store.isPinned(cid) || (await this.store.isBlockPinned(cid))) return undefined
    const held = await this.store.has(cid)
    if (!(await this.#fit(client, held ? 0 : bytes.length))) {
      return {
        status: 507,
        error: `the anchor's artifact store is full of pinned artifacts (${this.maxTotalBytes} bytes)`,
      }
    }
    if (!held) {
      await this.store.put(bytes)
      this.#totalBytes += bytes.length
    }
    this.#cache.add(id, client, bytes.length, { atMs: this.#now() })
    const wanted = this.#wanted.get(id)
    if (wanted !== undefined) this.#pinNow(wanted)
    return undefined
  }

  /**
   * Makes room for `bytes` more of `client`'s (none: just enforces the bounds): evicts expired
   * entries, then `client`'s oldest while it would pass its share, then the heaviest client's oldest
   * while the cache or the disk would overflow; collects every unpinned block as a last resort.
   * Resolves to whether `bytes` fit.
   */
  async #fit(client: string | undefined, bytes: number): Promise<boolean> {
    const expired = this.#now() - this.#cacheTtlMs
    for (
      let oldest = this.#cache.oldest();
      oldest && oldest[1].value.atMs < expired;
      oldest = this.#cache.oldest()
    )
      await this.#evict(oldest[0])
    if (client !== undefined) {
      while (
        this.#cache.weightOf(client) > 0 &&
        this.#cache.weightOf(client) + bytes > this.maxCacheBytesPerClient
      )
        await this.#evict(this.#cache.oldestOf(client)!)
    }
    const incoming = bytes > 0 ? 1 : 0
    while (
      this.#cache.size > 0 &&
      (this.#cache.weight + bytes > this.maxCacheBytes ||
        this.#cache.size + incoming > this.#maxCacheEntries ||
        this.#totalBytes + bytes > this.maxTotalBytes)
    ) {
      await this.#evict(this.#cache.victim()!)
    }
    if (this.#totalBytes + bytes <= this.maxTotalBytes) return true
    // Artifacts of settled threads give way before anything is refused, oldest settled first, as
    // many as the bytes wanted (by what their pins walked), then their blocks are collected.
    // A pin made before a restart has no size noted: its root block's size stands in, and a round
    // that freed too little is followed by another.
    for (let round = 0; this.#settledPins.size > 0 && round < 8; round += 1) {
      const wanted = this.#totalBytes + bytes - this.maxTotalBytes
      let freed = 0
      for (const cid of this.#settledPins) {
        if (freed >= wanted) break
        const size = this.#pinBytes.get(cid)
        await this.#unpinSettled(cid)
        freed += size ?? (await this.store.get(cid, { offline: true }).catch(() => undefined))?.length ?? 0
      }
      if (await this.#collect(bytes)) return true
    }
    // What is neither pinned nor cached lies on disk unaccounted for (files of a crash, blocks
    // fetched for other reasons): collect it before refusing — a scan of the whole blockstore, so at
    // most once a minute, however often a full store is asked.
    if (this.#now() - this.#collectedAtMs < SWEEP_EVERY_MS) return false
    return this.#collect(bytes)
  }

  /** Deletes every block neither pinned nor cached and counts the disk again; whether `bytes` fit. */
  async #collect(bytes: number): Promise<boolean> {
    this.#collectedAtMs = this.#now()
    await this.store.gc()
    for (const id of this.#cache.keys()) if (!(await this.store.has(id))) this.#cache.delete(id)
    this.#totalBytes = directoryBytes(this.blocksDir)
    return this.#totalBytes + bytes <= this.maxTotalBytes
  }

  async #unpinSettled(cid: string): Promise<void> {
    this.#settledPins.delete(cid)
    this.#pinBytes.delete(cid)
    this.#releasedPins += 1
    await this.store.unpin(cid).catch(() => undefined)
  }

  /**
   * `thread` has settled (its challenge windows are over): the artifacts pinned for it that no
   * thread still under way references may give way when room is needed, oldest settled first —
   * until then they stay pinned and served. Past {@link MAX_SETTLED_PINS} the oldest are unpinned.
   */
  threadSettled(thread: string): void {
    const cids = this.#liveThreads.get(thread)
    if (!cids) return
    this.#liveThreads.delete(thread)
    for (const cid of cids) {
      const left = (this.#liveRefs.get(cid) ?? 1) - 1
      if (left > 0) {
        this.#liveRefs.set(cid, left)
        continue
      }
      this.#liveRefs.delete(cid)
      this.#settledPins.delete(cid)
      this.#settledPins.add(cid)
    }
    while (this.#settledPins.size > MAX_SETTLED_PINS) {
      const oldest = this.#settledPins.values().next().value!
      this.#run(this.#unpinSettled(oldest))
    }
  }

  /** Notes that `thread` references `cid`: while the thread is under way, the pin stays. */
  #reference(thread: string, cid: string): void {
    let cids = this.#liveThreads.get(thread)
    if (!cids) {
      cids = new Set()
      this.#liveThreads.set(thread, cids)
    }
    if (cids.has(cid)) return
    cids.add(cid)
    this.#liveRefs.set(cid, (this.#liveRefs.get(cid) ?? 0) + 1)
    this.#settledPins.delete(cid)
  }

  /** Drops a cache entry and deletes its block unless a pin keeps it. */
  async #evict(id: string): Promise<void> {
    const entry = this.#cache.delete(id)
    if (entry && (await this.store.evict(id).catch(() => false))) this.#totalBytes -= entry.weight
  }

  /**
   * Pins the artifacts `env` references (NEED inputs, COMMIT outputs): at once when their bytes
   * are cached here, else through the pin queue. Returns at once; {@link settled} waits.
   */
  pinReferenced(env: AnyEnvelope): void {
    const refs = env.kind === 'NEED' ? env.payload.inputs : env.kind === 'COMMIT' ? env.payload.outputs : []
    for (const cid of refs) {
      if (this.#stopping.signal.aborted) return
      if (!CID_PATTERN.test(cid)) continue
      this.#reference(env.thread, cid)
      if (this.store.isPinned(cid)) continue
      const id = blockId(cid)
      if (id === undefined) continue
      this.#wanted.delete(id)
      this.#wanted.set(id, cid)
      if (this.#wanted.size > MAX_WANTED) this.#wanted.delete(this.#wanted.keys().next().value!)
      if (id === cid && this.#cache.has(id)) this.#pinNow(cid)
      else this.#admit(cid, env.sender)
    }
  }

  /** Resolves when the background pinner has nothing left to do now (retries wait on their timers). */
  async settled(): Promise<void> {
    while (this.#workers.size > 0) await Promise.all(this.#workers)
  }

  /** Pins a cached artifact now, beside the queue (it costs no network): one attempt, no sender charged. */
  #pinNow(cid: string): void {
    this.#run(this.#attempt({ cid, attempts: 0 }, undefined))
  }

  #run(work: Promise<void>): void {
    const worker: Promise<void> = work.finally(() => this.#workers.delete(worker))
    this.#workers.add(worker)
  }

  /**
   * Queues a referenced CID, charged to its sender, unless it is queued, fetched or waiting already,
   * or the sender has its share outstanding (it stays wanted). A full queue drops the heaviest
   * sender's oldest entry.
   */
  #admit(cid: string, sender: string): void {
    if (this.#queue.has(cid) || this.#retrying.has(cid) || this.#fetching.has(cid)) return
    if ((this.#outstanding.get(sender) ?? 0) >= this.#maxPendingPinsPerSender) return
    if (this.#queue.size >= this.#maxPendingPins)
      this.#release(this.#queue.delete(this.#queue.victim()!)!.owner)
    this.#outstanding.set(sender, (this.#outstanding.get(sender) ?? 0) + 1)
    this.#enqueue({ cid, attempts: 0 }, sender)
  }

  /** One of `sender`'s outstanding CIDs is done with (pinned, given up or dropped). */
  #release(sender: string): void {
    const left = (this.#outstanding.get(sender) ?? 1) - 1
    if (left > 0) this.#outstanding.set(sender, left)
    else this.#outstanding.delete(sender)
  }

  #enqueue(pending: Pending, sender: string): void {
    this.#queue.add(pending.cid, sender, 1, pending)
    while (this.#draining < this.#pinConcurrency && this.#draining < this.#queue.size) {
      this.#draining += 1
      this.#run(
        this.#drainQueue().finally(() => {
          this.#draining -= 1
        }),
      )
    }
  }

  async #drainQueue(): Promise<void> {
    for (let cid = this.#queue.nextInTurn(); cid !== undefined; cid = this.#queue.nextInTurn()) {
      if (this.#stopping.signal.aborted) return
      const entry = this.#queue.delete(cid)!
      this.#fetching.add(cid)
      try {
        await this.#attempt(entry.value, entry.owner)
      } finally {
        this.#fetching.delete(cid)
      }
    }
  }

  /**
   * One attempt to pin `pending.cid`. On failure, a queued CID (one with a `sender`) is attempted
   * again after a back-off, until it has had `pinAttempts`; then it is given up (and stays wanted,
   * unless its DAG was too large).
   */
  async #attempt(pending: Pending, sender: string | undefined): Promise<void> {
    const { cid } = pending
    const id = blockId(cid)!
    if (!this.store.isPinned(cid)) {
      this.#attempts += 1
      try {
        await this.#pin(
          cid,
          AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(this.#pinFetchTimeoutMs)]),
        )
      } catch (error) {
        if (this.#stopping.signal.aborted) return
        const attempts = pending.attempts + 1
        const tooLarge = error instanceof QuotaExceededError
        if (
          sender !== undefined &&
          !tooLarge &&
          attempts < this.#pinAttempts &&
          this.#retrying.size < this.#maxPendingPins
        ) {
          const timer = setTimeout(
            () => {
              this.#retrying.delete(cid)
              if (this.store.isPinned(cid)) this.#release(sender)
              else this.#enqueue({ cid, attempts }, sender)
            },
            this.#pinRetryMs * 2 ** (attempts - 1),
          )
          timer.unref()
          this.#retrying.set(cid, timer)
          return
        }
        if (tooLarge) this.#wanted.delete(id)
        this.#onPinError(cid, error)
        if (sender !== undefined) this.#release(sender)
        return
      }
    }
    this.#wanted.delete(id)
    if (sender !== undefined) this.#release(sender)
  }

  /**
   * Pins `cid` within the pin limits and the room left on disk. The blocks it walks leave the cache
   * (a pin keeps them); if it fails, they return to it, with the blocks it fetched.
   */
  async #pin(cid: string, signal: AbortSignal): Promise<void> {
    const pinnedBytes = this.#totalBytes - this.#cache.weight
    if (pinnedBytes >= this.maxTotalBytes)
      throw new Error(`the artifact store is full of pinned artifacts (${this.maxTotalBytes} bytes)`)
    const limits = {
      ...this.#pinLimits,
      maxBytes: Math.min(this.#pinLimits.maxBytes, this.maxTotalBytes - pinnedBytes),
    }
    const taken: Array<[string, { owner: string; weight: number; value: { atMs: number } }]> = []
    const fetched: Array<[string, number]> = []
    let walked = 0
    try {
      await this.store.pin(cid, {
        signal,
        limits,
        onBlock: (block, bytes, wasFetched) => {
          walked += bytes
          const id = blockId(block)!
          const entry = this.#cache.delete(id)
          if (entry) taken.push([id, entry])
          if (wasFetched) {
            this.#totalBytes += bytes
            fetched.push([id, bytes])
          }
        },
      })
    } catch (error) {
      for (const [id, entry] of taken) this.#cache.add(id, entry.owner, entry.weight, entry.value)
      for (const [id, bytes] of fetched)
        if (!this.#cache.has(id)) this.#cache.add(id, SWARM, bytes, { atMs: this.#now() })
      await this.#fit(undefined, 0)
      throw error
    }
    if (this.#liveRefs.has(cid) || this.#settledPins.has(cid)) this.#pinBytes.set(cid, walked)
    // Pinned bytes grew: the cache gives way if the disk would overflow.
    await this.#fit(undefined, 0)
  }

  /** Stops the pinner and Helia and closes the blockstore (not the libp2p node). Idempotent. */
  async stop(): Promise<void> {
    this.#stopping.abort()
    clearInterval(this.#sweeper)
    for (const timer of this.#retrying.values()) clearTimeout(timer)
    this.#retrying.clear()
    this.#queue.clear()
    this.#outstanding.clear()
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
      if (artifactCid(bytes) !== name || bytes.length > this.maxArtifactBytes) continue
      if (!(await this.store.has(name))) {
        if (!(await this.#fit(undefined, bytes.length))) continue
        await this.store.put(bytes)
        this.#totalBytes += bytes.length
      }
      await this.store.pin(name)
      this.#cache.delete(name)
      imported += 1
      unlinkSync(path)
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
