/**
 * Artifact storage in browsers: blocks in IndexedDB (`blockstore-idb`); pins in memory (a browser
 * tab caches and serves what it holds but is not a pinning node; anchors are). Chosen instead of
 * `storage.ts` by the package's `imports` map (condition `browser`).
 */
import { IDBBlockstore } from 'blockstore-idb'
import type { ArtifactStorage } from './helia.ts'
import { memoryPinSet } from './pin-set.ts'

/** The runtime this storage is for. */
export const STORAGE_RUNTIME = 'browser' as const

/** Where {@link openArtifactStorage} keeps things in a browser. */
export interface StorageLocation {
  /** Name of the IndexedDB database of blocks. */
  blocks: string
  /** Ignored in browsers (pins stay in memory). */
  pins?: string
}

/** Opens the IndexedDB database `<name>/blocks` (or `location.blocks`). */
export async function openArtifactStorage(location: string | StorageLocation): Promise<ArtifactStorage> {
  const name = typeof location === 'string' ? `${location}/blocks` : location.blocks
  const blockstore = new IDBBlockstore(name)
  await blockstore.open()
  const pins = memoryPinSet()
  return {
    blockstore,
    pins,
    description: `blocks in IndexedDB ${name}, pins in memory`,
    async close() {
      pins.close()
      await blockstore.close()
    },
  }
}
