/**
 * The agent under the authority rules (docs/PROTOCOL.md §5, §11), driven by hand: what `deliver`
 * says of each envelope (duplicates, orphans, pending, refusals), who may hold the anchor's role,
 * the anchor's funding check before a DECIDE, and leases granted by receipt, never by lamport.
 */
import fc from 'fast-check'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { makeIdentities, sign, signNeed, testParams } from '../../../test-support/envelopes.ts'
import { Agent, type AgentOptions, type FundingCheck } from '../src/agent/agent.ts'
import { type CapabilityContext, CapabilityRegistry } from '../src/agent/capabilities.ts'
import { type AgentClock, SeededRandom } from '../src/agent/ports.ts'
import { artifactCid, MemoryArtifactStore } from '../src/core/artifacts.ts'
import { MemoryConsensusStore } from '../src/core/consensus.ts'
import { InvalidArgumentError } from '../src/core/errors.ts'
import { type NetworkParams, poolSnapshotOf } from '../src/core/thread/params.ts'
import type { AnyEnvelope, Envelope } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'

const input = artifactCid(new TextEncoder().encode('a b a'))
/** The id of a network other than the test network. */
const OTHER_NET = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

let anchor: Identity
let requester: Identity
let planner: Identity
let verifier: Identity
let workerA: Identity
let workerB: Identity
let stranger: Identity
let anchor2: Identity
let params: NetworkParams
let need: Envelope<'NEED'>
let propose: AnyEnvelope
let vote: AnyEnvelope
let task: string

beforeAll(async () => {
  ;[anchor, requester, planner, verifier, workerA, workerB, stranger, anchor2] = (await makeIdentities(
    8,
    0x33,
  )) as [Identity, Identity, Identity, Identity, Identity, Identity, Identity, Identity]
  params = testParams({ anchors: [anchor.did], verifiers: [verifier.did], bootstrap: true })
  need = await signNeed(requester, {
    epoch: 1,
    requires: ['word-frequency'],
    inputs: [input],
    produces: 'application/json',
    budget: 10,
    deadlineMs: 0,
    bidWindowMs: 1,
  })
  const thread = need.thread
  const patch = [
    { name: 'count', capability: 'word-frequency', inputs: [input], produces: 'application/json' },
  ]
  propose = await sign(
    planner,
    'PROPOSE',
    thread,
    { need: thread, patch, ballot: 1, price: 3, etaMs: 1, shardDependencies: [] },
    { lamport: 2 },
  )
  vote = await sign(
    verifier,
    'ATTEST_PLAN',
    thread,
    { need: thread, proposal: propose.id, verdict: 'accept' },
    { lamport: 3 },
  )
  task = `${propose.id}/count`
})

/** A DECIDE of the test plan signed by `who`, under the pool of `pool`. */
const decideBy = (who: Identity, pool: NetworkParams) =>
  sign(
    who,
    'DECIDE',
    need.thread,
    {
      need: need.thread,
      proposal: propose.id,
      epoch: 1,
      lamport: 4,
      kPlan: 1,
      decider: who.did,
      attestations: [vote as Envelope],
      pool: poolSnapshotOf(pool),
    },
    { lamport: 4 },
  )

/** A clock whose time moves only when told, firing due timers in order. */
function manualClock(): { clock: AgentClock; advance(toMs: number): Promise<void> } {
  let now = 0
  const timers: { atMs: number; callback: () => Promise<void> | void; live: boolean }[] = []
  return {
    clock: {
      now: () => now,
      setTimer(atMs, callback) {
        const timer = { atMs, callback, live: true }
        timers.push(timer)
        return () => {
          timer.live = false
        }
      },
    },
    async advance(toMs) {
      now = toMs
      for (;;) {
        const due = timers.filter((t) => t.live && t.atMs <= now).sort((a, b) => a.atMs - b.atMs)[0]
        if (!due) return
        due.live = false
        await due.callback()
      }
    },
  }
}

function agentOf(identity: Identity, extra: Partial<AgentOptions> = {}) {
  const published: AnyEnvelope[] = []
  const errors: unknown[] = []
  const time = manualClock()
  const agent = new Agent({
    identity,
    params,
    bus: { publish: (env) => published.push(env) },
    clock: time.clock,
    random: new SeededRandom(7),
    artifacts: new MemoryArtifactStore(),
    onError: (error) => errors.push(error),
    ...extra,
  })
  return { agent, published, errors, advance: time.advance }
}

