/**
 * The agent's roles on their own: each is built from a RoleContext, so a test hands it a context
 * whose clock, timers and publishing it controls, and checks what the role says and when.
 */
import { describe, expect, it } from 'vitest'
import { decidedOpening, taskOf } from '../../../test-support/decided-thread.ts'
import { makeIdentities, sign, testParams } from '../../../test-support/envelopes.ts'
import { planQuorum, QUORUM_INPUT } from '../../../test-support/quorum.ts'
import { type AgentOptions, type AgentRoles, DEFAULT_AGENT_TUNING } from '../src/agent/agent.ts'
import { builtinCapabilities, CapabilityRegistry } from '../src/agent/capabilities.ts'
import type { RoleContext } from '../src/agent/roles/context.ts'
import { DeciderRole } from '../src/agent/roles/decider.ts'
import { PlannerRole } from '../src/agent/roles/planner.ts'
import { RequesterRole } from '../src/agent/roles/requester.ts'
import { VerifierRole } from '../src/agent/roles/verifier.ts'
import { WorkerRole } from '../src/agent/roles/worker.ts'
import { artifactCid, MemoryArtifactStore } from '../src/core/artifacts.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import type { AnyEnvelope } from '../src/core/types.ts'
import { finalThread } from './final-thread.ts'

const TEST_NET = testParams().network

/** A context whose timers wait in `timers` (run them with `fire`) and whose envelopes land in `said`. */
function fakeContext(
  did: string,
  roles: AgentRoles,
  overrides: Partial<AgentOptions> = {},
  capabilities: CapabilityRegistry = builtinCapabilities(),
  params = testParams({ anchors: [], verifiers: [did], bootstrap: false }),
) {
  const said: Array<{ kind: string; payload: unknown }> = []
  const extras: Array<{ ts?: number }> = []
  const timers: Array<{ delayMs: number; action: () => Promise<void> }> = []
  const done = new Set<string>()
  const context: RoleContext = {
    did,
    tuning: DEFAULT_AGENT_TUNING,
    capabilities,
    options: { random: { next: () => 0.5 }, params, ...overrides } as AgentOptions,
    params,
    roles,
    publish: (async (kind: string, _thread: string, payload: unknown, extra: { ts?: number } = {}) => {
      said.push({ kind, payload })
      extras.push(extra)
      return {} as never
    }) as RoleContext['publish'],
    once: (thread, key) => !done.has(`${thread}:${key}`) && done.add(`${thread}:${key}`) !== undefined,
    after: (delayMs, action) => void timers.push({ delayMs, action }),
    duty: (_thread, _key, delayMs, act) =>
      void timers.push({ delayMs, action: async () => void (await act()) }),
    timersOf: () => ({ cancels: new Set(), duties: new Set() }),
    memoOf: () => ({ done: new Set(), expected: new Map(), measured: new Map() }),
    anchorDelay: () => 0,
    duties: new Set(),
    threadTimers: new Map(),
    running: new Map(),
    expectedOutputs: async () => undefined,
    challengeExpectation: async () => undefined,
    inputsOf: async () => undefined,
  }
  const fire = async () => {
    for (const timer of timers.splice(0)) await timer.action()
  }
  return { context, said, extras, timers, fire, params }
}

/** A context for a party of a hand-built thread (`fixture.params`, the built-in capabilities). */
function contextOf(
  fixture: { params: ReturnType<typeof testParams> },
  did: string,
  roles: AgentRoles,
  overrides: Partial<AgentOptions> = {},
) {
  return fakeContext(did, roles, overrides, builtinCapabilities(), fixture.params)
}

/** A replica holding `envelopes`, in order. */
function holding(envelopes: readonly AnyEnvelope[], params: ReturnType<typeof testParams>): ThreadReplica {
  const replica = new ThreadReplica(envelopes[0]!.thread, params)
  for (const env of envelopes) replica.receive(env, 0)
  return replica
}

