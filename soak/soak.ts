/**
 * The soak (`npm run soak`, bench `soak`): a real anchor process, an honest canary posting NEEDs
 * and carrying them to FINAL, and `attackers` hostile processes (attacker.ts) rotating through
 * bounded attacks (attacks.ts) for `minutes`. Measured: the anchor's resident set (VmRSS, each
 * second), the disk its data directory takes (every 5 s), its event-loop delay (a
 * `monitorEventLoopDelay` histogram installed through its inspector), the canary's post → DECIDE
 * and post → FINAL times, what each attack sent and how the anchor answered, and the anchor's own
 * refusal counters. The verdict ({@link soakVerdict}) fails when the canary's DECIDE p95 reaches
 * {@link DECIDE_P95_BAR_MS}, fewer than {@link FINALIZED_BAR} of its NEEDs are FINAL, or the anchor
 * died.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { createIdentity, createPeer, fetchNetwork, type Peer, requestCredits } from '@can-swarm/peer'
import { AnchorInspector, rssMb, withInspector } from '../bench/anchor-probe.ts'
import type { Metric } from '../bench/report.ts'
import { killAnchors, type StartedAnchor, startAnchorProcess } from '../test-support/anchor-process.ts'
import { type AttackKind, DEFAULT_ATTACK_KINDS } from './attacks.ts'
import { Canary, type CanaryStats, percentile } from './canary.ts'

/** The bar on the canary's post → DECIDE p95, in ms. */
export const DECIDE_P95_BAR_MS = 2_000
/** The least share of the canary's NEEDs that must be FINAL at the end. */
export const FINALIZED_BAR = 0.9
/** T_challenge of the soak's network: short, so that the canary's NEEDs finalize. */
export const CHALLENGE_WINDOW_MS = 500
/** Sampling interval of the event-loop delay histogram (its values include it; reported less it). */
const LOOP_RESOLUTION_MS = 10

export interface SoakOptions {
  /** How long the canary posts under attack. */
  minutes: number
  /** Hostile processes. */
  attackers: number
  /** Attacks the attackers rotate through. @default DEFAULT_ATTACK_KINDS */
  kinds?: readonly AttackKind[]
  /** Multiplies every attack rate. @default 1 */
  rate?: number
  /** How long each attack runs before an attacker moves to the next. @default minutes / (2 × kinds), 5–60 s */
  phaseMs?: number
  /** Canary NEEDs per second, and most open at once. @default 2, 8 */
  canaryPerSecond?: number
  canaryInFlight?: number
  /** How long open canary NEEDs may take to finalize once posting stops. @default 30 s */
  drainMs?: number
  /** Progress lines (every ~10 s). */
  progress?: (line: string) => void
}

export interface AttackerReport {
  index: number
  kinds: string[]
  counters: Record<string, number>
  exitCode: number | null
  /** Its last stderr lines. */
  stderr: string[]
}

export interface SoakReport {
  ok: boolean
  failures: string[]
  metrics: Record<string, Metric>
  minutes: number
  canary: Omit<CanaryStats, 'decideMs' | 'finalMs'>
  anchor: {
    alive: boolean
    /** How it ended: its exit code on SIGTERM at the end, or how it died during the run. */
    exit: { code: number | null; signal: string | null; atS?: number }
    /** [seconds, VmRSS MB], every 10 s. */
    rssMb: Array<[number, number]>
    /** [seconds, data directory MB], every 10 s. */
    diskMb: Array<[number, number]>
    /** [seconds, event-loop delay p99 ms over the last 10 s]. */
    eventLoop: Array<[number, number]>
    /** Threads the anchor holds, every 10 s. */
    threads: Array<[number, number]>
    /** MB on disk of each entry of its data directory at the end (log, plan documents, blocks…). */
    diskByEntryMb: Record<string, number>
    /** Its `/api/status` at the end: refusals, gossip rejections, held envelopes, threads… */
    status?: Record<string, unknown>
    /** Its last log lines when it died. */
    logs?: string[]
  }
  attackers: AttackerReport[]
}

/** What the verdict needs to know. */
export interface VerdictInput {
  decideP95Ms: number
  posted: number
  finalized: number
  anchorAlive: boolean
}

