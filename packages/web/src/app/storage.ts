/**
 * What a tab keeps across reloads, in IndexedDB: the identity seed (secret, never leaves the
 * tab), every envelope it has seen (the thread history it folds again on load, scoped by network:
 * only envelopes of the network the tab follows are read back, see {@link readStoredEnvelopes})
 * and small settings (roles, the network's signed genesis and latest pool, the faucet's answer). Artifacts live in Helia's own IndexedDB
 * blockstore (`can-swarm-artifacts/blocks`, see tab-artifacts.ts) and plan documents in
 * Automerge's (`can-swarm-plans`); the `artifacts` object store of earlier versions is no longer
 * written.
 */

import { type AnyEnvelope, decodeEnvelope } from '@can-swarm/peer'

const DB_VERSION = 2
const STORES = ['keys', 'envelopes', 'settings'] as const
type StoreName = (typeof STORES)[number]

/** Bounds of the envelope history a tab keeps (docs/PROTOCOL.md §13). */
export interface TabStorageLimits {
  /** Most envelopes kept. @default 50 000 */
  maxEnvelopes: number
  /** Most envelope bytes kept. @default 67 108 864 (64 MiB) */
  maxBytes: number
}

/** Default {@link TabStorageLimits}. */
export const DEFAULT_TAB_STORAGE_LIMITS: Readonly<TabStorageLimits> = Object.freeze({
  maxEnvelopes: 50_000,
  maxBytes: 64 * 1024 * 1024,
})

/** A stored envelope: its wire bytes (DAG-CBOR) under its id, with its network and thread for filtering. */
export interface StoredEnvelope {
  id: string
  /** The envelope's network (`net`); absent in records of earlier versions (read from the bytes). */
  net?: string
  thread: string
  bytes: Uint8Array
  /** When this tab first saw it (ms since epoch). */
  atMs: number
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'))
  })
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'))
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
  })
}

/** The tab's durable storage. */
export class TabStorage {
  readonly #db: IDBDatabase
  readonly limits: Readonly<TabStorageLimits>
  #count = 0
  #bytes = 0
  #evictedThreads = 0

  private constructor(db: IDBDatabase, limits: TabStorageLimits) {
    this.#db = db
    this.limits = Object.freeze(limits)
  }

  /**
   * Opens (or creates) the database `name`. The envelope history is kept within `limits`: past
   * them, whole threads go, the one first seen longest ago first.
   * @default name 'can-swarm'
   */
  static async open(name = 'can-swarm', limits: Partial<TabStorageLimits> = {}): Promise<TabStorage> {
    const req = indexedDB.open(name, DB_VERSION)
    req.onupgradeneeded = () => {
      const db = req.result
      for (const store of STORES) if (!db.objectStoreNames.contains(store)) db.createObjectStore(store)
      const envelopes = req.transaction!.objectStore('envelopes')
      if (!envelopes.indexNames.contains('atMs')) envelopes.createIndex('atMs', 'atMs')
      if (!envelopes.indexNames.contains('thread')) envelopes.createIndex('thread', 'thread')
    }
    const storage = new TabStorage(await request(req), { ...DEFAULT_TAB_STORAGE_LIMITS, ...limits })
    await storage.#measure()
    await storage.#evict()
    return storage
  }

  /** Envelopes and envelope bytes held now, and threads evicted since opening. */
  get usage(): { envelopes: number; bytes: number; evictedThreads: number } {
    return { envelopes: this.#count, bytes: this.#bytes, evictedThreads: this.#evictedThreads }
  }

  async #measure(): Promise<void> {
    const tx = this.#db.transaction('envelopes', 'readonly')
    const cursor = tx.objectStore('envelopes').openCursor()
    let count = 0
    let bytes = 0
    await new Promise<void>((resolve, reject) => {
      cursor.onsuccess = () => {
        const at = cursor.result
        if (!at) return resolve()
        count += 1
        bytes += (at.value as StoredEnvelope).bytes?.byteLength ?? 0
        at.continue()
      }
      cursor.onerror = () => reject(cursor.error ?? new Error('IndexedDB cursor failed'))
    })
    this.#count = count
    this.#bytes = bytes
  }

