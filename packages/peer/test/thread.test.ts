import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { artifactCid } from '../src/core/artifacts.ts'
import { type NetworkParams, networkParams } from '../src/core/thread/params.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import { checkPatch } from '../src/core/thread/state.ts'
import type { AnyEnvelope, Envelope } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'
import { makeIdentities, sign } from './helpers.ts'

const text = (s: string) => new TextEncoder().encode(s)
const input = artifactCid(text('to be or not to be'))
const output1 = artifactCid(text('out-1'))
const output2 = artifactCid(text('out-2'))
const thread = 'need-test-1'

let ids: Identity[]
let requester: Identity
let planner: Identity
let worker: Identity
let worker2: Identity
let verifiers: Identity[]
let decider: Identity
let bootstrap: NetworkParams
let full: NetworkParams

beforeAll(async () => {
  ids = await makeIdentities(16, 7)
  ;[requester, planner, worker, worker2, decider] = ids as [Identity, Identity, Identity, Identity, Identity]
  verifiers = ids.slice(5, 15)
  bootstrap = networkParams({
    verifiers: verifiers.slice(0, 3).map((v) => v.did),
    bootstrap: true,
    tChallengeMs: 100,
  })
  full = networkParams({ verifiers: verifiers.map((v) => v.did), bootstrap: false, tChallengeMs: 100 })
})

const needPayload = {
  need: thread,
  epoch: 1,
  requires: ['word-frequency', 'sha256'],
  inputs: [input],
  produces: 'text/plain',
  budget: 10,
  deadlineMs: 0,
  bidWindowMs: 200,
}
const patch = [
  { name: 'count', capability: 'word-frequency', inputs: [input], produces: 'application/json' },
  { name: 'digest', capability: 'sha256', inputs: ['task:count'], produces: 'text/plain' },
]
const proposePayload = (proposal: string) => ({
  need: thread,
  proposal,
  patch,
  ballot: 1,
  price: 4,
  etaMs: 10,
  shardDependencies: [],
})

/** A whole happy path for the first task, K = 1 (bootstrap): returns the log in order. */
async function happyPath(params: NetworkParams): Promise<AnyEnvelope[]> {
  const v = verifiers.filter((x) => params.verifiers.includes(x.did))
  const k = params.bootstrap ? 1 : 3
  const log: AnyEnvelope[] = []
  log.push(await sign(requester, 'NEED', thread, needPayload))
  log.push(await sign(planner, 'PROPOSE', thread, proposePayload('p1')))
  const attestations: AnyEnvelope[] = []
  for (const verifier of v.slice(0, k)) {
    const a = await sign(verifier, 'ATTEST_PLAN', thread, { need: thread, proposal: 'p1', verdict: 'accept' })
    attestations.push(a)
    log.push(a)
  }
  log.push(
    await sign(decider, 'DECIDE', thread, {
      need: thread,
      proposal: 'p1',
      epoch: 1,
      lamport: 100,
      kPlan: k,
      decider: decider.did,
      attestations: attestations as Envelope[],
    }),
  )
  const claim = await sign(worker, 'CLAIM', thread, { task: 'p1/count', leaseTtlMs: 1000, cost: 3, etaMs: 5 })
  log.push(claim)
  log.push(
    await sign(
      worker,
      'HEARTBEAT',
      thread,
      { task: 'p1/count', claim: claim.id, progress: 500 },
      { fence: claim.id },
    ),
  )
  const commit = await sign(
    worker,
    'COMMIT',
    thread,
    {
      task: 'p1/count',
      claim: claim.id,
      outputs: [output1],
      telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
      verifyBounty: 0,
    },
    { fence: claim.id },
  )
  log.push(commit)
  return log
}

function replicaOf(log: readonly AnyEnvelope[], params: NetworkParams, at = 0): ThreadReplica {
  const replica = new ThreadReplica(thread, params)
  for (const env of log) replica.receive(env, at)
  return replica
}