/** Why a soak failed (empty: it passed). */
export function soakVerdict(input: VerdictInput): string[] {
  const failures: string[] = []
  if (!input.anchorAlive) failures.push('the anchor died')
  if (input.posted === 0) failures.push('the canary posted no NEED')
  else {
    if (!(input.decideP95Ms < DECIDE_P95_BAR_MS))
      failures.push(
        `the canary's DECIDE p95 is ${Math.round(input.decideP95Ms)} ms (bar: < ${DECIDE_P95_BAR_MS} ms)`,
      )
    if (input.finalized < FINALIZED_BAR * input.posted)
      failures.push(
        `${input.finalized} of the canary's ${input.posted} NEEDs finalized (bar: ≥ ${FINALIZED_BAR * 100} %)`,
      )
  }
  return failures
}

/** Bytes a file or directory takes on disk (allocated blocks), recursively; 0 when it is gone. */
async function diskBytes(path: string): Promise<number> {
  const info = await lstat(path).catch(() => undefined)
  if (!info?.isDirectory()) return (info?.blocks ?? 0) * 512
  let total = 0
  for (const name of await readdir(path).catch(() => [])) total += await diskBytes(join(path, name))
  return total
}

/** MB on disk of each entry of a directory. */
async function diskByEntry(path: string): Promise<Record<string, number>> {
  const sizes: Record<string, number> = {}
  for (const name of (await readdir(path).catch(() => [])).sort())
    sizes[name] = Number(((await diskBytes(join(path, name))) / 1048576).toFixed(2))
  return sizes
}

/** Installs (once) and reads the anchor's event-loop delay histograms: the whole run and since the last read. */
const LOOP_PROBE = `(() => {
  const g = globalThis
  if (!g.__soakLoop) {
    const { monitorEventLoopDelay } = process.getBuiltinModule('node:perf_hooks')
    g.__soakLoop = { all: monitorEventLoopDelay({ resolution: ${LOOP_RESOLUTION_MS} }), window: monitorEventLoopDelay({ resolution: ${LOOP_RESOLUTION_MS} }) }
    g.__soakLoop.all.enable()
    g.__soakLoop.window.enable()
  }
  const { all, window } = g.__soakLoop
  const ms = (ns) => Math.max(0, ns / 1e6 - ${LOOP_RESOLUTION_MS})
  const read = { p99: ms(all.percentile(99)), max: ms(all.max), windowP99: ms(window.percentile(99)), windowMax: ms(window.max) }
  window.reset()
  return read
})()`

/** The anchor's `/api/status`, or undefined when it does not answer within `timeoutMs`. */
async function anchorStatus(url: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
  return (await fetch(`${url}/api/status`, { signal: AbortSignal.timeout(timeoutMs) })
    .then((response) => (response.ok ? response.json() : undefined))
    .catch(() => undefined)) as Record<string, unknown> | undefined
}

interface LoopRead {
  p99: number
  max: number
  windowP99: number
  windowMax: number
}

interface RunningAttacker {
  child: ChildProcess
  report: AttackerReport
  /** Resolves with its first report (it has started). */
  ready: Promise<void>
  exited: Promise<void>
}

function startAttacker(
  index: number,
  kinds: readonly string[],
  anchor: StartedAnchor,
  net: string,
  options: { phaseMs: number; rate: number; durationMs: number },
): RunningAttacker {
  const tcp = anchor.multiaddrs.find((address) => !address.includes('/ws'))!
  const child = spawn(
    process.execPath,
    [
      join(import.meta.dirname, 'attacker.ts'),
      kinds.join(','),
      anchor.url,
      tcp,
      '--net',
      net,
      '--index',
      String(index),
      '--phase-ms',
      String(options.phaseMs),
      '--rate',
      String(options.rate),
      '--duration-ms',
      String(options.durationMs),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const report: AttackerReport = { index, kinds: [...kinds], counters: {}, exitCode: null, stderr: [] }
  let started: () => void
  const ready = new Promise<void>((resolve) => {
    started = resolve
  })
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      report.counters = (JSON.parse(line) as { counters: Record<string, number> }).counters
      started()
    } catch {
      // not a report line
    }
  })
  child.stderr!.on('data', (chunk: Buffer) => {
    report.stderr.push(...chunk.toString().trimEnd().split('\n'))
    report.stderr.splice(0, Math.max(0, report.stderr.length - 20))
  })
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      report.exitCode = code
      resolve()
    }),
  )
  return { child, report, ready, exited }
}