describe('Agent.deliver', () => {
  it('says what became of each envelope: refused, held for its NEED, pending, duplicate, applied', async () => {
    const { agent } = agentOf(stranger)
    const thread = need.thread
    const foreign = await sign(
      workerA,
      'CLAIM',
      thread,
      { task, leaseTtlMs: 1000, cost: 3, etaMs: 1 },
      { net: OTHER_NET },
    )
    expect(await agent.deliver(foreign)).toBe('wrong-network')
    const early = await sign(
      workerA,
      'CLAIM',
      thread,
      { task, leaseTtlMs: 1000, cost: 3, etaMs: 1 },
      { lamport: 5 },
    )
    expect(await agent.deliver(early)).toBe('pending:no-need')
    expect(await agent.deliver(early)).toBe('duplicate')
    expect(agent.orphanCount).toBe(1)
    expect(agent.holds(early)).toBe(true)
    expect(agent.replica(thread)).toBeUndefined()
    // A1: a NEED under another thread id opens nothing.
    const forged = await sign(stranger, 'NEED', thread, { ...need.payload, budget: 999 }, { lamport: 1 })
    expect(await agent.deliver(forged)).toBe('thread-id-mismatch')
    expect(agent.replica(thread)).toBeUndefined()
    expect(await agent.deliver(need)).toBeUndefined()
    expect(await agent.deliver(need)).toBe('duplicate')
    const replica = agent.replica(thread)!
    expect(replica.state.need?.env).toBe(need.id)
    // The orphan was placed with its NEED (and refused: the thread is not decided yet).
    expect(agent.orphanCount).toBe(0)
    expect(replica.get(early.id)).toBeDefined()
    expect(replica.state.rejected.get(early.id)).toBe('unknown-task')
    // A4: a lamport jump waits.
    const far = await sign(planner, 'PROPOSE', thread, propose.payload as never, {
      lamport: replica.lamport + params.maxLamportStep + 1,
    })
    expect(await agent.deliver(far)).toBe('pending:lamport')
    expect(await agent.deliver(propose)).toBeUndefined()
    const grant = await sign(stranger, 'GRANT', thread, { task, claim: early.id, leaseTtlMs: 1000 })
    expect(await agent.deliver(grant)).toBe('grant-not-by-anchor')
    expect(agent.refusals()).toMatchObject({
      'wrong-network': 1,
      'thread-id-mismatch': 1,
      'grant-not-by-anchor': 1,
    })
    agent.stop()
  })
})

