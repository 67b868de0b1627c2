/**
 * Where plan documents are kept on Node: a directory (Automerge-repo's filesystem adapter).
 * Chosen instead of `storage.browser.ts` by the package's `imports` map.
 */
import type { StorageAdapterInterface } from '@automerge/automerge-repo/slim'
import { NodeFSStorageAdapter } from '@automerge/automerge-repo-storage-nodefs'

/** Plan document storage in the directory `location` (created on first write). */
export function planStorage(location: string): StorageAdapterInterface {
  return new NodeFSStorageAdapter(location)
}
