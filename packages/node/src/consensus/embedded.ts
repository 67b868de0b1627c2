/**
 * The embedded consensus store: one anchor, zero setup, durable. Decisions live in a SQLite
 * database (Node's built-in `node:sqlite`) in WAL mode with `synchronous=FULL`: a decision is
 * acknowledged only after its transaction is fsync'd, so it survives SIGKILL and power loss.
 * Concurrent calls are group-committed (one transaction, one fsync, for up to `maxBatch`
 * decisions). The database is opened in exclusive locking mode: one process per file.
 *
 * @example
 * ```ts
 * const store = await EmbeddedConsensusStore.open({ path: 'data/consensus.sqlite' })
 * const epoch = await store.currentEpoch()
 * const result = await store.tryDecide({ need, proposal, epoch, lamport, kPlan, decider })
 * await store.close()
 * ```
 */
import { statSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import {
  ConsensusUnavailableError,
  checkDecideRequest,
  checkEpochStep,
  checkFence,
  type DecideRecord,
  type DecideRequest,
  type DecideResult,
  InvalidArgumentError,
  resolveDecide,
  StoreCorruptError,
  StoreLockedError,
} from '@can-swarm/peer'
import {
  type CallOptions,
  type MergeOptions,
  type MergeReport,
  type MergeSource,
  type MergeStep,
  type MergeTarget,
  mergeInto,
  mergeStep,
} from './merge.ts'
import { checkRecord, recordOf } from './record.ts'
import { throwIfAborted } from './retry.ts'

/** Options of {@link EmbeddedConsensusStore.open}. */
export interface EmbeddedConsensusStoreOptions {
  /** Path of the database file; its directory must exist. The anchor uses `<data>/consensus.sqlite`. */
  path: string
  /** Epoch of a store created by this call (ignored when the file exists). @default 1 */
  initialEpoch?: number
  /** Most decisions committed together in one transaction (one fsync). @default 256 */
  maxBatch?: number
  /** Run SQLite's `PRAGMA quick_check` when opening. @default true */
  checkIntegrity?: boolean
}

/** Format version written in the `meta` table; a file with another value is refused. */
const FORMAT_VERSION = 1

const SQLITE_BUSY = 5
const SQLITE_LOCKED = 6
const SQLITE_CORRUPT = 11
const SQLITE_CANTOPEN = 14
const SQLITE_NOTADB = 26

interface Pending {
  request: DecideRequest
  signal: AbortSignal | undefined
  resolve: (result: DecideResult) => void
  reject: (error: unknown) => void
}

interface Row {
  need: string
  proposal: string
  epoch: number
  lamport: number
  k_plan: number
  decider: string
  bucket: number
}

function translateOpenError(error: unknown, path: string): unknown {
  const code = (error as { errcode?: number }).errcode
  if (code === SQLITE_BUSY || code === SQLITE_LOCKED) return new StoreLockedError(path, { cause: error })
  if (code === SQLITE_NOTADB || code === SQLITE_CORRUPT) {
    return new StoreCorruptError(path, (error as Error).message, { cause: error })
  }
  if (code === SQLITE_CANTOPEN) {
    return new InvalidArgumentError(
      `cannot open ${path} as a database (${(error as Error).message}): give a writable file path in an existing directory`,
      'path',
    )
  }
  return error
}

/** A durable single-anchor {@link ConsensusStore} on `node:sqlite`. Create it with {@link open}. */
export class EmbeddedConsensusStore implements MergeTarget {
  /** The database file. */
  readonly path: string
  #db: DatabaseSync
  #maxBatch: number
  #queue: Pending[] = []
  #flushScheduled = false
  #closed = false
  #selectEpoch: StatementSync
  #selectDecide: StatementSync
  #insertDecide: StatementSync
  #replaceDecide: StatementSync
  #updateEpoch: StatementSync

  private constructor(db: DatabaseSync, path: string, maxBatch: number) {
    this.#db = db
    this.path = path
    this.#maxBatch = maxBatch
    this.#selectEpoch = db.prepare("SELECT value FROM meta WHERE key = 'epoch'")
    this.#selectDecide = db.prepare('SELECT * FROM decides WHERE need = ?')
    this.#insertDecide = db.prepare(
      'INSERT INTO decides (need, proposal, epoch, lamport, k_plan, decider, bucket) VALUES (?, ?, ?, ?, ?, ?, ?)',
    )
    this.#replaceDecide = db.prepare(
      'UPDATE decides SET proposal = ?, epoch = ?, lamport = ?, k_plan = ?, decider = ?, bucket = ? WHERE need = ?',
    )
    this.#updateEpoch = db.prepare("UPDATE meta SET value = ? WHERE key = 'epoch'")
  }

  /**
   * Opens (or creates) the store at `options.path` and takes its lock.
   * @throws InvalidArgumentError (field `path`) for a path that cannot hold a database;
   *   StoreLockedError when another process has it open; StoreCorruptError for a damaged or foreign file.
   */
  static async open(options: EmbeddedConsensusStoreOptions): Promise<EmbeddedConsensusStore> {
    const path = options.path
    if (typeof path !== 'string' || path.length === 0) {
      throw new InvalidArgumentError('path must be a non-empty file path', 'path')
    }
    const initialEpoch = options.initialEpoch ?? 1
    if (!Number.isSafeInteger(initialEpoch) || initialEpoch < 0) {
      throw new InvalidArgumentError(`initialEpoch must be a non-negative integer`, 'initialEpoch')
    }
    const maxBatch = options.maxBatch ?? 256
    if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) {
      throw new InvalidArgumentError('maxBatch must be a positive integer', 'maxBatch')
    }
    const directory = statSync(dirname(path), { throwIfNoEntry: false })
    if (!directory?.isDirectory()) {
      throw new InvalidArgumentError(
        `the directory of ${path} does not exist: create it first (the anchor creates its --data directory)`,
        'path',
      )
    }
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
      throw new InvalidArgumentError(`${path} is a directory: give the path of the database file`, 'path')
    }
    let db: DatabaseSync
    try {
      db = new DatabaseSync(path, { timeout: 0 })
    } catch (error) {
      throw translateOpenError(error, path)
    }
    try {
      db.exec('PRAGMA locking_mode = EXCLUSIVE')
      const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string }
      if (mode.journal_mode !== 'wal') {
        throw new StoreCorruptError(path, `cannot switch to WAL (journal_mode is ${mode.journal_mode})`)
      }
      db.exec('PRAGMA synchronous = FULL')
      // Takes the exclusive lock now and holds it until close: one process per file.
      db.exec('BEGIN IMMEDIATE')
      try {
        db.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT`)
        db.exec(`CREATE TABLE IF NOT EXISTS decides (
          need TEXT PRIMARY KEY, proposal TEXT NOT NULL, epoch INTEGER NOT NULL,
          lamport INTEGER NOT NULL, k_plan INTEGER NOT NULL, decider TEXT NOT NULL,
          bucket INTEGER NOT NULL) STRICT, WITHOUT ROWID`)
        db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)").run(FORMAT_VERSION)
        db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)").run(initialEpoch)
        db.exec('COMMIT')
      } catch (error) {
        if (db.isTransaction) db.exec('ROLLBACK')
        throw error
      }
      if (options.checkIntegrity ?? true) {
        const check = db.prepare('PRAGMA quick_check').all() as Array<{ quick_check: string }>
        if (check.length !== 1 || check[0]!.quick_check !== 'ok') {
          throw new StoreCorruptError(
            path,
            `integrity check: ${check.map((row) => row.quick_check).join('; ')}`,
          )
        }
      }
      const format = db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as { value: unknown }
      if (format.value !== FORMAT_VERSION) {
        throw new StoreCorruptError(
          path,
          `format version ${String(format.value)}, expected ${FORMAT_VERSION}`,
        )
      }
      const epoch = (db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: unknown })
        .value
      if (!Number.isSafeInteger(epoch) || (epoch as number) < 0) {
        throw new StoreCorruptError(path, `the stored epoch ${String(epoch)} is not a non-negative integer`)
      }
      return new EmbeddedConsensusStore(db, path, maxBatch)
    } catch (error) {
      if (db.isOpen) db.close()
      throw translateOpenError(error, path)
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new ConsensusUnavailableError(`the embedded store ${this.path} is closed`)
  }

  #epoch(): number {
    return (this.#selectEpoch.get() as { value: number }).value
  }

  #read(need: string): DecideRecord | undefined {
    const row = this.#selectDecide.get(need) as Row | undefined
    return row === undefined ? undefined : this.#fromRow(row)
  }

  #fromRow(row: Row): DecideRecord {
    return checkRecord(
      {
        need: row.need,
        proposal: row.proposal,
        epoch: row.epoch,
        lamport: row.lamport,
        kPlan: row.k_plan,
        decider: row.decider,
        bucket: row.bucket,
      },
      this.path,
      row.need,
    )
  }

  /** Runs `body` in one write transaction (committed, hence fsync'd, before it returns). */
  #transaction<T>(body: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE')
    try {
      const result = body()
      this.#db.exec('COMMIT')
      return result
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK')
      throw error
    }
  }

  /** {@inheritDoc ConsensusStore.tryDecide} Resolves only once the decision is on disk. */
  async tryDecide(request: DecideRequest, options: CallOptions = {}): Promise<DecideResult> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    checkDecideRequest(request)
    return new Promise<DecideResult>((resolve, reject) => {
      this.#queue.push({ request, signal: options.signal, resolve, reject })
      if (!this.#flushScheduled) {
        this.#flushScheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  #flush(): void {
    this.#flushScheduled = false
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch)
      const outcomes: Array<{ ok: true; result: DecideResult } | { ok: false; error: unknown }> = []
      try {
        this.#transaction(() => {
          const epoch = this.#epoch()
          for (const pending of batch) {
            try {
              throwIfAborted(pending.signal)
              checkFence(pending.request.epoch, epoch)
              const existing = resolveDecide(this.#read(pending.request.need), pending.request)
              if (existing) {
                outcomes.push({ ok: true, result: existing })
                continue
              }
              const record = recordOf(pending.request)
              this.#insertDecide.run(
                record.need,
                record.proposal,
                record.epoch,
                record.lamport,
                record.kPlan,
                record.decider,
                record.bucket,
              )
              outcomes.push({ ok: true, result: { outcome: 'decided', record } })
            } catch (error) {
              outcomes.push({ ok: false, error })
            }
          }
        })
      } catch (error) {
        const failure = new ConsensusUnavailableError(
          `the embedded store ${this.path} could not commit: ${(error as Error).message}; nothing in this batch was acknowledged`,
          { cause: error },
        )
        for (const pending of batch) pending.reject(failure)
        continue
      }
      batch.forEach((pending, index) => {
        const outcome = outcomes[index]!
        if (outcome.ok) pending.resolve(outcome.result)
        else pending.reject(outcome.error)
      })
    }
  }

  /** {@inheritDoc ConsensusStore.getDecide} */
  async getDecide(need: string, options: CallOptions = {}): Promise<DecideRecord | undefined> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    return this.#read(need)
  }

  /** {@inheritDoc ConsensusStore.currentEpoch} */
  async currentEpoch(options: CallOptions = {}): Promise<number> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    return this.#epoch()
  }

  /** Every stored decision, sorted by NEED. */
  async records(options: CallOptions = {}): Promise<DecideRecord[]> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    const rows = this.#db.prepare('SELECT * FROM decides ORDER BY need').all() as unknown as Row[]
    return rows.map((row) => this.#fromRow(row))
  }

  /**
   * Advances the epoch (older fence tokens are refused from now on); returns the new epoch.
   * @throws InvalidArgumentError when `to` does not advance the epoch.
   */
  async advanceEpoch(to?: number, options: CallOptions = {}): Promise<number> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    return this.#transaction(() => {
      const current = this.#epoch()
      const next = to ?? current + 1
      checkEpochStep(next, current)
      this.#updateEpoch.run(next)
      return next
    })
  }

  /** Raises the epoch to at least `epoch`; returns the epoch in force. */
  async fenceEpoch(epoch: number, options: CallOptions = {}): Promise<number> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    return this.#transaction(() => {
      const current = this.#epoch()
      if (current >= epoch) return current
      checkEpochStep(epoch, current)
      this.#updateEpoch.run(epoch)
      return epoch
    })
  }

  /** {@inheritDoc MergeTarget.mergeRecord} */
  async mergeRecord(record: DecideRecord, options: CallOptions = {}): Promise<MergeStep> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    const theirs = checkRecord(record, 'merge source', record.need)
    return this.#transaction(() => {
      const { step, write } = mergeStep(this.#read(theirs.need), theirs)
      if (write !== undefined && step.change === 'adopted') {
        this.#insertDecide.run(
          write.need,
          write.proposal,
          write.epoch,
          write.lamport,
          write.kPlan,
          write.decider,
          write.bucket,
        )
      } else if (write !== undefined) {
        this.#replaceDecide.run(
          write.proposal,
          write.epoch,
          write.lamport,
          write.kPlan,
          write.decider,
          write.bucket,
          write.need,
        )
      }
      return step
    })
  }

  /**
   * Merges the other side of a split into this store (see {@link mergeInto}): the merge rule per
   * NEED, the epoch raised above both sides, the losers returned for RECONCILE.
   */
  async mergeFrom(source: MergeSource, options: MergeOptions = {}): Promise<MergeReport> {
    return mergeInto(this, source, options)
  }

  /** Commits what is queued, then closes the database and releases its lock. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#flush()
    this.#closed = true
    this.#db.close()
  }
}
