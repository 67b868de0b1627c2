/**
 * The anchor's durable envelope log: every envelope it accepts or publishes is appended (one
 * DAG-JSON line, fsync'd in small groups) to `<data>/envelopes.jsonl` before it counts as kept,
 * and replayed into the agent on start, so a restart loses nothing the anchor acknowledged.
 * A torn last line (crash mid-write) is dropped on read; any other bad line stops the start.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { envelopeFromJson, envelopeToJson } from '../../../peer/src/core/codec.ts'
import { InvalidArgumentError } from '../../../peer/src/core/errors.ts'
import type { AnyEnvelope, Cid } from '../../../peer/src/core/types.ts'

export class EnvelopeLog {
  readonly path: string
  #fd: number
  #ids = new Set<Cid>()
  #unsynced = 0
  #timer: ReturnType<typeof setTimeout> | undefined

  private constructor(path: string, fd: number, ids: Set<Cid>) {
    this.path = path
    this.#fd = fd
    this.#ids = ids
  }

  /** Opens (creating) the log in `dataDir` and returns it with the envelopes it holds. */
  static open(dataDir: string): { log: EnvelopeLog; envelopes: AnyEnvelope[] } {
    const path = join(dataDir, 'envelopes.jsonl')
    const envelopes: AnyEnvelope[] = []
    const ids = new Set<Cid>()
    if (existsSync(path)) {
      const lines = readFileSync(path, 'utf8').split('\n')
      for (const [index, line] of lines.entries()) {
        if (line.trim() === '') continue
        try {
          const env = envelopeFromJson(line)
          if (!ids.has(env.id)) envelopes.push(env)
          ids.add(env.id)
        } catch (error) {
          const last = lines.slice(index + 1).every((rest) => rest.trim() === '')
          if (last) break // a torn final write
          throw new InvalidArgumentError(
            `${path} line ${index + 1} is not an envelope (${(error as Error).message}): the log is damaged; restore it from a backup`,
            'data',
          )
        }
      }
    }
    const fd = openSync(path, 'a', 0o600)
    return { log: new EnvelopeLog(path, fd, ids), envelopes }
  }

  has(id: Cid): boolean {
    return this.#ids.has(id)
  }

  get size(): number {
    return this.#ids.size
  }

  /** Appends an envelope (once); the fsync follows within a few milliseconds. */
  append(env: AnyEnvelope): void {
    if (this.#ids.has(env.id)) return
    this.#ids.add(env.id)
    writeSync(this.#fd, `${envelopeToJson(env)}\n`)
    this.#unsynced += 1
    if (this.#unsynced >= 64) this.sync()
    else this.#timer ??= setTimeout(() => this.sync(), 5)
  }

  /** Forces buffered lines to disk. */
  sync(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#unsynced === 0) return
    fsyncSync(this.#fd)
    this.#unsynced = 0
  }

  close(): void {
    this.sync()
    closeSync(this.#fd)
  }
}
