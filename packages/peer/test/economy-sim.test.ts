import { describe, expect, it } from 'vitest'
import { builtinCapabilities } from '../src/agent/capabilities.ts'
import { artifactCid, MemoryArtifactStore } from '../src/core/artifacts.ts'
import { networkParams } from '../src/core/thread/params.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import type { AnyEnvelope, Envelope } from '../src/core/types.ts'
import type { Violation } from '../src/sim/checkers.ts'
import { settleEconomy } from '../src/sim/economy.ts'
import { runSimulation } from '../src/sim/world.ts'
import { makeIdentities, sign } from './helpers.ts'

describe('the simulator with its economy', () => {
  it('holds P3 and conservation; upheld and frivolous challenges both happen and are settled', async () => {
    const totals = { upheld: 0, frivolous: 0, slashes: 0, burned: 0 }
    for (let seed = 1; seed <= 24; seed += 1) {
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
    const [requester, planner, worker, verifier, decider] = await makeIdentities(5, 42)
    const params = networkParams({ verifiers: [verifier!.did], bootstrap: true })
    const artifacts = new MemoryArtifactStore()
    const input = await artifacts.put(new TextEncoder().encode('a b a'))
    const wrong = await artifacts.put(new TextEncoder().encode('[["a",1]]'))
    const thread = 'need-p3'
    const log: AnyEnvelope[] = []
    log.push(
      await sign(requester!, 'NEED', thread, {
        need: thread,
        epoch: 1,
        requires: ['word-frequency'],
        inputs: [input],
        produces: 'application/json',
        budget: 10,
        deadlineMs: 0,
        bidWindowMs: 1,
      }),
    )
    const patch = [
      { name: 'count', capability: 'word-frequency', inputs: [input], produces: 'application/json' },
    ]
    log.push(
      await sign(planner!, 'PROPOSE', thread, {
        need: thread,
        proposal: 'p',
        patch,
        ballot: 1,
        price: 3,
        etaMs: 1,
        shardDependencies: [],
      }),
    )
    const vote = await sign(verifier!, 'ATTEST_PLAN', thread, {
      need: thread,
      proposal: 'p',
      verdict: 'accept',
    })
    log.push(vote)
    log.push(
      await sign(decider!, 'DECIDE', thread, {
        need: thread,
        proposal: 'p',
        epoch: 1,
        lamport: 9,
        kPlan: 1,
        decider: decider!.did,
        attestations: [vote as Envelope],
      }),
    )
    const claim = await sign(worker!, 'CLAIM', thread, {
      task: 'p/count',
      leaseTtlMs: 1000,
      cost: 3,
      etaMs: 1,
    })
    const commit = await sign(
      worker!,
      'COMMIT',
      thread,
      {
        task: 'p/count',
        claim: claim.id,
        outputs: [wrong],
        telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
        verifyBounty: 2,
      },
      { fence: claim.id },
    )
    const pass = await sign(verifier!, 'ATTEST', thread, {
      task: 'p/count',
      commit: commit.id,
      verdict: 'pass',
      evalDigest: 'x',
    })
    const finalize = await sign(worker!, 'FINALIZE', thread, {
      task: 'p/count',
      commit: commit.id,
      attestations: [pass as Envelope],
    })
    log.push(claim, commit, pass, finalize)
    const replica = new ThreadReplica(thread, params)
    replica.receiveAll(log, 0)
    expect(replica.state.tasks.get('p/count')?.state).toBe('FINAL')
    const violations: Violation[] = []
    const report = await settleEconomy({
      peers: [requester!, planner!, worker!, verifier!, decider!].map((i) => i.did),
      params,
      replicas: [replica],
      artifacts,
      capabilities: builtinCapabilities(),
      converged: true,
      violations,
    })
    expect(violations.map((v) => v.property)).toEqual(['P3'])
    expect(violations[0]!.message).toMatch(/invalid FINALIZE of p\/count survived/)
    expect(report.operations).toBeGreaterThan(5)
    // The honest output differs from what was committed.
    const honest = artifactCid(
      await builtinCapabilities().run('word-frequency', [new TextEncoder().encode('a b a')]),
    )
    expect(honest).not.toBe(wrong)
  })
})
