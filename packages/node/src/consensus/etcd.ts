/**
 * The etcd consensus store: the DECIDE store shared by a group of anchors.
 *
 * Layout under `prefix` (one group of anchors per prefix):
 * - `<prefix>/epoch` — the group's epoch, a decimal string: the fence every write carries;
 * - `<prefix>/decide/<bucket as 2 hex>/<need>` — one JSON record per decided NEED, in 256 buckets;
 * - `<prefix>/merge-lock` — held (bound to a lease) by the anchor that runs a merge.
 *
 * `tryDecide` is ONE etcd transaction: `epoch == request.epoch AND create_revision(decide key) == 0`
 * then put; else it reads both keys in the same transaction and maps them to stale / foreign epoch /
 * existing / conflict. A key is written at most once by `tryDecide`, so retrying after a lost answer
 * is safe and returns the stored record. Calls are retried with exponential backoff on transient
 * errors (a member down, a leader election) up to `timeoutMs`; then {@link ConsensusUnavailableError}.
 * Each try has its own deadline (`attemptTimeoutMs`) and may land on another member; connections
 * to members reconnect with a capped backoff (`reconnectBackoffMaxMs`) and keepalive pings find
 * frozen members.
 *
 * Leases: a DECIDE needs no lease (a create-once key has no owner to expire; the epoch compare is its
 * fence). Leases fence the multi-step merge: the merging anchor holds `merge-lock` on a lease, and
 * every write of the merge compares the lock key's create revision (the fencing token). If the
 * anchor stalls past the lease TTL (paused, partitioned from etcd), its remaining writes fail and
 * another anchor can take the lock.
 *
 * @example
 * ```ts
 * const store = await EtcdConsensusStore.open({ hosts: ['http://127.0.0.1:2379'], prefix: 'swarm-a' })
 * const result = await store.tryDecide({ need, proposal, epoch: await store.currentEpoch(), lamport, kPlan, decider })
 * await store.close()
 * ```
 */
import { randomUUID } from 'node:crypto'
import {
  BUCKET_COUNT,
  bucketOf,
  ConsensusUnavailableError,
  checkDecideRequest,
  checkEpochStep,
  checkFence,
  type DecideRecord,
  type DecideRequest,
  type DecideResult,
  InvalidArgumentError,
  InvariantError,
  resolveDecide,
  StoreCorruptError,
} from '@can-swarm/peer'
import { type ComparatorBuilder, Etcd3, type IResponseOp, isRecoverableError, type Lease } from 'etcd3'
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
import { byNeed, decodeRecord, encodeRecord, recordOf } from './record.ts'
import { type ResolvedRetryOptions, type RetryOptions, resolveRetryOptions, withRetry } from './retry.ts'

/** Options of {@link EtcdConsensusStore.open}. */
export interface EtcdConsensusStoreOptions extends RetryOptions {
  /** Client URLs of the etcd members, e.g. `['http://127.0.0.1:2379']`. */
  hosts: string[]
  /** Key prefix of this anchor group (no trailing `/`). @default 'can-swarm' */
  prefix?: string
  /** Epoch of a group whose epoch key does not exist yet. @default 1 */
  initialEpoch?: number
  /** Time to connect to a member before trying another. @default 3_000 */
  dialTimeoutMs?: number
  /** TTL of the lease behind the merge lock, in seconds. @default 10 */
  mergeLockTtlS?: number
  /** Page size when listing records. @default 1_000 */
  pageSize?: number
  /** Longest wait between two reconnection attempts to a member (gRPC backoff cap). @default 2_000 */
  reconnectBackoffMaxMs?: number
  /** Interval of gRPC keepalive pings that find a dead or frozen member (etcd allows ≥ 5 s). @default 10_000 */
  keepaliveMs?: number
}

const UTF8 = 'utf8'
const RECORDS_CONCURRENCY = 8
const CAS_ATTEMPTS = 64

/** Whether an etcd client error is transient (worth retrying on another member, later). */
export function isTransientEtcdError(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (isRecoverableError(error)) return true
  if ((error as { isBrokenCircuitError?: boolean }).isBrokenCircuitError === true) return true
  return /no leader|leader changed|request timed out|timed out|unavailable|ECONNREFUSED/i.test(error.message)
}

/** The merge lock is held by another anchor (retried until the call's timeout). */
class LockHeldError extends Error {
  constructor(key: string) {
    super(`the merge lock ${key} is held by another anchor`)
    this.name = 'LockHeldError'
  }
}

function firstValue(response: IResponseOp | undefined): { value: string; modRevision: string } | undefined {
  const kv = response?.response_range?.kvs?.[0]
  return kv === undefined ? undefined : { value: kv.value.toString(UTF8), modRevision: kv.mod_revision }
}

