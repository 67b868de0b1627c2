/**
 * Durable small files: written whole to a temporary file, fsync'd, renamed over the old one and the
 * directory fsync'd, so a crash leaves either the old file or the new one — never an empty or half
 * file (identity, genesis, pool snapshots, compacted manifests); and durable append-only files
 * ({@link DurableAppendFile}: manifests).
 */
import { closeSync, existsSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/** fsyncs a directory (after a file in it was created or renamed). */
export function fsyncDirectory(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Writes `text` to `path` atomically and durably (file and directory fsync'd). */
export function writeFileDurably(path: string, text: string, mode = 0o600): void {
  const temporary = `${path}.tmp-${process.pid}`
  const fd = openSync(temporary, 'w', mode)
  try {
    const bytes = Buffer.from(text)
    let written = 0
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, path)
  fsyncDirectory(dirname(path))
}

/**
 * An append-only file whose appends are durable when they resolve: each is written whole at once,
 * and the appends of one turn of the event loop share one fsync (group commit). A failed write or
 * fsync fails the file: that append and every later one reject (the file is reopened, and its torn
 * tail cut, on the next start), so nothing unsynced is ever acknowledged.
 */
export class DurableAppendFile {
  readonly path: string
  #fd: number
  #waiters: { resolve: () => void; reject: (error: Error) => void }[] = []
  #failed: Error | undefined
  #closed = false

  /** Opens (creating, with its directory entry fsync'd) `path` for appending. */
  constructor(path: string, mode = 0o600) {
    this.path = path
    const created = !existsSync(path)
    this.#fd = openSync(path, 'a', mode)
    if (created) fsyncDirectory(dirname(path))
  }

  /** Why appends are refused, once a write or fsync failed. */
  get failed(): Error | undefined {
    return this.#failed
  }

  /** Appends `text`; resolves once it is on disk. */
  append(text: string): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`${this.path} is closed`))
    if (this.#failed) return Promise.reject(this.#failed)
    try {
      const bytes = Buffer.from(text)
      let written = 0
      while (written < bytes.length) written += writeSync(this.#fd, bytes, written, bytes.length - written)
    } catch (error) {
      this.#fail(error as Error)
      return Promise.reject(this.#failed)
    }
    return new Promise((resolve, reject) => {
      if (this.#waiters.push({ resolve, reject }) === 1) setImmediate(() => this.#sync())
    })
  }

  /** fsyncs what was appended and closes the file. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#sync()
    this.#closed = true
    closeSync(this.#fd)
  }

  #sync(): void {
    const waiters = this.#waiters.splice(0)
    if (waiters.length === 0) return
    try {
      if (!this.#failed) fsyncSync(this.#fd)
    } catch (error) {
      this.#fail(error as Error)
    }
    for (const waiter of waiters) {
      if (this.#failed) waiter.reject(this.#failed)
      else waiter.resolve()
    }
  }

  #fail(error: Error): void {
    this.#failed ??= new Error(`${this.path}: ${(error as { code?: string }).code ?? error.message}`, {
      cause: error,
    })
  }
}