describe('the planner role', () => {
  it('bids once per NEED it can do, within the bid window, priced from its capabilities, and not over budget', async () => {
    const [requester, planner, attester] = await makeIdentities(3, 41)
    const { envelopes } = await planQuorum(
      { requester: requester!, planner: attester!, attester: attester! },
      TEST_NET,
      {
        budget: 10,
      },
    )
    const { context, said, timers, fire, params } = fakeContext(planner!.did, { planner: true })
    const replica = holding(envelopes.slice(0, 1), params)
    const role = new PlannerRole(context)
    role.planLater(replica)
    role.planLater(replica)
    expect(timers).toHaveLength(1)
    // Half of min(proposeBackoffMs, the NEED's bid window of 1 ms), with random() = 0.5.
    expect(timers[0]!.delayMs).toBe(0.5)
    await fire()
    expect(said).toHaveLength(1)
    expect(said[0]!.kind).toBe('PROPOSE')
    const price = builtinCapabilities().get('sha256')!.manifest.price
    expect(said[0]!.payload).toMatchObject({
      need: replica.thread,
      price,
      patch: [{ capability: 'sha256', inputs: [QUORUM_INPUT] }],
    })
  })

  it('does not bid for a NEED needing a capability it lacks, over budget, or once it stopped planning', async () => {
    const [requester, planner] = await makeIdentities(2, 42)
    const lacking = fakeContext(planner!.did, { planner: true }, {})
    const { envelopes } = await planQuorum(
      { requester: requester!, planner: planner!, attester: planner! },
      TEST_NET,
      {
        budget: 0,
      },
    )
    const replica = holding(envelopes.slice(0, 1), lacking.params)
    // Over budget: the timer fires and nothing is said.
    new PlannerRole(lacking.context).planLater(replica)
    await lacking.fire()
    expect(lacking.said).toEqual([])
    // A registry without sha256: not even a timer.
    const empty = fakeContext(planner!.did, { planner: true }, {}, new CapabilityRegistry())
    new PlannerRole(empty.context).planLater(replica)
    expect(empty.timers).toEqual([])
    // Roles changed to none before the timer fired: nothing said.
    const { envelopes: funded } = await planQuorum(
      { requester: requester!, planner: planner!, attester: planner! },
      TEST_NET,
      { budget: 10, nonce: 2 },
    )
    const stopped = fakeContext(planner!.did, { planner: false })
    new PlannerRole(stopped.context).planLater(holding(funded.slice(0, 1), stopped.params))
    await stopped.fire()
    expect(stopped.said).toEqual([])
  })
})

describe('the verifier role', () => {
  it('accepts a plan once, never its own outside bootstrap, and never a plan whose output type its capability does not produce', async () => {
    const [requester, planner, verifier] = await makeIdentities(3, 43)
    const { envelopes, proposal } = await planQuorum(
      { requester: requester!, planner: planner!, attester: planner! },
      TEST_NET,
      { budget: 10 },
    )
    const { context, said, params } = fakeContext(verifier!.did, { verifier: true })
    const replica = holding(envelopes.slice(0, 2), params)
    const role = new VerifierRole(context)
    await role.attestPlan(replica, proposal)
    await role.attestPlan(replica, proposal)
    expect(said).toEqual([
      { kind: 'ATTEST_PLAN', payload: { need: replica.thread, proposal, verdict: 'accept' } },
    ])
    // The planner itself does not vote for its plan (outside bootstrap).
    const own = fakeContext(planner!.did, { verifier: true })
    await new VerifierRole(own.context).attestPlan(holding(envelopes.slice(0, 2), own.params), proposal)
    expect(own.said).toEqual([])
    // The plan says sha256 produces text/plain; a verifier whose sha256 produces something else
    // would find every right result wrong: it does not accept the plan.
    const sha256 = builtinCapabilities().get('sha256')!
    const other = new CapabilityRegistry().register('sha256', sha256.handler, {
      ...sha256.manifest,
      produces: 'application/json',
    })
    const typed = fakeContext(verifier!.did, { verifier: true }, {}, other)
    await new VerifierRole(typed.context).attestPlan(holding(envelopes.slice(0, 2), typed.params), proposal)
    expect(typed.said).toEqual([])
  })
})

