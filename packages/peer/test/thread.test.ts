import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  makeIdentities,
  type SignExtra,
  sign,
  signNeed,
  testParams,
} from '../../../test-support/envelopes.ts'
import { artifactCid } from '../src/core/artifacts.ts'
import { type NetworkParams, poolSnapshotOf } from '../src/core/thread/params.ts'
import { refusalRule } from '../src/core/thread/refusals.ts'
import { FOLD_SNAPSHOT_SPACING, ThreadReplica } from '../src/core/thread/replica.ts'
import { checkPatch } from '../src/core/thread/state.ts'
import type { AnyEnvelope, Envelope, NeedPayload } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'

const text = (s: string) => new TextEncoder().encode(s)
const input = artifactCid(text('to be or not to be'))
const output1 = artifactCid(text('out-1'))
const output2 = artifactCid(text('out-2'))
/** The id of a network other than the test network. */
const OTHER_NET = artifactCid(text('another network'))

let requester: Identity
let planner: Identity
let worker: Identity
let worker2: Identity
/** The network's anchors: the only signers of DECIDE, GRANT, FINALIZE, RECONCILE, CHECKPOINT, scavenging. */
let anchor: Identity
let anchor2: Identity
/** A key of nobody in particular: no anchor, no verifier. */
let stranger: Identity
let verifiers: Identity[]
let bootstrap: NetworkParams
let full: NetworkParams
let need: Envelope<'NEED'>
let thread: string

const needFields: Omit<NeedPayload, 'need'> = {
  epoch: 1,
  requires: ['word-frequency', 'sha256'],
  inputs: [input],
  produces: 'text/plain',
  budget: 10,
  deadlineMs: 0,
  bidWindowMs: 200,
}

beforeAll(async () => {
  const ids = await makeIdentities(17, 7)
  ;[requester, planner, worker, worker2, anchor, anchor2, stranger] = ids as [
    Identity,
    Identity,
    Identity,
    Identity,
    Identity,
    Identity,
    Identity,
  ]
  verifiers = ids.slice(7, 17)
  const anchors = [anchor.did, anchor2.did]
  bootstrap = testParams({
    anchors,
    verifiers: verifiers.slice(0, 3).map((v) => v.did),
    bootstrap: true,
    tChallengeMs: 100,
  })
  full = testParams({ anchors, verifiers: verifiers.map((v) => v.did), bootstrap: false, tChallengeMs: 100 })
  need = await signNeed(requester, needFields)
  thread = need.thread
})

const patch = [
  { name: 'count', capability: 'word-frequency', inputs: [input], produces: 'application/json' },
  { name: 'digest', capability: 'sha256', inputs: ['task:count'], produces: 'text/plain' },
]
const proposePayload = () => ({ need: thread, patch, ballot: 1, price: 4, etaMs: 10, shardDependencies: [] })
const telemetry = { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 }

/** Task ids of a proposal (tasks are `<PROPOSE id>/<name>`, A2). */
const tasksOf = (propose: AnyEnvelope) => ({ count: `${propose.id}/count`, digest: `${propose.id}/digest` })

const proposeBy = (who: Identity, extra: SignExtra = {}) =>
  sign(who, 'PROPOSE', thread, proposePayload(), extra)
const planVote = (
  who: Identity,
  proposal: string,
  verdict: 'accept' | 'reject' = 'accept',
  extra: SignExtra = {},
) => sign(who, 'ATTEST_PLAN', thread, { need: thread, proposal, verdict }, extra)

/** A DECIDE of `proposal` (by default the anchor's, at epoch 1, under the pool of `params`). */
function decideOf(
  proposal: string,
  attestations: AnyEnvelope[],
  params: NetworkParams,
  options: {
    who?: Identity
    decider?: string
    epoch?: number
    envEpoch?: number
    kPlan?: number
    lamport?: number
  } = {},
) {
  const who = options.who ?? anchor
  const epoch = options.epoch ?? 1
  return sign(
    who,
    'DECIDE',
    thread,
    {
      need: thread,
      proposal,
      epoch,
      lamport: options.lamport ?? 9,
      kPlan: options.kPlan ?? attestations.length,
      decider: options.decider ?? who.did,
      attestations: attestations as Envelope[],
      pool: poolSnapshotOf(params),
    },
    {
      epoch: options.envEpoch ?? epoch,
      ...(options.lamport === undefined ? {} : { lamport: options.lamport }),
    },
  )
}

const claimBy = (who: Identity, task: string, extra: SignExtra = {}) =>
  sign(who, 'CLAIM', thread, { task, leaseTtlMs: 1000, cost: 3, etaMs: 5 }, extra)
const grantOf = (claim: AnyEnvelope, who: Identity = anchor, extra: SignExtra = {}) =>
  sign(
    who,
    'GRANT',
    thread,
    { task: (claim as Envelope<'CLAIM'>).payload.task, claim: claim.id, leaseTtlMs: 1000 },
    extra,
  )
const heartbeatBy = (who: Identity, claim: AnyEnvelope, extra: SignExtra = { fence: claim.id }) =>
  sign(
    who,
    'HEARTBEAT',
    thread,
    { task: (claim as Envelope<'CLAIM'>).payload.task, claim: claim.id, progress: 500 },
    extra,
  )
/** A COMMIT of `output` under `claim`'s lease; `inputs`, when given, declares what it was computed from. */
const commitBy = (
  who: Identity,
  claim: AnyEnvelope,
  output: string,
  extra: SignExtra = { fence: claim.id },
  inputs?: string[],
) =>
  sign(
    who,
    'COMMIT',
    thread,
    {
      task: (claim as Envelope<'CLAIM'>).payload.task,
      claim: claim.id,
      ...(inputs === undefined ? {} : { inputs }),
      outputs: [output],
      telemetry,
      verifyBounty: 0,
    },
    extra,
  )
const releaseBy = (
  who: Identity,
  claim: AnyEnvelope,
  reason: 'lease-expired' | 'worker-failed' | 'orphaned',
) =>
  sign(who, 'RELEASE', thread, { task: (claim as Envelope<'CLAIM'>).payload.task, claim: claim.id, reason })
const resultVote = (who: Identity, task: string, commit: string, verdict: 'pass' | 'fail' = 'pass') =>
  sign(who, 'ATTEST', thread, { task, commit, verdict, evalDigest: 'x' })
const finalizeBy = (who: Identity, task: string, commit: string, attestations: AnyEnvelope[]) =>
  sign(who, 'FINALIZE', thread, { task, commit, attestations: attestations as Envelope[] })

/** NEED → PROPOSE → K_plan ATTEST_PLANs → the anchor's DECIDE. */
async function opening(params: NetworkParams) {
  const eligible = verifiers.filter((x) => params.verifiers.includes(x.did))
  const k = params.bootstrap ? 1 : 3
  const propose = await proposeBy(planner)
  const votes: AnyEnvelope[] = []
  for (const verifier of eligible.slice(0, k)) votes.push(await planVote(verifier, propose.id))
  const decide = await decideOf(propose.id, votes, params)
  return { log: [need as AnyEnvelope, propose, ...votes, decide], propose, decide, ...tasksOf(propose) }
}

/** The opening, then the first task claimed, granted by the anchor, renewed and committed. */
async function happyPath(params: NetworkParams, by: Identity = worker) {
  const open = await opening(params)
  const claim = await claimBy(by, open.count)
  const grant = await grantOf(claim)
  const heartbeat = await heartbeatBy(by, claim)
  const commit = await commitBy(by, claim, output1)
  return { ...open, claim, grant, commit, log: [...open.log, claim, grant, heartbeat, commit] }
}

function replicaOf(log: readonly AnyEnvelope[], params: NetworkParams, at = 0): ThreadReplica {
  const replica = new ThreadReplica(thread, params)
  for (const env of log) replica.receive(env, at)
  return replica
}