describe('a thread from NEED to FINALIZE', () => {
  it('walks every state and emits the effects roles act on', async () => {
    const log = await happyPath(bootstrap)
    const replica = new ThreadReplica(thread, bootstrap)
    const effects: string[] = []
    for (const env of log) {
      const result = replica.receive(env, 0)
      expect(result.rejected).toBeUndefined()
      effects.push(...result.effects.map((e) => e.type))
    }
    expect(effects).toEqual([
      'need',
      'proposal',
      'plan-quorum',
      'decided',
      'task-ready',
      'task-claimed',
      'task-committed',
    ])
    const task = replica.state.tasks.get('p1/count')!
    expect(task.state).toBe('COMMITTED')
    const committee = task.commit!.committee
    const member = verifiers.find((v) => v.did === committee[0])!
    const attest = await sign(member, 'ATTEST', thread, {
      task: 'p1/count',
      commit: task.commit!.id,
      verdict: 'pass',
      evalDigest: 'd',
    })
    expect(replica.receive(attest, 10).effects.map((e) => e.type)).toEqual(['task-verified'])
    expect(replica.tick(109)).toEqual([])
    expect(replica.tick(110)).toEqual([{ type: 'finalize-due', task: 'p1/count', commit: task.commit!.id }])
    expect(replica.nextDueMs()).toBe(200)
    expect(replica.tick(200)).toEqual([{ type: 'bid-window-closed' }])
    expect(replica.tick(10_000)).toEqual([])
    const finalize = await sign(worker, 'FINALIZE', thread, {
      task: 'p1/count',
      commit: task.commit!.id,
      attestations: [attest as Envelope],
    })
    const done = replica.receive(finalize, 200)
    expect(done.rejected).toBeUndefined()
    expect(done.effects).toEqual([
      { type: 'task-final', task: 'p1/count', commit: task.commit!.id },
      { type: 'task-ready', task: 'p1/digest' },
    ])
    const plan = replica.plan()
    expect(plan.task('p1/count')?.state).toBe('FINAL')
    expect(plan.task('p1/count')?.outputs).toEqual([output1])
    expect(plan.readyTasks(thread).map((t) => t.id)).toEqual(['p1/digest'])
    expect(plan.parents('p1/digest')).toEqual(['p1/count'])
    // A second FINALIZE is not applied twice.
    const again = await sign(requester, 'FINALIZE', thread, {
      task: 'p1/count',
      commit: task.commit!.id,
      attestations: [attest as Envelope],
    })
    expect(replica.receive(again, 300).rejected).toBe('already-final')
  })

  it('reaches the same state hash whatever the arrival order (P2)', async () => {
    const log = await happyPath(full)
    const reference = replicaOf(log, full).stateHash()
    fc.assert(
      fc.property(fc.shuffledSubarray(log, { minLength: log.length, maxLength: log.length }), (shuffled) => {
        const replica = replicaOf(shuffled, full)
        expect(replica.stateHash()).toBe(reference)
        expect(replica.state.tasks.get('p1/count')?.state).toBe('COMMITTED')
      }),
      { numRuns: 60 },
    )
    // Duplicates change nothing.
    expect(replicaOf([...log, ...log], full).stateHash()).toBe(reference)
  })
})

