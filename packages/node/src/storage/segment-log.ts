/**
 * A durable, append-only record log: segmented, length-framed, checksummed, fsync'd in groups.
 *
 * Layout: `<dir>/<12-digit sequence>.seg` files, each at most `maxSegmentBytes`; a record is a
 * 12-byte header — magic `CSL1`, payload length (u32 BE), CRC-32 of the payload (u32 BE) — then the
 * payload. Opening reads one segment at a time (memory bounded by the segment size, never the whole
 * log), and:
 *
 * - cuts a torn tail (a record the last segment holds only in part: a crash mid-write) — the file is
 *   truncated to the last whole record and fsync'd, so the next append never follows garbage;
 * - quarantines a damaged record (bad magic, length or checksum with whole records after it): its
 *   bytes are copied to `<dir>/quarantine/<segment>-<offset>.bad`, reported, and reading resumes at
 *   the next valid record — a bit flip costs one record, not the anchor's start;
 * - refuses nothing else: an unreadable directory is the only error of `open`.
 *
 * Writes: `append` frames the record and writes it whole (short writes are continued); `flush()`
 * resolves when everything appended so far is fsync'd (group commit: after `groupRecords` records or
 * `groupMs` ms). New files and segments are fsync'd with their directory. A failed write or fsync
 * (ENOSPC, EIO, EROFS) puts the log in the failed state: the partial record is cut off where
 * possible, nothing appended since the last good fsync is acknowledged, and every later `append`
 * throws {@link StorageFailedError} — the process keeps serving reads.
 *
 * Budgets (defaults): segment 32 MiB, record 8 MiB, 64 records or 5 ms per fsync group.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { InvalidArgumentError, StorageFailedError } from '@can-swarm/peer'

/** `CSL1`: CAN Swarm log, format 1. */
const MAGIC = 0x43534c31
const HEADER_BYTES = 12
const SEGMENT = /^(\d{12})\.seg$/

/** The file operations the log uses (tests inject failures through them). */
export interface LogFileOps {
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number): number
  fsyncSync(fd: number): void
}

const realOps: LogFileOps = {
  writeSync: (fd, buffer, offset, length) => writeSync(fd, buffer, offset, length),
  fsyncSync: (fd) => fsyncSync(fd),
}

export interface SegmentLogOptions {
  dir: string
  /** Largest segment file, bytes; a record that would pass it starts a new segment. @default 32 MiB */
  maxSegmentBytes?: number
  /** Largest record payload, bytes (larger appends are refused; larger lengths read are damage). @default 8 MiB */
  maxRecordBytes?: number
  /** Records per fsync group. @default 64 */
  groupRecords?: number
  /** Longest wait before an fsync, ms. @default 5 */
  groupMs?: number
  /** @default the real file system */
  ops?: LogFileOps
}

/** What opening found besides whole records. */
export interface OpenReport {
  segments: number
  records: number
  /** Bytes cut off the last segment's end (a torn write). */
  tornBytes: number
  /** Damaged stretches moved aside: where they were and where their bytes are now. */
  quarantined: { segment: string; offset: number; bytes: number; file: string }[]
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function segmentName(sequence: number): string {
  return `${String(sequence).padStart(12, '0')}.seg`
}

/** A whole, checksummed record at `offset` of `data`: its payload length, or undefined. */
function recordAt(data: Buffer, offset: number, maxRecordBytes: number): number | undefined {
  if (offset + HEADER_BYTES > data.length) return undefined
  if (data.readUInt32BE(offset) !== MAGIC) return undefined
  const length = data.readUInt32BE(offset + 4)
  if (length > maxRecordBytes || offset + HEADER_BYTES + length > data.length) return undefined
  const payload = data.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length)
  return crc32(payload) === data.readUInt32BE(offset + 8) ? length : undefined
}

export class SegmentLog {
  readonly dir: string
  readonly #maxSegmentBytes: number
  readonly #maxRecordBytes: number
  readonly #groupRecords: number
  readonly #groupMs: number
  readonly #ops: LogFileOps
  #sequence: number
  #fd: number
  #size: number
  #unsynced = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #waiters: { resolve: () => void; reject: (error: Error) => void }[] = []
  #failed: StorageFailedError | undefined
  #closed = false

  private constructor(
    dir: string,
    options: Required<Omit<SegmentLogOptions, 'dir'>>,
    sequence: number,
    fd: number,
    size: number,
  ) {
    this.dir = dir
    this.#maxSegmentBytes = options.maxSegmentBytes
    this.#maxRecordBytes = options.maxRecordBytes
    this.#groupRecords = options.groupRecords
    this.#groupMs = options.groupMs
    this.#ops = options.ops
    this.#sequence = sequence
    this.#fd = fd
    this.#size = size
  }

