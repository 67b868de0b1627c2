/**
 * The `decide` benchmark: the anchor's DECIDE stores on their own (store call → acknowledged),
 * with the raw etcd put/transaction latency measured in the same run as the floor.
 * The end-to-end `decide_p50_ms` (last attestation → DECIDE delivered at every peer) needs the
 * libp2p anchor and is measured once that exists.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EmbeddedConsensusStore, EtcdConsensusStore } from '@can-swarm/node'
import type { ConsensusStore } from '@can-swarm/peer'
import { Etcd3 } from 'etcd3'
import { ETCD_BIN, EtcdCluster } from '../test-support/etcd-cluster.ts'

interface Metric {
  value: number
  unit: string
}

const SEQUENTIAL = 1_000
const THROUGHPUT_NEEDS = 5_000
const IN_FLIGHT = 64

const round = (value: number, digits = 2) => Number(value.toFixed(digits))

function percentile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
}

async function timeEach(count: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = []
  for (let i = 0; i < count; i += 1) {
    const started = performance.now()
    await call(i)
    samples.push(performance.now() - started)
  }
  return samples
}

/** Sequential latency and concurrent throughput of `tryDecide` on one store. */
async function measureStore(
  store: ConsensusStore,
  tag: string,
  progress: (line: string) => void,
): Promise<{ p50: number; p95: number; perS: number }> {
  const epoch = await store.currentEpoch()
  const request = (need: string) => ({
    need,
    proposal: `p-${need}`,
    epoch,
    lamport: 1,
    kPlan: 1,
    decider: 'did:key:z6MkBench' as const,
  })
  for (let i = 0; i < 50; i += 1) await store.tryDecide(request(`${tag}-warm-${i}`))
  const samples = await timeEach(SEQUENTIAL, (i) => store.tryDecide(request(`${tag}-seq-${i}`)))
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < THROUGHPUT_NEEDS) {
        const i = next
        next += 1
        const result = await store.tryDecide(request(`${tag}-tput-${i}`))
        if (result.outcome !== 'decided') throw new Error(`bench NEED ${i} was not new`)
      }
    }),
  )
  const perS = THROUGHPUT_NEEDS / ((performance.now() - started) / 1000)
  const result = { p50: percentile(samples, 0.5), p95: percentile(samples, 0.95), perS }
  progress(
    `${tag}: p50 ${round(result.p50)} ms, p95 ${round(result.p95)} ms, ${Math.round(perS)} decisions/s`,
  )
  return result
}

/** Runs the benchmark; etcd metrics are left out (loudly) when etcd is not installed. */
export async function runDecideBenchmark(progress: (line: string) => void): Promise<Record<string, Metric>> {
  const metrics: Record<string, Metric> = {}
  const dir = mkdtempSync(join(tmpdir(), 'can-swarm-bench-decide-'))
  try {
    const embedded = await EmbeddedConsensusStore.open({ path: join(dir, 'consensus.sqlite') })
    try {
      const m = await measureStore(embedded, 'embedded', progress)
      const where = `node:sqlite WAL, synchronous=FULL, in ${tmpdir()}`
      metrics.decide_store_p50_ms_embedded = {
        value: round(m.p50, 3),
        unit: `ms per tryDecide, sequential (${where})`,
      }
      metrics.decide_store_p95_ms_embedded = {
        value: round(m.p95, 3),
        unit: `ms per tryDecide, sequential (${where})`,
      }
      metrics.decide_per_s_embedded = {
        value: Math.round(m.perS),
        unit: `decisions/s, ${IN_FLIGHT} in flight (group commit)`,
      }
    } finally {
      await embedded.close()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }

  if (!existsSync(ETCD_BIN)) {
    progress(`!!! etcd not found at ${ETCD_BIN}: etcd metrics left out (apt-get install etcd-server) !!!`)
    return metrics
  }
  const cluster = await EtcdCluster.start({ size: 3 })
  try {
    // The floor: the same operations straight through the etcd3 client, no store code.
    const raw = new Etcd3({ hosts: cluster.clientUrls })
    try {
      for (let i = 0; i < 50; i += 1) await raw.put(`floor/warm/${i}`).value('x')
      const puts = await timeEach(SEQUENTIAL, (i) => raw.put(`floor/put/${i}`).value('x').exec())
      await raw.put('floor/epoch').value('1')
      const txns = await timeEach(SEQUENTIAL, (i) =>
        raw
          .if('floor/epoch', 'Value', '==', '1')
          .and(`floor/txn/${i}`, 'Create', '==', 0)
          .then(raw.put(`floor/txn/${i}`).value('x'))
          .else(raw.get('floor/epoch'), raw.get(`floor/txn/${i}`))
          .commit(),
      )
      metrics.etcd_put_p50_ms = {
        value: round(percentile(puts, 0.5), 3),
        unit: 'ms per raw put, 3-member cluster on loopback',
      }
      metrics.etcd_txn_p50_ms = {
        value: round(percentile(txns, 0.5), 3),
        unit: 'ms per raw create-if-absent txn (the floor)',
      }
      metrics.etcd_txn_p95_ms = {
        value: round(percentile(txns, 0.95), 3),
        unit: 'ms per raw create-if-absent txn',
      }
      progress(
        `etcd floor: put p50 ${round(percentile(puts, 0.5))} ms, txn p50 ${round(percentile(txns, 0.5))} ms`,
      )
    } finally {
      raw.close()
    }
    const store = await EtcdConsensusStore.open({ hosts: cluster.clientUrls, prefix: 'bench' })
    try {
      const m = await measureStore(store, 'etcd', progress)
      metrics.decide_store_p50_ms_etcd = {
        value: round(m.p50, 3),
        unit: 'ms per tryDecide, sequential (3-member etcd)',
      }
      metrics.decide_store_p95_ms_etcd = {
        value: round(m.p95, 3),
        unit: 'ms per tryDecide, sequential (3-member etcd)',
      }
      metrics.decide_per_s_etcd = {
        value: Math.round(m.perS),
        unit: `decisions/s, ${IN_FLIGHT} in flight, one client`,
      }
    } finally {
      await store.close()
    }
  } finally {
    await cluster.stop()
  }
  return metrics
}
