/**
 * The anchor's durable envelope log: every envelope it takes in or publishes is appended, as its
 * canonical wire bytes, to a {@link SegmentLog} in `<data>/log/` (segmented, framed, checksummed,
 * fsync'd in groups), and replayed into the agent on start, so a restart loses nothing the anchor
 * acknowledged. Opening cuts a torn tail and quarantines damaged records (reported, not fatal); a
 * record whose checksum holds but that is not an envelope is quarantined the same way. A failed
 * write (full disk, I/O error) fails the log: appends throw `StorageFailedError`, `/readyz` says
 * so, and the anchor keeps serving reads.
 *
 * An anchor opens the log `lazy` and {@link EnvelopeLog.replay}s it in batches into its agent,
 * one segment in memory at a time, so that threads settled for good leave memory while the rest
 * is still being read (docs/PROTOCOL.md §9.6).
 *
 * Logs of earlier versions (`<data>/envelopes.jsonl`, one DAG-JSON envelope per line) are imported
 * once, read as a stream (a torn last line is dropped), and then renamed `envelopes.jsonl.imported`.
 */
import {
  closeSync,
  createReadStream,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { AnyEnvelope, Cid } from '@can-swarm/peer'
import {
  decodeEnvelope,
  encodeEnvelope,
  envelopeFromJson,
  InvalidArgumentError,
  type StorageFailedError,
} from '@can-swarm/peer'
import { type LogFileOps, type OpenReport, SegmentLog } from '../storage/segment-log.ts'

/** What opening the log found, for the anchor's start-up report. */
export interface EnvelopeLogReport extends OpenReport {
  /** Whole records that were not envelopes (quarantined). */
  undecodable: number
  /** Envelopes imported from a log of an earlier version. */
  imported: number
}

/** The envelope a record holds, or undefined (the record kept in `bad`) when it is not one. */
function decodeOrKeep(payload: Uint8Array, bad: Uint8Array[]): AnyEnvelope | undefined {
  try {
    return decodeEnvelope(payload)
  } catch {
    bad.push(Uint8Array.from(payload))
    return undefined
  }
}

/** Writes records that were not envelopes to `<log>/quarantine/undecodable-<pass>-<i>.bad`. */
function quarantineUndecodable(path: string, bad: readonly Uint8Array[], pass: number): void {
  if (bad.length === 0) return
  const quarantine = join(path, 'quarantine')
  mkdirSync(quarantine, { recursive: true })
  for (const [index, bytes] of bad.entries())
    writeFileSync(join(quarantine, `undecodable-${pass === 0 ? '' : `${pass}-`}${index}.bad`), bytes)
}

export class EnvelopeLog {
  readonly path: string
  readonly #segments: SegmentLog
  #ids: Set<Cid>
  #appended = 0
  #replays = 0
  #undecodable = 0
  #replayed = 0

  private constructor(path: string, segments: SegmentLog, ids: Set<Cid>) {
    this.path = path
    this.#segments = segments
    this.#ids = ids
  }

  /**
   * Opens (creating) the log in `dataDir` and returns it with the envelopes it holds, in log order.
   * `lazy` checks the log's framing only (a torn tail is cut, damaged records quarantined) and
   * returns no envelopes: {@link replay} reads them afterwards, decoding as it goes.
   */
  static async open(
    dataDir: string,
    options: { ops?: LogFileOps; maxSegmentBytes?: number; lazy?: boolean } = {},
  ): Promise<{ log: EnvelopeLog; envelopes: AnyEnvelope[]; report: EnvelopeLogReport }> {
    const path = join(dataDir, 'log')
    const envelopes: AnyEnvelope[] = []
    const ids = new Set<Cid>()
    const bad: Uint8Array[] = []
    const { log: segments, report } = SegmentLog.open(
      {
        dir: path,
        ...(options.ops ? { ops: options.ops } : {}),
        ...(options.maxSegmentBytes ? { maxSegmentBytes: options.maxSegmentBytes } : {}),
      },
      options.lazy
        ? () => undefined
        : (payload) => {
            const env = decodeOrKeep(payload, bad)
            if (env === undefined || ids.has(env.id)) return
            ids.add(env.id)
            envelopes.push(env)
          },
    )
    quarantineUndecodable(path, bad, 0)
    const log = new EnvelopeLog(path, segments, ids)
    const imported = await log.#importLegacy(dataDir, envelopes)
    return { log, envelopes, report: { ...report, undecodable: bad.length, imported } }
  }

  async #importLegacy(dataDir: string, envelopes: AnyEnvelope[]): Promise<number> {
    const legacy = join(dataDir, 'envelopes.jsonl')
    if (!existsSync(legacy)) return 0
    let imported = 0
    let lineNo = 0
    let broken: { line: number; message: string } | undefined
    const lines = createInterface({
      input: createReadStream(legacy, 'utf8'),
      crlfDelay: Number.POSITIVE_INFINITY,
    })
    for await (const line of lines) {
      lineNo += 1
      if (line.trim() === '') continue
      if (broken) {
        throw new InvalidArgumentError(
          `${legacy} line ${broken.line} is not an envelope (${broken.message}): the log is damaged; restore it from a backup`,
          'data',
        )
      }
      try {
        const env = envelopeFromJson(line)
        if (this.#ids.has(env.id)) continue
        this.append(env)
        envelopes.push(env)
        imported += 1
      } catch (error) {
        if (error instanceof InvalidArgumentError && error.field === 'data') throw error
        broken = { line: lineNo, message: (error as Error).message } // a torn last line is dropped
      }
    }
    await this.flush()
    renameSync(legacy, `${legacy}.imported`)
    const fd = openSync(dataDir, 'r')
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    return imported
  }

  /**
   * Reads every envelope of the log again, in log order, one segment in memory at a time; each
   * enters the log's index of ids (a duplicate record is skipped). Records that are not envelopes
   * are quarantined and skipped. For an anchor that opened the log `lazy`.
   */
  *replay(): Generator<AnyEnvelope> {
    const bad: Uint8Array[] = []
    for (const payload of this.#segments.records()) {
      const env = decodeOrKeep(payload, bad)
      if (env === undefined || this.#ids.has(env.id)) continue
      this.#ids.add(env.id)
      this.#replayed += 1
      yield env
    }
    quarantineUndecodable(this.path, bad, this.#replays)
    this.#replays += 1
    this.#undecodable += bad.length
  }

  /** Envelopes {@link replay} has handed out so far. */
  get replayed(): number {
    return this.#replayed
  }

  /** Records replay found not to be envelopes (quarantined). */
  get undecodable(): number {
    return this.#undecodable
  }

  has(id: Cid): boolean {
    return this.#ids.has(id)
  }

  /** Envelopes held in the log's index of ids (those of retired threads are forgotten, see {@link forget}). */
  get size(): number {
    return this.#ids.size
  }

  /** Envelopes this log has taken since it was opened (a version number: it only grows). */
  get appended(): number {
    return this.#appended
  }

  /**
   * Forgets the ids of envelopes whose thread left memory for good (its envelopes stay on disk):
   * the index then holds live threads only. The agent answers later envelopes of such a thread
   * `retired`, so they are not appended again.
   */
  forget(ids: Iterable<Cid>): void {
    for (const id of ids) this.#ids.delete(id)
  }

  /** Why writes are refused, once a write failed (the anchor is then not ready). */
  get failed(): StorageFailedError | undefined {
    return this.#segments.failed
  }

  /**
   * Appends an envelope (once); it is durable within a few milliseconds, or when {@link flush}
   * resolves.
   * @throws {StorageFailedError} when the log cannot write (it then refuses every later append)
   */
  append(env: AnyEnvelope): void {
    if (this.#ids.has(env.id)) return
    this.#segments.append(encodeEnvelope(env))
    this.#ids.add(env.id)
    this.#appended += 1
  }

  /** Resolves once every envelope appended so far is on disk. */
  flush(): Promise<void> {
    return this.#segments.flush()
  }

  /** Forces appended envelopes to disk now (never throws: a failure fails the log). */
  sync(): void {
    this.#segments.sync()
  }

  close(): void {
    this.#segments.close()
  }
}