  /**
   * Opens (creating) the log in `options.dir`, handing every whole record to `onRecord` in order
   * (segment by segment), and returns the log ready for appends with what opening found.
   * @throws {InvalidArgumentError} field `dir` when the directory cannot be created or read.
   */
  static open(
    options: SegmentLogOptions,
    onRecord: (payload: Uint8Array) => void,
  ): { log: SegmentLog; report: OpenReport } {
    const maxSegmentBytes = options.maxSegmentBytes ?? 32 * 1024 * 1024
    const settings = {
      maxSegmentBytes,
      maxRecordBytes: options.maxRecordBytes ?? Math.min(8 * 1024 * 1024, maxSegmentBytes - HEADER_BYTES),
      groupRecords: options.groupRecords ?? 64,
      groupMs: options.groupMs ?? 5,
      ops: options.ops ?? realOps,
    }
    if (settings.maxRecordBytes + HEADER_BYTES > settings.maxSegmentBytes) {
      throw new InvalidArgumentError(
        'maxSegmentBytes must hold at least one largest record',
        'maxSegmentBytes',
      )
    }
    const dir = options.dir
    let names: string[]
    try {
      if (!existsSync(dir)) {
        mkdirSync(dir, { recursive: true })
        fsyncDir(join(dir, '..'))
      }
      names = readdirSync(dir)
        .filter((name) => SEGMENT.test(name))
        .sort()
    } catch (error) {
      throw new InvalidArgumentError(`${dir}: cannot open the log (${(error as Error).message})`, 'dir')
    }
    const report: OpenReport = { segments: names.length, records: 0, tornBytes: 0, quarantined: [] }
    for (const [index, name] of names.entries()) {
      const last = index === names.length - 1
      const path = join(dir, name)
      const fd = openSync(path, last ? 'r+' : 'r')
      try {
        const size = fstatSync(fd).size
        const data = Buffer.alloc(size)
        for (let read = 0; read < size; ) {
          const got = readSync(fd, data, read, size - read, read)
          if (got === 0) break
          read += got
        }
        let offset = 0
        while (offset < size) {
          const length = recordAt(data, offset, settings.maxRecordBytes)
          if (length !== undefined) {
            onRecord(data.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length))
            report.records += 1
            offset += HEADER_BYTES + length
            continue
          }
          // Not a whole record here: the next one that is, if any, ends the damage.
          let next = offset + 1
          while (next < size && recordAt(data, next, settings.maxRecordBytes) === undefined) next += 1
          if (next >= size && last) {
            // Nothing whole after it in the last segment: a torn tail (or a damaged last record).
            if (!SegmentLog.#looksTorn(data, offset, settings.maxRecordBytes)) {
              report.quarantined.push(SegmentLog.#quarantine(dir, name, offset, data.subarray(offset)))
            } else {
              report.tornBytes += size - offset
            }
            ftruncateSync(fd, offset)
            fsyncSync(fd)
            break
          }
          report.quarantined.push(SegmentLog.#quarantine(dir, name, offset, data.subarray(offset, next)))
          offset = next
        }
      } finally {
        closeSync(fd)
      }
    }
    const sequence = names.length === 0 ? 1 : Number(SEGMENT.exec(names[names.length - 1]!)![1])
    const path = join(dir, segmentName(sequence))
    const created = !existsSync(path)
    const fd = openSync(path, 'a', 0o600)
    if (created) fsyncDir(dir)
    const size = fstatSync(fd).size
    const log = new SegmentLog(dir, settings, sequence, fd, size)
    if (size >= settings.maxSegmentBytes) log.#roll()
    return { log, report }
  }

  /** A prefix of a record whose header is sound but whose payload the file does not hold whole. */
  static #looksTorn(data: Buffer, offset: number, maxRecordBytes: number): boolean {
    if (offset + HEADER_BYTES > data.length) return true
    if (data.readUInt32BE(offset) !== MAGIC) return false
    const length = data.readUInt32BE(offset + 4)
    return length <= maxRecordBytes && offset + HEADER_BYTES + length > data.length
  }

