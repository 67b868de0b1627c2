/**
 * Ledger throughput through the real consensus store (each balance-changing operation claims its
 * account's slot in the embedded SQLite store, fsync'd), and the simulator's cost of the economy
 * (finalized tasks per CPU second with the economy on versus off, same seeds, same run).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EmbeddedConsensusStore } from '@can-swarm/node'
import { LedgerSequencer, runSimulation } from '@can-swarm/peer'

const OPERATIONS = 2000
const ACCOUNTS = 20

async function simRate(economy: boolean): Promise<number> {
  let finalized = 0
  const started = process.cpuUsage()
  for (let seed = 1; seed <= 12; seed += 1) {
    const result = await runSimulation({ seed, faults: 'none', needs: 3, economy })
    if (result.violations.length > 0) throw new Error(`seed ${seed}: ${result.violations[0]!.message}`)
    finalized += result.finalizedTasks
  }
  const cpu = process.cpuUsage(started)
  return finalized / ((cpu.user + cpu.system) / 1e6)
}

export async function runLedgerBenchmark(progress: (line: string) => void) {
  const dir = await mkdtemp(join(tmpdir(), 'can-swarm-bench-ledger-'))
  try {
    const store = await EmbeddedConsensusStore.open({ path: join(dir, 'consensus.sqlite') })
    const sequencer = new LedgerSequencer(store, 'did:key:z6MkBenchSequencer', { genesisCap: 100_000_000 })
    const accounts = Array.from(
      { length: ACCOUNTS },
      (_, i) => `did:key:z6MkBench${String(i).padStart(3, '0')}`,
    )
    for (const account of accounts)
      await sequencer.submit({ op: 'mint', to: account, amount: 1_000_000, reason: 'genesis' })
    const started = performance.now()
    for (let i = 0; i < OPERATIONS; i += 1) {
      const from = accounts[i % ACCOUNTS]!
      const to = accounts[(i * 7 + 3) % ACCOUNTS]!
      if (from === to) continue
      await sequencer.submit({ op: 'transfer', from, to, amount: 1 + (i % 5) })
    }
    const perSecond = OPERATIONS / ((performance.now() - started) / 1000)
    const { ledger } = sequencer.ledger()
    if (ledger.conservationGap() !== 0) throw new Error('credits not conserved')
    await store.close()
    progress(`${perSecond.toFixed(0)} sequenced transfers/s through the embedded store`)
    await simRate(false) // warm-up: the first run pays for compilation
    const off = await simRate(false)
    const on = await simRate(true)
    progress(`simulator: ${off.toFixed(1)} tasks/CPU s without the economy, ${on.toFixed(1)} with it`)
    return {
      ledger_ops_per_s: {
        value: Number(perSecond.toFixed(1)),
        unit: 'transfers/s, each sequenced through the embedded consensus store',
      },
      sim_tasks_per_s_economy_off: {
        value: Number(off.toFixed(1)),
        unit: 'finalized tasks per CPU second (12 seeds, faults off)',
      },
      sim_tasks_per_s_economy_on: {
        value: Number(on.toFixed(1)),
        unit: 'finalized tasks per CPU second (same seeds, economy settled and checked)',
      },
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
