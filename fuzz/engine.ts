/**
 * The fuzz loop and its oracle. For every input a target's decoder must either return (the input
 * is accepted) or throw a typed error of the project (`CanSwarmError`, or the target's own typed
 * refusal); anything else it throws — a `TypeError`, a `RangeError` from a library, a plain
 * `Error` — is a crash. So is an input that takes more than 50 ms, or grows the heap by more than
 * 8 × its size + 10 MB. Those two are measured again, between full GCs, before they count: the
 * second time an input is slow only if it also spent 50 ms of CPU (a GC pause, a busy machine or a
 * crypto job waiting for the thread pool does not fail a run, a decoder that computes does), and
 * its heap is what it leaves live, its decoded value included (garbage made on the way is not).
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { CanSwarmError } from '@can-swarm/peer'
import { type Codec, cborCodec, hashName, Mutator, Rng } from './mutate.ts'

/** A decoder under test. */
export interface FuzzTarget {
  name: string
  description: string
  /** Valid inputs; every input is one of them, mutated. */
  seeds: readonly Uint8Array[]
  /** How inputs map to item trees. @default CBOR */
  codec?: Codec
  /** Decodes one input: returns when it is accepted, throws when it is refused. */
  run(input: Uint8Array): unknown
  /** Whether a thrown error is a typed refusal. @default a CanSwarmError or a {@link Refused} */
  typed?(error: unknown): boolean
  /** Releases what the target holds (temporary files). */
  close?(): Promise<void> | void
}

/**
 * A refusal that a decoder returns rather than throws (a reason string, an HTTP 4xx), thrown by
 * a target's harness so that the loop counts it as refused.
 */
export class Refused extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'Refused'
  }
}

export const isTypedError = (error: unknown): boolean =>
  error instanceof CanSwarmError || error instanceof Refused

/** Longest an input may take, in ms. */
export const TIME_LIMIT_MS = 50
/** Most heap an input may add: 8 × its size + 10 MB. */
export const heapLimitBytes = (inputBytes: number): number => 8 * inputBytes + 10 * 1024 * 1024

export type CrashReason = 'untyped-error' | 'slow' | 'heap'

export interface Crash {
  target: string
  seed: number
  index: number
  reason: CrashReason
  detail: string
  input: Uint8Array
}

export interface FuzzOptions {
  /** Inputs to run (the seeds first). */
  runs: number
  /** Run seed: with the target and the index it names each input. */
  seed: number
  /** Run only this input index (to reproduce a crash). */
  only?: number
  /** Stop the target after this many crashes. @default 10 */
  maxCrashes?: number
  progress?: (line: string) => void
  /** @default 10 000 */
  progressEveryMs?: number
}

export interface TargetReport {
  target: string
  inputs: number
  accepted: number
  refused: number
  crashes: Crash[]
  /** Inputs over a limit the first time and within it the second (GC pauses, load). */
  rechecked: number
  seconds: number
  inputsPerS: number
}

interface Attempt {
  outcome: 'accepted' | 'refused' | 'untyped'
  error?: unknown
  result?: unknown
  ms: number
  /** CPU time of the process meanwhile (measured on rechecks only). */
  cpuMs: number
  heapBytes: number
}

const heapUsed = (): number => getHeapStatistics().used_heap_size

/** A full GC: `gc` with `--expose-gc`, else the same function obtained at run time. */
function fullGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed) return exposed
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}
const collect = fullGc()

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/** Runs one input once, timing it and measuring the heap it adds (kept alive until measured). */
async function attempt(
  target: FuzzTarget,
  input: Uint8Array,
  typed: (error: unknown) => boolean,
  gc: boolean,
): Promise<Attempt> {
  if (gc) collect()
  const before = heapUsed()
  const cpu = gc ? process.cpuUsage() : undefined
  const started = performance.now()
  let result: unknown
  let outcome: Attempt['outcome'] = 'accepted'
  let error: unknown
  try {
    result = target.run(input)
    if (isThenable(result)) result = await result
  } catch (thrown) {
    error = thrown
    outcome = typed(thrown) ? 'refused' : 'untyped'
  }
  const ms = performance.now() - started
  const spent = cpu ? process.cpuUsage(cpu) : undefined
  const cpuMs = spent ? (spent.user + spent.system) / 1000 : ms
  // Measured again, the heap is what the input leaves live (the decoded value included): garbage
  // the decoder made on the way is collected first.
  if (gc) collect()
  const heapBytes = heapUsed() - before
  // `result` is returned, so it is alive when measured: what a decoder returns counts as its heap.
  return { outcome, error, ms, cpuMs, heapBytes, result }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const where =
      error.stack
        ?.split('\n')
        .slice(1, 4)
        .map((line) => line.trim())
        .join(' ← ') ?? ''
    return `${error.name}: ${error.message.slice(0, 300)}${where ? ` (${where})` : ''}`
  }
  return `non-error thrown: ${String(error).slice(0, 300)}`
}