describe('the anchor role', () => {
  it('belongs to anchors of the network only, with a consensus store; an agent stays in its network', () => {
    const consensus = new MemoryConsensusStore()
    const roles = { decider: true }
    expect(() => agentOf(stranger, { roles, consensus })).toThrow(InvalidArgumentError)
    expect(() => agentOf(stranger, { roles, consensus })).toThrow(/anchor set/)
    expect(() => agentOf(anchor, { roles })).toThrow(/consensus store/)
    const { agent } = agentOf(anchor, { roles, consensus })
    expect(() => agent.setParams(testParams({ network: OTHER_NET, anchors: [anchor.did] }))).toThrow(
      InvalidArgumentError,
    )
    agent.stop()
  })

  it('decides only a NEED its funding check says the requester can fund', async () => {
    const calls: [string, number][] = []
    const broke: FundingCheck = (info, _thread, reserved) => {
      calls.push([info.requester, reserved])
      return 'the requester holds 0 credits'
    }
    const refused = agentOf(anchor, {
      roles: { decider: true },
      consensus: new MemoryConsensusStore(),
      funding: broke,
    })
    for (const env of [need, propose, vote]) await refused.agent.deliver(env)
    expect(calls).toEqual([[requester.did, 0]])
    expect(refused.published.filter((env) => env.kind === 'DECIDE')).toEqual([])
    expect(String(refused.errors[0])).toMatch(/is not decided: the requester holds 0 credits/)
    refused.agent.stop()

    const funded = agentOf(anchor, {
      roles: { decider: true },
      consensus: new MemoryConsensusStore(),
      funding: () => undefined,
    })
    for (const env of [need, propose, vote]) await funded.agent.deliver(env)
    const decides = funded.published.filter((env) => env.kind === 'DECIDE') as Envelope<'DECIDE'>[]
    expect(decides).toHaveLength(1)
    expect(decides[0]).toMatchObject({ sender: anchor.did, lamport: 4 })
    expect(decides[0]!.payload).toMatchObject({
      decider: anchor.did,
      proposal: propose.id,
      pool: poolSnapshotOf(params),
    })
    expect(decides[0]!.payload.attestations.map((env) => env.id)).toEqual([vote.id])
    expect(funded.agent.replica(need.thread)?.state.winner?.env).toBe(decides[0]!.id)
    funded.agent.stop()
  })

  it('grants the lease to the CLAIM it received first, not to one that sorts first (A5)', async () => {
    // Two anchors; the other one decided, so this one grants after its back-off: a window in which a
    // backdated CLAIM can arrive after the honest one.
    const two = testParams({ anchors: [anchor.did, anchor2.did], verifiers: [verifier.did], bootstrap: true })
    const { agent, published, advance } = agentOf(anchor, {
      params: two,
      roles: { decider: true },
      consensus: new MemoryConsensusStore(),
    })
    const decide = await decideBy(anchor2, two)
    for (const env of [need, propose, decide]) expect(await agent.deliver(env)).toBeUndefined()
    const claim = (who: Identity, lamport: number) =>
      sign(who, 'CLAIM', need.thread, { task, leaseTtlMs: 120_000, cost: 3, etaMs: 1 }, { lamport })
    const honest = await claim(workerA, 10)
    const backdated = await claim(workerB, 5)
    await advance(100)
    expect(await agent.deliver(honest)).toBeUndefined()
    await advance(200)
    expect(published.filter((env) => env.kind === 'GRANT')).toEqual([])
    expect(await agent.deliver(backdated)).toBeUndefined()
    await advance(10_000)
    const grants = published.filter((env) => env.kind === 'GRANT') as Envelope<'GRANT'>[]
    expect(grants).toHaveLength(1)
    expect(grants[0]!.sender).toBe(anchor.did)
    expect(grants[0]!.payload).toMatchObject({ task, claim: honest.id })
    // The anchor caps the lease it grants (60 s by default), within what the CLAIM asked.
    expect(grants[0]!.payload.leaseTtlMs).toBe(60_000)
    expect(agent.replica(need.thread)?.state.tasks.get(task)?.lease?.worker).toBe(workerA.did)
    agent.stop()
  })
  it('grants to a worker with a record before a throwaway key asking nothing (workerRank)', async () => {
    const two = testParams({ anchors: [anchor.did, anchor2.did], verifiers: [verifier.did], bootstrap: true })
    const grantTo = async (workerRank?: (did: string) => number) => {
      const { agent, published, advance } = agentOf(anchor, {
        params: two,
        roles: { decider: true },
        consensus: new MemoryConsensusStore(),
        ...(workerRank ? { workerRank } : {}),
      })
      const decide = await decideBy(anchor2, two)
      for (const env of [need, propose, decide]) await agent.deliver(env)
      const squatter = await sign(
        stranger,
        'CLAIM',
        need.thread,
        { task, leaseTtlMs: 120_000, cost: 0, etaMs: 1 },
        { lamport: 5 },
      )
      const known = await sign(
        workerB,
        'CLAIM',
        need.thread,
        { task, leaseTtlMs: 120_000, cost: 3, etaMs: 1 },
        { lamport: 6 },
      )
      await agent.deliver(squatter)
      await agent.deliver(known)
      await advance(10_000)
      agent.stop()
      return (published.find((env) => env.kind === 'GRANT') as Envelope<'GRANT'>).payload.claim
    }
    const squatterClaim = await grantTo()
    const rankedClaim = await grantTo((did) => (did === workerB.did ? 620 : 500))
    expect(squatterClaim).not.toBe(rankedClaim)
    // Without ranks the cheapest ask (the throwaway key's) wins; with them, the worker with a record.
    const cheapest = await sign(
      stranger,
      'CLAIM',
      need.thread,
      { task, leaseTtlMs: 120_000, cost: 0, etaMs: 1 },
      { lamport: 5 },
    )
    expect(squatterClaim).toBe(cheapest.id)
  })
})

/**
 * An anchor agent in an open pool (T_challenge 100 ms) that decided the test NEED, granted its task
 * to workerA and holds workerA's COMMIT.
 */
async function committedThread(extra: Partial<AgentOptions>) {
  const open = testParams({ anchors: [anchor.did], verifiers: [], bootstrap: true, tChallengeMs: 100 })
  const made = agentOf(anchor, {
    params: open,
    roles: { decider: true },
    consensus: new MemoryConsensusStore(),
    ...extra,
  })
  const { agent, advance } = made
  for (const env of [need, propose, vote]) await agent.deliver(env)
  const replica = agent.replica(need.thread)!
  const claim = await sign(
    workerA,
    'CLAIM',
    need.thread,
    { task, leaseTtlMs: 60_000, cost: 3, etaMs: 1 },
    { lamport: replica.nextLamport() },
  )
  await agent.deliver(claim)
  await advance(50)
  const commit = await sign(
    workerA,
    'COMMIT',
    need.thread,
    {
      task,
      claim: claim.id,
      outputs: [input],
      telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 5, outputBytes: 1 },
      verifyBounty: 2,
    },
    { lamport: replica.nextLamport(), fence: claim.id },
  )
  expect(await agent.deliver(commit)).toBeUndefined()
  return { ...made, replica, commit }
}