describe('a thread from NEED to FINALIZE', () => {
  it('walks every state and emits the effects roles act on', async () => {
    const path = await happyPath(bootstrap)
    const replica = new ThreadReplica(thread, bootstrap)
    const effects: string[] = []
    for (const env of path.log) {
      const result = replica.receive(env, 0)
      expect(result.rejected).toBeUndefined()
      expect(result.placed).toEqual([env])
      effects.push(...result.effects.map((e) => e.type))
    }
    expect(effects).toEqual([
      'need',
      'proposal',
      'plan-quorum',
      'decided',
      'task-ready',
      'claim-requested',
      'task-claimed',
      'task-committed',
    ])
    const task = replica.state.tasks.get(path.count)!
    expect(task.state).toBe('COMMITTED')
    const member = verifiers.find((v) => v.did === task.commit!.committee[0])!
    const attest = await resultVote(member, path.count, task.commit!.id)
    expect(replica.receive(attest, 10).effects.map((e) => e.type)).toEqual(['task-verified'])
    expect(replica.tick(109)).toEqual([])
    expect(replica.tick(110)).toEqual([{ type: 'finalize-due', task: path.count, commit: task.commit!.id }])
    expect(replica.nextDueMs()).toBe(200)
    expect(replica.tick(200)).toEqual([{ type: 'bid-window-closed' }])
    expect(replica.tick(10_000)).toEqual([])
    // A6: the challenge window is an anchor's judgment — the worker cannot finalize its own result.
    const byWorker = await finalizeBy(worker, path.count, task.commit!.id, [attest])
    expect(replica.receive(byWorker, 200).rejected).toBe('finalize-not-by-anchor')
    expect(replica.state.tasks.get(path.count)?.state).toBe('VERIFIED')
    const finalize = await finalizeBy(anchor, path.count, task.commit!.id, [attest])
    const done = replica.receive(finalize, 200)
    expect(done.rejected).toBeUndefined()
    expect(done.effects).toEqual([
      { type: 'task-final', task: path.count, commit: task.commit!.id },
      { type: 'task-ready', task: path.digest },
    ])
    const plan = replica.plan()
    expect(plan.task(path.count)?.state).toBe('FINAL')
    expect(plan.task(path.count)?.outputs).toEqual([output1])
    expect(plan.readyTasks(thread).map((t) => t.id)).toEqual([path.digest])
    expect(plan.parents(path.digest)).toEqual([path.count])
    // A second FINALIZE, even by another anchor, is not applied twice.
    const again = await finalizeBy(anchor2, path.count, task.commit!.id, [attest])
    expect(replica.receive(again, 300).rejected).toBe('already-final')
  })

  it('reaches the same state hash whatever the arrival order (P2)', async () => {
    const { log, count } = await happyPath(full)
    const reference = replicaOf(log, full).stateHash()
    fc.assert(
      fc.property(fc.shuffledSubarray(log, { minLength: log.length, maxLength: log.length }), (shuffled) => {
        const replica = replicaOf(shuffled, full)
        expect(replica.pendingSize).toBe(0)
        expect(replica.stateHash()).toBe(reference)
        expect(replica.state.tasks.get(count)?.state).toBe('COMMITTED')
      }),
      { numRuns: 60 },
    )
    // Duplicates change nothing; a batch gives the same state as one by one.
    expect(replicaOf([...log, ...log], full).stateHash()).toBe(reference)
    const batch = new ThreadReplica(thread, full)
    batch.receiveAll([...log].reverse(), 0)
    expect(batch.stateHash()).toBe(reference)
  })
})

describe('quorums (P6)', () => {
  it('a DECIDE needs K_plan distinct eligible attestations, from an anchor that is its decider', async () => {
    const propose = await proposeBy(planner)
    const good = await Promise.all(verifiers.slice(0, 2).map((v) => planVote(v, propose.id)))
    const outsider = await planVote(worker, propose.id)
    const decide = (attestations: AnyEnvelope[], options: Parameters<typeof decideOf>[3] = {}) =>
      decideOf(propose.id, attestations, full, { kPlan: 3, ...options })
    const replica = replicaOf([need, propose, ...good, outsider], full)
    expect(replica.state.rejected.get(outsider.id)).toBe('not-a-verifier')
    expect(replica.receive(await decide([...good, outsider]), 0).rejected).toBe('attester-not-a-verifier')
    expect(replica.receive(await decide([...good, good[0]!]), 0).rejected).toBe('insufficient-quorum')
    expect(replica.receive(await decide(good, { kPlan: 1 }), 0).rejected).toBe('kplan-too-small')
    const third = await planVote(verifiers[2]!, propose.id)
    expect(replica.receive(third, 0).effects).toEqual([{ type: 'plan-quorum', proposal: propose.id }])
    const quorum = [...good, third]
    // A3: a valid quorum decided by anyone but an anchor, or in another anchor's name, or with its
    // payload epoch apart from its envelope's, is refused.
    expect(replica.receive(await decide(quorum, { who: stranger }), 0).rejected).toBe('not-an-anchor')
    expect(replica.receive(await decide(quorum, { who: verifiers[3]! }), 0).rejected).toBe('not-an-anchor')
    expect(replica.receive(await decide(quorum, { decider: anchor2.did }), 0).rejected).toBe(
      'decider-not-sender',
    )
    expect(replica.receive(await decide(quorum, { epoch: 2, envEpoch: 1 }), 0).rejected).toBe(
      'epoch-mismatch',
    )
    expect(replica.state.winner).toBeUndefined()
    expect(replica.receive(await decide(quorum), 0).rejected).toBeUndefined()
    expect(replica.state.winner?.proposal).toBe(propose.id)
  })

  it('outside bootstrap a planner cannot attest its own plan; plan votes are evidence, not state', async () => {
    const selfPlanner = verifiers[0]!
    const propose = await proposeBy(selfPlanner)
    const log = [
      need,
      propose,
      await planVote(selfPlanner, propose.id),
      await planVote(verifiers[1]!, propose.id),
      await planVote(verifiers[1]!, propose.id, 'reject'),
    ]
    const replica = replicaOf(log, full)
    expect(replica.state.rejected.get(log[2]!.id)).toBe('self-attestation')
    expect(replica.state.rejected.get(log[4]!.id)).toBe('duplicate-vote')
    expect(replica.state.planVotes.get(propose.id)?.size).toBe(1)
    // Plan votes are judged against each replica's own view of the pool: never part of the hash.
    expect(replica.stateHash()).toBe(replicaOf([need, propose], full).stateHash())
    expect(replicaOf(log, bootstrap).state.rejected.get(log[2]!.id)).toBeUndefined()
  })

  it('a planner has at most maxProposalsPerPlanner proposals accepted per NEED', async () => {
    const proposals = [await proposeBy(planner), await proposeBy(planner), await proposeBy(planner)]
    const replica = replicaOf([need, ...proposals], bootstrap)
    expect(replica.state.proposals.size).toBe(2)
    expect(replica.state.rejected.get(proposals[2]!.id)).toBe('too-many-proposals')
    // Another planner is not held back by the first one's cap.
    expect(replica.receive(await proposeBy(worker2), 0).rejected).toBeUndefined()
  })
})

