/**
 * Where plan documents are kept on Node: a directory of framed, checksummed chunk files, written
 * so that a crash (or a reader in another process) never sees half a chunk. Chosen instead of
 * `storage.browser.ts` by the package's `imports` map.
 *
 * Why not Automerge-repo's own filesystem adapter: it writes chunks in place (a torn chunk after a
 * crash made the document unloadable for good — "unable to parse chunk"), never fsyncs, and keeps
 * every chunk it ever saved in a memory cache.
 *
 * Layout (docs/PROTOCOL.md §13): a key `[documentId, kind, hash]` is the file
 * `<dir>/<documentId[0:2]>/<documentId[2:]>/<kind>/<hash>`. Each file is
 * `"CSPD" | u32 length | u32 CRC-32 | payload`. A save writes a temporary file, fsyncs it, renames
 * it over the key and fsyncs the directory, so a key holds its old chunk or its new one. A file whose
 * frame does not check (torn, flipped, foreign) is moved to `<dir>/quarantine/` and reads as absent:
 * the document loads from its other chunks and heals from peers.
 */
import { randomBytes } from 'node:crypto'
import type { Dirent } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { crc32 } from 'node:zlib'
import type { Chunk, StorageAdapterInterface, StorageKey } from '@automerge/automerge-repo/slim'

const MAGIC = [0x43, 0x53, 0x50, 0x44] // "CSPD"
const HEADER_BYTES = 12
const TEMPORARY = '.tmp-'
const QUARANTINE = 'quarantine'

/** Why a key cannot name a file (a path separator, `..`, an empty or a dot-leading part). */
export class PlanStorageKeyError extends Error {
  override name = 'PlanStorageKeyError'
}

/** What the directory has met: chunk files refused by their frame. */
export interface PlanStorageStats {
  /** Chunk files whose frame did not check, moved to `quarantine/`. */
  quarantined: number
}

/** Plan document storage in the directory `location` (created on first write). */
export function planStorage(location: string): StorageAdapterInterface & { stats(): PlanStorageStats } {
  return new PlanFileStorage(location)
}

/** Frames `payload`: magic, length, CRC-32, payload. */
export function frameChunk(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length)
  out.set(MAGIC, 0)
  const view = new DataView(out.buffer)
  view.setUint32(4, payload.length)
  view.setUint32(8, crc32(payload))
  out.set(payload, HEADER_BYTES)
  return out
}

/** The payload of a framed chunk, or undefined when the frame does not check. */
export function unframeChunk(file: Uint8Array): Uint8Array | undefined {
  if (file.length < HEADER_BYTES) return undefined
  for (let i = 0; i < MAGIC.length; i++) if (file[i] !== MAGIC[i]) return undefined
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  const length = view.getUint32(4)
  if (file.length !== HEADER_BYTES + length) return undefined
  const payload = file.subarray(HEADER_BYTES)
  return crc32(payload) === view.getUint32(8) ? payload : undefined
}

function checkKey(key: StorageKey): void {
  if (key.length === 0) throw new PlanStorageKeyError('an empty storage key')
  for (const part of key) {
    if (typeof part !== 'string' || part === '' || part.startsWith('.') || /[/\\\0]/.test(part)) {
      throw new PlanStorageKeyError(`storage key part ${JSON.stringify(part)} cannot name a file`)
    }
  }
}

class PlanFileStorage implements StorageAdapterInterface {
  readonly #base: string
  /** The last write of each key still in flight, so that writes of one key land in order. */
  readonly #writing = new Map<string, Promise<void>>()
  #quarantined = 0

  constructor(base: string) {
    this.#base = base
  }

  stats(): PlanStorageStats {
    return { quarantined: this.#quarantined }
  }

  #path(key: StorageKey): string {
    checkKey(key)
    const [first, ...rest] = key as [string, ...string[]]
    // A one-character first part has no second directory level.
    return first.length > 2
      ? join(this.#base, first.slice(0, 2), first.slice(2), ...rest)
      : join(this.#base, first, ...rest)
  }

  #key(path: string): StorageKey {
    const parts = relative(this.#base, path).split(sep)
    const [head = '', tail = '', ...rest] = parts
    return head.length === 2 && tail !== '' ? [head + tail, ...rest] : parts
  }

  async load(key: StorageKey): Promise<Uint8Array | undefined> {
    const path = this.#path(key)
    await this.#writing.get(path)?.catch(() => undefined)
    return this.#read(path)
  }

  async #read(path: string): Promise<Uint8Array | undefined> {
    let file: Buffer
    try {
      file = await readFile(path)
    } catch (error) {
      // Absent: no file, or a path component that is not a directory.
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
      throw error
    }
    const payload = unframeChunk(file)
    if (payload) return new Uint8Array(payload)
    await this.#quarantine(path)
    return undefined
  }

  async #quarantine(path: string): Promise<void> {
    const dir = join(this.#base, QUARANTINE)
    await mkdir(dir, { recursive: true })
    const name = `${relative(this.#base, path).split(sep).join('_')}-${Date.now()}`
    await rename(path, join(dir, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error
    })
    this.#quarantined += 1
  }

  save(key: StorageKey, data: Uint8Array): Promise<void> {
    let path: string
    try {
      path = this.#path(key)
    } catch (error) {
      return Promise.reject(error)
    }
    const previous = this.#writing.get(path)
    const write = (async () => {
      await previous?.catch(() => undefined)
      await writeDurably(path, frameChunk(data))
    })()
    this.#writing.set(path, write)
    const done = () => {
      if (this.#writing.get(path) === write) this.#writing.delete(path)
    }
    write.then(done, done)
    return write
  }

  async remove(key: StorageKey): Promise<void> {
    const path = this.#path(key)
    await this.#writing.get(path)?.catch(() => undefined)
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error
    })
  }

  async loadRange(prefix: StorageKey): Promise<Chunk[]> {
    const dir = this.#path(prefix)
    const chunks: Chunk[] = []
    for (const path of await this.#files(dir)) {
      await this.#writing.get(path)?.catch(() => undefined)
      const data = await this.#read(path)
      if (data) chunks.push({ key: this.#key(path), data })
    }
    return chunks
  }

  async removeRange(prefix: StorageKey): Promise<void> {
    const dir = this.#path(prefix)
    for (const [path, write] of this.#writing) {
      if (path.startsWith(dir + sep)) await write.catch(() => undefined)
    }
    await rm(dir, { recursive: true, force: true })
  }

  /** Every chunk file under `dir`; temporary files no write of ours is using (a crash's) go. */
  async #files(dir: string): Promise<string[]> {
    let entries: Dirent[]
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return []
      throw error
    }
    const out: string[] = []
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const path = join(dir, entry.name)
      const temporary = entry.name.indexOf(TEMPORARY)
      if (entry.isDirectory()) out.push(...(await this.#files(path)))
      else if (!entry.isFile()) continue
      else if (temporary < 0) out.push(path)
      else if (!this.#writing.has(join(dir, entry.name.slice(0, temporary))))
        await unlink(path).catch(() => undefined)
    }
    return out
  }
}

/** Writes `bytes` to `path` through a fsync'd temporary file and a rename; fsyncs the directory. */
async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true })
  const temporary = `${path}${TEMPORARY}${randomBytes(6).toString('hex')}`
  const handle = await open(temporary, 'w', 0o600)
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } catch (error) {
    await handle.close().catch(() => undefined)
    await unlink(temporary).catch(() => undefined)
    throw error
  }
  await handle.close()
  await rename(temporary, path)
  const directory = await open(dir, 'r')
  try {
    await directory.sync()
  } finally {
    await directory.close()
  }
}