describe('anchor duties against strangers', () => {
  it('does not let a holder that yields and claims again keep a task from the others (A5)', async () => {
    const { agent, published, advance } = agentOf(anchor, {
      roles: { decider: true },
      consensus: new MemoryConsensusStore(),
    })
    for (const env of [need, propose, vote]) await agent.deliver(env)
    const replica = agent.replica(need.thread)!
    const claimBy = (who: Identity) =>
      sign(
        who,
        'CLAIM',
        need.thread,
        { task, leaseTtlMs: 60_000, cost: 3, etaMs: 1 },
        { lamport: replica.nextLamport() },
      )
    const holder = () => replica.state.tasks.get(task)?.lease?.worker
    // The squatter claims first and is granted the first round.
    await agent.deliver(await claimBy(workerB))
    await advance(50)
    expect(holder()).toBe(workerB.did)
    // It yields and claims again in one breath; an honest worker's CLAIM comes a moment later.
    const lease = replica.state.tasks.get(task)!.lease!
    await agent.deliver(
      await sign(
        workerB,
        'YIELD',
        need.thread,
        { task, claim: lease.claim },
        { lamport: replica.nextLamport() },
      ),
    )
    await agent.deliver(await claimBy(workerB))
    // The anchor's grant duty comes round (within 1.5 s) before the honest CLAIM arrives.
    await advance(2_000)
    await agent.deliver(await claimBy(workerA))
    await advance(20_000)
    expect(holder()).toBe(workerA.did)
    const grants = published.filter((env) => env.kind === 'GRANT')
    expect(grants).toHaveLength(2)
    agent.stop()
  })

  it('finalizes with the first K_result passes however many committee members voted', async () => {
    const { agent, published, advance, replica, commit } = await committedThread({})
    // In the open pool every key is in the committee: 70 of them pass (more than an envelope may embed).
    const lamport = replica.nextLamport()
    for (const key of await makeIdentities(70, 0x71)) {
      await agent.deliver(
        await sign(
          key,
          'ATTEST',
          need.thread,
          { task, commit: commit.id, verdict: 'pass', evalDigest: 'x' },
          { lamport },
        ),
      )
    }
    await advance(5_000)
    const finalize = published.find((env) => env.kind === 'FINALIZE') as Envelope<'FINALIZE'> | undefined
    expect(finalize?.payload.attestations).toHaveLength(1)
    expect(replica.state.tasks.get(task)?.state).toBe('FINAL')
    agent.stop()
  })

  it('decides the plan a late quorum moved to, when the home anchor is away', async () => {
    const two = testParams({ anchors: [anchor.did, anchor2.did], verifiers: [], bootstrap: true })
    // The requester's home anchor is the other one: this anchor decides after its back-off.
    const homeOf = (did: string) => {
      let hash = 0
      for (let i = 0; i < did.length; i += 1) hash = (hash * 31 + did.charCodeAt(i)) >>> 0
      return two.anchors[hash % two.anchors.length]
    }
    const backup = homeOf(requester.did) === anchor.did ? anchor2 : anchor
    const { agent, published, advance } = agentOf(backup, {
      params: two,
      roles: { decider: true },
      consensus: new MemoryConsensusStore(),
    })
    for (const env of [need, propose, vote]) await agent.deliver(env)
    const replica = agent.replica(need.thread)!
    expect(replica.state.quorum?.proposal).toBe(propose.id)
    await advance(100)
    // A stranger's plan and its own vote, both backdated before the honest vote: the quorum moves.
    const patch = (propose as Envelope<'PROPOSE'>).payload.patch
    let rival: AnyEnvelope | undefined
    let rivalVote: AnyEnvelope | undefined
    for (let ts = 0; !rival || !rivalVote || rivalVote.id < rival.id; ts += 1) {
      rival = await sign(
        stranger,
        'PROPOSE',
        need.thread,
        { need: need.thread, patch, ballot: 1, price: 3, etaMs: 1, shardDependencies: [] },
        { lamport: 2, ts },
      )
      rivalVote = await sign(
        stranger,
        'ATTEST_PLAN',
        need.thread,
        { need: need.thread, proposal: rival.id, verdict: 'accept' },
        { lamport: 2, ts },
      )
    }
    await agent.deliver(rival!)
    await agent.deliver(rivalVote!)
    expect(replica.state.quorum?.proposal).toBe(rival!.id)
    await advance(60_000)
    const decides = published.filter((env) => env.kind === 'DECIDE')
    expect(decides).toHaveLength(1)
    expect(replica.state.winner).toBeDefined()
    agent.stop()
  })
})

