/**
 * The `bus` benchmark's driver (run by bench/suite.ts inside a private network namespace when
 * possible): 10 peer processes on loopback — 1 publisher, 9 subscribers, each connected to all —
 * and the publisher sends pre-signed envelopes at a fixed rate. Latency is publish → delivered and
 * validated (decode, id, signature) at each subscriber, over every (envelope, subscriber) pair.
 * Then the same envelope bytes go through Debian's nats-server (same processes, same validation)
 * as the baseline. Prints progress on stderr and one JSON line on stdout.
 *
 * `node bench/bus-mesh.ts [ratePerS] [count] [windowMs…]`
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { PeerProcess, randomSeedHex } from '@can-swarm/peer/mesh'

const PEERS = Number(process.env.BUS_PEERS ?? 10)
const log = (line: string) => process.stderr.write(`[bus] ${line}\n`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function percentile(sorted: readonly number[], p: number): number {
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN
  )
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

/** Total CPU time of the processes, in µs. */
async function cpuOf(peers: PeerProcess[]): Promise<number> {
  const each = await Promise.all(peers.map((peer) => peer.call<number>('cpu')))
  return each.reduce((sum, value) => sum + value, 0)
}

/** Latencies of every (envelope, subscriber) pair and the time until the last subscriber had each one. */
async function measure(peers: PeerProcess[], sent: Array<[string, number]>, expected: number) {
  const deadline = Date.now() + 15_000
  // poll counts only (full delivery lists are large), then fetch the lists once
  for (;;) {
    const counts = await Promise.all(
      peers.slice(1).map((peer) => peer.call<{ deliveries: number }>('stats', { deliveries: false })),
    )
    if (counts.every((s) => s.deliveries >= expected) || Date.now() > deadline) break
    await sleep(250)
  }
  const stats = await Promise.all(
    peers.slice(1).map((peer) =>
      peer.call<{
        deliveries: Array<[string, number]>
        bus: { recentRejections: Array<{ detail: string }> }
      }>('stats'),
    ),
  )
  const deliveries = stats.map((s) => s.deliveries)
  const rejections = stats.flatMap((s) => s.bus.recentRejections.map((r) => r.detail)).slice(0, 3)
  const sentAt = new Map(sent)
  const pairs: number[] = []
  const lastAt = new Map<string, number>()
  let missing = 0
  for (const list of deliveries) {
    const seen = new Set<string>()
    for (const [id, at] of list) {
      const start = sentAt.get(id)
      if (start === undefined || seen.has(id)) continue
      seen.add(id)
      pairs.push(at - start)
      lastAt.set(id, Math.max(lastAt.get(id) ?? 0, at - start))
    }
    missing += sent.filter(([id]) => !seen.has(id)).length
  }
  pairs.sort((a, b) => a - b)
  const all = [...lastAt.values()].sort((a, b) => a - b)
  return {
    p50: percentile(pairs, 50),
    p99: percentile(pairs, 99),
    max: pairs.at(-1) ?? Number.NaN,
    allPeersP99: percentile(all, 99),
    missing,
    pairs: pairs.length,
    rejections,
  }
}