async function stopAttacker(attacker: RunningAttacker): Promise<void> {
  if (attacker.child.exitCode === null && attacker.child.signalCode === null) attacker.child.kill('SIGTERM')
  const timer = setTimeout(() => attacker.child.kill('SIGKILL'), 10_000)
  await attacker.exited
  clearTimeout(timer)
}

/** Sums counters of several attackers, key by key (maxima `…_max_ms` by maximum). */
export function mergeCounters(all: ReadonlyArray<Record<string, number>>): Record<string, number> {
  const merged: Record<string, number> = {}
  for (const counters of all) {
    for (const [key, value] of Object.entries(counters)) {
      merged[key] = key.endsWith('_max_ms') ? Math.max(merged[key] ?? 0, value) : (merged[key] ?? 0) + value
    }
  }
  return Object.fromEntries(Object.entries(merged).sort(([a], [b]) => (a < b ? -1 : 1)))
}

const round = (value: number, digits = 1) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : -1)

/** A short summary of the attack counters for a progress line. */
function attackSummary(counters: Record<string, number>): string {
  const sum = (prefix: string, suffix: string) =>
    Object.entries(counters)
      .filter(([key]) => key.startsWith(prefix) && key.endsWith(suffix))
      .reduce((total, [, value]) => total + value, 0)
  return [
    `flood ${counters['flood.sent'] ?? 0} env`,
    `bombs ${sum('bombs.', '.sent')}`,
    `slow sockets ${sum('http.slowloris.opened', '') + sum('http.slow_upload.opened', '')}`,
    `junk ${sum('http.junk.', '.sent')}`,
    `sync ${sum('sync.', '.sent')}`,
    ...(counters['squat.sent'] ? [`squat ${counters['squat.sent']}`] : []),
    ...(counters['poison.sent'] ? [`poison ${counters['poison.sent']}`] : []),
  ].join(', ')
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const progress = options.progress ?? (() => undefined)
  const kinds = options.kinds ?? DEFAULT_ATTACK_KINDS
  const durationMs = Math.round(options.minutes * 60_000)
  const phaseMs =
    options.phaseMs ?? Math.min(60_000, Math.max(5_000, Math.round(durationMs / (2 * kinds.length))))
  const dir = await mkdtemp(join(tmpdir(), 'can-swarm-soak-'))
  const data = join(dir, 'anchor')
  const attackers: RunningAttacker[] = []
  const timers: ReturnType<typeof setInterval>[] = []
  let peer: Peer | undefined
  let canary: Canary | undefined
  let inspector: AnchorInspector | undefined
  try {
    // The canary's key is the genesis verifier: the network's only one (a closed pool).
    const identity = await createIdentity()
    const anchor = await withInspector(() =>
      startAnchorProcess([
        '--data',
        data,
        '--verifiers',
        identity.did,
        '--challenge-window-ms',
        String(CHALLENGE_WINDOW_MS),
        '--webrtc-port',
        '-1',
      ]),
    )
    const pid = anchor.child.pid!
    const started = performance.now()
    const seconds = () => Math.round((performance.now() - started) / 1000)
    let died: { code: number | null; signal: string | null; atS: number } | undefined
    anchor.child.once('exit', (code, signal) => {
      died = { code, signal, atS: seconds() }
    })
    inspector = await AnchorInspector.open(anchor.logs, 15_000)
    const readLoop = async (): Promise<LoopRead | undefined> =>
      died
        ? undefined
        : ((await inspector!.evaluate(LOOP_PROBE).catch(() => undefined)) as LoopRead | undefined)
    await readLoop()

    // Samplers: RSS each second, disk every 5 s; series kept every 10 s.
    let rssMax = 0
    let diskMax = 0
    let rssNow = 0
    let diskNow = 0
    const rssSeries: Array<[number, number]> = []
    const diskSeries: Array<[number, number]> = []
    const loopSeries: Array<[number, number]> = []
    const threadSeries: Array<[number, number]> = []
    const sampleRss = async () => {
      if (died) return
      rssNow = await rssMb(pid).catch(() => Number.NaN)
      if (Number.isFinite(rssNow)) rssMax = Math.max(rssMax, rssNow)
    }
    const sampleDisk = async () => {
      diskNow = (await diskBytes(data)) / 1048576
      diskMax = Math.max(diskMax, diskNow)
    }
    await sampleRss()
    await sampleDisk()
    progress(`anchor ${anchor.url} up: RSS ${rssNow.toFixed(0)} MB, data ${diskNow.toFixed(1)} MB`)
    timers.push(setInterval(() => void sampleRss(), 1_000))
    timers.push(setInterval(() => void sampleDisk(), 5_000))

    const { genesis, params } = await fetchNetwork(anchor.url)
    const granted = await requestCredits(anchor.url, identity.did)
    if (!granted.granted) throw new Error(`the faucet refused the canary: ${granted.error}`)
    peer = await createPeer({
      identity,
      params,
      bootstrap: [anchor.multiaddrs.find((address) => !address.includes('/ws'))!],
      roles: { planner: true, worker: true, verifier: true },
      tuning: { leaseTtlMs: 5000, workMs: 0, proposeBackoffMs: 0, claimBackoffMs: 0 },
      network: { webRTC: false },
      syncIntervalMs: 5000,
    })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    canary = new Canary(peer, anchor.url, {
      perSecond: options.canaryPerSecond ?? 2,
      maxInFlight: options.canaryInFlight ?? 8,
    })
    // The attackers first: their processes start (a few seconds of CPU each) before the canary's
    // clock does, so that what the canary measures is the attacks, not their start-up.
    for (let index = 0; index < options.attackers; index += 1) {
      attackers.push(
        startAttacker(index, kinds, anchor, genesis.id, {
          phaseMs,
          rate: options.rate ?? 1,
          durationMs: durationMs + 120_000,
        }),
      )
    }
    await Promise.race([
      Promise.all(attackers.map((attacker) => attacker.ready)),
      new Promise((resolve) => setTimeout(resolve, 20_000)),
    ])
    canary.start()
    progress(
      `canary posting ${options.canaryPerSecond ?? 2}/s; ${options.attackers} attacker(s) rotating ${kinds.join(', ')} every ${phaseMs / 1000} s, for ${options.minutes} min`,
    )

    const runStarted = performance.now()
    let nextProgress = runStarted + 10_000
    while (performance.now() - runStarted < durationMs && !died) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      if (performance.now() < nextProgress) continue
      nextProgress += 10_000
      const loop = await readLoop()
      const now = await anchorStatus(anchor.url, 3_000)
      const t = seconds()
      if (now) threadSeries.push([t, Number(now.threads)])
      rssSeries.push([t, round(rssNow)])
      diskSeries.push([t, round(diskNow)])
      if (loop) loopSeries.push([t, round(loop.windowP99)])
      const stats = canary.stats()
      progress(
        `${t} s: canary posted ${stats.posted}, decided ${stats.decided}, final ${stats.finalized}, open ${stats.open.length}, skipped ${stats.skipped} (DECIDE p95 ${round(percentile(stats.decideMs, 95), 0)} ms, FINAL p95 ${round(percentile(stats.finalMs, 95), 0)} ms); anchor RSS ${rssNow.toFixed(0)} MB (max ${rssMax.toFixed(0)}), data ${diskNow.toFixed(1)} MB, ${now ? `${now.threads} threads, ${now.envelopes} envelopes, ${(now.held as { orphans?: number } | undefined)?.orphans} orphans` : 'status n/a'}, loop p99 ${loop ? `${loop.windowP99.toFixed(0)} ms (run ${loop.p99.toFixed(0)}, max ${loop.windowMax.toFixed(0)})` : 'n/a'}; ${attackSummary(mergeCounters(attackers.map((a) => a.report.counters)))}`,
      )
    }

    // Stop posting and attacking; the canary's open NEEDs get `drainMs` to finalize.
    canary.stopPosting()
    await Promise.all(attackers.map(stopAttacker))
    const drained = died ? false : await canary.drain(options.drainMs ?? 30_000)
    const loop = await readLoop()
    await sampleRss()
    await sampleDisk()
    const status = died ? undefined : await anchorStatus(anchor.url, 10_000)
    const diskEnd = await diskByEntry(data)
    const stats = canary.stats()
    if (!drained && !died) progress(`${stats.open.length} canary NEED(s) still open after the drain`)
    const anchorAlive = !died
    const diedDuringRun = died
    inspector.close()
    inspector = undefined
    await peer.stop().catch(() => undefined)
    peer = undefined
    // A clean shutdown after the load is part of the verdict's "alive".
    const exitCode = diedDuringRun ? diedDuringRun.code : await anchor.stop('SIGTERM', 15_000)
    const exit = diedDuringRun ?? { code: exitCode, signal: anchor.child.signalCode }

    const failures = soakVerdict({
      decideP95Ms: percentile(stats.decideMs, 95),
      posted: stats.posted,
      finalized: stats.finalized,
      anchorAlive,
    })
    if (anchorAlive && exitCode !== 0) failures.push(`the anchor exited with ${exitCode} when stopped`)
    const counters = mergeCounters(attackers.map((attacker) => attacker.report.counters))
    const metrics: Record<string, Metric> = {
      soak_canary_decide_p50_ms: { value: round(percentile(stats.decideMs, 50)), unit: 'ms, post → DECIDE' },
      soak_canary_decide_p95_ms: {
        value: round(percentile(stats.decideMs, 95)),
        unit: `ms, post → DECIDE (bar < ${DECIDE_P95_BAR_MS})`,
      },
      soak_canary_decide_max_ms: { value: round(Math.max(-1, ...stats.decideMs)), unit: 'ms, post → DECIDE' },
      soak_canary_final_p50_ms: {
        value: round(percentile(stats.finalMs, 50)),
        unit: 'ms, post → all tasks FINAL',
      },
      soak_canary_final_p95_ms: {
        value: round(percentile(stats.finalMs, 95)),
        unit: 'ms, post → all tasks FINAL',
      },
      soak_canary_final_max_ms: {
        value: round(Math.max(-1, ...stats.finalMs)),
        unit: 'ms, post → all tasks FINAL',
      },
      soak_canary_posted: { value: stats.posted, unit: 'NEEDs' },
      soak_canary_finalized: { value: stats.finalized, unit: 'NEEDs FINAL' },
      soak_canary_finalized_pct: {
        value: round(stats.posted === 0 ? 0 : (100 * stats.finalized) / stats.posted),
        unit: `% of posted (bar ≥ ${FINALIZED_BAR * 100})`,
      },
      soak_canary_skipped: { value: stats.skipped, unit: 'ticks with the most NEEDs already open' },
      soak_canary_post_errors: { value: stats.postErrors, unit: 'posts refused (credits) or failed' },
      soak_rss_max_mb: { value: round(rssMax), unit: 'MB, anchor VmRSS' },
      soak_rss_end_mb: { value: round(rssNow), unit: 'MB, anchor VmRSS after the drain' },
      soak_disk_max_mb: { value: round(diskMax), unit: "MB, the anchor's data directory" },
      soak_eventloop_p99_ms: {
        value: round(loop?.p99 ?? Number.NaN),
        unit: "ms, the anchor's event-loop delay over the run",
      },
      soak_eventloop_max_ms: {
        value: round(loop?.max ?? Number.NaN),
        unit: "ms, the anchor's event-loop delay over the run",
      },
      soak_anchor_alive: { value: anchorAlive ? 1 : 0, unit: 'bool' },
      soak_ok: { value: failures.length === 0 ? 1 : 0, unit: 'bool (the verdict)' },
    }
    for (const [key, value] of Object.entries(counters))
      metrics[`soak_attack_${key.replace(/[^a-zA-Z0-9]+/g, '_')}`] = {
        value,
        unit: key.endsWith('_max_ms') ? 'ms' : 'count',
      }
    const { decideMs: _d, finalMs: _f, ...canaryStats } = stats
    return {
      ok: failures.length === 0,
      failures,
      metrics,
      minutes: options.minutes,
      canary: canaryStats,
      anchor: {
        alive: anchorAlive,
        exit,
        rssMb: rssSeries,
        diskMb: diskSeries,
        eventLoop: loopSeries,
        threads: threadSeries,
        diskByEntryMb: diskEnd,
        ...(status ? { status } : {}),
        ...(diedDuringRun ? { logs: anchor.logs.slice(-40) } : {}),
      },
      attackers: attackers.map((attacker) => attacker.report),
    }
  } finally {
    for (const timer of timers) clearInterval(timer)
    canary?.close()
    inspector?.close()
    for (const attacker of attackers) attacker.child.kill('SIGKILL')
    await peer?.stop().catch(() => undefined)
    killAnchors()
    await rm(dir, { recursive: true, force: true })
  }
}