describe('a plan that names the wrong output type', () => {
  it('is not attested by a verifier that knows the capability, and cannot get a right result invalidated', async () => {
    // sha256 gives hex text; the plan says JSON.
    const hashNeed = await signNeed(requester, {
      epoch: 1,
      requires: ['sha256'],
      inputs: [input],
      produces: 'application/json',
      budget: 10,
      deadlineMs: 0,
      bidWindowMs: 1,
    })
    const mistyped = [{ name: 'hash', capability: 'sha256', inputs: [input], produces: 'application/json' }]
    const rival = await sign(
      stranger,
      'PROPOSE',
      hashNeed.thread,
      { need: hashNeed.thread, patch: mistyped, ballot: 1, price: 3, etaMs: 1, shardDependencies: [] },
      { lamport: 2 },
    )
    const judge = agentOf(verifier, { roles: { verifier: true } })
    for (const env of [hashNeed, rival]) await judge.agent.deliver(env)
    await judge.advance(1_000)
    expect(judge.published.filter((env) => env.kind === 'ATTEST_PLAN')).toEqual([])
    judge.agent.stop()

    // Decided anyway (the stranger's own vote in an open pool): the worker's right hex output stands.
    const open = testParams({ anchors: [anchor.did], verifiers: [], bootstrap: true })
    const artifacts = new MemoryArtifactStore()
    const bytes = new TextEncoder().encode('a b a')
    await artifacts.put(bytes)
    const { agent, published, advance } = agentOf(anchor, {
      params: open,
      roles: { decider: true },
      consensus: new MemoryConsensusStore(),
      artifacts,
    })
    const ownVote = await sign(
      stranger,
      'ATTEST_PLAN',
      hashNeed.thread,
      { need: hashNeed.thread, proposal: rival.id, verdict: 'accept' },
      { lamport: 3 },
    )
    for (const env of [hashNeed, rival, ownVote]) await agent.deliver(env)
    const replica = agent.replica(hashNeed.thread)!
    expect(replica.state.winner?.proposal).toBe(rival.id)
    const hashTask = `${rival.id}/hash`
    const claim = await sign(
      workerA,
      'CLAIM',
      hashNeed.thread,
      { task: hashTask, leaseTtlMs: 60_000, cost: 1, etaMs: 1 },
      { lamport: replica.nextLamport() },
    )
    await agent.deliver(claim)
    await advance(50)
    const { sha256Capability } = await import('../src/agent/capabilities.ts')
    const output = await artifacts.put(sha256Capability([bytes]))
    const commit = await sign(
      workerA,
      'COMMIT',
      hashNeed.thread,
      {
        task: hashTask,
        claim: claim.id,
        outputs: [output],
        inputs: [input],
        telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 5, outputBytes: 64 },
        verifyBounty: 2,
      },
      { lamport: replica.nextLamport(), fence: claim.id },
    )
    expect(await agent.deliver(commit)).toBeUndefined()
    const challenge = await sign(
      stranger,
      'CHALLENGE',
      hashNeed.thread,
      {
        task: hashTask,
        commit: commit.id,
        bond: 4,
        proof: { type: 'schema-violation', output, reason: 'not JSON' },
      },
      { lamport: replica.nextLamport() },
    )
    expect(await agent.deliver(challenge)).toBeUndefined()
    await advance(5_000)
    expect(published.filter((env) => env.kind === 'INVALIDATE')).toEqual([])
    expect(replica.state.tasks.get(hashTask)?.commit?.id).toBe(commit.id)
    agent.stop()
  })
})

describe('settled threads (bounded state)', () => {
  /** An anchor agent carrying the test NEED to FINAL in an open pool (T_challenge 100 ms). */
  async function finalThread(extra: Partial<AgentOptions>) {
    const made = await committedThread(extra)
    const { agent, advance, replica, commit } = made
    const [key] = await makeIdentities(1, 0x72)
    await agent.deliver(
      await sign(
        key!,
        'ATTEST',
        need.thread,
        { task, commit: commit.id, verdict: 'pass', evalDigest: 'x' },
        {
          lamport: replica.nextLamport(),
        },
      ),
    )
    await advance(2_000)
    expect(replica.state.tasks.get(task)?.state).toBe('FINAL')
    return { ...made, key: key! }
  }

  it('tells observers once a thread has been quiet for settleAfterMs after its last FINAL, and retires it on request', async () => {
    const settled: string[] = []
    const { agent, advance, commit, key } = await finalThread({ retireSettled: true, settleAfterMs: 10_000 })
    agent.onSettled((thread) => settled.push(thread))
    const retired: [string, number][] = []
    agent.onRetire((thread, envelopes) => retired.push([thread, envelopes.length]))
    // News of the thread (a late, refused vote is still placed) moves the quiet period on.
    await advance(9_000)
    const late = await sign(
      stranger,
      'ATTEST',
      need.thread,
      { task, commit: commit.id, verdict: 'fail', evalDigest: 'y' },
      { lamport: agent.replica(need.thread)!.nextLamport() },
    )
    expect(await agent.deliver(late)).toBeUndefined()
    await advance(12_500)
    expect(settled).toEqual([])
    expect(agent.replica(need.thread)).toBeDefined()
    const refusalsBefore = agent.refusals()
    await advance(19_500)
    expect(settled).toEqual([need.thread])
    // Retired: the replica and the memos leave memory, its id stays; later envelopes are `retired`.
    expect(agent.replica(need.thread)).toBeUndefined()
    expect(agent.threads()).toEqual([])
    expect(agent.isRetired(need.thread)).toBe(true)
    // Its timers went with it (an anchor's 10-minute lease-hold watch would keep the replica alive).
    expect(agent.sizes).toMatchObject({ threads: 0, retired: 1, memos: 0, timers: 0 })
    // Observers hear of it with every envelope it held (the late vote included).
    expect(retired).toHaveLength(1)
    expect(retired[0]![0]).toBe(need.thread)
    expect(retired[0]![1]).toBeGreaterThan(5)
    expect(agent.retire(need.thread)).toBe(false)
    expect(agent.holds(late)).toBe(true)
    const again = await sign(
      key,
      'ATTEST',
      need.thread,
      { task, commit: commit.id, verdict: 'pass', evalDigest: 'z' },
      { lamport: 99 },
    )
    expect(await agent.deliver(again)).toBe('retired')
    expect(agent.refusals()).toEqual(refusalsBefore)
    await advance(100_000)
    expect(settled).toEqual([need.thread])
    agent.stop()
  })

  it('keeps the replica of a settled thread unless asked to retire it; retired ids are bounded', async () => {
    const kept = await finalThread({})
    const settled: string[] = []
    kept.agent.onSettled((thread) => settled.push(thread))
    await kept.advance(60_000)
    expect(settled).toEqual([need.thread])
    expect(kept.agent.replica(need.thread)?.state.tasks.get(task)?.state).toBe('FINAL')
    kept.agent.stop()

    // With no room for retired ids, a retired thread is forgotten: its envelopes are orphans again.
    const bounded = await finalThread({ retireSettled: true, maxRetiredThreads: 0 })
    await bounded.advance(60_000)
    expect(bounded.agent.replica(need.thread)).toBeUndefined()
    expect(bounded.agent.isRetired(need.thread)).toBe(false)
    const late = await sign(stranger, 'CLAIM', need.thread, { task, leaseTtlMs: 60_000, cost: 3, etaMs: 1 })
    expect(await bounded.agent.deliver(late)).toBe('pending:no-need')
    bounded.agent.stop()
  })
})

