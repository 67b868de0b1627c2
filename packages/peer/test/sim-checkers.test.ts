/**
 * The simulator's new checkers can fail: each is fed a deliberately broken rule — a fold that takes
 * a stranger for an anchor, a fold that leaks a change from a refused envelope, an accepted lease
 * verb from someone else than the holder, a run that does not converge — and must report it. And
 * the generated attacker: its catalogue is drawn from the seed, and every attack it tries in a run
 * is refused or contained.
 */
import { describe, expect, it } from 'vitest'
import { decidedOpening, taskOf } from '../../../test-support/decided-thread.ts'
import { makeIdentities, sign, testParams } from '../../../test-support/envelopes.ts'
import { poolSnapshotOf } from '../src/core/thread/params.ts'
import { REFUSALS } from '../src/core/thread/refusals.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import type { AnyEnvelope, Envelope } from '../src/core/types.ts'
import { ATTACKS } from '../src/sim/attacker.ts'
import { authorityProblem, checkDelivery, checkLiveness, type Violation } from '../src/sim/checkers.ts'
import { runSimulation } from '../src/sim/world.ts'

const INPUT = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'

async function opening(tag: number) {
  const [requester, planner, verifier, anchor, stranger] = await makeIdentities(5, tag)
  const params = testParams({ verifiers: [verifier!.did], anchors: [anchor!.did], bootstrap: true })
  const open = await decidedOpening({
    requester: requester!,
    planner: planner!,
    verifier: verifier!,
    decider: anchor!,
    params,
    requires: ['sha256'],
    inputs: [INPUT],
    produces: 'text/plain',
    budget: 10,
    price: 1,
    patch: [{ name: 'digest', capability: 'sha256', inputs: [INPUT], produces: 'text/plain' }],
  })
  return {
    requester: requester!,
    planner: planner!,
    verifier: verifier!,
    anchor: anchor!,
    stranger: stranger!,
    params,
    open,
  }
}