describe('the worker role', () => {
  it('claims a ready task it can do once per round, after its back-off, at its price, and only while a worker', async () => {
    const [requester, planner, verifier, decider, worker] = await makeIdentities(5, 44)
    const params = testParams({ anchors: [decider!.did], verifiers: [verifier!.did], bootstrap: true })
    const opening = await decidedOpening({
      requester: requester!,
      planner: planner!,
      verifier: verifier!,
      decider: decider!,
      params,
      requires: ['sha256'],
      inputs: [QUORUM_INPUT],
      produces: 'text/plain',
      budget: 10,
      price: 1,
      patch: [{ name: 'a', capability: 'sha256', inputs: [QUORUM_INPUT], produces: 'text/plain' }],
    })
    const task = taskOf(opening, 'a')
    const { context, said, timers, fire } = fakeContext(worker!.did, { worker: true })
    const replica = holding(opening.log, params)
    expect(replica.state.tasks.get(task)?.state).toBe('DECIDED')
    const role = new WorkerRole(context)
    role.claimLater(replica, task)
    role.claimLater(replica, task)
    expect(timers).toHaveLength(1)
    expect(timers[0]!.delayMs).toBe(DEFAULT_AGENT_TUNING.claimBackoffMs / 2)
    await fire()
    expect(said).toEqual([
      {
        kind: 'CLAIM',
        payload: {
          task,
          leaseTtlMs: DEFAULT_AGENT_TUNING.leaseTtlMs,
          cost: builtinCapabilities().get('sha256')!.manifest.price,
          etaMs: DEFAULT_AGENT_TUNING.workMs,
        },
      },
    ])
    // Without the capability: no attempt; with the worker role dropped before the timer: no CLAIM.
    const unable = fakeContext(worker!.did, { worker: true }, {}, new CapabilityRegistry())
    new WorkerRole(unable.context).claimLater(replica, task)
    expect(unable.timers).toEqual([])
    const retired = fakeContext(worker!.did, { worker: false })
    new WorkerRole(retired.context).claimLater(replica, task)
    await retired.fire()
    expect(retired.said).toEqual([])
  })
})

describe('the decider role', () => {
  it("checks each NEED's funds with what its DECIDEs in flight already take from the requester (A7), and dates its DECIDEs after its log's", async () => {
    const [requester, planner, attester, anchor] = await makeIdentities(4, 45)
    const params = testParams({ anchors: [anchor!.did], verifiers: [attester!.did], bootstrap: true })
    const signers = { requester: requester!, planner: planner!, attester: attester! }
    const first = await planQuorum(signers, TEST_NET, { budget: 10, nonce: 1 })
    const second = await planQuorum(signers, TEST_NET, { budget: 10, nonce: 2 })
    // The consensus store answers when the test says: both DECIDEs are in flight at once.
    let release: () => void = () => undefined
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    const checks: Array<{ thread: string; reserved: number; inFlight: string[] }> = []
    const refusals: string[] = []
    const { context, said, extras } = fakeContext(
      anchor!.did,
      { decider: true },
      {
        clock: { now: () => 1_000, setTimer: () => () => undefined },
        consensus: {
          currentEpoch: async () => 1,
          tryDecide: async (request: {
            need: string
            proposal: string
            epoch: number
            lamport: number
            kPlan: number
            decider: string
          }) => {
            await held
            return { outcome: 'decided', record: { ...request } }
          },
        } as never,
        // The requester holds 15 credits: one NEED of 10 fits, two do not.
        funding: async (need, thread, reserved, inFlight) => {
          checks.push({ thread, reserved, inFlight: [...inFlight] })
          return reserved + need.budget > 15 ? `holds 15, ${reserved} already taken` : undefined
        },
        onError: (error) => refusals.push(String(error)),
      },
      builtinCapabilities(),
      params,
    )
    const role = new DeciderRole(context)
    role.noteDecide(5_000) // a DECIDE of this anchor's in its log, dated after the clock
    const one = holding(first.envelopes, params)
    const two = holding(second.envelopes, params)
    expect(one.state.quorum?.proposal).toBe(first.proposal)
    const deciding = role.decide(one, first.proposal, 1)
    await new Promise((resolve) => setTimeout(resolve, 0))
    await role.decide(two, second.proposal, 1)
    release()
    await deciding
    expect(checks).toEqual([
      { thread: one.thread, reserved: 0, inFlight: [] },
      { thread: two.thread, reserved: 10, inFlight: [one.thread] },
    ])
    expect(refusals).toHaveLength(1)
    expect(refusals[0]).toMatch(/is not decided: holds 15, 10 already taken/)
    expect(said.map((entry) => entry.kind)).toEqual(['DECIDE'])
    // Strictly after what its log holds, whatever the clock says (1 000).
    expect((said[0]!.payload as { need: string }).need).toBe(one.thread)
    expect(extras[0]!.ts).toBe(5_001)
    // Once the first DECIDE is out, the funds it held are free again: the second NEED fits now.
    const again = holding(second.envelopes, params)
    const retry = fakeContext(anchor!.did, { decider: true }, context.options, builtinCapabilities(), params)
    await new DeciderRole(retry.context).decide(again, second.proposal, 1)
    expect(checks.at(-1)).toEqual({ thread: two.thread, reserved: 0, inFlight: [] })
  })
})

