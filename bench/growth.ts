/**
 * Anchor growth: a real anchor process and one client peer (requester, planner, worker and the
 * genesis verifier at once) posting NEEDs and carrying them to FINAL, `GROWTH_IN_FLIGHT` at a time.
 * At each checkpoint of finalized threads the anchor's resident set (`/proc/<pid>/status` VmRSS,
 * `anchor_rss_mb_<n>`) and its live heap after a full garbage collection (`anchor_heap_mb_<n>`,
 * through the inspector on loopback) are read. RSS moves with the engine's lazy collection; the
 * live heap is what the anchor holds, so `anchor_heap_kb_per_thread` between the first and last
 * checkpoint is the growth figure.
 *
 * Checkpoints default to 1 000 and 10 000 threads (`GROWTH_THREADS=1000,10000,70000,100000` for more: at
 * ≈ 29 threads/s here, 100 000 threads take an hour; RSS is meaningless with `GROWTH_SNAPSHOTS`). T_challenge is short (200 ms) so that
 * threads settle quickly, and the anchor lets settled threads go 15 s after their seal
 * (`--settle-horizon-ms`, longer than the client's sync interval). At the end the anchor is restarted on its data: `anchor_restart_ms`,
 * `anchor_restart_heap_mb` and `anchor_restart_rss_mb` are read once it is ready (it replays the
 * whole log first). With `GROWTH_HEAP_SNAPSHOT=1` (and `NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2`,
 * which the anchor inherits) the restarted anchor writes a heap snapshot into its working directory at the end.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createGenesisFile, loadOrCreateIdentity } from '@can-swarm/node'
import { createIdentity, createPeer, fetchNetwork, type Peer, requestCredits } from '@can-swarm/peer'
import { isThreadFinal } from '../soak/canary.ts'
import { killAnchors, startAnchorProcess } from '../test-support/anchor-process.ts'
import { AnchorInspector, rssMb, withInspector } from './anchor-probe.ts'
import type { Metric } from './suite.ts'

const IN_FLIGHT = Number(process.env.GROWTH_IN_FLIGHT ?? 16)
/**
 * The anchor's `--settle-horizon-ms` here: three of the client's sync intervals (5 s). The anchor
 * serves a thread by sync only while it holds it; with a horizon shorter than the client's sync
 * interval, one FINALIZE the client missed on gossip could never reach it (a 6 000-thread run
 * here, with a 2 s horizon, reported a thread stuck at VERIFIED that way).
 */
const SETTLE_HORIZON_MS = 15_000

function checkpoints(): number[] {
  const raw = process.env.GROWTH_THREADS ?? '1000,10000'
  const list = raw.split(',').map((value) => Number(value.trim()))
  if (list.some((value) => !Number.isInteger(value) || value <= 0))
    throw new Error(`GROWTH_THREADS must list positive integers, got "${raw}"`)
  return list.sort((a, b) => a - b)
}

/** The anchor's live heap in MB after a full collection, asked through its inspector. */
async function liveHeapMb(logs: readonly string[], snapshot?: string): Promise<number> {
  const inspector = await AnchorInspector.open(logs)
  try {
    await inspector.call('HeapProfiler.collectGarbage')
    await inspector.call('HeapProfiler.collectGarbage')
    if (snapshot) await inspector.heapSnapshot(snapshot)
    return Number(await inspector.evaluate('process.memoryUsage().heapUsed')) / 1048576
  } finally {
    inspector.close()
  }
}

/** What the client holds of a thread that does not finish: its tasks and its last envelopes. */
function threadReport(agent: Peer['agent'], thread: string): string {
  const replica = agent.replica(thread)
  if (!replica) return 'not held'
  const tasks = [...replica.state.tasks.values()].map(
    (task) =>
      `${task.id.slice(-12)} ${task.state} round ${task.round} lease ${task.lease ? `${task.lease.worker.slice(-6)} progress ${task.lease.progress}` : '-'} commit ${task.commit ? `${task.commit.id.slice(-8)} votes ${task.commit.votes.size}` : '-'} requests ${task.requests.size}`,
  )
  const last = replica
    .envelopes()
    .slice(-16)
    .map((env) => `${env.kind}@${env.lamport} by ${env.sender.slice(-6)} ts ${env.ts}`)
  const refusals = [...replica.refusals()].map(([code, n]) => `${code}×${n}`)
  return `winner ${replica.state.winner ? 'yes' : 'no'}; tasks: ${tasks.join('; ')}; last envelopes: ${last.join(', ')}; pending ${replica.pendingSize}; refusals ${refusals.join(', ') || 'none'}`
}