  /** Deletes whole threads, the one first seen longest ago first, until the history fits its limits. */
  async #evict(): Promise<void> {
    while (this.#count > this.limits.maxEnvelopes || this.#bytes > this.limits.maxBytes) {
      const tx = this.#db.transaction('envelopes', 'readwrite')
      const store = tx.objectStore('envelopes')
      const oldest = (await request(store.index('atMs').openCursor()))?.value as StoredEnvelope | undefined
      if (!oldest) {
        this.#count = 0
        this.#bytes = 0
        return
      }
      const records = (await request(store.index('thread').getAll(oldest.thread))) as StoredEnvelope[]
      for (const record of records) {
        store.delete(record.id)
        this.#count -= 1
        this.#bytes -= record.bytes?.byteLength ?? 0
      }
      await done(tx)
      this.#evictedThreads += 1
    }
  }

  async #get<T>(store: StoreName, key: string): Promise<T | undefined> {
    const tx = this.#db.transaction(store, 'readonly')
    return (await request(tx.objectStore(store).get(key))) as T | undefined
  }

  async #put(store: StoreName, key: string, value: unknown): Promise<void> {
    const tx = this.#db.transaction(store, 'readwrite')
    await request(tx.objectStore(store).put(value, key))
  }

  /** The identity seed, if this browser has one. */
  seed(): Promise<Uint8Array | undefined> {
    return this.#get<Uint8Array>('keys', 'seed')
  }

  saveSeed(seed: Uint8Array): Promise<void> {
    return this.#put('keys', 'seed', seed)
  }

  setting<T>(key: string): Promise<T | undefined> {
    return this.#get<T>('settings', key)
  }

  saveSetting(key: string, value: unknown): Promise<void> {
    return this.#put('settings', key, value)
  }

  /** Stores envelopes (idempotent by id) in one transaction, then keeps the history within its limits. */
  async saveEnvelopes(envelopes: readonly StoredEnvelope[]): Promise<void> {
    if (envelopes.length === 0) return
    const tx = this.#db.transaction('envelopes', 'readwrite')
    const store = tx.objectStore('envelopes')
    for (const env of envelopes) {
      const held = store.getKey(env.id)
      held.onsuccess = () => {
        if (held.result !== undefined) return
        store.put(env, env.id)
        this.#count += 1
        this.#bytes += env.bytes.byteLength
      }
    }
    await done(tx)
    await this.#evict()
  }

  /** Deletes stored envelopes by id, in one transaction. */
  async deleteEnvelopes(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    const tx = this.#db.transaction('envelopes', 'readwrite')
    const store = tx.objectStore('envelopes')
    for (const id of ids) {
      const held = store.get(id)
      held.onsuccess = () => {
        const record = held.result as StoredEnvelope | undefined
        if (!record) return
        store.delete(id)
        this.#count -= 1
        this.#bytes -= record.bytes?.byteLength ?? 0
      }
    }
    await done(tx)
  }

  /** Every stored envelope (of every network). */
  async envelopes(): Promise<StoredEnvelope[]> {
    const tx = this.#db.transaction('envelopes', 'readonly')
    return (await request(tx.objectStore('envelopes').getAll())) as StoredEnvelope[]
  }

  close(): void {
    this.#db.close()
  }
}

/** What {@link readStoredEnvelopes} found. */
export interface StoredHistory {
  /** The envelopes of the network asked for, decoded (ids and signatures not yet verified). */
  envelopes: Array<{ env: AnyEnvelope; atMs: number }>
  /** Envelopes of other networks, left in storage untouched. */
  otherNetworks: number
  /** Ids of records that cannot be decoded (an earlier envelope format, or damage). */
  unreadable: Array<{ id: string; error: unknown }>
}

/**
 * The stored envelopes of `network` only: a tab whose anchor now serves another network (its data
 * directory was reset) must not replay the old network's envelopes into the new one, where they
 * would be refused anyway; they stay in storage, unused, in case the anchor comes back to it.
 */
export function readStoredEnvelopes(items: readonly StoredEnvelope[], network: string): StoredHistory {
  const history: StoredHistory = { envelopes: [], otherNetworks: 0, unreadable: [] }
  for (const item of items) {
    if (item.net !== undefined && item.net !== network) {
      history.otherNetworks += 1
      continue
    }
    let env: AnyEnvelope
    try {
      env = decodeEnvelope(item.bytes)
    } catch (error) {
      history.unreadable.push({ id: item.id, error })
      continue
    }
    if (env.net !== network) history.otherNetworks += 1
    else history.envelopes.push({ env, atMs: item.atMs })
  }
  return history
}