  static #quarantine(
    dir: string,
    segment: string,
    offset: number,
    bytes: Uint8Array,
  ): OpenReport['quarantined'][number] {
    const quarantine = join(dir, 'quarantine')
    mkdirSync(quarantine, { recursive: true })
    const file = join(quarantine, `${segment}-${offset}.bad`)
    if (!existsSync(file)) {
      writeFileSync(file, bytes)
      const fd = openSync(file, 'r')
      fsyncSync(fd)
      closeSync(fd)
      fsyncDir(quarantine)
    }
    return { segment, offset, bytes: bytes.length, file }
  }

  /**
   * Reads the log again from its first segment, one segment in memory at a time, yielding every
   * whole record in order (damaged ones, reported when the log was opened, are skipped). Records
   * appended while it reads are yielded if they were on disk when their segment was read.
   */
  *records(): Generator<Uint8Array> {
    let names: string[]
    try {
      names = readdirSync(this.dir)
        .filter((name) => SEGMENT.test(name))
        .sort()
    } catch (error) {
      throw new InvalidArgumentError(`${this.dir}: cannot read the log (${(error as Error).message})`, 'dir')
    }
    for (const name of names) {
      let data: Buffer
      const fd = openSync(join(this.dir, name), 'r')
      try {
        const size = fstatSync(fd).size
        data = Buffer.alloc(size)
        for (let read = 0; read < size; ) {
          const got = readSync(fd, data, read, size - read, read)
          if (got === 0) break
          read += got
        }
      } finally {
        closeSync(fd)
      }
      let offset = 0
      while (offset < data.length) {
        const length = recordAt(data, offset, this.#maxRecordBytes)
        if (length === undefined) {
          offset += 1
          continue
        }
        yield data.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length)
        offset += HEADER_BYTES + length
      }
    }
  }

  /** Why writes are refused, once a write or fsync failed. */
  get failed(): StorageFailedError | undefined {
    return this.#failed
  }

  /** Bytes in the segment being written. */
  get segmentBytes(): number {
    return this.#size
  }

  /**
   * Appends one record; it is durable once a later {@link flush} resolves (or the group's fsync runs).
   * @throws {StorageFailedError} when the log has failed (now or earlier)
   * @throws {InvalidArgumentError} field `payload` when the record is larger than `maxRecordBytes`
   */
  append(payload: Uint8Array): void {
    if (this.#closed) throw new InvalidArgumentError(`${this.dir}: the log is closed`, 'log')
    if (this.#failed) throw this.#failed
    if (payload.length > this.#maxRecordBytes) {
      throw new InvalidArgumentError(
        `a record of ${payload.length} bytes is larger than the log takes (${this.#maxRecordBytes})`,
        'payload',
      )
    }
    if (this.#size + HEADER_BYTES + payload.length > this.#maxSegmentBytes) {
      this.#syncNow()
      if (this.#failed) throw this.#failed
      try {
        this.#roll()
      } catch (error) {
        this.#fail(error)
        throw this.#failed
      }
    }
    const frame = Buffer.alloc(HEADER_BYTES + payload.length)
    frame.writeUInt32BE(MAGIC, 0)
    frame.writeUInt32BE(payload.length, 4)
    frame.writeUInt32BE(crc32(payload), 8)
    frame.set(payload, HEADER_BYTES)
    let written = 0
    try {
      while (written < frame.length) {
        written += this.#ops.writeSync(this.#fd, frame, written, frame.length - written)
      }
    } catch (error) {
      // Cut the partial record off, so that what follows a restart is whole records only.
      try {
        if (written > 0) ftruncateSync(this.#fd, this.#size)
      } catch {
        // the open log cuts a torn tail anyway
      }
      this.#fail(error)
      throw this.#failed
    }
    this.#size += frame.length
    this.#unsynced += 1
    if (this.#unsynced >= this.#groupRecords) this.#syncNow()
    else this.#timer ??= setTimeout(() => this.#syncNow(), this.#groupMs)
  }

  /** Resolves once every record appended so far is on disk; rejects if the log failed first. */
  flush(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed)
    if (this.#unsynced === 0) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject })
    })
  }

  /** fsyncs now (what `close` and a graceful stop do). Never throws: a failure fails the log. */
  sync(): void {
    this.#syncNow()
  }

  close(): void {
    if (this.#closed) return
    this.#syncNow()
    this.#closed = true
    try {
      closeSync(this.#fd)
    } catch {
      // a segment that failed to open has no descriptor to close
    }
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(this.#failed ?? new InvalidArgumentError(`${this.dir}: the log is closed`, 'log'))
    }
  }

  #syncNow(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#unsynced === 0 || this.#failed || this.#closed) {
      this.#settle()
      return
    }
    try {
      this.#ops.fsyncSync(this.#fd)
      this.#unsynced = 0
    } catch (error) {
      this.#fail(error)
    }
    this.#settle()
  }

  #settle(): void {
    if (this.#unsynced !== 0 && !this.#failed) return
    for (const waiter of this.#waiters.splice(0)) {
      if (this.#failed) waiter.reject(this.#failed)
      else waiter.resolve()
    }
  }

  #fail(error: unknown): void {
    const code = (error as { code?: unknown }).code
    this.#failed ??= new StorageFailedError(
      join(this.dir, segmentName(this.#sequence)),
      typeof code === 'string' ? code : (error as Error).message,
      { cause: error },
    )
  }

  #roll(): void {
    closeSync(this.#fd)
    this.#sequence += 1
    const path = join(this.dir, segmentName(this.#sequence))
    this.#fd = openSync(path, 'a', 0o600)
    fsyncDir(this.dir)
    this.#size = 0
  }
}