export async function runGrowthBenchmark(progress: (line: string) => void): Promise<Record<string, Metric>> {
  const marks = checkpoints()
  const dir = await mkdtemp(join(tmpdir(), 'can-swarm-bench-growth-'))
  let peer: Peer | undefined
  try {
    const identity = await createIdentity({ seed: new Uint8Array(32).fill(91) })
    // The client's credits come from the genesis (the faucet's per-account cap would run dry long
    // before 100 000 NEEDs: what settlement burns adds up); T_challenge is short so threads settle.
    const data = join(dir, 'anchor')
    await mkdir(data, { recursive: true, mode: 0o700 })
    const genesisFile = join(dir, 'genesis.json')
    await createGenesisFile({
      identities: [(await loadOrCreateIdentity(data)).identity],
      out: genesisFile,
      verifiers: [identity.did],
      allocations: [{ did: identity.did, amount: 5_000_000 }],
      challengeWindowMs: 200,
    })
    // The anchor inherits NODE_OPTIONS: its inspector listens on loopback, on a free port.
    // Settled threads leave the anchor 15 s after their seal (the default waits 5 minutes).
    const anchor = await withInspector(() =>
      startAnchorProcess([
        '--data',
        data,
        '--genesis',
        genesisFile,
        '--settle-horizon-ms',
        String(SETTLE_HORIZON_MS),
      ]),
    )
    const pid = anchor.child.pid!
    const ws = anchor.multiaddrs.find((address) => address.includes('/ws/'))!
    const { params } = await fetchNetwork(anchor.url)
    peer = await createPeer({
      identity,
      params,
      bootstrap: [ws],
      roles: { planner: true, worker: true, verifier: true },
      tuning: { leaseTtlMs: 5000, workMs: 0, proposeBackoffMs: 0, claimBackoffMs: 0 },
      network: { webRTC: false },
      syncIntervalMs: 5000,
      // The client measures nothing of its own: it drops finished threads, so a long run does not
      // slow down on its side (a 100 000-thread run stalled at 99 995 with the client at 3.4 GB).
      retireSettled: true,
    })
    const agent = peer.agent
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const metrics: Record<string, Metric> = {}
    const idleMb = await rssMb(pid)
    const idleHeapMb = await liveHeapMb(anchor.logs)
    metrics.anchor_rss_mb_idle = { value: Math.round(idleMb), unit: 'MB' }
    metrics.anchor_heap_mb_idle = { value: Math.round(idleHeapMb), unit: 'MB' }
    progress(`idle anchor: RSS ${idleMb.toFixed(0)} MB, live heap ${idleHeapMb.toFixed(0)} MB`)

    /** Open threads, with when each was posted (performance.now()). */
    const open = new Map<string, number>()
    let finalized = 0
    /** The last count of finalized threads said in progress. */
    let lastSaid = 0
    let posted = 0
    const started = performance.now()
    const isFinal = (thread: string) => agent.isRetired(thread) || isThreadFinal(agent, thread)
    let lastProgress = performance.now()
    const samples: { threads: number; mb: number; heapMb: number }[] = []
    for (const mark of marks) {
      while (finalized < mark) {
        while (open.size < IN_FLIGHT && posted < marks[marks.length - 1]!) {
          try {
            const need = await agent.post({
              requires: ['sha256'],
              inputs: [new TextEncoder().encode(`growth ${posted}`)],
              budget: 5,
              bidWindowMs: 50,
            })
            open.set(need, performance.now())
            posted += 1
          } catch (error) {
            // Out of credits until payouts fall due: ask the faucet again, then wait.
            await requestCredits(anchor.url, identity.did).catch(() => undefined)
            await new Promise((resolve) => setTimeout(resolve, 200))
            if (performance.now() - lastProgress > 30_000)
              throw new Error(`no NEED could be posted for 30 s: ${(error as Error).message}`)
            break
          }
        }
        for (const [thread, postedAt] of open) {
          if (performance.now() - postedAt > 120_000) {
            throw new Error(
              `thread ${thread} is not FINAL 120 s after its NEED: ${threadReport(agent, thread)}\nthe anchor's last warnings:\n${anchor.logs
                .filter((line) => /"level":(4|5)0/.test(line))
                .slice(-20)
                .join('\n')}`,
            )
          }
          if (isFinal(thread)) {
            open.delete(thread)
            finalized += 1
            lastProgress = performance.now()
          }
        }
        if (performance.now() - lastProgress > 120_000) {
          const undecided = [...open.keys()].filter((thread) => !agent.replica(thread)?.state.winner).length
          const account = await fetch(`${anchor.url}/api/ledger/${identity.did}`)
            .then((response) => response.text())
            .catch((error: unknown) => String(error))
          throw new Error(
            `no thread finalized for 120 s (${finalized} so far, ${open.size} open, ${undecided} undecided; the client's account: ${account})`,
          )
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
        // Once per 500 (the loop polls every 20 ms: a count that stays put is said once).
        if (finalized % 500 === 0 && finalized > 0 && finalized !== lastSaid) {
          lastSaid = finalized
          const seconds = (performance.now() - started) / 1000
          progress(`${finalized} threads final in ${seconds.toFixed(0)} s`)
        }
      }
      // Let the anchor settle (payouts fall due 2 × T_challenge after FINALIZE, the ledger's base
      // takes threads the horizon after that, on its 10 s timer at the latest) before reading.
      await new Promise((resolve) => setTimeout(resolve, 3000 + SETTLE_HORIZON_MS + 10_000))
      const snapshots = process.env.GROWTH_SNAPSHOTS
      const heapMb = await liveHeapMb(
        anchor.logs,
        snapshots ? join(snapshots, `anchor-${mark}.heapsnapshot`) : undefined,
      )
      const mb = await rssMb(pid)
      samples.push({ threads: mark, mb, heapMb })
      metrics[`anchor_rss_mb_${mark}`] = { value: Math.round(mb), unit: 'MB' }
      metrics[`anchor_heap_mb_${mark}`] = { value: Math.round(heapMb), unit: 'MB' }
      const seconds = (performance.now() - started) / 1000
      // Plan documents the anchor holds against those it let go (settled threads' leave memory).
      // and threads it holds against those the ledger's settled base took.
      const status = await fetch(`${anchor.url}/api/status`)
        .then(
          async (response) =>
            (await response.json()) as {
              threads?: number
              planSync?: { threads: number; forgotten: number }
              ledgerBase?: { threads: number; remembered: number }
            },
        )
        .catch(() => undefined)
      progress(
        `${mark} threads final in ${seconds.toFixed(0)} s: anchor RSS ${mb.toFixed(0)} MB, live heap ${heapMb.toFixed(0)} MB, threads held ${status?.threads ?? '?'}, settled into the ledger's base ${status?.ledgerBase?.threads ?? '?'}, plan documents followed ${status?.planSync?.threads ?? '?'}, forgotten ${status?.planSync?.forgotten ?? '?'}`,
      )
    }
    const seconds = (performance.now() - started) / 1000
    metrics.growth_threads_per_s = { value: Number((finalized / seconds).toFixed(1)), unit: 'threads/s' }
    const first = samples[0]!
    const last = samples[samples.length - 1]!
    const base = samples.length > 1 ? first : { threads: 0, mb: idleMb, heapMb: idleHeapMb }
    const span = Math.max(1, last.threads - base.threads)
    metrics.anchor_rss_kb_per_thread = {
      value: Math.round(((last.mb - base.mb) * 1024) / span),
      unit: 'KB/thread',
    }
    metrics.anchor_heap_kb_per_thread = {
      value: Math.round(((last.heapMb - base.heapMb) * 1024) / span),
      unit: 'KB/thread',
    }
    // A restart replays the whole log in batches, letting settled threads go as it reads.
    await peer.stop().catch(() => undefined)
    peer = undefined
    await anchor.stop('SIGTERM')
    const restartStarted = performance.now()
    const again = await withInspector(() =>
      startAnchorProcess(
        ['--data', data, '--genesis', genesisFile, '--settle-horizon-ms', String(SETTLE_HORIZON_MS)],
        { readyTimeoutMs: 1_800_000 },
      ),
    )
    const restartMs = performance.now() - restartStarted
    const restartHeapMb = await liveHeapMb(again.logs)
    const restartRssMb = await rssMb(again.child.pid!)
    metrics.anchor_restart_ms = { value: Math.round(restartMs), unit: 'ms' }
    metrics.anchor_restart_heap_mb = { value: Math.round(restartHeapMb), unit: 'MB' }
    metrics.anchor_restart_rss_mb = { value: Math.round(restartRssMb), unit: 'MB' }
    progress(
      `restart with ${last.threads} threads in the log: ready in ${(restartMs / 1000).toFixed(1)} s, RSS ${restartRssMb.toFixed(0)} MB, live heap ${restartHeapMb.toFixed(0)} MB`,
    )
    if (process.env.GROWTH_HEAP_SNAPSHOT) {
      again.child.kill('SIGUSR2')
      progress('heap snapshot requested; waiting 60 s for the anchor to write it')
      await new Promise((resolve) => setTimeout(resolve, 60_000))
    }
    return metrics
  } finally {
    await peer?.stop().catch(() => undefined)
    killAnchors()
    await rm(dir, { recursive: true, force: true })
  }
}