describe('the requester role', () => {
  it('refuses a NEED it cannot stand behind before saying anything, and says an accepted one once', async () => {
    const [requester] = await makeIdentities(1, 46)
    const store = new MemoryArtifactStore()
    const { context } = fakeContext(
      requester!.did,
      {},
      { artifacts: store, clock: { now: () => 0, setTimer: () => () => undefined } },
    )
    const placed: string[] = []
    const role = new RequesterRole(context, {
      draftNeed: (payload) =>
        ({
          v: 1,
          net: TEST_NET,
          kind: 'NEED',
          thread: '',
          sender: requester!.did,
          lamport: 1,
          ts: 0,
          payload,
          refs: [],
          policy: 'p',
          epoch: 1,
        }) as never,
      sign: async (unsigned) => ({ ...unsigned, id: unsigned.thread, sig: 'x' }) as never,
      place: async (thread) => void placed.push(thread),
    })
    const bytes = new TextEncoder().encode('x')
    const price = builtinCapabilities().get('sha256')!.manifest.price
    await expect(role.post({ requires: [], inputs: [bytes], budget: 10 })).rejects.toMatchObject({
      field: 'requires',
    })
    await expect(role.post({ requires: ['sha256'], inputs: [], budget: 10 })).rejects.toMatchObject({
      field: 'inputs',
    })
    await expect(role.post({ requires: ['no-such'], inputs: [bytes], budget: 10 })).rejects.toThrow(/no-such/)
    await expect(role.post({ requires: ['sha256'], inputs: [bytes], budget: price - 1 })).rejects.toThrow(
      /budget/,
    )
    await expect(
      role.post(
        { requires: ['sha256'], inputs: [bytes], budget: 10 },
        { signal: AbortSignal.abort(new Error('gone')) },
      ),
    ).rejects.toThrow('gone')
    expect(placed).toEqual([])
    // Unlisted: a capability this peer does not know, for peers that do.
    const thread = await role.post({ requires: ['no-such'], inputs: [bytes], budget: 10, unlisted: true })
    expect(placed).toEqual([thread])
    expect(await store.get(artifactCid(bytes))).toEqual(bytes)
  })
})

describe('the verifier role on results', () => {
  it('attests a result once, pass when the re-run agrees and fail when it does not, and only in the committee', async () => {
    const fixture = await finalThread({ output: new TextEncoder().encode('{"a":2,"b":1}'), tag: 47 })
    const committed = fixture.log.slice(0, 7)
    const commit = committed[6]!
    const outputs = (commit.payload as { outputs: string[] }).outputs
    for (const [expected, verdict] of [
      [outputs, 'pass'],
      [['bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq'], 'fail'],
    ] as const) {
      const { context, said } = contextOf(fixture, fixture.verifier.did, { verifier: true })
      ;(context as { expectedOutputs: RoleContext['expectedOutputs'] }).expectedOutputs = async () => [
        ...expected,
      ]
      const role = new VerifierRole(context)
      const replica = holding(committed, fixture.params)
      await role.attestResult(replica, fixture.task, commit.id)
      await role.attestResult(replica, fixture.task, commit.id)
      expect(said.map((entry) => [entry.kind, (entry.payload as { verdict: string }).verdict])).toEqual([
        ['ATTEST', verdict],
      ])
    }
    // Not in the committee: nothing.
    const outsider = contextOf(fixture, fixture.worker.did, { verifier: true })
    outsider.context.expectedOutputs = async () => [...outputs]
    await new VerifierRole(outsider.context).attestResult(
      holding(committed, fixture.params),
      fixture.task,
      commit.id,
    )
    expect(outsider.said).toEqual([])
  })

  it('challenges a result its expectation contradicts, with the bond the proof needs, and never one that matches', async () => {
    const fixture = await finalThread({ output: new TextEncoder().encode('wrong'), tag: 48 })
    const committed = fixture.log.slice(0, 8)
    const commit = committed[6]!
    const outputs = (commit.payload as { outputs: string[] }).outputs
    const right = ['bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq']
    const { context, said } = contextOf(fixture, fixture.planner.did, { verifier: true })
    context.challengeExpectation = async () => right
    const role = new VerifierRole(context)
    await role.challengeIfWrong(holding(committed, fixture.params), fixture.task, commit.id)
    await role.challengeIfWrong(holding(committed, fixture.params), fixture.task, commit.id)
    expect(said).toHaveLength(1)
    expect(said[0]).toMatchObject({
      kind: 'CHALLENGE',
      payload: { task: fixture.task, commit: commit.id, proof: { type: 'output-mismatch', expected: right } },
    })
    expect((said[0]!.payload as { bond: number }).bond).toBeGreaterThanOrEqual(
      DEFAULT_AGENT_TUNING.challengeBond,
    )
    const agreeing = contextOf(fixture, fixture.planner.did, { verifier: true })
    agreeing.context.challengeExpectation = async () => [...outputs]
    await new VerifierRole(agreeing.context).challengeIfWrong(
      holding(committed, fixture.params),
      fixture.task,
      commit.id,
    )
    expect(agreeing.said).toEqual([])
  })
})