/** A {@link ConsensusStore} on an etcd cluster shared by several anchors. Create it with {@link open}. */
export class EtcdConsensusStore implements MergeTarget {
  /** Key prefix of this anchor group. */
  readonly prefix: string
  /** Client URLs of the etcd members. */
  readonly hosts: readonly string[]
  #client: Etcd3
  #retry: ResolvedRetryOptions
  #mergeLockTtlS: number
  #pageSize: number
  #epochKey: string
  #lockKey: string
  /** Create revision of our merge lock while a merge runs: the fencing token of its writes. */
  #mergeFence: string | undefined
  #closed = false

  private constructor(
    client: Etcd3,
    hosts: readonly string[],
    prefix: string,
    options: EtcdConsensusStoreOptions,
  ) {
    this.#client = client
    this.hosts = hosts
    this.prefix = prefix
    this.#retry = resolveRetryOptions(options)
    this.#mergeLockTtlS = options.mergeLockTtlS ?? 10
    this.#pageSize = options.pageSize ?? 1_000
    this.#epochKey = `${prefix}/epoch`
    this.#lockKey = `${prefix}/merge-lock`
  }

  /**
   * Connects to the cluster and creates the group's epoch key when it is missing.
   * @throws InvalidArgumentError naming the bad option; ConsensusUnavailableError when the cluster
   *   does not answer within `timeoutMs`.
   */
  static async open(options: EtcdConsensusStoreOptions, call: CallOptions = {}): Promise<EtcdConsensusStore> {
    const hosts = options.hosts
    if (!Array.isArray(hosts) || hosts.length === 0 || hosts.some((h) => typeof h !== 'string' || h === '')) {
      throw new InvalidArgumentError('hosts must list at least one etcd client URL', 'hosts')
    }
    const prefix = options.prefix ?? 'can-swarm'
    if (typeof prefix !== 'string' || prefix === '' || prefix.endsWith('/')) {
      throw new InvalidArgumentError('prefix must be a non-empty key prefix without a trailing /', 'prefix')
    }
    const initialEpoch = options.initialEpoch ?? 1
    if (!Number.isSafeInteger(initialEpoch) || initialEpoch < 0) {
      throw new InvalidArgumentError('initialEpoch must be a non-negative integer', 'initialEpoch')
    }
    for (const field of [
      'timeoutMs',
      'attemptTimeoutMs',
      'dialTimeoutMs',
      'mergeLockTtlS',
      'pageSize',
    ] as const) {
      const value = options[field]
      if (value !== undefined && (!Number.isFinite(value) || value <= 0)) {
        throw new InvalidArgumentError(`${field} must be a positive number`, field)
      }
    }
    const reconnectBackoffMaxMs = options.reconnectBackoffMaxMs ?? 2_000
    const client = new Etcd3({
      hosts: [...hosts],
      dialTimeout: options.dialTimeoutMs ?? 3_000,
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': Math.min(100, reconnectBackoffMaxMs),
        'grpc.max_reconnect_backoff_ms': reconnectBackoffMaxMs,
        'grpc.keepalive_time_ms': options.keepaliveMs ?? 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
      },
    })
    const store = new EtcdConsensusStore(client, [...hosts], prefix, options)
    try {
      await store.#run(
        'open',
        async (deadline) => {
          const result = await client
            .if(store.#epochKey, 'Create', '==', 0)
            .then(client.put(store.#epochKey).value(String(initialEpoch)))
            .else(client.get(store.#epochKey))
            .options({ deadline })
            .commit()
          if (!result.succeeded) store.#parseEpoch(firstValue(result.responses[0])?.value)
        },
        call.signal,
      )
    } catch (error) {
      client.close()
      throw error
    }
    return store
  }

  #run<T>(
    what: string,
    attempt: (deadline: Date) => Promise<T>,
    signal: AbortSignal | undefined,
    isRetryable: (error: unknown) => boolean = isTransientEtcdError,
  ): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new ConsensusUnavailableError(`the etcd store ${this.prefix} is closed`))
    }
    return withRetry(what, attempt, isRetryable, this.#retry, signal)
  }

  #parseEpoch(value: string | undefined): number {
    if (value === undefined) {
      throw new StoreCorruptError(this.#epochKey, 'the epoch key is missing: was the prefix deleted?')
    }
    const epoch = Number(value)
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(epoch)) {
      throw new StoreCorruptError(this.#epochKey, `the epoch ${JSON.stringify(value)} is not an integer`)
    }
    return epoch
  }

  /** The etcd key of a NEED's decision. */
  decideKey(need: string): string {
    return `${this.prefix}/decide/${bucketOf(need).toString(16).padStart(2, '0')}/${need}`
  }

