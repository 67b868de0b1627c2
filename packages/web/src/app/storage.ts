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

const DB_VERSION = 1
const STORES = ['keys', 'envelopes', 'settings'] as const
type StoreName = (typeof STORES)[number]

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

  /** Deletes stored envelopes by id, in one transaction. */
  async deleteEnvelopes(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    const tx = this.#db.transaction('envelopes', 'readwrite')
    const store = tx.objectStore('envelopes')
    for (const id of ids) store.delete(id)
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve()
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'))
    })
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