describe('leases and fencing (P4, P5, A5)', () => {
  it('a CLAIM is a request; an anchor GRANT starts the one live lease; only an anchor scavenges it', async () => {
    const { log, count, digest } = await opening(bootstrap)
    const replica = replicaOf(log, bootstrap)
    const claim = await claimBy(worker, count)
    const rival = await claimBy(worker2, count)
    expect(replica.receive(claim, 0)).toMatchObject({
      effects: [{ type: 'claim-requested', task: count, claim: claim.id }],
    })
    expect(replica.receive(rival, 0).rejected).toBeUndefined()
    expect(replica.state.tasks.get(count)).toMatchObject({ state: 'DECIDED' })
    expect(replica.state.tasks.get(count)?.lease).toBeUndefined()
    expect(replica.receive(await claimBy(worker2, digest), 0).rejected).toBe('parents-unfinished')
    // Nobody but an anchor grants, not even the claimant itself.
    expect(replica.receive(await grantOf(claim, worker), 0).rejected).toBe('grant-not-by-anchor')
    expect(replica.receive(await grantOf(claim, verifiers[0]!), 0).rejected).toBe('grant-not-by-anchor')
    expect(replica.receive(await grantOf(claim), 0).effects).toEqual([
      { type: 'task-claimed', task: count, claim: claim.id },
    ])
    expect(replica.state.tasks.get(count)?.lease?.worker).toBe(worker.did)
    expect(replica.receive(await grantOf(rival, anchor2), 0).rejected).toBe('lease-held')
    expect(replica.receive(await claimBy(worker2, count), 0).rejected).toBe('lease-held')
    expect(replica.tick(1499)).toEqual([{ type: 'bid-window-closed' }])
    expect(replica.tick(1500)).toEqual([{ type: 'lease-expired', task: count, claim: claim.id }])
    // Scavenging is an anchor's judgment: a rival's or the holder's own lease-expired is refused.
    expect(replica.receive(await releaseBy(worker2, claim, 'lease-expired'), 1600).rejected).toBe(
      'scavenge-not-by-anchor',
    )
    expect(replica.receive(await releaseBy(worker, claim, 'orphaned'), 1600).rejected).toBe(
      'scavenge-not-by-anchor',
    )
    const released = replica.receive(await releaseBy(anchor, claim, 'lease-expired'), 1600)
    expect(released.rejected).toBeUndefined()
    expect(released.effects.map((e) => e.type)).toEqual(['task-reopened', 'task-ready'])
    expect(replica.state.tasks.get(count)).toMatchObject({ round: 2, state: 'DECIDED' })
    // The old holder can no longer heartbeat or commit (P4).
    expect(replica.receive(await heartbeatBy(worker, claim), 1700).rejected).toBe('stale-lease')
    expect(replica.receive(await commitBy(worker, claim, output1), 1700).rejected).toBe('stale-lease')
    // A request of an earlier round is never granted.
    expect(replica.receive(await grantOf(rival), 1700).rejected).toBe('claim-not-for-this-round')
    const again = await claimBy(worker2, count)
    expect(replica.receive(again, 1800).rejected).toBeUndefined()
    expect(replica.receive(await grantOf(again, anchor2), 1800).rejected).toBeUndefined()
    expect(replica.plan().task(count)).toMatchObject({ state: 'CLAIMED', stateEpoch: 2 })
  })

  it('refuses a missing or wrong fence, any sender but the lease holder, and an unissued epoch', async () => {
    const { log, count } = await opening(bootstrap)
    const replica = replicaOf(log, bootstrap)
    const claim = await claimBy(worker, count)
    const request = await claimBy(worker2, count)
    replica.receive(claim, 0)
    replica.receive(request, 0)
    replica.receive(await grantOf(claim), 0)
    expect(replica.receive(await commitBy(worker, claim, output2, {}), 0).rejected).toBe('bad-fence')
    expect(replica.receive(await commitBy(worker, claim, output2, { fence: request.id }), 0).rejected).toBe(
      'bad-fence',
    )
    expect(replica.receive(await heartbeatBy(worker, claim, { fence: request.id }), 0).rejected).toBe(
      'bad-fence',
    )
    // A5: only the CLAIM's sender heartbeats, commits, yields or fails its lease.
    expect(replica.receive(await commitBy(worker2, claim, output2), 0).rejected).toBe('not-lease-holder')
    expect(replica.receive(await heartbeatBy(worker2, claim), 0).rejected).toBe('not-lease-holder')
    expect(replica.receive(await heartbeatBy(anchor, claim), 0).rejected).toBe('not-lease-holder')
    expect(replica.receive(await releaseBy(worker2, claim, 'worker-failed'), 0).rejected).toBe(
      'not-lease-holder',
    )
    expect(
      replica.receive(await sign(stranger, 'YIELD', thread, { task: count, claim: claim.id }), 0).rejected,
    ).toBe('not-lease-holder')
    // A request that was never granted holds no lease: its sender's own COMMIT is stale.
    expect(replica.receive(await commitBy(worker2, request, output2), 0).rejected).toBe('stale-lease')
    // A3: an epoch no anchor issued into the thread.
    expect(
      replica.receive(await commitBy(worker, claim, output2, { fence: claim.id, epoch: 2 }), 0).rejected,
    ).toBe('epoch-not-issued')
    expect(replica.state.tasks.get(count)?.state).toBe('CLAIMED')
    expect(replica.receive(await commitBy(worker, claim, output2), 0).rejected).toBeUndefined()
    expect(replica.state.tasks.get(count)?.commit?.worker).toBe(worker.did)
  })

  it('a holder may fail its own lease (worker-failed), which reopens the task', async () => {
    const { log, count } = await opening(bootstrap)
    const claim = await claimBy(worker, count)
    const replica = replicaOf([...log, claim, await grantOf(claim)], bootstrap)
    expect(replica.receive(await releaseBy(worker, claim, 'worker-failed'), 0).rejected).toBeUndefined()
    expect(replica.state.tasks.get(count)).toMatchObject({ state: 'DECIDED', round: 2 })
  })
})

describe('YIELD and UPDATE_PLAN', () => {
  it('a holder may yield its lease; only the plan owner or its decider may annotate, and only its tasks', async () => {
    const { log, count, propose } = await opening(bootstrap)
    const replica = replicaOf(log, bootstrap)
    const claim = await claimBy(worker, count)
    replica.receive(claim, 0)
    replica.receive(await grantOf(claim), 0)
    const stranger = await sign(worker2, 'YIELD', thread, { task: count, claim: claim.id })
    expect(replica.receive(stranger, 0).rejected).toBe('not-lease-holder')
    const yielded = await sign(worker, 'YIELD', thread, { task: count, claim: claim.id })
    expect(replica.receive(yielded, 0).rejected).toBeUndefined()
    expect(replica.state.tasks.get(count)).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(replica.state.tasks.get(count)?.lease).toBeUndefined()

    const annotate = (who: Identity, task: string) =>
      sign(who, 'UPDATE_PLAN', thread, {
        ops: [{ op: 'ANNOTATE', task, key: 'note', value: `by ${who.did.slice(-4)}` }],
      })
    expect(replica.receive(await annotate(worker2, count), 0).rejected).toBe('not-plan-owner')
    expect(replica.receive(await annotate(anchor2, count), 0).rejected).toBe('not-plan-owner')
    expect(replica.receive(await annotate(planner, `${propose.id}/none`), 0).rejected).toBe('unknown-task')
    const state = await sign(planner, 'UPDATE_PLAN', thread, {
      ops: [{ op: 'STATE', task: count, state: 'FINAL', epoch: 9 }],
    })
    expect(replica.receive(state, 0).rejected).toBe('op-not-allowed:STATE')
    expect(replica.receive(await annotate(planner, count), 0).rejected).toBeUndefined()
    expect(replica.plan().task(count)?.annotations.note).toBe(`by ${planner.did.slice(-4)}`)
    expect(replica.receive(await annotate(anchor, count), 0).rejected).toBeUndefined()
    expect(replica.plan().task(count)?.annotations.note).toBe(`by ${anchor.did.slice(-4)}`)
    expect(replica.plan().task(count)?.state).toBe('DECIDED')
  })
})