describe('quorums (P6)', () => {
  it('a DECIDE needs K_plan distinct eligible attestations', async () => {
    const need = await sign(requester, 'NEED', thread, needPayload)
    const propose = await sign(planner, 'PROPOSE', thread, proposePayload('p1'))
    const good = await Promise.all(
      verifiers
        .slice(0, 2)
        .map((v) => sign(v, 'ATTEST_PLAN', thread, { need: thread, proposal: 'p1', verdict: 'accept' })),
    )
    const outsider = await sign(worker, 'ATTEST_PLAN', thread, {
      need: thread,
      proposal: 'p1',
      verdict: 'accept',
    })
    const decide = (attestations: AnyEnvelope[], kPlan = 3) =>
      sign(decider, 'DECIDE', thread, {
        need: thread,
        proposal: 'p1',
        epoch: 1,
        lamport: 9,
        kPlan,
        decider: decider.did,
        attestations: attestations as Envelope[],
      })
    const base = [need, propose, ...good, outsider]
    const replica = replicaOf(base, full)
    expect(replica.state.rejected.get(outsider.id)).toBe('not-a-verifier')
    expect(replica.receive(await decide([...good, outsider]), 0).rejected).toBe('attester-not-a-verifier')
    expect(replica.receive(await decide([...good, good[0]!]), 0).rejected).toBe('insufficient-quorum')
    expect(replica.receive(await decide(good, 1), 0).rejected).toBe('kplan-too-small')
    const third = await sign(verifiers[2]!, 'ATTEST_PLAN', thread, {
      need: thread,
      proposal: 'p1',
      verdict: 'accept',
    })
    expect(replica.receive(third, 0).effects).toEqual([{ type: 'plan-quorum', proposal: 'p1' }])
    expect(replica.receive(await decide([...good, third]), 0).rejected).toBeUndefined()
    expect(replica.state.winner?.proposal).toBe('p1')
  })

  it('outside bootstrap a planner cannot attest its own plan; equivocation is recorded, counted once', async () => {
    const selfPlanner = verifiers[0]!
    const log = [
      await sign(requester, 'NEED', thread, needPayload),
      await sign(selfPlanner, 'PROPOSE', thread, proposePayload('p1')),
      await sign(selfPlanner, 'ATTEST_PLAN', thread, { need: thread, proposal: 'p1', verdict: 'accept' }),
      await sign(verifiers[1]!, 'ATTEST_PLAN', thread, { need: thread, proposal: 'p1', verdict: 'accept' }),
      await sign(verifiers[1]!, 'ATTEST_PLAN', thread, { need: thread, proposal: 'p1', verdict: 'reject' }),
    ]
    const replica = replicaOf(log, full)
    expect(replica.state.rejected.get(log[2]!.id)).toBe('self-attestation')
    expect(replica.state.rejected.get(log[4]!.id)).toBe('duplicate-vote')
    expect(replica.state.equivocations).toHaveLength(1)
    expect(replica.state.equivocations[0]!.sender).toBe(verifiers[1]!.did)
    expect(replicaOf(log, bootstrap).state.rejected.get(log[2]!.id)).toBeUndefined()
  })
})

describe('leases and fencing (P4, P5)', () => {
  async function decided(): Promise<AnyEnvelope[]> {
    return (await happyPath(bootstrap)).slice(0, 4)
  }

  it('one live lease per task; release reopens it in a new round', async () => {
    const log = await decided()
    const replica = replicaOf(log, bootstrap)
    const claim = await sign(worker, 'CLAIM', thread, {
      task: 'p1/count',
      leaseTtlMs: 1000,
      cost: 3,
      etaMs: 5,
    })
    const rival = await sign(worker2, 'CLAIM', thread, {
      task: 'p1/count',
      leaseTtlMs: 1000,
      cost: 1,
      etaMs: 5,
    })
    expect(replica.receive(claim, 0).rejected).toBeUndefined()
    expect(replica.receive(rival, 0).rejected).toBe('lease-held')
    const child = await sign(worker2, 'CLAIM', thread, {
      task: 'p1/digest',
      leaseTtlMs: 1000,
      cost: 1,
      etaMs: 5,
    })
    expect(replica.receive(child, 0).rejected).toBe('parents-unfinished')
    expect(replica.tick(1499)).toEqual([{ type: 'bid-window-closed' }])
    expect(replica.tick(1500)).toEqual([{ type: 'lease-expired', task: 'p1/count', claim: claim.id }])
    const release = await sign(worker2, 'RELEASE', thread, {
      task: 'p1/count',
      claim: claim.id,
      reason: 'lease-expired',
    })
    const released = replica.receive(release, 1600)
    expect(released.effects.map((e) => e.type)).toEqual(['task-reopened', 'task-ready'])
    expect(replica.state.tasks.get('p1/count')).toMatchObject({ round: 2, state: 'DECIDED' })
    // The old holder can no longer heartbeat or commit (P4).
    const late = await sign(
      worker,
      'HEARTBEAT',
      thread,
      { task: 'p1/count', claim: claim.id, progress: 900 },
      { fence: claim.id },
    )
    expect(replica.receive(late, 1700).rejected).toBe('stale-lease')
    const lateCommit = await sign(
      worker,
      'COMMIT',
      thread,
      {
        task: 'p1/count',
        claim: claim.id,
        outputs: [output1],
        telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
        verifyBounty: 0,
      },
      { fence: claim.id },
    )
    expect(replica.receive(lateCommit, 1700).rejected).toBe('stale-lease')
    const again = await sign(worker2, 'CLAIM', thread, {
      task: 'p1/count',
      leaseTtlMs: 1000,
      cost: 1,
      etaMs: 5,
    })
    expect(replica.receive(again, 1800).rejected).toBeUndefined()
    expect(replica.plan().task('p1/count')).toMatchObject({ state: 'CLAIMED', stateEpoch: 2 })
  })

  it('refuses a missing fence, a stranger, and a stale epoch', async () => {
    const log = await decided()
    const replica = replicaOf(log, bootstrap)
    const claim = await sign(worker, 'CLAIM', thread, {
      task: 'p1/count',
      leaseTtlMs: 1000,
      cost: 3,
      etaMs: 5,
    })
    replica.receive(claim, 0)
    const commit = (who: Identity, fence: string | undefined, epoch = 1) =>
      sign(
        who,
        'COMMIT',
        thread,
        {
          task: 'p1/count',
          claim: claim.id,
          outputs: [output2],
          telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
          verifyBounty: 0,
        },
        { ...(fence === undefined ? {} : { fence }), epoch },
      )
    expect(replica.receive(await commit(worker, undefined), 0).rejected).toBe('bad-fence')
    expect(replica.receive(await commit(worker2, claim.id), 0).rejected).toBe('not-lease-holder')
    expect(replica.receive(await commit(worker, claim.id), 0).rejected).toBeUndefined()
  })
})

