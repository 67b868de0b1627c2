/**
 * What a tab keeps across reloads, in IndexedDB: the identity seed (secret, never leaves the
 * tab), every envelope it has seen (the thread history it folds again on load) and small settings
 * (roles, the last network parameters and anchor address). Artifacts live in Helia's own IndexedDB
 * blockstore (`can-swarm-artifacts/blocks`, see tab-artifacts.ts) and plan documents in
 * Automerge's (`can-swarm-plans`); the `artifacts` object store of earlier versions is no longer
 * written.
 */

const DB_VERSION = 1
const STORES = ['keys', 'envelopes', 'settings'] as const
type StoreName = (typeof STORES)[number]

/** A stored envelope: its wire bytes (DAG-CBOR) under its id, with the thread for filtering. */
export interface StoredEnvelope {
  id: string
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

/** The tab's durable storage. */
export class TabStorage {
  readonly #db: IDBDatabase

  private constructor(db: IDBDatabase) {
    this.#db = db
  }

  /** Opens (or creates) the database `name`. @default name 'can-swarm' */
  static async open(name = 'can-swarm'): Promise<TabStorage> {
    const req = indexedDB.open(name, DB_VERSION)
    req.onupgradeneeded = () => {
      const db = req.result
      for (const store of STORES) if (!db.objectStoreNames.contains(store)) db.createObjectStore(store)
    }
    return new TabStorage(await request(req))
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

  /** Stores envelopes (idempotent by id) in one transaction. */
  async saveEnvelopes(envelopes: readonly StoredEnvelope[]): Promise<void> {
    if (envelopes.length === 0) return
    const tx = this.#db.transaction('envelopes', 'readwrite')
    const store = tx.objectStore('envelopes')
    for (const env of envelopes) store.put(env, env.id)
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve()
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'))
    })
  }

  /** Every stored envelope. */
  async envelopes(): Promise<StoredEnvelope[]> {
    const tx = this.#db.transaction('envelopes', 'readonly')
    return (await request(tx.objectStore('envelopes').getAll())) as StoredEnvelope[]
  }

  close(): void {
    this.#db.close()
  }
}