describe('results: rejection, challenge, invalidation', () => {
  it('a failing quorum reopens the task; an upheld challenge invalidates a FINAL result and raises K', async () => {
    const path = await happyPath(full)
    const { count } = path
    const replica = replicaOf(path.log, full)
    const task = () => replica.state.tasks.get(count)!
    const commit = task().commit!
    expect(commit.committee).toHaveLength(5)
    expect(commit.committee).not.toContain(worker.did)
    const member = (i: number) => verifiers.find((v) => v.did === commit.committee[i])!
    const outsider = verifiers.find((v) => !commit.committee.includes(v.did))!
    expect(replica.receive(await resultVote(outsider, count, commit.id), 0).rejected).toBe('not-in-committee')
    for (let i = 0; i < 3; i += 1) replica.receive(await resultVote(member(i), count, commit.id, 'fail'), 0)
    expect(task()).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(task().pastCommits[0]!.outcome).toBe('rejected')

    // Round 2: a wrong result slips through with 3 passes, is finalized, then challenged.
    const claim = await claimBy(worker2, count)
    replica.receive(claim, 0)
    replica.receive(await grantOf(claim), 0)
    replica.receive(await commitBy(worker2, claim, output2), 0)
    const c2 = task().commit!
    const passers = c2.committee.slice(0, 3).map((did) => verifiers.find((v) => v.did === did)!)
    const passes = []
    for (const passer of passers) {
      const env = await resultVote(passer, count, c2.id)
      passes.push(env)
      replica.receive(env, 0)
    }
    expect(replica.receive(await finalizeBy(anchor, count, c2.id, passes.slice(0, 2)), 0).rejected).toBe(
      'insufficient-quorum',
    )
    expect(replica.receive(await finalizeBy(worker2, count, c2.id, passes), 0).rejected).toBe(
      'finalize-not-by-anchor',
    )
    expect(replica.receive(await finalizeBy(anchor, count, c2.id, passes), 0).rejected).toBeUndefined()
    expect(task().state).toBe('FINAL')
    const others = verifiers.filter((v) => !passers.includes(v))
    const challenger = others[0]!
    const challengeBy = (who: Identity, bond: number) =>
      sign(who, 'CHALLENGE', thread, {
        task: count,
        commit: c2.id,
        proof: { type: 'output-mismatch', expected: [output1] },
        bond,
      })
    expect(replica.receive(await challengeBy(others[1]!, 9), 0).rejected).toBe('bond-too-small')
    const challenge = await challengeBy(challenger, 10)
    expect(replica.receive(challenge, 0).effects).toEqual([
      { type: 'challenged', task: count, commit: c2.id, challenge: challenge.id },
    ])
    const invalidateBy = (who: Identity) =>
      sign(who, 'INVALIDATE', thread, { task: count, commit: c2.id, challenge: challenge.id })
    // A6: judges are pool verifiers other than the challenger and those who passed the result.
    expect(replica.receive(await invalidateBy(challenger), 0).rejected).toBe('judge-is-challenger')
    expect(replica.receive(await invalidateBy(passers[0]!), 0).rejected).toBe('judge-attested')
    expect(replica.receive(await invalidateBy(stranger), 0).rejected).toBe('not-a-judge')
    expect(replica.receive(await invalidateBy(worker2), 0).rejected).toBe('not-a-judge')
    const judges = others.slice(1, 4)
    for (const [index, judge] of judges.entries()) {
      expect(replica.receive(await invalidateBy(judge), 0).rejected).toBeUndefined()
      if (index < 2) expect(task().state).toBe('FINAL')
    }
    expect(task()).toMatchObject({ state: 'DECIDED', round: 3, kResult: 4 })
    expect(task().pastCommits.map((c) => c.outcome)).toEqual(['rejected', 'invalidated'])
    expect(replica.plan().task(count)).toMatchObject({ state: 'DECIDED', stateEpoch: 3 })
  })

  it('a worker in the pool never judges its own result; one anchor INVALIDATE suffices', async () => {
    const poolWorker = verifiers[9]!
    const path = await happyPath(full, poolWorker)
    const replica = replicaOf(path.log, full)
    const commit = replica.state.tasks.get(path.count)!.commit!
    expect(commit.committee).not.toContain(poolWorker.did)
    const challenger = verifiers.find((v) => v !== poolWorker && !commit.committee.includes(v.did))!
    const challenge = await sign(challenger, 'CHALLENGE', thread, {
      task: path.count,
      commit: commit.id,
      proof: { type: 'output-mismatch', expected: [output2] },
      bond: 10,
    })
    replica.receive(challenge, 0)
    const invalidateBy = (who: Identity) =>
      sign(who, 'INVALIDATE', thread, { task: path.count, commit: commit.id, challenge: challenge.id })
    expect(replica.receive(await invalidateBy(poolWorker), 0).rejected).toBe('judge-is-worker')
    expect(replica.state.tasks.get(path.count)?.commit?.invalidations.size).toBe(0)
    expect(replica.receive(await invalidateBy(anchor), 0).rejected).toBeUndefined()
    expect(replica.state.tasks.get(path.count)).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(replica.state.tasks.get(path.count)?.pastCommits.map((c) => c.outcome)).toEqual(['invalidated'])
  })
})

describe('conflicting DECIDEs after a partition', () => {
  it('the higher epoch wins everywhere; the loser is orphaned and its work refused', async () => {
    const propose1 = await proposeBy(planner, { lamport: 2 })
    const propose2 = await proposeBy(worker2, { lamport: 2 })
    const p1 = tasksOf(propose1)
    const p2 = tasksOf(propose2)
    const a1 = await planVote(verifiers[0]!, propose1.id, 'accept', { lamport: 3 })
    const a2 = await planVote(verifiers[1]!, propose2.id, 'accept', { lamport: 3 })
    const d1 = await decideOf(propose1.id, [a1], bootstrap, { lamport: 10 })
    const d2 = await decideOf(propose2.id, [a2], bootstrap, { who: anchor2, epoch: 2, lamport: 5 })
    const claimOld = await claimBy(worker, p1.count, { lamport: 11 })
    const grantOld = await grantOf(claimOld, anchor, { lamport: 12 })
    const left = replicaOf([need, propose1, propose2, a1, a2, d1, claimOld, grantOld], bootstrap)
    expect(left.state.winner?.proposal).toBe(propose1.id)
    expect(left.state.tasks.get(p1.count)?.state).toBe('CLAIMED')
    const healed = replicaOf([need, propose1, propose2, a1, a2, d1, claimOld, grantOld, d2], bootstrap)
    const right = replicaOf([d2, grantOld, claimOld, d1, a2, a1, propose2, propose1, need], bootstrap)
    expect(right.pendingSize).toBe(0)
    expect(healed.stateHash()).toBe(right.stateHash())
    expect(healed.state.winner?.proposal).toBe(propose2.id)
    expect(healed.state.issuedEpoch).toBe(2)
    expect(healed.state.rejected.get(claimOld.id)).toBe('orphaned-task')
    expect(healed.state.rejected.get(grantOld.id)).toBe('orphaned-task')
    expect(healed.plan().task(p1.count)?.annotations.orphanedByEpoch).toBe('2')
    expect(healed.plan().task(p2.count)?.annotations.orphanedByEpoch).toBeUndefined()
    // Work on the winner at the old epoch is fenced off; an epoch no anchor issued is refused.
    expect(healed.receive(await claimBy(worker, p2.count, { lamport: 20, epoch: 1 }), 0).rejected).toBe(
      'stale-epoch',
    )
    expect(healed.receive(await claimBy(worker, p2.count, { lamport: 21, epoch: 3 }), 0).rejected).toBe(
      'epoch-not-issued',
    )
    expect(
      healed.receive(await claimBy(worker, p2.count, { lamport: 22, epoch: 2 }), 0).rejected,
    ).toBeUndefined()
  })
})

describe('plan patches', () => {
  it('rejects cycles, unknown inputs, unrequired capabilities and over-budget plans', () => {
    const info = {
      env: 'x',
      requester: 'did:key:x',
      payload: { ...needFields, need: thread },
      requires: needFields.requires,
      inputs: [input],
      budget: 10,
      bidWindowMs: 1,
    }
    const base = proposePayload()
    expect(checkPatch(base, info)).toBeUndefined()
    expect(checkPatch({ ...base, price: 11 }, info)).toBe('over-budget')
    expect(checkPatch({ ...base, patch: [] }, info)).toBe('empty-plan')
    expect(
      checkPatch(
        {
          ...base,
          patch: [
            { name: 'a', capability: 'sha256', inputs: ['task:b'], produces: 'x' },
            { name: 'b', capability: 'sha256', inputs: ['task:a'], produces: 'x' },
          ],
        },
        info,
      ),
    ).toBe('cyclic-plan')
    expect(
      checkPatch(
        { ...base, patch: [{ name: 'a', capability: 'sha256', inputs: [output1], produces: 'x' }] },
        info,
      ),
    ).toBe('unknown-input:a')
    expect(
      checkPatch(
        { ...base, patch: [{ name: 'a', capability: 'sort-dedupe', inputs: [input], produces: 'x' }] },
        info,
      ),
    ).toBe('capability-not-required:sort-dedupe')
    expect(checkPatch({ ...base, patch: [...base.patch, base.patch[0]!] }, info)).toBe('duplicate-task:count')
  })
})