describe('YIELD and UPDATE_PLAN', () => {
  it('a holder may yield its lease; only the plan owner may annotate, and only its tasks', async () => {
    const log = (await happyPath(bootstrap)).slice(0, 4)
    const replica = replicaOf(log, bootstrap)
    const claim = await sign(worker, 'CLAIM', thread, {
      task: 'p1/count',
      leaseTtlMs: 1000,
      cost: 3,
      etaMs: 5,
    })
    replica.receive(claim, 0)
    const stranger = await sign(worker2, 'YIELD', thread, { task: 'p1/count', claim: claim.id })
    expect(replica.receive(stranger, 0).rejected).toBe('not-lease-holder')
    const yielded = await sign(worker, 'YIELD', thread, { task: 'p1/count', claim: claim.id })
    expect(replica.receive(yielded, 0).rejected).toBeUndefined()
    expect(replica.state.tasks.get('p1/count')).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(replica.state.tasks.get('p1/count')?.lease).toBeUndefined()

    const annotate = (who: Identity, task: string) =>
      sign(who, 'UPDATE_PLAN', thread, {
        ops: [{ op: 'ANNOTATE', task, key: 'note', value: `by ${who.did.slice(-4)}` }],
      })
    expect(replica.receive(await annotate(worker2, 'p1/count'), 0).rejected).toBe('not-plan-owner')
    expect(replica.receive(await annotate(planner, 'p9/none'), 0).rejected).toBe('unknown-task')
    const state = await sign(planner, 'UPDATE_PLAN', thread, {
      ops: [{ op: 'STATE', task: 'p1/count', state: 'FINAL', epoch: 9 }],
    })
    expect(replica.receive(state, 0).rejected).toBe('op-not-allowed:STATE')
    expect(replica.receive(await annotate(planner, 'p1/count'), 0).rejected).toBeUndefined()
    expect(replica.plan().task('p1/count')?.annotations.note).toBe(`by ${planner.did.slice(-4)}`)
    expect(replica.plan().task('p1/count')?.state).toBe('DECIDED')
  })
})