describe('bounded threads', () => {
  const needOf = (who: Identity, budget: number) =>
    signNeed(who, {
      epoch: 1,
      requires: ['word-frequency'],
      inputs: [input],
      produces: 'application/json',
      budget,
      deadlineMs: 0,
      bidWindowMs: 1,
    })

  it('follows at most maxUndecidedThreads undecided threads: the one quiet the longest goes, never its own', async () => {
    const { agent, advance } = agentOf(planner, { maxUndecidedThreads: 2 })
    const evicted: string[] = []
    agent.onEvict((env) => evicted.push(env.id))
    const own = await agent.post({ requires: ['word-frequency'], inputs: [new Uint8Array([1])], budget: 3 })
    await advance(10)
    const first = await needOf(stranger, 21)
    expect(await agent.deliver(first)).toBeUndefined()
    await advance(20)
    const second = await needOf(stranger, 22)
    expect(await agent.deliver(second)).toBeUndefined()
    // Three undecided (one its own): the stranger's quietest thread made room for the second.
    expect(agent.replica(first.thread)).toBeUndefined()
    expect(evicted).toEqual([first.id])
    expect(agent.evictedThreads).toBe(1)
    expect(agent.replica(own)).toBeDefined()
    expect(agent.sizes).toMatchObject({ threads: 2, undecided: 2 })
    agent.stop()
  })

  it('under a flood from one key, that key’s NEEDs go first; ranked NEEDs outlast unranked ones', async () => {
    const { agent, advance } = agentOf(planner, { maxUndecidedThreads: 3 })
    const honest = await needOf(requester, 40)
    await agent.deliver(honest)
    const flood: string[] = []
    for (let i = 0; i < 10; i += 1) {
      await advance(20 + 10 * i)
      const env = await needOf(stranger, 100 + i)
      flood.push(env.thread)
      await agent.deliver(env)
    }
    // The requester's NEED was the quietest, and stayed: the flooder held more.
    expect(agent.replica(honest.thread)).toBeDefined()
    expect(agent.sizes.undecided).toBe(3)
    expect(flood.filter((thread) => agent.replica(thread) !== undefined)).toEqual(flood.slice(-2))
    agent.stop()

    // Many keys with one NEED each (a Sybil flood): the rank decides, the NEED that can be paid stays.
    const sybils = await makeIdentities(8, 0x5b)
    const ranked = agentOf(planner, {
      maxUndecidedThreads: 3,
      undecidedRank: (wanted) => (wanted.requester === requester.did ? 1 : 0),
    })
    await ranked.agent.deliver(honest)
    for (const [i, sybil] of sybils.entries()) {
      await ranked.advance(20 + 10 * i)
      await ranked.agent.deliver(await needOf(sybil, 200 + i))
    }
    expect(ranked.agent.replica(honest.thread)).toBeDefined()
    expect(ranked.agent.evictedThreads).toBe(sybils.length - 2)
    ranked.agent.stop()
  })

  it('evicts the lowest rank, then from the requester holding the most (property)', async () => {
    const keys = await makeIdentities(5, 0x6c)
    const rankOf = (did: string) => (did === keys[0]!.did ? 2 : did === keys[1]!.did ? 1 : 0)
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: keys.length - 1 }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 6 }),
        async (senders, max) => {
          const { agent, advance } = agentOf(planner, {
            maxUndecidedThreads: max,
            undecidedRank: (wanted) => rankOf(wanted.requester),
          })
          const requesterOf = new Map<string, string>()
          for (const [i, index] of senders.entries()) {
            await advance(i * 10)
            const env = await needOf(keys[index]!, 1000 + i)
            requesterOf.set(env.thread, env.sender)
            const before = agent.threads()
            await agent.deliver(env)
            expect(agent.sizes.undecided).toBeLessThanOrEqual(max)
            const gone = before.filter((thread) => agent.replica(thread) === undefined)
            expect(gone.length).toBeLessThanOrEqual(1)
            if (gone.length === 0) continue
            const victim = requesterOf.get(gone[0]!)!
            const lowest = Math.min(...before.map((thread) => rankOf(requesterOf.get(thread)!)))
            expect(rankOf(victim)).toBe(lowest)
            const held = (did: string) => before.filter((thread) => requesterOf.get(thread) === did).length
            for (const thread of before) {
              const other = requesterOf.get(thread)!
              if (rankOf(other) === lowest) expect(held(victim)).toBeGreaterThanOrEqual(held(other))
            }
          }
          agent.stop()
        },
      ),
      { numRuns: 60 },
    )
  })

  it('a full thread takes its parties’ envelopes and refuses everyone else’s (thread-full)', async () => {
    const { agent } = agentOf(verifier, { maxEnvelopesPerThread: 3 })
    for (const env of [need, propose, vote]) await agent.deliver(env)
    const strangerVote = await sign(
      stranger,
      'ATTEST_PLAN',
      need.thread,
      { need: need.thread, proposal: propose.id, verdict: 'accept' },
      { lamport: 4 },
    )
    expect(await agent.deliver(strangerVote)).toBe('thread-full')
    expect(agent.refusals()['thread-full']).toBe(1)
    // The requester and the anchors are parties: still taken in.
    const annotate = await sign(
      anchor,
      'CHECKPOINT',
      need.thread,
      { epoch: 1, merkleRoot: 'r', signers: [anchor.did] },
      { lamport: 4 },
    )
    expect(await agent.deliver(annotate)).not.toBe('thread-full')
    expect(agent.replica(need.thread)!.has(annotate.id)).toBe(true)
    agent.stop()
  })
})

