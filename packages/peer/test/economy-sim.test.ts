import { describe, expect, it } from 'vitest'
import { builtinCapabilities } from '../src/agent/capabilities.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import { DEFAULT_GENESIS } from '../src/core/economy/derive.ts'
import type { Violation } from '../src/sim/checkers.ts'
import { settleEconomy } from '../src/sim/economy.ts'
import { runSimulation } from '../src/sim/world.ts'
import { finalThread } from './final-thread.ts'

describe('the simulator with its economy', () => {
  it('holds P3 and conservation; upheld and frivolous challenges both happen and are settled', {
    timeout: 180_000,
  }, async () => {
    const totals = { upheld: 0, frivolous: 0, slashes: 0, burned: 0 }
    // At least 24 seeds, and on until every kind of settlement has happened (an upheld challenge
    // needs a Byzantine worker attested by a rubber stamp: about one bootstrap seed in ten), at most 72.
    const covered = () => Object.values(totals).every((total) => total > 0)
    for (let seed = 1; seed <= 72 && (seed <= 24 || !covered()); seed += 1) {
      const result = await runSimulation({
        seed,
        faults: seed % 3 === 0 ? 'combined' : 'byzantine',
        economy: true,
      })
      expect(result.violations, `seed ${seed}`).toEqual([])
      expect(result.properties).toContain('P3')
      expect(result.properties).toContain('conservation')
      totals.upheld += result.economy!.upheldChallenges
      totals.frivolous += result.economy!.frivolousChallenges
      totals.slashes += result.economy!.slashes
      totals.burned += result.economy!.burned
    }
    expect(totals.upheld).toBeGreaterThan(0)
    expect(totals.frivolous).toBeGreaterThan(0)
    expect(totals.slashes).toBeGreaterThan(0)
    expect(totals.burned).toBeGreaterThan(0)
  })

  it('flags an invalid FINALIZE that nobody challenged (the P3 checker can fail)', async () => {
    const { requester, planner, worker, verifier, decider, params, artifacts, replica, task } =
      await finalThread({
        output: new TextEncoder().encode('[["a",1]]'),
      })
    expect(replica.state.tasks.get(task)?.state).toBe('FINAL')
    const violations: Violation[] = []
    const report = await settleEconomy({
      params,
      genesis: {
        ...DEFAULT_GENESIS,
        allocations: [requester, planner, worker, verifier, decider].map((i) => ({
          did: i.did,
          amount: 1_000,
        })),
      },
      genesisVerifiers: [verifier.did],
      replicas: [replica],
      artifacts,
      capabilities: builtinCapabilities(),
      converged: true,
      violations,
    })
    expect(violations.map((v) => v.property)).toEqual(['P3'])
    expect(violations[0]!.message).toContain(`invalid FINALIZE of ${task} survived`)
    expect(report.unfunded).toBe(0)
    expect(report.operations).toBeGreaterThan(5)
    // The honest output differs from what was committed.
    const honest = artifactCid(
      await builtinCapabilities().run('word-frequency', [new TextEncoder().encode('a b a')]),
    )
    expect(honest).not.toBe(replica.state.tasks.get(task)?.commit?.outputs[0])
  })
})