describe('results: rejection, challenge, invalidation', () => {
  it('a failing quorum reopens the task; an upheld challenge invalidates a FINAL result and raises K', async () => {
    const log = await happyPath(full)
    const replica = replicaOf(log, full)
    const task = () => replica.state.tasks.get('p1/count')!
    const commit = task().commit!
    expect(commit.committee).toHaveLength(5)
    expect(commit.committee).not.toContain(worker.did)
    const member = (i: number) => verifiers.find((v) => v.did === commit.committee[i])!
    const vote = (i: number, verdict: 'pass' | 'fail', c = commit.id) =>
      sign(member(i), 'ATTEST', thread, { task: 'p1/count', commit: c, verdict, evalDigest: 'x' })
    const outsider = verifiers.find((v) => !commit.committee.includes(v.did))!
    const stranger = await sign(outsider, 'ATTEST', thread, {
      task: 'p1/count',
      commit: commit.id,
      verdict: 'pass',
      evalDigest: 'x',
    })
    expect(replica.receive(stranger, 0).rejected).toBe('not-in-committee')
    for (let i = 0; i < 3; i += 1) replica.receive(await vote(i, 'fail'), 0)
    expect(task()).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(task().pastCommits[0]!.outcome).toBe('rejected')

    // Round 2: a wrong result slips through with 3 passes, is finalized, then challenged.
    const claim = await sign(worker2, 'CLAIM', thread, {
      task: 'p1/count',
      leaseTtlMs: 1000,
      cost: 3,
      etaMs: 5,
    })
    replica.receive(claim, 0)
    const commit2 = await sign(
      worker2,
      'COMMIT',
      thread,
      {
        task: 'p1/count',
        claim: claim.id,
        outputs: [output2],
        telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
        verifyBounty: 0,
      },
      { fence: claim.id },
    )
    replica.receive(commit2, 0)
    const c2 = task().commit!
    const passes = []
    for (const did of c2.committee.slice(0, 3)) {
      const env = await sign(verifiers.find((v) => v.did === did)!, 'ATTEST', thread, {
        task: 'p1/count',
        commit: c2.id,
        verdict: 'pass',
        evalDigest: 'x',
      })
      passes.push(env)
      replica.receive(env, 0)
    }
    const short = await sign(worker2, 'FINALIZE', thread, {
      task: 'p1/count',
      commit: c2.id,
      attestations: passes.slice(0, 2) as Envelope[],
    })
    expect(replica.receive(short, 0).rejected).toBe('insufficient-quorum')
    const finalize = await sign(worker2, 'FINALIZE', thread, {
      task: 'p1/count',
      commit: c2.id,
      attestations: passes as Envelope[],
    })
    expect(replica.receive(finalize, 0).rejected).toBeUndefined()
    expect(task().state).toBe('FINAL')
    const challenge = await sign(verifiers[9]!, 'CHALLENGE', thread, {
      task: 'p1/count',
      commit: c2.id,
      proof: { type: 'output-mismatch', expected: [output1] },
      bond: 10,
    })
    const cheap = await sign(verifiers[8]!, 'CHALLENGE', thread, {
      task: 'p1/count',
      commit: c2.id,
      proof: { type: 'output-mismatch', expected: [output1] },
      bond: 9,
    })
    expect(replica.receive(cheap, 0).rejected).toBe('bond-too-small')
    expect(replica.receive(challenge, 0).effects).toEqual([
      { type: 'challenged', task: 'p1/count', commit: c2.id, challenge: challenge.id },
    ])
    const judges = verifiers.filter((v) => v.did !== worker2.did).slice(0, 3)
    for (const [index, judge] of judges.entries()) {
      const result = replica.receive(
        await sign(judge, 'INVALIDATE', thread, { task: 'p1/count', commit: c2.id, challenge: challenge.id }),
        0,
      )
      expect(result.rejected).toBeUndefined()
      if (index < 2) expect(task().state).toBe('FINAL')
    }
    expect(task()).toMatchObject({ state: 'DECIDED', round: 3, kResult: 4 })
    expect(task().pastCommits.map((c) => c.outcome)).toEqual(['rejected', 'invalidated'])
    expect(replica.plan().task('p1/count')).toMatchObject({ state: 'DECIDED', stateEpoch: 3 })
  })
})

