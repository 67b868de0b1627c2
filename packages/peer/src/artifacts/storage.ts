/**
 * Durable artifact storage on Node: blocks in a `blockstore-fs` directory, pins in a file beside
 * it. Chosen instead of `storage.browser.ts` by the package's `imports` map (`#artifacts/storage`),
 * so browser bundles never see `node:fs`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { base32upper } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { filePinSet } from './file-pin-set.ts'
import { type ArtifactStorage, RAW_CODEC } from './helia.ts'

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

/** One block file of a blockstore-fs directory. */
export interface BlockFile {
  /** The block's id (`blockId`: the raw CIDv1 of its multihash, which names the file). */
  cid: string
  /** Size, in bytes. */
  bytes: number
  /** Last written, in ms since the epoch. */
  mtimeMs: number
}

/**
 * The block files under `blocksDir` (as {@link openArtifactStorage} lays them out), oldest first,
 * without reading them; files that name no block are skipped.
 */
export function listBlockFiles(blocksDir: string): BlockFile[] {
  if (!existsSync(blocksDir)) return []
  const files: BlockFile[] = []
  for (const entry of readdirSync(blocksDir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.data')) continue
    try {
      const digest = Digest.decode(base32upper.decode(entry.name.slice(0, -'.data'.length)))
      const stat = statSync(join(entry.parentPath, entry.name))
      files.push({ cid: CID.createV1(RAW_CODEC, digest).toString(), bytes: stat.size, mtimeMs: stat.mtimeMs })
    } catch {
      // not a block file (or gone meanwhile)
    }
  }
  return files.sort((a, b) => a.mtimeMs - b.mtimeMs)
}