describe('the decider role on leases and results', () => {
  it('grants the cheapest CLAIM of the round (not the first received), and finalizes a verified result with its passes', async () => {
    const fixture = await finalThread({ output: new TextEncoder().encode('{"a":2,"b":1}'), tag: 49 })
    const opening = fixture.log.slice(0, 4)
    const [other] = await makeIdentities(1, 50)
    const dear = await sign(
      fixture.worker,
      'CLAIM',
      fixture.thread,
      { task: fixture.task, leaseTtlMs: 60_000, cost: 1, etaMs: 1 },
      { lamport: 5 },
    )
    const cheap = await sign(
      other!,
      'CLAIM',
      fixture.thread,
      { task: fixture.task, leaseTtlMs: 30_000, cost: 0, etaMs: 1 },
      { lamport: 5 },
    )
    const claimed = holding([...opening, dear, cheap], fixture.params)
    const { context, said, fire } = contextOf(fixture, fixture.decider.did, { decider: true })
    const role = new DeciderRole(context)
    role.grantLater(claimed, fixture.task)
    await fire()
    expect(said).toEqual([
      {
        kind: 'GRANT',
        payload: {
          task: fixture.task,
          claim: cheap.id,
          leaseTtlMs: Math.max(fixture.params.minLeaseTtlMs, 30_000),
        },
      },
    ])
    // A verified result (COMMIT + a pass from the committee): FINALIZE names the commit and the pass.
    const verified = holding(fixture.log.slice(0, 8), fixture.params)
    const commit = fixture.log[6]!
    const pass = fixture.log[7]!
    const finals = contextOf(fixture, fixture.decider.did, { decider: true })
    new DeciderRole(finals.context).finalizeLater(verified, fixture.task, commit.id)
    await finals.fire()
    expect(finals.said).toHaveLength(1)
    expect(finals.said[0]!.kind).toBe('FINALIZE')
    expect(finals.said[0]!.payload).toMatchObject({ task: fixture.task, commit: commit.id })
    expect(
      (finals.said[0]!.payload as { attestations: Array<{ id: string }> }).attestations.map((a) => a.id),
    ).toEqual([pass.id])
    // A result not yet verified is not finalized.
    const early = contextOf(fixture, fixture.decider.did, { decider: true })
    new DeciderRole(early.context).finalizeLater(
      holding(fixture.log.slice(0, 7), fixture.params),
      fixture.task,
      commit.id,
    )
    await early.fire()
    expect(early.said).toEqual([])
  })
})

