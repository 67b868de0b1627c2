/**
 * `npm run mesh -- --peers N`: a real multi-process swarm on loopback. Process 0 is an anchor —
 * `node packages/node` on the network's genesis, with its embedded consensus store, relay and
 * envelope log — and the N − 1 others are peer processes (`@can-swarm/peer/mesh`) that plan, work
 * and verify, bootstrapped to the anchor. Posts NEEDs through the network, waits for them to be
 * FINAL at every peer and at the anchor, prints progress on stderr and one JSON report on stdout,
 * and stops every process it started.
 *
 * Runs inside a private network namespace (only `lo`) when the machine allows (`--netns auto`).
 * Inputs are handed to every peer at start, so NEEDs use one capability each.
 */
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createIdentity } from '@can-swarm/peer'
import {
  inPrivateNetns,
  type MeshPeerConfig,
  netnsCommand,
  PeerProcess,
  randomSeedHex,
} from '@can-swarm/peer/mesh'
import { versionLine } from '@can-swarm/peer/node'
import { Command, InvalidArgumentError, Option } from 'commander'
import { type StartedAnchor, startAnchorProcess } from '../test-support/anchor-process.ts'

/** The anchor's command, from the repository root. */
const ANCHOR_ENTRY = fileURLToPath(new URL('../packages/node/src/bin.ts', import.meta.url))

const CAPABILITIES = ['word-frequency', 'sha256', 'sort-dedupe'] as const