describe('pools: the one a DECIDE carries governs its thread', () => {
  it('an open pool lets any peer attest plans and results with K = 1; a closed one refuses them', async () => {
    const open = testParams({ anchors: bootstrap.anchors, verifiers: [], bootstrap: true })
    const propose = await proposeBy(planner)
    const { count } = tasksOf(propose)
    const vote = await planVote(stranger, propose.id)
    const decide = await decideOf(propose.id, [vote], open)
    const claim = await claimBy(worker, count)
    const grant = await grantOf(claim)
    const commit = await commitBy(worker, claim, output1)
    const pass = await resultVote(stranger, count, commit.id)
    const log = [need, propose, vote, decide, claim, grant, commit, pass]
    const replica = replicaOf(log, open)
    expect([...replica.state.rejected.values()]).toEqual([])
    expect(replica.state.tasks.get(count)?.state).toBe('VERIFIED')
    // A DECIDE under the closed pool refuses the same stranger's vote.
    const closedDecide = await decideOf(propose.id, [vote], bootstrap)
    const closed = replicaOf([need, propose, vote, closedDecide], bootstrap)
    expect(closed.state.rejected.get(vote.id)).toBe('not-a-verifier')
    expect(closed.state.rejected.get(closedDecide.id)).toBe('attester-not-a-verifier')
    expect(closed.state.winner).toBeUndefined()
    // A replica whose own view is the closed pool still folds the open-pool DECIDE's thread by its
    // pool: the vote is no evidence to it, but the thread and its hash are the same as everywhere.
    const viewer = replicaOf(log, bootstrap)
    expect(viewer.state.rejected.get(vote.id)).toBe('not-a-verifier')
    expect(viewer.state.tasks.get(count)?.state).toBe('VERIFIED')
    expect(viewer.stateHash()).toBe(replica.stateHash())
  })
})

describe('an invalidated parent', () => {
  it('supersedes every result computed from it, and they are redone once the parent is FINAL again', async () => {
    const { log, count, digest } = await opening(bootstrap)
    const replica = replicaOf(log, bootstrap)
    const judge = verifiers.find((v) => bootstrap.verifiers.includes(v.did))!
    const finish = async (task: string, who: Identity, output: string) => {
      const claim = await claimBy(who, task)
      replica.receive(claim, 0)
      replica.receive(await grantOf(claim), 0)
      const commit = await commitBy(who, claim, output)
      replica.receive(commit, 0)
      const pass = await resultVote(judge, task, commit.id)
      replica.receive(pass, 0)
      replica.receive(await finalizeBy(anchor, task, commit.id, [pass]), 0)
      return commit
    }
    const parentCommit = await finish(count, worker, output1)
    await finish(digest, worker, output2)
    expect(replica.state.tasks.get(digest)?.state).toBe('FINAL')
    const challenge = await sign(judge, 'CHALLENGE', thread, {
      task: count,
      commit: parentCommit.id,
      proof: { type: 'output-mismatch', expected: [output2] },
      bond: 10,
    })
    replica.receive(challenge, 0)
    const invalidateBy = (who: Identity) =>
      sign(who, 'INVALIDATE', thread, { task: count, commit: parentCommit.id, challenge: challenge.id })
    // In bootstrap the anchors are the only judges.
    expect(replica.receive(await invalidateBy(verifiers[1]!), 0).rejected).toBe('not-a-judge')
    expect(replica.state.tasks.get(count)?.state).toBe('FINAL')
    expect(replica.receive(await invalidateBy(anchor2), 0).rejected).toBeUndefined()
    const parent = replica.state.tasks.get(count)!
    const child = replica.state.tasks.get(digest)!
    expect(parent).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(child).toMatchObject({ state: 'DECIDED', round: 2 })
    expect(child.pastCommits.map((c) => c.outcome)).toEqual(['superseded'])
    expect(
      replica
        .plan()
        .readyTasks(thread)
        .map((t) => t.id),
    ).toEqual([count])
  })
})

describe('a result bound to its inputs', () => {
  it('refuses a COMMIT declaring other inputs than the task’s at that point (stale-inputs)', async () => {
    const { log, count, digest } = await opening(bootstrap)
    const replica = replicaOf(log, bootstrap)
    const judge = verifiers.find((v) => bootstrap.verifiers.includes(v.did))!
    const declaring = (who: Identity, claim: AnyEnvelope, output: string, inputs: string[]) =>
      commitBy(who, claim, output, { fence: claim.id }, inputs)
    /** Claims, is granted, commits (declaring `inputs`), is passed and finalized. */
    const finish = async (task: string, output: string, inputs: string[]) => {
      const claim = await claimBy(worker, task)
      replica.receive(claim, 0)
      replica.receive(await grantOf(claim), 0)
      const commit = await declaring(worker, claim, output, inputs)
      expect(replica.receive(commit, 0).rejected).toBeUndefined()
      // K_result passes of committee members (an invalidation raises K_result by one).
      const info = replica.state.tasks.get(task)!
      const passes = []
      for (const member of info.commit!.committee.slice(0, info.kResult)) {
        const pass = await resultVote(verifiers.find((v) => v.did === member)!, task, commit.id)
        replica.receive(pass, 0)
        passes.push(pass)
      }
      expect(replica.receive(await finalizeBy(anchor, task, commit.id, passes), 0).rejected).toBeUndefined()
      return { claim, commit }
    }
    // A root task reads the NEED's inputs: declaring anything else is stale.
    const rootClaim = await claimBy(worker, count)
    replica.receive(rootClaim, 0)
    replica.receive(await grantOf(rootClaim), 0)
    expect(replica.receive(await declaring(worker, rootClaim, output1, [output2]), 0).rejected).toBe(
      'stale-inputs',
    )
    expect(replica.receive(await declaring(worker, rootClaim, output1, [input, input]), 0).rejected).toBe(
      'stale-inputs',
    )
    expect(replica.state.tasks.get(count)?.state).toBe('CLAIMED')
    replica.receive(await releaseBy(worker, rootClaim, 'worker-failed'), 0)
    const first = await finish(count, output1, [input])
    expect(replica.state.tasks.get(count)?.commit?.inputs).toEqual([input])
    await finish(digest, output2, [output1])
    // The parent is invalidated and redone with another output: the child's old result is
    // superseded, and a new COMMIT computed from the parent's old output is stale.
    const challenge = await sign(judge, 'CHALLENGE', thread, {
      task: count,
      commit: first.commit.id,
      proof: { type: 'output-mismatch', expected: [output2] },
      bond: 10,
    })
    replica.receive(challenge, 0)
    replica.receive(
      await sign(anchor, 'INVALIDATE', thread, {
        task: count,
        commit: first.commit.id,
        challenge: challenge.id,
      }),
      0,
    )
    await finish(count, output2, [input])
    expect(replica.state.tasks.get(digest)).toMatchObject({ state: 'DECIDED', round: 2 })
    const redo = await claimBy(worker, digest)
    replica.receive(redo, 0)
    replica.receive(await grantOf(redo), 0)
    expect(replica.receive(await declaring(worker, redo, output2, [output1]), 0).rejected).toBe(
      'stale-inputs',
    )
    expect(replica.receive(await declaring(worker, redo, output2, [output2]), 0).rejected).toBeUndefined()
    expect(replica.state.tasks.get(digest)?.commit?.inputs).toEqual([output2])
  })
})