describe('Agent.deliverMany', () => {
  it('says of each envelope what deliver would, and leaves the same state, folding each thread once', async () => {
    const strangerDecide = await decideBy(stranger, params)
    const ahead = await sign(
      stranger,
      'ATTEST_PLAN',
      need.thread,
      { need: need.thread, proposal: propose.id, verdict: 'reject' },
      { lamport: 1_000_000 },
    )
    const batch = [propose, vote, propose, strangerDecide, ahead]
    const many = agentOf(verifier)
    expect(await many.agent.deliverMany([need])).toEqual([undefined])
    const outcomes = await many.agent.deliverMany(batch)
    const one = agentOf(verifier)
    await one.agent.deliver(need)
    const expected: (string | undefined)[] = []
    for (const env of batch) expected.push(await one.agent.deliver(env))
    expect(outcomes).toEqual(expected)
    expect(outcomes).toEqual([undefined, undefined, 'duplicate', 'not-an-anchor', 'pending:lamport'])
    expect(many.agent.replica(need.thread)!.stateHash()).toBe(one.agent.replica(need.thread)!.stateHash())
    // A thread not followed yet is opened by its NEED in the same call.
    const fresh = agentOf(verifier)
    expect(await fresh.agent.deliverMany([need, propose, vote])).toEqual([undefined, undefined, undefined])
    expect(fresh.agent.replica(need.thread)!.stateHash()).toBe(one.agent.replica(need.thread)!.stateHash())
    for (const made of [many, one, fresh]) made.agent.stop()
  })
})