describe('the decider role on stale leases', () => {
  it('scavenges a lease whose heartbeats stopped, and not one renewed since the timer was armed', async () => {
    const fixture = await finalThread({ output: new TextEncoder().encode('{"a":2,"b":1}'), tag: 51 })
    const granted = fixture.log.slice(0, 6)
    const claim = granted[4]!.id
    const silent = contextOf(fixture, fixture.decider.did, { decider: true })
    new DeciderRole(silent.context).scavengeLater(holding(granted, fixture.params), fixture.task, claim)
    await silent.fire()
    expect(silent.said).toEqual([
      { kind: 'RELEASE', payload: { task: fixture.task, claim, reason: 'lease-expired' } },
    ])
    // A HEARTBEAT arrives between arming and firing: the lease was renewed, the worker keeps it.
    const renewed = holding(granted, fixture.params)
    const beating = contextOf(fixture, fixture.decider.did, { decider: true })
    new DeciderRole(beating.context).scavengeLater(renewed, fixture.task, claim)
    const heartbeat = await sign(
      fixture.worker,
      'HEARTBEAT',
      fixture.thread,
      { task: fixture.task, claim, progress: 100 },
      { fence: claim, lamport: 7 },
    )
    renewed.receive(heartbeat, 1)
    expect(renewed.state.tasks.get(fixture.task)?.lease?.renewedBy).toBe(heartbeat.id)
    await beating.fire()
    expect(beating.said).toEqual([])
    // Once the lease has gone to a COMMIT, there is nothing to scavenge.
    const committed = contextOf(fixture, fixture.decider.did, { decider: true })
    const role = new DeciderRole(committed.context)
    const replica = holding(granted, fixture.params)
    role.scavengeLater(replica, fixture.task, claim)
    replica.receive(fixture.log[6]!, 2)
    await committed.fire()
    expect(committed.said).toEqual([])
  })

  it('releases a lease held past maxLeaseHoldMs however often it was renewed, watching each claim once', async () => {
    const fixture = await finalThread({ output: new TextEncoder().encode('{"a":2,"b":1}'), tag: 52 })
    const granted = fixture.log.slice(0, 6)
    const claim = granted[4]!.id
    const replica = holding(granted, fixture.params)
    const { context, said, timers, fire } = contextOf(fixture, fixture.decider.did, { decider: true })
    const role = new DeciderRole(context)
    role.watchHold(replica, fixture.task, claim)
    role.watchHold(replica, fixture.task, claim)
    expect(timers.map((timer) => timer.delayMs)).toEqual([DEFAULT_AGENT_TUNING.maxLeaseHoldMs])
    // Renewals do not matter to the hold limit.
    const heartbeat = await sign(
      fixture.worker,
      'HEARTBEAT',
      fixture.thread,
      { task: fixture.task, claim, progress: 900 },
      { fence: claim, lamport: 7 },
    )
    replica.receive(heartbeat, 1)
    await fire() // the hold timer arms the release duty
    await fire()
    expect(said).toEqual([
      { kind: 'RELEASE', payload: { task: fixture.task, claim, reason: 'lease-expired' } },
    ])
    // A lease that ended before the limit is left alone.
    const done = holding(fixture.log.slice(0, 7), fixture.params)
    const quiet = contextOf(fixture, fixture.decider.did, { decider: true })
    new DeciderRole(quiet.context).watchHold(done, fixture.task, claim)
    await quiet.fire()
    await quiet.fire()
    expect(quiet.said).toEqual([])
  })
})

describe('the decider role after a partition', () => {
  it('records the merge of competing DECIDEs once, by the anchor whose DECIDE won, naming the orphaned proposal', async () => {
    const [requester, planner, verifier, first, second] = await makeIdentities(5, 53)
    const params = testParams({
      verifiers: [verifier!.did],
      anchors: [first!.did, second!.did],
      bootstrap: true,
    })
    const artifacts = new MemoryArtifactStore()
    const input = await artifacts.put(new TextEncoder().encode('a b a'))
    const opening = await decidedOpening({
      requester: requester!,
      planner: planner!,
      verifier: verifier!,
      decider: first!,
      params,
      requires: ['word-frequency'],
      inputs: [input],
      produces: 'application/json',
      budget: 10,
      price: 3,
      patch: [{ name: 'count', capability: 'word-frequency', inputs: [input], produces: 'application/json' }],
    })
    // The other side of the partition: another bid, accepted and decided by the other anchor.
    const rival = await sign(
      planner!,
      'PROPOSE',
      opening.thread,
      {
        need: opening.thread,
        patch: [
          { name: 'tally', capability: 'word-frequency', inputs: [input], produces: 'application/json' },
        ],
        ballot: 1,
        price: 2,
        etaMs: 1,
        shardDependencies: [],
      },
      { lamport: 2 },
    )
    const vote = await sign(
      verifier!,
      'ATTEST_PLAN',
      opening.thread,
      { need: opening.thread, proposal: rival.id, verdict: 'accept' },
      { lamport: 3 },
    )
    const rivalDecide = await sign(
      second!,
      'DECIDE',
      opening.thread,
      {
        need: opening.thread,
        proposal: rival.id,
        epoch: 1,
        lamport: 4,
        kPlan: 1,
        decider: second!.did,
        attestations: [vote as never],
        pool: opening.decide.payload.pool,
      },
      { lamport: 4, ts: 0 },
    )
    const replica = holding([...opening.log, rival, vote, rivalDecide], params)
    expect(replica.state.decides.size).toBe(2)
    const winner = replica.state.winner!
    const [winning, losing] = winner.decider === first!.did ? [first!, second!] : [second!, first!]
    const loserProposal = winner.proposal === rival.id ? opening.proposal : rival.id

    const won = fakeContext(winning.did, { decider: true }, {}, builtinCapabilities(), params)
    const role = new DeciderRole(won.context)
    await role.reconcile(replica)
    await role.reconcile(replica)
    expect(won.said).toEqual([
      {
        kind: 'RECONCILE',
        payload: {
          thread: opening.thread,
          merged: [winner.env],
          orphaned: [loserProposal],
          salvaged: replica.salvaged(),
        },
      },
    ])
    const lost = fakeContext(losing.did, { decider: true }, {}, builtinCapabilities(), params)
    await new DeciderRole(lost.context).reconcile(replica)
    expect(lost.said).toEqual([])
    // Without a competing DECIDE there is nothing to reconcile.
    const alone = fakeContext(first!.did, { decider: true }, {}, builtinCapabilities(), params)
    await new DeciderRole(alone.context).reconcile(holding(opening.log, params))
    expect(alone.said).toEqual([])
  })
})