describe('authority (docs/PROTOCOL.md §11)', () => {
  it('A1: a NEED is valid only under its own thread id; nobody can re-sign it with other terms', async () => {
    // A Sybil re-signs the NEED with a larger budget under the same thread id.
    const reNeed = (who: Identity) =>
      sign(who, 'NEED', thread, { ...needFields, need: thread, budget: 999 }, { lamport: 1 })
    const forged = await reNeed(stranger)
    const byRequester = await reNeed(requester)
    const alone = replicaOf([forged, byRequester], bootstrap)
    expect(alone.state.rejected.get(forged.id)).toBe('thread-id-mismatch')
    expect(alone.state.rejected.get(byRequester.id)).toBe('thread-id-mismatch')
    expect(alone.state.need).toBeUndefined()
    const mixed = replicaOf([forged, need, byRequester], bootstrap)
    expect(mixed.state.need?.env).toBe(need.id)
    expect(mixed.state.need?.budget).toBe(needFields.budget)
    expect(mixed.stateHash()).toBe(replicaOf([need], bootstrap).stateHash())
    // A valid NEED of another thread, given to this replica.
    const other = await signNeed(requester, { ...needFields, budget: 11 })
    expect(other.thread).not.toBe(thread)
    expect(replicaOf([need, other], bootstrap).state.rejected.get(other.id)).toBe('wrong-thread')
    // Before the NEED, nothing applies.
    const early = replicaOf([await proposeBy(planner, { lamport: 2 })], bootstrap)
    expect([...early.state.rejected.values()]).toEqual(['no-need'])
  })

  it('envelopes of another network are refused, whatever they say', async () => {
    const foreignNeed = await signNeed(requester, needFields, { net: OTHER_NET })
    expect(foreignNeed.thread).not.toBe(thread)
    const foreign = new ThreadReplica(foreignNeed.thread, bootstrap)
    expect(foreign.receive(foreignNeed, 0).rejected).toBe('wrong-network')
    const { log, propose } = await opening(bootstrap)
    const replica = replicaOf(log, bootstrap)
    const before = replica.stateHash()
    const vote = await planVote(verifiers[1]!, propose.id, 'accept', { net: OTHER_NET })
    expect(replica.receive(vote, 0).rejected).toBe('wrong-network')
    const decide = await sign(
      anchor2,
      'DECIDE',
      thread,
      {
        need: thread,
        proposal: propose.id,
        epoch: 5,
        lamport: 9,
        kPlan: 1,
        decider: anchor2.did,
        attestations: [vote as Envelope],
        pool: poolSnapshotOf(bootstrap),
      },
      { net: OTHER_NET, epoch: 5 },
    )
    expect(replica.receive(decide, 0).rejected).toBe('wrong-network')
    expect(replica.state.issuedEpoch).toBe(1)
    expect(replica.stateHash()).toBe(before)
    expect(replica.refusals().get('wrong-network')).toBe(2)
    expect(refusalRule('wrong-network')).toBe('network')
  })

  it('A3, A5, A6: anchor-only verbs from anyone else are refused with their codes', async () => {
    const path = await happyPath(bootstrap)
    const { count, claim, commit } = path
    const replica = replicaOf(path.log, bootstrap)
    const member = verifiers.find((v) => v.did === replica.state.tasks.get(count)!.commit!.committee[0])!
    const pass = await resultVote(member, count, commit.id)
    replica.receive(pass, 0)
    const before = replica.stateHash()
    const cases: [string, AnyEnvelope, string][] = []
    for (const who of [stranger, worker, member, planner, requester]) {
      const name =
        who === stranger ? 'stranger' : who === worker ? 'worker' : who === member ? 'verifier' : 'other'
      cases.push(
        [
          `${name} DECIDE`,
          await decideOf(path.propose.id, [path.log[2]!], bootstrap, { who }),
          'not-an-anchor',
        ],
        [`${name} GRANT`, await grantOf(claim, who), 'grant-not-by-anchor'],
        [`${name} FINALIZE`, await finalizeBy(who, count, commit.id, [pass]), 'finalize-not-by-anchor'],
        [
          `${name} RELEASE lease-expired`,
          await releaseBy(who, claim, 'lease-expired'),
          'scavenge-not-by-anchor',
        ],
        [`${name} RELEASE orphaned`, await releaseBy(who, claim, 'orphaned'), 'scavenge-not-by-anchor'],
        [
          `${name} RECONCILE`,
          await sign(who, 'RECONCILE', thread, {
            thread,
            merged: [path.decide.id],
            orphaned: [],
            salvaged: [],
          }),
          'not-an-anchor',
        ],
        [
          `${name} CHECKPOINT`,
          await sign(who, 'CHECKPOINT', thread, { epoch: 1, merkleRoot: 'r', signers: [who.did] }),
          'not-an-anchor',
        ],
      )
    }
    for (const [what, env, code] of cases) {
      expect(replica.receive(env, 0).rejected, what).toBe(code)
      expect(refusalRule(code), what).not.toBe('state')
    }
    expect(replica.stateHash()).toBe(before)
    expect(replica.state.tasks.get(count)?.state).toBe('VERIFIED')
    expect(replica.state.reconciles).toEqual([])
    expect(replica.state.checkpoints).toEqual([])
    // The same acts by an anchor apply.
    const reconcile = await sign(anchor2, 'RECONCILE', thread, {
      thread,
      merged: [path.decide.id],
      orphaned: [],
      salvaged: [],
    })
    expect(replica.receive(reconcile, 0).rejected).toBeUndefined()
    const checkpoint = await sign(anchor, 'CHECKPOINT', thread, {
      epoch: 1,
      merkleRoot: 'r',
      signers: [anchor.did],
    })
    expect(replica.receive(checkpoint, 0).rejected).toBeUndefined()
    expect(replica.receive(await finalizeBy(anchor2, count, commit.id, [pass]), 0).rejected).toBeUndefined()
    expect(replica.state.tasks.get(count)?.state).toBe('FINAL')
  })

  it('A3: an envelope may carry only an epoch an anchor issued into the thread at its position', async () => {
    const { log, propose, count } = await opening(bootstrap)
    const replica = replicaOf(log, bootstrap)
    const early = await claimBy(worker, count, { epoch: 2 })
    expect(replica.receive(early, 0).rejected).toBe('epoch-not-issued')
    // A stranger's DECIDE at epoch 2 issues nothing.
    const forged = await decideOf(propose.id, [log[2]!], bootstrap, { who: stranger, epoch: 2 })
    expect(replica.receive(forged, 0).rejected).toBe('not-an-anchor')
    expect(replica.state.issuedEpoch).toBe(1)
    expect(replica.receive(await claimBy(worker, count, { epoch: 2 }), 0).rejected).toBe('epoch-not-issued')
    // An anchor's DECIDE at epoch 2 issues it, for what sorts after it only.
    const reissued = await decideOf(propose.id, [log[2]!], bootstrap, { who: anchor2, epoch: 2 })
    expect(replica.receive(reissued, 0).rejected).toBeUndefined()
    expect(replica.state.issuedEpoch).toBe(2)
    expect(replica.state.winner?.env).toBe(reissued.id)
    expect(replica.state.rejected.get(early.id)).toBe('epoch-not-issued')
    const later = await claimBy(worker, count, { epoch: 2 })
    expect(replica.receive(later, 0).rejected).toBeUndefined()
  })

  it('A4: a lamport beyond maxLamportStep waits pending, and is placed once the gap fills', async () => {
    const params = testParams({ ...bootstrap, maxLamportStep: 10 })
    const replica = new ThreadReplica(thread, params)
    replica.receive(need, 0)
    const far = await proposeBy(planner, { lamport: 12 })
    const result = replica.receive(far, 0)
    expect(result).toMatchObject({ added: true, pending: true, placed: [] })
    expect(replica.pendingSize).toBe(1)
    expect(replica.has(far.id)).toBe(true)
    expect(replica.get(far.id)).toBeUndefined()
    expect(replica.state.proposals.size).toBe(0)
    expect(replica.lamport).toBe(1)
    expect(replica.nextLamport()).toBe(2)
    expect(replica.receive(far, 0).added).toBe(false)
    const near = await proposeBy(worker2, { lamport: 11 })
    const filled = replica.receive(near, 0)
    expect(filled.pending).toBeUndefined()
    expect(filled.placed.map((env) => env.id)).toEqual([near.id, far.id])
    expect(filled.effects.filter((effect) => effect.type === 'proposal')).toHaveLength(2)
    expect(replica.pendingSize).toBe(0)
    expect(replica.lamport).toBe(12)
    // A jump of exactly maxLamportStep is placed; one more waits.
    expect(
      replica.receive(await planVote(verifiers[0]!, near.id, 'accept', { lamport: 22 }), 0).pending,
    ).toBeUndefined()
    expect(
      replica.receive(await planVote(verifiers[1]!, near.id, 'accept', { lamport: 33 }), 0).pending,
    ).toBe(true)
    // The same envelopes in any order, one by one or as a batch, place and fold the same.
    const all = [need, far, near]
    const batch = new ThreadReplica(thread, params)
    expect(
      batch
        .receiveBatch([far, near, need], 0)
        .placed.map((env) => env.id)
        .sort(),
    ).toEqual(all.map((env) => env.id).sort())
    const reference = new ThreadReplica(thread, params)
    for (const env of all) reference.receive(env, 0)
    expect(batch.stateHash()).toBe(reference.stateHash())
  })

  it('A2: an envelope naming one not held waits until it arrives; naming the wrong kind is refused', async () => {
    const { log, propose, count } = await opening(bootstrap)
    const replica = replicaOf([need], bootstrap)
    const vote = log[2]!
    expect(replica.receive(vote, 0)).toMatchObject({ pending: true })
    expect(replica.receive(log[3]!, 0)).toMatchObject({ pending: true })
    expect(replica.pendingSize).toBe(2)
    const arrived = replica.receive(propose, 0)
    expect(arrived.placed.map((env) => env.id)).toEqual([propose.id, vote.id, log[3]!.id])
    expect(replica.state.winner?.proposal).toBe(propose.id)
    // Naming something that never existed waits for ever, unfolded and outside the hash.
    const before = replica.stateHash()
    const missing = artifactCid(text('no such claim'))
    const ghost = await sign(
      stranger,
      'HEARTBEAT',
      thread,
      { task: count, claim: missing, progress: 1 },
      { fence: missing },
    )
    expect(replica.receive(ghost, 0).pending).toBe(true)
    expect(replica.stateHash()).toBe(before)
    // Naming an envelope of the wrong kind (the NEED as a proposal, a PROPOSE as a claim) is refused.
    expect(replica.receive(await planVote(verifiers[1]!, need.id), 0).rejected).toBe('unknown-proposal')
    const notAClaim = await sign(anchor, 'GRANT', thread, {
      task: count,
      claim: propose.id,
      leaseTtlMs: 1000,
    })
    expect(replica.receive(notAClaim, 0).rejected).toBe('not-a-claim')
    const otherTask = await claimBy(worker, `${propose.id}/digest`)
    replica.receive(otherTask, 0)
    const crossed = await sign(anchor, 'GRANT', thread, {
      task: count,
      claim: otherTask.id,
      leaseTtlMs: 1000,
    })
    expect(replica.receive(crossed, 0).rejected).toBe('claim-of-another-task')
    expect(replica.stateHash()).toBe(before)
  })

  it('A4: the pending pool is bounded; the sender with most waiting loses its newest first', async () => {
    const evicted: string[] = []
    const replica = new ThreadReplica(thread, bootstrap, {
      maxPendingEnvelopes: 3,
      onEvict: (env) => evicted.push(env.id),
    })
    replica.receive(need, 0)
    const propose = await proposeBy(planner)
    const honest = await planVote(verifiers[0]!, propose.id)
    replica.receive(honest, 0)
    const flood = []
    const answers = []
    for (let i = 0; i < 5; i += 1) {
      const missing = artifactCid(text(`ghost ${i}`))
      flood.push(await sign(stranger, 'HEARTBEAT', thread, { task: 'x/y', claim: missing, progress: i }))
      answers.push(replica.receive(flood[i]!, i + 1))
    }
    expect(replica.pendingSize).toBe(3)
    // The newest of the busiest sender is the one dropped, and the answer says so.
    expect(answers.map((answer) => (answer.evicted ? 'evicted' : answer.pending ? 'pending' : '?'))).toEqual([
      'pending',
      'pending',
      'evicted',
      'evicted',
      'evicted',
    ])
    expect(evicted).toEqual([flood[2]!.id, flood[3]!.id, flood[4]!.id])
    expect(replica.has(honest.id)).toBe(true)
    expect(replica.receive(propose, 10).placed.map((env) => env.id)).toEqual([propose.id, honest.id])
    expect(replica.state.planVotes.get(propose.id)?.has(verifiers[0]!.did)).toBe(true)
  })

  it('A5: a backdated CLAIM after a GRANT is never granted and does not displace the lease', async () => {
    const { log, count } = await opening(bootstrap)
    const top = Math.max(...log.map((env) => env.lamport))
    const claim = await claimBy(worker, count, { lamport: top + 10 })
    const grant = await grantOf(claim, anchor, { lamport: top + 11 })
    const replica = replicaOf([...log, claim, grant], bootstrap)
    const reference = replica.stateHash()
    // The attacker's CLAIM sorts before the honest one, but arrives after the GRANT.
    const backdated = await claimBy(stranger, count, { lamport: top + 1 })
    expect(replica.receive(backdated, 5).rejected).toBeUndefined()
    expect(replica.state.tasks.get(count)?.lease).toMatchObject({
      worker: worker.did,
      claim: claim.id,
      grant: grant.id,
    })
    expect(replica.stateHash()).toBe(reference)
    // Later acts (sorting after the honest GRANT) cannot move the lease to the backdated CLAIM.
    const after = (n: number) => ({ lamport: top + 20 + n })
    expect(replica.receive(await grantOf(backdated, stranger, after(0)), 5).rejected).toBe(
      'grant-not-by-anchor',
    )
    expect(replica.receive(await grantOf(backdated, anchor2, after(1)), 5).rejected).toBe('lease-held')
    const forgedCommit = await commitBy(stranger, backdated, output2, { fence: backdated.id, ...after(2) })
    expect(replica.receive(forgedCommit, 5).rejected).toBe('stale-lease')
    expect(
      replica.receive(await heartbeatBy(stranger, claim, { fence: claim.id, ...after(3) }), 5).rejected,
    ).toBe('not-lease-holder')
    expect(replica.state.tasks.get(count)?.lease?.worker).toBe(worker.did)
    expect(replica.stateHash()).toBe(reference)
  })

  it('P9: refused envelopes leave the state hash unchanged wherever they sort, in any arrival order', async () => {
    const path = await happyPath(bootstrap)
    const { count, claim, commit } = path
    const honest = path.log
    const reference = replicaOf(honest, bootstrap).stateHash()
    const member = verifiers.find((v) => bootstrap.verifiers.includes(v.did))!
    const pass = await resultVote(member, count, commit.id)
    // Each attack at several lamports: before, among and after the honest envelopes.
    const attacks: [AnyEnvelope, string][] = []
    for (const lamport of [2, 5, 7, 50]) {
      const at = { lamport }
      attacks.push(
        [
          await decideOf(path.propose.id, [honest[2]!], bootstrap, { who: stranger, lamport }),
          'not-an-anchor',
        ],
        [await grantOf(claim, stranger, at), 'grant-not-by-anchor'],
        [
          await sign(
            stranger,
            'FINALIZE',
            thread,
            { task: count, commit: commit.id, attestations: [pass as Envelope] },
            at,
          ),
          'finalize-not-by-anchor',
        ],
        [
          await sign(
            worker,
            'RELEASE',
            thread,
            { task: count, claim: claim.id, reason: 'lease-expired' },
            at,
          ),
          'scavenge-not-by-anchor',
        ],
        [await heartbeatBy(stranger, claim, { fence: claim.id, lamport }), 'not-lease-holder'],
        [await commitBy(stranger, claim, output2, { fence: claim.id, lamport }), 'not-lease-holder'],
        [await claimBy(stranger, count, { lamport, epoch: 7 }), 'epoch-not-issued'],
        [
          await planVote(verifiers[1]!, path.propose.id, 'accept', { lamport, net: OTHER_NET }),
          'wrong-network',
        ],
        [await planVote(verifiers[1]!, need.id, 'accept', at), 'unknown-proposal'],
        [
          await sign(stranger, 'RECONCILE', thread, { thread, merged: [], orphaned: [], salvaged: [] }, at),
          'not-an-anchor',
        ],
        [
          await sign(
            stranger,
            'CHECKPOINT',
            thread,
            { epoch: 1, merkleRoot: 'r', signers: [stranger.did] },
            at,
          ),
          'not-an-anchor',
        ],
        [
          await sign(stranger, 'NEED', thread, { ...needFields, need: thread, budget: 1 }, at),
          'thread-id-mismatch',
        ],
      )
    }
    const code = new Map(attacks.map(([env, reason]) => [env.id, reason]))
    fc.assert(
      fc.property(
        fc.subarray(attacks.map(([env]) => env)).chain((refused) =>
          fc.shuffledSubarray([...honest, ...refused], {
            minLength: honest.length + refused.length,
            maxLength: honest.length + refused.length,
          }),
        ),
        (arrival) => {
          const replica = new ThreadReplica(thread, bootstrap)
          for (const env of arrival) {
            replica.receive(env, 0)
            // Whatever has arrived so far, the hash is the one of the honest envelopes placed so far.
            const placedHonest = honest.filter((h) => replica.get(h.id) !== undefined)
            const honestOnly = new ThreadReplica(thread, bootstrap)
            honestOnly.receiveAll(placedHonest, 0)
            expect(replica.stateHash()).toBe(honestOnly.stateHash())
          }
          expect(replica.stateHash()).toBe(reference)
          expect(replica.freshStateHash()).toBe(reference)
          const refused = arrival.filter((env) => code.has(env.id))
          for (const env of refused) expect(replica.state.rejected.get(env.id)).toBe(code.get(env.id))
          for (const env of honest) expect(replica.state.rejected.has(env.id)).toBe(false)
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe('incremental fold (docs/PROTOCOL.md §6.2)', () => {
  /** Everything a fold decides, canonical or not: what a full fold of the sorted log must equal. */
  function foldView(replica: ThreadReplica): unknown {
    const state = replica.state
    const sorted = <T>(entries: Iterable<[string, T]>) => [...entries].sort((a, b) => (a[0] < b[0] ? -1 : 1))
    return {
      hash: replica.freshStateHash(),
      accepted: state.accepted,
      rejected: sorted(state.rejected),
      planVotes: sorted(state.planVotes).map(([id, votes]) => [id, sorted(votes)]),
      quorum: state.quorum ?? null,
      proposalsByPlanner: sorted(state.proposalsByPlanner),
      requests: sorted(state.tasks).map(([id, task]) => [id, sorted(task.requests), task.lease ?? null]),
      facts: state.facts.length,
      log: replica.envelopes().map((env) => env.id),
    }
  }

  /** The happy path plus envelopes whose fate depends on where they sort (accepted here, refused there). */
  async function busyThread() {
    const path = await happyPath(full)
    const top = Math.max(...path.log.map((env) => env.lamport))
    const low = path.propose.lamport - 2
    const extras: AnyEnvelope[] = []
    for (let i = 0; i < 160; i++) {
      // Distinct envelopes (ts differs), sorting all over the thread.
      const extra = { lamport: low + ((i * 7919) % (top + 40 - low)), ts: i }
      const who = verifiers[i % verifiers.length]!
      if (i % 4 === 0) extras.push(await claimBy(who, path.count, extra))
      else if (i % 4 === 1)
        extras.push(await heartbeatBy(worker, path.claim, { ...extra, fence: path.claim.id }))
      else if (i % 4 === 2)
        extras.push(await planVote(who, path.propose.id, i % 8 < 4 ? 'accept' : 'reject', extra))
      else extras.push(await heartbeatBy(stranger, path.claim, { ...extra, fence: path.claim.id }))
    }
    // Without its COMMIT, the lease stays live: heartbeats after the GRANT apply, claims meet a held lease.
    return { path, all: [...path.log.slice(0, -1), ...extras] }
  }

  it('leaves the replica where a fold of the sorted log does, for any arrival order and batching (P2)', async () => {
    const { all } = await busyThread()
    const reference = replicaOf([...all].sort(compareOrder), full)
    expect(reference.size).toBeGreaterThan(2 * FOLD_SNAPSHOT_SPACING)
    const expected = foldView(reference)
    // The fixture exercises both outcomes at once: refused and accepted extras.
    expect(reference.state.rejected.size).toBeGreaterThan(20)
    expect(reference.state.accepted).toBeGreaterThan(40)
    fc.assert(
      fc.property(
        fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 12 }),
        (arrival, cuts) => {
          const one = replicaOf(arrival, full)
          expect(foldView(one)).toEqual(expected)
          const batched = new ThreadReplica(thread, full)
          let at = 0
          for (let i = 0; at < arrival.length; i++) {
            const size = cuts[i % cuts.length]!
            if (size === 1) batched.receive(arrival[at]!, 0)
            else batched.receiveAll(arrival.slice(at, at + size), 0)
            at += size
          }
          expect(foldView(batched)).toEqual(expected)
        },
      ),
      { numRuns: 25 },
    )
  })

  it('an envelope sorting early costs a bounded number of fold steps when refused, not a refold of the log', async () => {
    const path = await happyPath(full)
    const filler: AnyEnvelope[] = []
    for (let i = 0; i < 5 * FOLD_SNAPSHOT_SPACING; i++) filler.push(await heartbeatBy(worker, path.claim))
    const replica = replicaOf([...path.log.slice(0, -1), ...filler], full)
    const placed = replica.size
    expect(replica.state.rejected.size).toBe(0)
    // Junk that sorts before almost everything, arriving in decreasing order: each lands first.
    const junk: AnyEnvelope[] = []
    for (let i = 0; i < 200; i++)
      junk.push(
        await sign(
          stranger,
          'HEARTBEAT',
          thread,
          { task: path.count, claim: path.claim.id, progress: i },
          { fence: path.claim.id, lamport: 2 + (i % 3) },
        ),
      )
    junk.sort((a, b) => compareOrder(b, a))
    const before = replica.foldSteps
    for (const env of junk) expect(replica.receive(env, 0).rejected).toBe('not-lease-holder')
    const steps = replica.foldSteps - before
    // A refold per arrival would cost ≥ placed steps each; the bound is the snapshot spacing.
    expect(steps).toBeLessThanOrEqual(junk.length * (FOLD_SNAPSHOT_SPACING + 1))
    expect(steps).toBeLessThan((junk.length * placed) / 4)
    expect(replica.refolds).toBe(0)
    // Accepted late, the COMMIT applies at the end; the state equals a fold of the sorted log.
    replica.receive(path.commit, 0)
    expect(replica.state.tasks.get(path.count)?.state).toBe('COMMITTED')
    const all = [...path.log, ...filler, ...junk]
    expect(foldView(replica)).toEqual(foldView(replicaOf([...all].sort(compareOrder), full)))
  })
})

function compareOrder(a: AnyEnvelope, b: AnyEnvelope): number {
  if (a.lamport !== b.lamport) return a.lamport - b.lamport
  if (a.sender !== b.sender) return a.sender < b.sender ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