describe('conflicting DECIDEs after a partition', () => {
  it('the higher epoch wins everywhere; the loser is orphaned and its work refused', async () => {
    const [need, propose1] = await Promise.all([
      sign(requester, 'NEED', thread, needPayload, { lamport: 1 }),
      sign(planner, 'PROPOSE', thread, proposePayload('p1'), { lamport: 2 }),
    ])
    const propose2 = await sign(worker2, 'PROPOSE', thread, proposePayload('p2'), { lamport: 2 })
    const a1 = await sign(
      verifiers[0]!,
      'ATTEST_PLAN',
      thread,
      { need: thread, proposal: 'p1', verdict: 'accept' },
      { lamport: 3 },
    )
    const a2 = await sign(
      verifiers[1]!,
      'ATTEST_PLAN',
      thread,
      { need: thread, proposal: 'p2', verdict: 'accept' },
      { lamport: 3 },
    )
    const decideOf = (
      proposal: string,
      epoch: number,
      lamport: number,
      attestation: AnyEnvelope,
      who: Identity,
    ) =>
      sign(
        who,
        'DECIDE',
        thread,
        {
          need: thread,
          proposal,
          epoch,
          lamport,
          kPlan: 1,
          decider: who.did,
          attestations: [attestation as Envelope],
        },
        { epoch, lamport },
      )
    const d1 = await decideOf('p1', 1, 10, a1, decider)
    const d2 = await decideOf('p2', 2, 5, a2, requester)
    const claimOld = await sign(
      worker,
      'CLAIM',
      thread,
      { task: 'p1/count', leaseTtlMs: 1000, cost: 3, etaMs: 5 },
      { lamport: 11 },
    )
    const left = replicaOf([need, propose1, propose2, a1, a2, d1, claimOld], bootstrap)
    expect(left.state.winner?.proposal).toBe('p1')
    expect(left.state.tasks.get('p1/count')?.state).toBe('CLAIMED')
    const healed = replicaOf([need, propose1, propose2, a1, a2, d1, claimOld, d2], bootstrap)
    const right = replicaOf([d2, claimOld, d1, a2, a1, propose2, propose1, need], bootstrap)
    expect(healed.stateHash()).toBe(right.stateHash())
    expect(healed.state.winner?.proposal).toBe('p2')
    expect(healed.state.rejected.get(claimOld.id)).toBe('orphaned-task')
    expect(healed.plan().task('p1/count')?.annotations.orphanedByEpoch).toBe('2')
    expect(healed.plan().task('p2/count')?.annotations.orphanedByEpoch).toBeUndefined()
    // Work on the winner at the old epoch is fenced off.
    const stale = await sign(
      worker,
      'CLAIM',
      thread,
      { task: 'p2/count', leaseTtlMs: 1000, cost: 3, etaMs: 5 },
      { lamport: 20, epoch: 1 },
    )
    expect(healed.receive(stale, 0).rejected).toBe('stale-epoch')
  })
})

describe('plan patches', () => {
  const need = {
    env: 'x',
    requester: 'did:key:x',
    payload: needPayload,
    requires: needPayload.requires,
    inputs: [input],
    budget: 10,
    bidWindowMs: 1,
  }
  it('rejects cycles, unknown inputs, unrequired capabilities and over-budget plans', () => {
    const base = proposePayload('p')
    expect(checkPatch(base, need)).toBeUndefined()
    expect(checkPatch({ ...base, price: 11 }, need)).toBe('over-budget')
    expect(
      checkPatch(
        {
          ...base,
          patch: [
            { name: 'a', capability: 'sha256', inputs: ['task:b'], produces: 'x' },
            { name: 'b', capability: 'sha256', inputs: ['task:a'], produces: 'x' },
          ],
        },
        need,
      ),
    ).toBe('cyclic-plan')
    expect(
      checkPatch(
        { ...base, patch: [{ name: 'a', capability: 'sha256', inputs: [output1], produces: 'x' }] },
        need,
      ),
    ).toBe('unknown-input:a')
    expect(
      checkPatch(
        { ...base, patch: [{ name: 'a', capability: 'sort-dedupe', inputs: [input], produces: 'x' }] },
        need,
      ),
    ).toBe('capability-not-required:sort-dedupe')
    expect(checkPatch({ ...base, patch: [...base.patch, base.patch[0]!] }, need)).toBe('duplicate-task:count')
  })
})