describe('the judging of challenges', () => {
  const RIGHT = 'bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq'

  async function challenged(tag: number, proof: (outputs: string[]) => unknown) {
    const fixture = await finalThread({ output: new TextEncoder().encode('wrong'), tag })
    const commit = fixture.log[6]!
    const outputs = (commit.payload as { outputs: string[] }).outputs
    const challenge = await sign(
      fixture.planner,
      'CHALLENGE',
      fixture.thread,
      {
        task: fixture.task,
        commit: commit.id,
        proof: proof(outputs) as never,
        bond: DEFAULT_AGENT_TUNING.challengeBond * 4,
      },
      { lamport: 10 },
    )
    const replica = holding([...fixture.log, challenge], fixture.params)
    expect(replica.get(challenge.id)).toBeDefined()
    return { fixture, commit, outputs, challenge, replica }
  }

  it('upholds an output mismatch only when the re-run disagrees with the result, once', async () => {
    const { fixture, commit, outputs, challenge, replica } = await challenged(54, () => ({
      type: 'output-mismatch',
      expected: [RIGHT],
    }))
    for (const [expected, upheld] of [
      [[RIGHT], true],
      [outputs, false],
      [undefined, false],
    ] as const) {
      const judge = contextOf(fixture, fixture.decider.did, { decider: true })
      judge.context.expectedOutputs = async () => (expected === undefined ? undefined : [...expected])
      const role = new VerifierRole(judge.context)
      await role.judgeChallenge(replica, fixture.task, commit.id, challenge.id)
      await role.judgeChallenge(replica, fixture.task, commit.id, challenge.id)
      expect(judge.said).toEqual(
        upheld
          ? [
              {
                kind: 'INVALIDATE',
                payload: { task: fixture.task, commit: commit.id, challenge: challenge.id },
              },
            ]
          : [],
      )
    }
  })

  it('upholds a missing artifact only when the result names it and it cannot be fetched', async () => {
    const { fixture, commit, outputs, challenge, replica } = await challenged(55, (outputs) => ({
      type: 'missing-artifact',
      ref: outputs[0],
    }))
    const absent = contextOf(
      fixture,
      fixture.decider.did,
      { decider: true },
      { artifacts: new MemoryArtifactStore() },
    )
    await new VerifierRole(absent.context).judgeChallenge(replica, fixture.task, commit.id, challenge.id)
    expect(absent.said.map((entry) => entry.kind)).toEqual(['INVALIDATE'])
    const present = contextOf(
      fixture,
      fixture.decider.did,
      { decider: true },
      { artifacts: fixture.artifacts },
    )
    expect(await fixture.artifacts.get(outputs[0]!)).toBeDefined()
    await new VerifierRole(present.context).judgeChallenge(replica, fixture.task, commit.id, challenge.id)
    expect(present.said).toEqual([])
  })

  it('is judged by an anchor in bootstrap: not by a verifier then, nor by the challenger or the worker', async () => {
    const { fixture, commit, challenge, replica } = await challenged(56, () => ({
      type: 'output-mismatch',
      expected: [RIGHT],
    }))
    for (const [did, roles] of [
      [fixture.verifier.did, { verifier: true }],
      [fixture.planner.did, { decider: true }],
      [fixture.worker.did, { decider: true }],
    ] as const) {
      const judge = contextOf(fixture, did, roles)
      judge.context.expectedOutputs = async () => [RIGHT]
      await new VerifierRole(judge.context).judgeChallenge(replica, fixture.task, commit.id, challenge.id)
      expect(judge.said).toEqual([])
    }
  })
})