function integer(min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value)
    if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`)
    }
    return parsed
  }
}

interface MeshOptions {
  peers: number
  needs: number
  timeoutMs: number
  challengeMs: number
  windowMs?: number
  netns: 'auto' | 'on' | 'off'
}

const log = (line: string) => process.stderr.write(`[mesh] ${line}\n`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

type ThreadView = Record<
  string,
  { tasks: string[]; decided: boolean; final: boolean; finalAtMs: number | null; envelopes: number }
>
/** Whether the anchor holds `thread` as FINAL (a FINALIZE among its envelopes). */
async function finalAtAnchor(anchor: StartedAnchor, thread: string): Promise<boolean> {
  const response = await fetch(`${anchor.url}/api/threads/${encodeURIComponent(thread)}`).catch(
    () => undefined,
  )
  if (!response?.ok) return false
  const envelopes = (await response.json()) as Array<{ kind?: string }>
  return envelopes.some((env) => env.kind === 'FINALIZE')
}

type PeerStats = {
  bus: { published: number; delivered: number; duplicates: number; rejected: Record<string, number> }
  errors: string[]
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** Runs the mesh; returns the report. */
export async function runMesh(options: MeshOptions): Promise<Record<string, unknown>> {
  const started = performance.now()
  const dataDir = await mkdtemp(join(tmpdir(), 'can-swarm-mesh-'))
  const peers: PeerProcess[] = []
  let anchor: StartedAnchor | undefined
  try {
    const seeds = Array.from({ length: options.peers - 1 }, () => randomSeedHex())
    const identities = await Promise.all(
      seeds.map((seed) => createIdentity({ seed: Uint8Array.from(Buffer.from(seed, 'hex')) })),
    )
    const verifiers = identities.map((identity) => identity.did)
    const bootstrap = verifiers.length < 4
    // The mesh's network, signed by the anchor's own key (created in its data directory): the
    // peers its verifiers, everyone allocated credits.
    const anchorData = join(dataDir, 'anchor')
    const genesisFile = join(dataDir, 'genesis.json')
    execFileSync(
      process.execPath,
      [
        ANCHOR_ENTRY,
        'genesis',
        '--data',
        anchorData,
        '--out',
        genesisFile,
        '--name',
        'mesh',
        '--verifiers',
        verifiers.join(','),
        ...(bootstrap ? [] : ['--no-bootstrap-mode']),
        '--allocate',
        verifiers.map((did) => `${did}=1000000`).join(','),
        '--challenge-ms',
        String(Math.max(1, options.challengeMs)),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    )
    const genesis = readFileSync(genesisFile, 'utf8')
    anchor = await startAnchorProcess(
      ['--data', anchorData, '--genesis', genesisFile, '--host', '127.0.0.1'],
      { entry: ANCHOR_ENTRY, readyTimeoutMs: 90_000 },
    )
    const anchorAddress = anchor.multiaddrs.find(
      (address) => address.includes('/tcp/') && !address.includes('/ws'),
    )!
    log(`anchor ${anchor.did} at ${anchorAddress} (${anchor.url})`)
    const inputs = Array.from(
      { length: options.needs },
      (_, i) => `need ${i}: the swarm plans the work, the work is done, the result is checked ${i % 7}\n`,
    )
    log(`starting ${seeds.length} peers (planners, workers, verifiers) beside the anchor`)
    const configs: MeshPeerConfig[] = seeds.map((seedHex, index) => ({
      seedHex,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [anchorAddress],
      pubsubDiscovery: true,
      dialDiscoveredBelow: 8,
      ...(options.windowMs === undefined ? {} : { publishWindowMs: options.windowMs }),
      genesis,
      agent: {
        roles: { planner: true, worker: true, verifier: true },
        inputs,
        randomSeed: index + 1,
      },
    }))
    peers.push(...(await Promise.all(configs.map((config, index) => PeerProcess.start(index, config)))))
    // Each peer meets the anchor and at least min(others, 3) other peers.
    const wanted = Math.min(peers.length - 1, 3)
    const meshDeadline = Date.now() + 60_000
    for (;;) {
      const views = await Promise.all(peers.map((peer) => peer.call<{ gossipPeers: string[] }>('peers')))
      const ready = views.filter((view) => view.gossipPeers.length >= wanted + 1)
      log(`mesh: ${ready.length}/${peers.length} peers have ≥ ${wanted + 1} gossip peers`)
      if (ready.length === peers.length) break
      if (Date.now() > meshDeadline) throw new Error('the mesh did not form within 60 s')
      await sleep(1000)
    }
    await sleep(1500) // let gossipsub graft its meshes (heartbeat 1 s)

    const posted: Array<{ need: string; requester: number; postedAtMs: number; capability: string }> = []
    for (let i = 0; i < options.needs; i += 1) {
      const requester = i % peers.length
      const capability = CAPABILITIES[i % CAPABILITIES.length]!
      const postedAtMs = performance.timeOrigin + performance.now()
      const need = await peers[requester]!.call<string>('post', {
        requires: [capability],
        input: inputs[i],
        budget: 50,
        bidWindowMs: 300,
      })
      posted.push({ need, requester, postedAtMs, capability })
      log(`posted ${need} (${capability}) from peer ${requester}`)
    }

    const deadline = Date.now() + options.timeoutMs
    let views: ThreadView[] = []
    const finalAnchor = new Set<string>()
    for (;;) {
      views = await Promise.all(peers.map((peer) => peer.call<ThreadView>('threads')))
      for (const p of posted)
        if (!finalAnchor.has(p.need) && (await finalAtAnchor(anchor, p.need))) finalAnchor.add(p.need)
      const finalEverywhere = posted.filter(
        (p) => finalAnchor.has(p.need) && views.every((view) => view[p.need]?.final),
      )
      const finalAtRequester = posted.filter((p) => views[p.requester]![p.need]?.final)
      log(
        `final at requester ${finalAtRequester.length}/${posted.length}, everywhere ${finalEverywhere.length}`,
      )
      if (finalEverywhere.length === posted.length || Date.now() > deadline) break
      await sleep(500)
    }
    const stats = await Promise.all(peers.map((peer) => peer.call<PeerStats>('stats', { deliveries: false })))
    const latencies = posted
      .map((p) => views[p.requester]![p.need]?.finalAtMs)
      .map((at, index) => (at == null ? null : Math.round(at - posted[index]!.postedAtMs)))
    const done = latencies.filter((value): value is number => value !== null).sort((a, b) => a - b)
    const rejected: Record<string, number> = {}
    for (const peer of stats) {
      for (const [reason, count] of Object.entries(peer.bus.rejected))
        rejected[reason] = (rejected[reason] ?? 0) + count
    }
    return {
      peers: options.peers,
      needs: options.needs,
      finalized: done.length,
      finalizedEverywhere: posted.filter(
        (p) => finalAnchor.has(p.need) && views.every((view) => view[p.need]?.final),
      ).length,
      finalizedAtAnchor: finalAnchor.size,
      envelopes: {
        published: stats.reduce((sum, s) => sum + s.bus.published, 0),
        delivered: stats.reduce((sum, s) => sum + s.bus.delivered, 0),
        duplicatesDropped: stats.reduce((sum, s) => sum + s.bus.duplicates, 0),
        rejected,
        perNeed: posted.map((p) => views[p.requester]![p.need]?.envelopes ?? 0),
      },
      latencyMs: { p50: percentile(done, 50), max: done.at(-1) ?? null, each: latencies },
      needsPosted: posted.map(({ need, capability, requester }) => ({ need, capability, requester })),
      bootstrapMode: bootstrap,
      anchor: { did: anchor.did, url: anchor.url, consensus: 'embedded (the anchor process)' },
      privateNetns: inPrivateNetns(),
      agentErrors: stats.flatMap((s) => s.errors).slice(0, 10),
      durationMs: Math.round(performance.now() - started),
    }
  } finally {
    log('stopping processes')
    await Promise.all(peers.map((peer) => peer.stop()))
    await anchor?.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('npm run mesh --')
    .version(versionLine(new URL('../package.json', import.meta.url)))
    .description(
      'Start an anchor (node packages/node) and N - 1 peer processes on loopback (in a private network namespace when possible), post NEEDs through the real libp2p network and report JSON (finalized, envelopes, latencies).',
    )
    .option('--peers <n>', 'processes: the anchor and n - 1 peers', integer(2, 32), 4)
    .option('--needs <n>', 'NEEDs to post', integer(1, 1000), 3)
    .option(
      '--timeout-ms <ms>',
      'give up waiting for finalization after this long',
      integer(1000, 3_600_000),
      60_000,
    )
    .option('--challenge-ms <ms>', 'challenge window before FINALIZE', integer(0, 600_000), 1000)
    .option(
      '--window-ms <ms>',
      'bus publish window (batching), 0 = none (default: the bus default, 5)',
      integer(0, 1000),
    )
    .addOption(
      new Option('--netns <mode>', 'run inside a private network namespace')
        .choices(['auto', 'on', 'off'])
        .default('auto'),
    )
    .showHelpAfterError()
  program.parse(argv)
  const options = program.opts<MeshOptions>()
  if (options.netns !== 'off' && !inPrivateNetns()) {
    const wrapped = netnsCommand([process.execPath, fileURLToPath(import.meta.url), ...argv.slice(2)])
    if (wrapped) {
      log('entering a private network namespace (only lo)')
      const child = spawn(wrapped[0]!, wrapped.slice(1), { stdio: 'inherit' })
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => child.kill(signal))
      return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1)))
    }
    if (options.netns === 'on')
      throw new Error('cannot create a network namespace here (needs root or user namespaces)')
    log('notice: no private network namespace available; running on the host loopback (127.0.0.1)')
  }
  const report = await runMesh(options)
  process.stdout.write(`${JSON.stringify(report)}\n`)
  return report.finalized === options.needs ? 0 : 1
}

main(process.argv).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`mesh failed: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