describe('a worker’s capability under its lease', () => {
  /** A worker running a capability that reports progress and waits to be let go (or aborted). */
  async function leasedWorker(release: 'anchor-release' | 'finish') {
    let context: CapabilityContext | undefined
    let finish: (() => void) | undefined
    const capabilities = new CapabilityRegistry().register(
      'word-frequency',
      async (_inputs, ctx) => {
        context = ctx
        ctx.onProgress(250.4)
        await new Promise<void>((resolve) => {
          finish = resolve
          ctx.signal.addEventListener('abort', () => resolve())
        })
        return new TextEncoder().encode('[["a",2],["b",1]]')
      },
      { version: '1.0.0', produces: 'application/json', price: 3, description: 'slow on purpose' },
    )
    const artifacts = new MemoryArtifactStore()
    await artifacts.put(new TextEncoder().encode('a b a'))
    const { agent, published, advance, errors } = agentOf(workerA, {
      roles: { worker: true },
      capabilities,
      artifacts,
      tuning: { leaseTtlMs: 3_000, workMs: 10 },
    })
    for (const env of [need, propose, vote, await decideBy(anchor, params)]) {
      expect(await agent.deliver(env)).toBeUndefined()
    }
    await advance(1_000)
    const claim = published.find((env) => env.kind === 'CLAIM') as Envelope<'CLAIM'>
    expect(claim).toBeDefined()
    const grant = await sign(
      anchor,
      'GRANT',
      need.thread,
      { task, claim: claim.id, leaseTtlMs: 3_000 },
      { lamport: claim.lamport + 1 },
    )
    expect(await agent.deliver(grant)).toBeUndefined()
    // The work starts after workMs; the clock's loop waits on it, so it is not awaited here.
    const working = advance(1_020)
    await vi.waitFor(() => expect(context).toBeDefined())
    // The next HEARTBEAT (every TTL / 3) carries the progress the handler reported.
    const beating = advance(2_100)
    await vi.waitFor(() => expect(published.some((env) => env.kind === 'HEARTBEAT')).toBe(true))
    const beat = published.find((env) => env.kind === 'HEARTBEAT') as Envelope<'HEARTBEAT'>
    expect(beat.payload.progress).toBe(250)
    if (release === 'anchor-release') {
      const scavenge = await sign(
        anchor,
        'RELEASE',
        need.thread,
        { task, claim: claim.id, reason: 'lease-expired' },
        { lamport: beat.lamport + 1 },
      )
      expect(await agent.deliver(scavenge)).toBeUndefined()
    } else finish!()
    await Promise.all([working, beating])
    await advance(2_200)
    return { agent, published, context: context!, errors }
  }

  it('hears of its lost lease through the signal, and what it returns then is not committed', async () => {
    const { agent, published, context, errors } = await leasedWorker('anchor-release')
    expect(context.signal.aborted).toBe(true)
    expect(published.filter((env) => env.kind === 'COMMIT')).toEqual([])
    expect(errors).toEqual([])
    agent.stop()
  })

  it('commits what it returns while the lease holds, and its signal never fires', async () => {
    const { agent, published, context, errors } = await leasedWorker('finish')
    expect(context.signal.aborted).toBe(false)
    expect(published.filter((env) => env.kind === 'COMMIT')).toHaveLength(1)
    expect(errors).toEqual([])
    agent.stop()
    expect(context.signal.aborted).toBe(false)
  })
})

describe('Agent.setRoles', () => {
  it('takes on a role without refolding: a new verifier attests the plan it already holds; switched off, it stops', async () => {
    const { agent, published, errors } = agentOf(verifier)
    for (const env of [need, propose]) expect(await agent.deliver(env)).toBeUndefined()
    const replica = agent.replica(need.thread)!
    const steps = replica.foldSteps
    expect(published.filter((env) => env.kind === 'ATTEST_PLAN')).toEqual([])
    await agent.setRoles({ verifier: true })
    expect(agent.roles).toEqual({ verifier: true })
    const votes = published.filter((env) => env.kind === 'ATTEST_PLAN') as Envelope<'ATTEST_PLAN'>[]
    expect(votes.map((vote) => vote.payload.proposal)).toEqual([propose.id])
    // The same replica, folded no further than the vote it published.
    expect(agent.replica(need.thread)).toBe(replica)
    expect(replica.foldSteps - steps).toBeLessThanOrEqual(1)
    // Asked again, nothing is done twice.
    await agent.setRoles({ verifier: true })
    expect(published.filter((env) => env.kind === 'ATTEST_PLAN')).toHaveLength(1)
    // Off: a new plan of the thread is not attested.
    await agent.setRoles({})
    const second = await sign(
      workerB,
      'PROPOSE',
      need.thread,
      {
        need: need.thread,
        patch: (propose.payload as { patch: unknown[] }).patch,
        ballot: 2,
        price: 3,
        etaMs: 1,
        shardDependencies: [],
      } as never,
      { lamport: 3 },
    )
    expect(await agent.deliver(second)).toBeUndefined()
    expect(published.filter((env) => env.kind === 'ATTEST_PLAN')).toHaveLength(1)
    expect(errors).toEqual([])
    agent.stop()
  })

  it('refuses the decider role to a peer that cannot hold it, and keeps its roles', async () => {
    const { agent } = agentOf(stranger, { roles: { worker: true } })
    await expect(agent.setRoles({ decider: true })).rejects.toThrow(InvalidArgumentError)
    expect(agent.roles).toEqual({ worker: true })
    agent.stop()
  })
})