describe('P9 checker', () => {
  it('flags a DECIDE a broken fold accepted from a stranger it took for an anchor', async () => {
    const { stranger, params, open } = await opening(150)
    const forged = (await sign(
      stranger,
      'DECIDE',
      open.thread,
      { ...open.decide.payload, decider: stranger.did, lamport: 9, pool: poolSnapshotOf(params) },
      { lamport: 9 },
    )) as Envelope<'DECIDE'>
    // The broken rule: this fold believes the stranger is an anchor.
    const broken = testParams({ ...params, anchors: [...params.anchors, stranger.did] })
    const replica = new ThreadReplica(open.thread, broken)
    replica.receiveAll([...open.log, forged], 0)
    expect(replica.state.rejected.has(forged.id)).toBe(false)
    const violations: Violation[] = []
    checkDelivery(0, forged, replica, params, {}, violations)
    expect(violations).toEqual([
      expect.objectContaining({ property: 'P9', message: expect.stringMatching(/no anchor/) }),
    ])
    // The same envelope, folded by the real rule: refused, and nothing to report.
    const honest = new ThreadReplica(open.thread, params)
    honest.receiveAll(open.log, 0)
    const before = honest.stateHash()
    const refused = honest.receive(forged, 0)
    expect(refused.rejected).toBe('not-an-anchor')
    const none: Violation[] = []
    checkDelivery(0, forged, honest, params, { refused: refused.rejected!, hashBefore: before }, none)
    expect(none).toEqual([])
  })

  it('flags a refusal that changed the state (a fold that leaks what it refused)', async () => {
    const { stranger, params, open } = await opening(151)
    const replica = new ThreadReplica(open.thread, params)
    replica.receiveAll(open.log, 0)
    const before = replica.stateHash()
    const stray = await sign(
      stranger,
      'RECONCILE',
      open.thread,
      { thread: open.thread, merged: [], orphaned: [], salvaged: [] },
      { lamport: 9 },
    )
    const result = replica.receive(stray, 0)
    expect(result.rejected).toBe('not-an-anchor')
    // The broken rule: the refused envelope left a trace in the folded state.
    ;(replica.state.reconciles as string[]).push(stray.id)
    const violations: Violation[] = []
    checkDelivery(0, stray, replica, params, { refused: result.rejected!, hashBefore: before }, violations)
    expect(violations).toEqual([
      expect.objectContaining({ property: 'P9', message: expect.stringMatching(/changed the state/) }),
    ])
  })

  it('judges lease verbs, judges and epochs by the rules, not by the fold', async () => {
    const { stranger, anchor, verifier, params, open } = await opening(152)
    const task = taskOf(open, 'digest')
    const worker = (await makeIdentities(1, 153))[0]!
    const claim = await sign(
      worker,
      'CLAIM',
      open.thread,
      { task, leaseTtlMs: 1000, cost: 1, etaMs: 1 },
      { lamport: 5 },
    )
    const grant = await sign(
      anchor,
      'GRANT',
      open.thread,
      { task, claim: claim.id, leaseTtlMs: 1000 },
      { lamport: 6 },
    )
    const heartbeat = await sign(
      stranger,
      'HEARTBEAT',
      open.thread,
      { task, claim: claim.id, progress: 1 },
      { lamport: 7, fence: claim.id },
    )
    const early = await sign(
      verifier,
      'CLAIM',
      open.thread,
      { task, leaseTtlMs: 1000, cost: 1, etaMs: 1 },
      { lamport: 8, epoch: 9 },
    )
    // A stand-in replica whose (broken) fold accepted everything it holds.
    const log = [...open.log, claim, grant, heartbeat, early]
    const byId = new Map(log.map((env) => [env.id, env]))
    const fake = {
      envelopes: () => log,
      get: (id: string) => byId.get(id),
      state: { rejected: new Map(), tasks: new Map() },
    } as unknown as ThreadReplica
    expect(authorityProblem(grant, fake, params)).toBeUndefined()
    expect(authorityProblem(heartbeat, fake, params)).toMatch(/lease holder/)
    expect(authorityProblem(early, fake, params)).toMatch(/no anchor had issued/)
    expect(authorityProblem({ ...claim, net: 'bafyreiother' } as AnyEnvelope, fake, params)).toMatch(
      /another network/,
    )
  })
})

describe('P10 checker', () => {
  it('reports a run that did not converge and a funded NEED that never reached FINAL', () => {
    const violations: Violation[] = []
    checkLiveness(
      {
        converged: false,
        quietMs: 30_000,
        needs: [
          { need: 'n1', final: true },
          { need: 'n2', final: false },
        ],
      },
      violations,
    )
    expect(violations.map((v) => v.property)).toEqual(['P10', 'P10'])
    expect(violations[1]).toMatchObject({ thread: 'n2' })
    const none: Violation[] = []
    checkLiveness({ converged: true, quietMs: 30_000, needs: [{ need: 'n1', final: true }] }, none)
    expect(none).toEqual([])
  })
})

describe('the generated attacker', () => {
  it('draws its attacks from the seed, and every attack of a run is refused or contained (P9 and P10 hold)', {
    timeout: 120_000,
  }, async () => {
    const seen = new Map<number, string>()
    for (const seed of [3, 4]) {
      const result = await runSimulation({ seed, faults: 'attacker', economy: true })
      expect(result.violations).toEqual([])
      expect(result.finalizedNeeds).toBe(result.needs)
      expect(result.converged).toBe(true)
      const attacks = result.attacks!
      const entries = Object.entries(attacks)
      expect(entries.length).toBeGreaterThan(5)
      for (const [name, { tried, refused }] of entries) {
        expect(ATTACKS).toContain(name)
        expect(refused, name).toBe(tried)
      }
      // The honest replicas refused with the rules' codes, and nothing else.
      expect(Object.keys(result.refusals)).toContain('not-an-anchor')
      for (const code of Object.keys(result.refusals)) expect(Object.keys(REFUSALS)).toContain(code)
      seen.set(seed, JSON.stringify(attacks))
    }
    // Another seed, another sequence of attacks.
    expect(seen.get(3)).not.toBe(seen.get(4))
  })
})