describe('an open verifier pool (bootstrap, nobody listed)', () => {
  it('lets any peer attest plans and results with K = 1', async () => {
    const open = networkParams({ verifiers: [], bootstrap: true })
    const stranger = verifiers[9]!
    const need = await sign(requester, 'NEED', thread, needPayload)
    const propose = await sign(planner, 'PROPOSE', thread, proposePayload('p1'))
    const vote = await sign(stranger, 'ATTEST_PLAN', thread, {
      need: thread,
      proposal: 'p1',
      verdict: 'accept',
    })
    const decide = await sign(decider, 'DECIDE', thread, {
      need: thread,
      proposal: 'p1',
      epoch: 1,
      lamport: 50,
      kPlan: 1,
      decider: decider.did,
      attestations: [vote as Envelope],
    })
    const claim = await sign(worker, 'CLAIM', thread, {
      task: 'p1/count',
      leaseTtlMs: 1000,
      cost: 3,
      etaMs: 5,
    })
    const commit = await sign(
      worker,
      'COMMIT',
      thread,
      {
        task: 'p1/count',
        claim: claim.id,
        outputs: [output1],
        telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
        verifyBounty: 0,
      },
      { fence: claim.id },
    )
    const pass = await sign(stranger, 'ATTEST', thread, {
      task: 'p1/count',
      commit: commit.id,
      verdict: 'pass',
      evalDigest: 'x',
    })
    const replica = replicaOf([need, propose, vote, decide, claim, commit, pass], open)
    expect([...replica.state.rejected.values()]).toEqual([])
    expect(replica.state.tasks.get('p1/count')?.state).toBe('VERIFIED')
    // A closed pool refuses the same stranger.
    const closed = replicaOf([need, propose, vote, decide], bootstrap)
    expect(closed.state.rejected.get(vote.id)).toBe('not-a-verifier')
    expect(closed.state.winner).toBeUndefined()
  })
})

describe('an invalidated parent', () => {
  it('supersedes every result computed from it, and they are redone once the parent is FINAL again', async () => {
    const log = (await happyPath(bootstrap)).slice(0, 4)
    const replica = replicaOf(log, bootstrap)
    const judge = verifiers.find((v) => bootstrap.verifiers.includes(v.did))!
    const finish = async (task: string, who: Identity, output: string) => {
      const claim = await sign(who, 'CLAIM', thread, { task, leaseTtlMs: 1000, cost: 1, etaMs: 1 })
      replica.receive(claim, 0)
      const commit = await sign(
        who,
        'COMMIT',
        thread,
        {
          task,
          claim: claim.id,
          outputs: [output],
          telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
          verifyBounty: 0,
        },
        { fence: claim.id },
      )
      replica.receive(commit, 0)
      const pass = await sign(judge, 'ATTEST', thread, {
        task,
        commit: commit.id,
        verdict: 'pass',
        evalDigest: 'x',
      })
      replica.receive(pass, 0)
      replica.receive(
        await sign(who, 'FINALIZE', thread, { task, commit: commit.id, attestations: [pass as Envelope] }),
        0,
      )
      return commit
    }
    const parentCommit = await finish('p1/count', worker, output1)
    await finish('p1/digest', worker, output2)
    expect(replica.state.tasks.get('p1/digest')?.state).toBe('FINAL')
    const challenge = await sign(judge, 'CHALLENGE', thread, {
      task: 'p1/count',
      commit: parentCommit.id,
      proof: { type: 'output-mismatch', expected: [output2] },
      bond: 10,
    })
    replica.receive(challenge, 0)
    replica.receive(
      await sign(verifiers[0]!, 'INVALIDATE', thread, {
        task: 'p1/count',
        commit: parentCommit.id,
        challenge: challenge.id,
      }),
      0,
    )
    const parent = replica.state.tasks.get('p1/count')!
    const child = replica.state.tasks.get('p1/digest')!
    expect(parent).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(child).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(child.pastCommits.map((c) => c.outcome)).toEqual(['superseded'])
    expect(
      replica
        .plan()
        .readyTasks(thread)
        .map((t) => t.id),
    ).toEqual(['p1/count'])
  })
})