  /** {@inheritDoc ConsensusStore.tryDecide} */
  async tryDecide(request: DecideRequest, options: CallOptions = {}): Promise<DecideResult> {
    checkDecideRequest(request)
    const key = this.decideKey(request.need)
    const record = recordOf(request)
    const value = encodeRecord(record)
    const client = this.#client
    return this.#run(
      'tryDecide',
      async (deadline) => {
        const result = await client
          .if(this.#epochKey, 'Value', '==', String(request.epoch))
          .and(key, 'Create', '==', 0)
          .then(client.put(key).value(value))
          .else(client.get(this.#epochKey), client.get(key))
          .options({ deadline })
          .commit()
        if (result.succeeded) return { outcome: 'decided', record }
        checkFence(request.epoch, this.#parseEpoch(firstValue(result.responses[0])?.value))
        const stored = firstValue(result.responses[1])
        const existing = resolveDecide(
          stored === undefined ? undefined : decodeRecord(stored.value, key, request.need),
          request,
        )
        if (existing === undefined) {
          throw new InvariantError(
            `etcd refused a create of ${key} at the current epoch, yet the key is absent`,
          )
        }
        return existing
      },
      options.signal,
    )
  }

  /** {@inheritDoc ConsensusStore.getDecide} */
  async getDecide(need: string, options: CallOptions = {}): Promise<DecideRecord | undefined> {
    if (typeof need !== 'string' || need === '') return undefined // never decidable, like the other stores
    const key = this.decideKey(need)
    return this.#run(
      'getDecide',
      async (deadline) => {
        const text = await this.#client.get(key).options({ deadline }).string()
        return text === null ? undefined : decodeRecord(text, key, need)
      },
      options.signal,
    )
  }

  /** {@inheritDoc ConsensusStore.currentEpoch} */
  async currentEpoch(options: CallOptions = {}): Promise<number> {
    return this.#run(
      'currentEpoch',
      async (deadline) =>
        this.#parseEpoch(
          (await this.#client.get(this.#epochKey).options({ deadline }).string()) ?? undefined,
        ),
      options.signal,
    )
  }

  /** Every stored decision, sorted by NEED (read bucket by bucket, paged). */
  async records(options: CallOptions = {}): Promise<DecideRecord[]> {
    const all: DecideRecord[] = []
    let nextBucket = 0
    const worker = async () => {
      while (nextBucket < BUCKET_COUNT) {
        const bucket = nextBucket
        nextBucket += 1
        all.push(...(await this.#bucketRecords(bucket, options.signal)))
      }
    }
    await Promise.all(Array.from({ length: RECORDS_CONCURRENCY }, worker))
    return all.sort(byNeed)
  }

  async #bucketRecords(bucket: number, signal: AbortSignal | undefined): Promise<DecideRecord[]> {
    const prefix = `${this.prefix}/decide/${bucket.toString(16).padStart(2, '0')}/`
    const end = `${prefix.slice(0, -1)}0` // the first key after every key under `prefix`
    const records: DecideRecord[] = []
    let start = prefix
    for (;;) {
      const page = await this.#run(
        'records',
        (deadline) =>
          this.#client.getAll().inRange({ start, end }).limit(this.#pageSize).options({ deadline }).exec(),
        signal,
      )
      for (const kv of page.kvs) {
        const key = kv.key.toString(UTF8)
        records.push(decodeRecord(kv.value.toString(UTF8), key, key.slice(prefix.length)))
      }
      if (!page.more || page.kvs.length === 0) return records
      start = `${page.kvs[page.kvs.length - 1]!.key.toString(UTF8)}\u0000`
    }
  }

  /** Compare-and-swap of the epoch key: `next(current)` returns the epoch to write or undefined. */
  async #casEpoch(
    what: string,
    next: (current: number) => number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt += 1) {
      const current = await this.currentEpoch(signal ? { signal } : {})
      const target = next(current)
      if (target === undefined) return current
      const swapped = await this.#run(
        what,
        async (deadline) => {
          const result = await this.#fenced(this.#client.if(this.#epochKey, 'Value', '==', String(current)))
            .then(this.#client.put(this.#epochKey).value(String(target)))
            .else(this.#client.get(this.#epochKey), this.#client.get(this.#lockKey))
            .options({ deadline })
            .commit()
          if (!result.succeeded) this.#checkMergeFence(result.responses[1])
          return result.succeeded
        },
        signal,
      )
      if (swapped) return target
    }
    throw new ConsensusUnavailableError(`${what}: the epoch kept changing under ${CAS_ATTEMPTS} attempts`)
  }