/** Checks one input against the oracle; returns the crash reason and detail, or the outcome. */
export async function check(
  target: FuzzTarget,
  input: Uint8Array,
): Promise<{ outcome: 'accepted' | 'refused'; rechecked: boolean } | { crash: CrashReason; detail: string }> {
  const typed = target.typed ?? isTypedError
  const limit = heapLimitBytes(input.length)
  const first = await attempt(target, input, typed, false)
  if (first.outcome === 'untyped') return { crash: 'untyped-error', detail: describe(first.error) }
  const over = (run: Attempt) => run.ms > TIME_LIMIT_MS || run.heapBytes > limit
  if (!over(first)) return { outcome: first.outcome, rechecked: false }
  // Once more, after a full GC: only a second failure counts.
  const second = await attempt(target, input, typed, true)
  if (second.outcome === 'untyped') return { crash: 'untyped-error', detail: describe(second.error) }
  // Heap first: it does not depend on the machine's load.
  if (second.heapBytes > limit)
    return {
      crash: 'heap',
      detail: `heap +${(first.heapBytes / 2 ** 20).toFixed(1)} MiB, then +${(second.heapBytes / 2 ** 20).toFixed(1)} MiB for ${input.length} bytes (limit ${(limit / 2 ** 20).toFixed(1)} MiB)`,
    }
  if (second.ms > TIME_LIMIT_MS && second.cpuMs > TIME_LIMIT_MS)
    return {
      crash: 'slow',
      detail: `${first.ms.toFixed(1)} ms, then ${second.ms.toFixed(1)} ms (${second.cpuMs.toFixed(1)} ms of CPU; limit ${TIME_LIMIT_MS} ms)`,
    }
  return { outcome: second.outcome, rechecked: true }
}

/** The mutator of a target (its seeds parsed once). */
const mutators = new WeakMap<FuzzTarget, Mutator>()
export function mutatorOf(target: FuzzTarget): Mutator {
  let mutator = mutators.get(target)
  if (!mutator) {
    mutator = new Mutator(target.seeds, target.codec ?? cborCodec)
    mutators.set(target, mutator)
  }
  return mutator
}

/** Input `index` of a run with `seed`: the same bytes every time. */
export function inputOf(target: FuzzTarget, seed: number, index: number): Uint8Array {
  return mutatorOf(target).input(new Rng(seed, hashName(target.name), index), index)
}

/** Fuzzes one target. */
export async function fuzzTarget(target: FuzzTarget, options: FuzzOptions): Promise<TargetReport> {
  const { seed } = options
  const maxCrashes = options.maxCrashes ?? 10
  const everyMs = options.progressEveryMs ?? 10_000
  const report: TargetReport = {
    target: target.name,
    inputs: 0,
    accepted: 0,
    refused: 0,
    crashes: [],
    rechecked: 0,
    seconds: 0,
    inputsPerS: 0,
  }
  const started = performance.now()
  let lastProgress = started
  const first = options.only ?? 0
  const end = options.only === undefined ? options.runs : options.only + 1
  for (let index = first; index < end; index += 1) {
    const input = inputOf(target, seed, index)
    const result = await check(target, input)
    report.inputs += 1
    if ('crash' in result) {
      report.crashes.push({
        target: target.name,
        seed,
        index,
        reason: result.crash,
        detail: result.detail,
        input,
      })
      if (report.crashes.length >= maxCrashes) break
    } else {
      if (result.outcome === 'accepted') report.accepted += 1
      else report.refused += 1
      if (result.rechecked) report.rechecked += 1
    }
    // A turn of the event loop now and then: finalizers (Automerge frees its WASM memory in them),
    // timers and I/O run as they would in a peer, instead of piling up behind a synchronous loop.
    if ((index & 255) === 255) await new Promise((resolve) => setImmediate(resolve))
    if ((index & 255) === 0 && options.progress && performance.now() - lastProgress > everyMs) {
      lastProgress = performance.now()
      const rate = report.inputs / ((lastProgress - started) / 1000)
      options.progress(
        `${target.name}: ${report.inputs}/${end - first} inputs, ${report.crashes.length} crashes, ${Math.round(rate)}/s`,
      )
    }
  }
  report.seconds = (performance.now() - started) / 1000
  report.inputsPerS = report.inputs / Math.max(report.seconds, 1e-9)
  return report
}

export interface Metric {
  value: number
  unit: string
}

/** Metric names of a target (`plan-sync-frame` → `plan_sync_frame`). */
const slug = (name: string): string => name.replace(/[^a-z0-9]+/gi, '_')

/** `fuzz_inputs`, `fuzz_crashes`, `fuzz_inputs_per_s`, and each of them per target (with `fuzz_accepted_<target>`). */
export function fuzzMetrics(reports: readonly TargetReport[]): Record<string, Metric> {
  const inputs = reports.reduce((sum, report) => sum + report.inputs, 0)
  const crashes = reports.reduce((sum, report) => sum + report.crashes.length, 0)
  const seconds = reports.reduce((sum, report) => sum + report.seconds, 0)
  const metrics: Record<string, Metric> = {
    fuzz_inputs: { value: inputs, unit: 'inputs' },
    fuzz_crashes: { value: crashes, unit: 'crashes (must be 0)' },
    fuzz_inputs_per_s: { value: Math.round(inputs / Math.max(seconds, 1e-9)), unit: 'inputs/s' },
  }
  for (const report of reports) {
    const name = slug(report.target)
    metrics[`fuzz_inputs_${name}`] = { value: report.inputs, unit: 'inputs' }
    metrics[`fuzz_accepted_${name}`] = { value: report.accepted, unit: 'inputs accepted' }
    metrics[`fuzz_crashes_${name}`] = { value: report.crashes.length, unit: 'crashes' }
    metrics[`fuzz_inputs_per_s_${name}`] = { value: Math.round(report.inputsPerS), unit: 'inputs/s' }
  }
  return metrics
}
