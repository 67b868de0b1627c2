/**
 * Bounded retries with exponential backoff for calls to a remote store. Every attempt has its own
 * deadline, the whole call has an overall deadline, and an AbortSignal stops it at once.
 */
import { ConsensusUnavailableError } from '@can-swarm/peer'

/** How long and how often a store call may be retried. */
export interface RetryOptions {
  /** Overall time budget of one call, all attempts included. @default 10_000 */
  timeoutMs?: number
  /** Deadline of a single attempt (an etcd request). @default 3_000 */
  attemptTimeoutMs?: number
  /** First backoff delay; doubles per attempt, with jitter. @default 25 */
  backoffInitialMs?: number
  /** Longest backoff delay. @default 1_000 */
  backoffMaxMs?: number
}

/** {@link RetryOptions} with every default filled in. */
export type ResolvedRetryOptions = Required<RetryOptions>

/** Fills in the defaults of {@link RetryOptions}. */
export function resolveRetryOptions(options: RetryOptions = {}): ResolvedRetryOptions {
  return {
    timeoutMs: options.timeoutMs ?? 10_000,
    attemptTimeoutMs: options.attemptTimeoutMs ?? 3_000,
    backoffInitialMs: options.backoffInitialMs ?? 25,
    backoffMaxMs: options.backoffMaxMs ?? 1_000,
  }
}

/** Throws the signal's reason when it has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason
}

/** Resolves after `ms`, or rejects with the signal's reason when it fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Races a promise against an AbortSignal (the promise itself keeps running to its deadline). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

/**
 * Runs `attempt` until it succeeds, a non-retryable error occurs, the signal fires, or the time
 * budget is spent; then throws {@link ConsensusUnavailableError} carrying the last error.
 * `attempt` receives the absolute deadline of that attempt and must not outlive it.
 */
export async function withRetry<T>(
  what: string,
  attempt: (deadline: Date) => Promise<T>,
  isRetryable: (error: unknown) => boolean,
  options: ResolvedRetryOptions,
  signal: AbortSignal | undefined,
): Promise<T> {
  const started = Date.now()
  const overallDeadlineMs = started + options.timeoutMs
  let lastError: unknown
  for (let attemptNumber = 0; ; attemptNumber += 1) {
    throwIfAborted(signal)
    const deadlineMs = Math.min(Date.now() + options.attemptTimeoutMs, overallDeadlineMs)
    try {
      return await abortable(attempt(new Date(deadlineMs)), signal)
    } catch (error) {
      if (signal?.aborted) throw signal.reason
      if (!isRetryable(error)) throw error
      lastError = error
    }
    const delayMs =
      Math.min(options.backoffMaxMs, options.backoffInitialMs * 2 ** Math.min(attemptNumber, 20)) *
      (0.5 + Math.random() / 2)
    if (Date.now() + delayMs >= overallDeadlineMs) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError)
      throw new ConsensusUnavailableError(
        `${what}: no answer from the consensus cluster within ${options.timeoutMs} ms after ${attemptNumber + 1} attempts (unreachable, or no quorum); nothing was acknowledged, retry later. Last error: ${reason}`,
        { cause: lastError },
      )
    }
    await sleep(delayMs, signal)
  }
}
