/**
 * Durable artifact storage on Node: blocks in a `blockstore-fs` directory, pins in a file beside
 * it. Chosen instead of `storage.browser.ts` by the package's `imports` map (`#artifacts/storage`),
 * so browser bundles never see `node:fs`.
 */
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { filePinSet } from './file-pin-set.ts'
import type { ArtifactStorage } from './helia.ts'

/** The runtime this storage is for. */
export const STORAGE_RUNTIME = 'node' as const

/** Where {@link openArtifactStorage} keeps things. */
export interface StorageLocation {
  /** Directory of the block files (created if missing). */
  blocks: string
  /** File of the pin set. @default `pins.log` inside `blocks`' parent directory */
  pins?: string
}

/**
 * Opens blocks and pins under a directory: `<directory>/blocks` (one file per block, sharded by
 * blockstore-fs) and `<directory>/pins.log`; or at explicit paths.
 */
export async function openArtifactStorage(location: string | StorageLocation): Promise<ArtifactStorage> {
  const { blocks, pins } =
    typeof location === 'string'
      ? { blocks: join(location, 'blocks'), pins: join(location, 'pins.log') }
      : { blocks: location.blocks, pins: location.pins ?? join(location.blocks, '..', 'pins.log') }
  const blockstore = new FsBlockstore(blocks)
  await blockstore.open()
  const pinSet = filePinSet(pins)
  return {
    blockstore,
    pins: pinSet,
    description: `blocks in ${blocks}, pins in ${pins}`,
    async close() {
      pinSet.close()
      await blockstore.close()
    },
  }
}