  /**
   * Advances the epoch (older fence tokens are refused from now on); returns the new epoch.
   * @throws InvalidArgumentError when `to` does not advance the epoch.
   */
  async advanceEpoch(to?: number, options: CallOptions = {}): Promise<number> {
    return this.#casEpoch(
      'advanceEpoch',
      (current) => {
        const next = to ?? current + 1
        checkEpochStep(next, current)
        return next
      },
      options.signal,
    )
  }

  /** Raises the epoch to at least `epoch`; returns the epoch in force. */
  async fenceEpoch(epoch: number, options: CallOptions = {}): Promise<number> {
    if (!Number.isSafeInteger(epoch) || epoch < 0) {
      throw new InvalidArgumentError('epoch must be a non-negative integer', 'epoch')
    }
    return this.#casEpoch(
      'fenceEpoch',
      (current) => {
        if (current >= epoch) return undefined
        checkEpochStep(epoch, current)
        return epoch
      },
      options.signal,
    )
  }

  /** Adds the merge lock's fencing token to a transaction while a merge runs. */
  #fenced(builder: ComparatorBuilder): ComparatorBuilder {
    return this.#mergeFence === undefined
      ? builder
      : builder.and(this.#lockKey, 'Create', '==', this.#mergeFence)
  }

  #checkMergeFence(lock: IResponseOp | undefined): void {
    if (this.#mergeFence === undefined) return
    const kv = lock?.response_range?.kvs?.[0]
    if (kv?.create_revision !== this.#mergeFence) {
      throw new ConsensusUnavailableError(
        `the merge lock ${this.#lockKey} was lost (its lease expired: this anchor stalled or lost etcd); another anchor may be merging, run the merge again`,
      )
    }
  }

  /** {@inheritDoc MergeTarget.mergeRecord} */
  async mergeRecord(record: DecideRecord, options: CallOptions = {}): Promise<MergeStep> {
    const key = this.decideKey(record.need)
    const theirs = decodeRecord(encodeRecord(record), 'merge source', record.need)
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt += 1) {
      const done = await this.#run(
        'mergeRecord',
        async (deadline): Promise<MergeStep | undefined> => {
          const stored = firstValue(
            (
              await this.#client
                .if(key, 'Create', '==', 0)
                .else(this.#client.get(key))
                .options({ deadline })
                .commit()
            ).responses[0],
          )
          const ours = stored === undefined ? undefined : decodeRecord(stored.value, key, record.need)
          const { step, write } = mergeStep(ours, theirs)
          if (write === undefined) return step
          const guard =
            stored === undefined
              ? this.#client.if(key, 'Create', '==', 0)
              : this.#client.if(key, 'Mod', '==', stored.modRevision)
          const result = await this.#fenced(guard)
            .then(this.#client.put(key).value(encodeRecord(write)))
            .else(this.#client.get(this.#lockKey))
            .options({ deadline })
            .commit()
          if (result.succeeded) return step
          this.#checkMergeFence(result.responses[0])
          return undefined // the record changed under us: read again
        },
        options.signal,
      )
      if (done !== undefined) return done
    }
    throw new ConsensusUnavailableError(`mergeRecord: ${key} kept changing under ${CAS_ATTEMPTS} attempts`)
  }

  /**
   * Merges the other side of a split into this group (see {@link mergeInto}) under the merge lock:
   * the merge rule per NEED, the epoch raised above both sides, the losers returned for RECONCILE.
   * @throws ConsensusUnavailableError when another anchor holds the merge lock past `timeoutMs`.
   */
  async mergeFrom(source: MergeSource, options: MergeOptions = {}): Promise<MergeReport> {
    if (this.#mergeFence !== undefined) {
      throw new InvalidArgumentError('a merge is already running on this store object', 'source')
    }
    const lease: Lease = this.#client.lease(this.#mergeLockTtlS, { autoKeepAlive: true })
    lease.on('lost', () => undefined) // a lost lease shows up as a failed fenced write
    try {
      const leaseId = await this.#run('mergeFrom: lease', () => lease.grant(), options.signal)
      const owner = randomUUID()
      this.#mergeFence = await this.#run(
        'mergeFrom: lock',
        async (deadline) => {
          const result = await this.#client
            .if(this.#lockKey, 'Create', '==', 0)
            .then(this.#client.put(this.#lockKey).value(owner).lease(leaseId))
            .else(this.#client.get(this.#lockKey))
            .options({ deadline })
            .commit()
          if (!result.succeeded) throw new LockHeldError(this.#lockKey)
          return result.header.revision
        },
        options.signal,
        (error) => error instanceof LockHeldError || isTransientEtcdError(error),
      )
      return await mergeInto(this, source, options)
    } finally {
      this.#mergeFence = undefined
      await lease.revoke().catch(() => undefined) // the lease expires by itself otherwise
    }
  }

  /** Closes the client. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#client.close()
  }
}