async function main(): Promise<void> {
  const ratePerS = Number(process.argv[2] ?? 1000)
  const count = Number(process.argv[3] ?? 5000)
  // publish windows to compare; none given = the bus default
  const windows: Array<number | undefined> = process.argv.slice(4).map(Number)
  if (windows.length === 0) windows.push(undefined)
  const peers: PeerProcess[] = []
  let nats: ChildProcess | undefined
  const result: Record<string, unknown> = { ratePerS, count, peers: PEERS }
  try {
    for (const windowMs of windows) {
      log(`starting ${PEERS} processes (publish window ${windowMs} ms)`)
      const started = await Promise.all(
        Array.from({ length: PEERS }, (_, index) =>
          PeerProcess.start(index, {
            seedHex: randomSeedHex(),
            listen: ['/ip4/127.0.0.1/tcp/0'],
            pubsubDiscovery: false,
            dialDiscoveredBelow: 0,
            record: true,
            ...(windowMs === undefined ? {} : { publishWindowMs: windowMs }),
            ...(process.env.BUS_GOSSIP ? { gossip: JSON.parse(process.env.BUS_GOSSIP) } : {}),
          }),
        ),
      )
      peers.splice(0, peers.length, ...started)
      for (let i = 1; i < PEERS; i += 1) {
        for (let j = 0; j < i; j += 1) await peers[i]!.call('dial', { multiaddr: peers[j]!.multiaddrs[0] })
      }
      await sleep(3000)
      const threads = Array.from({ length: 16 }, (_, i) => `bench-thread-${i}`)
      log('warm-up: 300 envelopes')
      await peers[0]!.call('prepare', { count: 300, threads })
      await peers[0]!.call('blast', { ratePerS })
      await sleep(1500)
      await Promise.all(peers.map((peer) => peer.call('clearDeliveries')))
      log(`signing ${count} envelopes`)
      await peers[0]!.call('prepare', { count, threads }, 120_000)
      log(`publishing ${count} envelopes at ${ratePerS}/s through gossipsub`)
      const cpuBefore = await cpuOf(peers)
      const sent = await peers[0]!.call<Array<[string, number]>>('blast', { ratePerS }, 120_000)
      const bus = { ...(await measure(peers, sent, count)), cpuUsPerDelivery: 0 }
      bus.cpuUsPerDelivery = ((await cpuOf(peers)) - cpuBefore) / (count * (PEERS - 1))
      log(
        `bus (window ${windowMs} ms): p50 ${bus.p50.toFixed(2)} ms, p99 ${bus.p99.toFixed(2)} ms, missing ${bus.missing}, cpu ${bus.cpuUsPerDelivery.toFixed(0)} µs/delivery`,
      )
      result[`bus_window_${windowMs ?? 'default'}`] = bus

      if (windowMs === windows[windows.length - 1] && process.env.BUS_SKIP_NATS !== '1') {
        const port = await freePort()
        nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
        const servers = `127.0.0.1:${port}`
        await sleep(500)
        // The same envelope bytes, first validated at each subscriber like the bus does, then raw.
        for (const validate of [true, false]) {
          await Promise.all(peers.map((peer) => peer.call('clearDeliveries')))
          await Promise.all(
            peers
              .slice(1)
              .map((peer) => peer.call('natsSubscribe', { servers, subject: `bench-${validate}`, validate })),
          )
          log(
            `publishing the same ${count} envelopes at ${ratePerS}/s through nats-server (validate: ${validate})`,
          )
          const cpuBefore = await cpuOf(peers)
          const natsSent = await peers[0]!.call<Array<[string, number]>>(
            'natsBlast',
            { servers, subject: `bench-${validate}`, ratePerS },
            120_000,
          )
          const baseline = { ...(await measure(peers, natsSent, count)), cpuUsPerDelivery: 0 }
          baseline.cpuUsPerDelivery = ((await cpuOf(peers)) - cpuBefore) / (count * (PEERS - 1))
          log(
            `nats${validate ? '' : ' (raw)'}: p50 ${baseline.p50.toFixed(2)} ms, p99 ${baseline.p99.toFixed(2)} ms, missing ${baseline.missing}, cpu ${baseline.cpuUsPerDelivery.toFixed(0)} µs/delivery`,
          )
          result[validate ? 'nats' : 'nats_raw'] = baseline
          await Promise.all(peers.map((peer) => peer.call('natsClose')))
        }
      }
      await Promise.all(peers.map((peer) => peer.stop()))
      peers.length = 0
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    await Promise.all(peers.map((peer) => peer.stop()))
    nats?.kill('SIGTERM')
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  },
)
