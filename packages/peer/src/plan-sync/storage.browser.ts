/**
 * Where plan documents are kept in browsers: an IndexedDB database (Automerge-repo's IndexedDB
 * adapter), so that they survive a reload. Chosen instead of `storage.ts` by the package's
 * `imports` map (condition `browser`).
 */
import type { StorageAdapterInterface } from '@automerge/automerge-repo/slim'
import { IndexedDBStorageAdapter } from '@automerge/automerge-repo-storage-indexeddb'

/** Plan document storage in the IndexedDB database named `location`. */
export function planStorage(location: string): StorageAdapterInterface {
  return new IndexedDBStorageAdapter(location)
}