describe('the worker role at work', () => {
  /** A capability that reports `perMille` and then waits until released (or aborted). */
  function slowCapability() {
    let release: (() => void) | undefined
    let seen: AbortSignal | undefined
    const registry = new CapabilityRegistry().register(
      'word-frequency',
      (_inputs, context) =>
        new Promise<Uint8Array>((resolve, reject) => {
          seen = context.signal
          context.onProgress?.(400)
          release = () => resolve(new TextEncoder().encode('{"a":2,"b":1}'))
          context.signal.addEventListener('abort', () => reject(context.signal.reason))
        }),
      { version: '1.0.0', produces: 'application/json', price: 1, description: 'slow' },
    )
    return { registry, release: () => release?.(), signal: () => seen }
  }

  it('beats every third of its lease with the progress its capability reports, then commits what it gave', async () => {
    const fixture = await finalThread({ output: new TextEncoder().encode('{"a":2,"b":1}'), tag: 57 })
    const granted = fixture.log.slice(0, 6)
    const claim = granted[4]!.id
    const replica = holding(granted, fixture.params)
    const slow = slowCapability()
    const artifacts = new MemoryArtifactStore()
    const { context, said, timers } = fakeContext(
      fixture.worker.did,
      { worker: true },
      { artifacts },
      slow.registry,
      fixture.params,
    )
    context.inputsOf = async () => [new TextEncoder().encode('a b a')]
    const role = new WorkerRole(context)
    role.workIfMine(replica, fixture.task, claim)
    role.workIfMine(replica, fixture.task, claim)
    const ttl = replica.state.tasks.get(fixture.task)!.lease!.ttlMs
    expect(timers.map((timer) => timer.delayMs)).toEqual([Math.floor(ttl / 3), DEFAULT_AGENT_TUNING.workMs])
    const [beat, work] = timers.splice(0)
    const running = work!.action()
    await new Promise((resolve) => setTimeout(resolve, 0))
    await beat!.action()
    expect(said).toEqual([{ kind: 'HEARTBEAT', payload: { task: fixture.task, claim, progress: 400 } }])
    expect(timers.map((timer) => timer.delayMs)).toEqual([Math.floor(ttl / 3)]) // the next beat
    slow.release()
    await running
    expect(said.map((entry) => entry.kind)).toEqual(['HEARTBEAT', 'COMMIT'])
    const committed = said[1]!.payload as { claim: string; outputs: string[] }
    expect(committed.claim).toBe(claim)
    expect(new TextDecoder().decode(await artifacts.get(committed.outputs[0]!))).toBe('{"a":2,"b":1}')
    expect(context.running.size).toBe(0)
  })

  it('stops without a COMMIT when its lease ends while the capability runs, and works only on its own lease', async () => {
    const fixture = await finalThread({ output: new TextEncoder().encode('{"a":2,"b":1}'), tag: 58 })
    const granted = fixture.log.slice(0, 6)
    const claim = granted[4]!.id
    const slow = slowCapability()
    const { context, said, timers } = fakeContext(
      fixture.worker.did,
      { worker: true },
      { artifacts: new MemoryArtifactStore() },
      slow.registry,
      fixture.params,
    )
    context.inputsOf = async () => [new TextEncoder().encode('a b a')]
    new WorkerRole(context).workIfMine(holding(granted, fixture.params), fixture.task, claim)
    const work = timers.find((timer) => timer.delayMs === DEFAULT_AGENT_TUNING.workMs)!
    const running = work.action()
    await new Promise((resolve) => setTimeout(resolve, 0))
    // What the agent does when the lease ends: abort the work in progress.
    context.running.get(claim)!.controller.abort(new Error('the lease ended'))
    await running
    expect(slow.signal()?.aborted).toBe(true)
    expect(said).toEqual([])
    expect(context.running.size).toBe(0)
    // Another worker's lease: no timers at all.
    const other = fakeContext(fixture.planner.did, { worker: true }, {}, slow.registry, fixture.params)
    new WorkerRole(other.context).workIfMine(holding(granted, fixture.params), fixture.task, claim)
    expect(other.timers).toEqual([])
  })
})
