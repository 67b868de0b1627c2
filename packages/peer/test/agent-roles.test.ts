/**
 * The agent's roles on their own: each is built from a RoleContext, so a test hands it a context
 * whose clock, timers and publishing it controls, and checks what the role says and when.
 */
import { describe, expect, it } from 'vitest'
import { makeIdentities, testParams } from '../../../test-support/envelopes.ts'
import { planQuorum, QUORUM_INPUT } from '../../../test-support/quorum.ts'
import { type AgentOptions, type AgentRoles, DEFAULT_AGENT_TUNING } from '../src/agent/agent.ts'
import { builtinCapabilities, CapabilityRegistry } from '../src/agent/capabilities.ts'
import type { RoleContext } from '../src/agent/roles/context.ts'
import { PlannerRole } from '../src/agent/roles/planner.ts'
import { VerifierRole } from '../src/agent/roles/verifier.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import type { AnyEnvelope } from '../src/core/types.ts'

const TEST_NET = testParams().network

/** A context whose timers wait in `timers` (run them with `fire`) and whose envelopes land in `said`. */
function fakeContext(
  did: string,
  roles: AgentRoles,
  overrides: Partial<AgentOptions> = {},
  capabilities: CapabilityRegistry = builtinCapabilities(),
) {
  const said: Array<{ kind: string; payload: unknown }> = []
  const timers: Array<{ delayMs: number; action: () => Promise<void> }> = []
  const done = new Set<string>()
  const params = testParams({ anchors: [], verifiers: [did], bootstrap: false })
  const context: RoleContext = {
    did,
    tuning: DEFAULT_AGENT_TUNING,
    capabilities,
    options: { random: { next: () => 0.5 }, params, ...overrides } as AgentOptions,
    params,
    roles,
    publish: (async (kind: string, _thread: string, payload: unknown) => {
      said.push({ kind, payload })
      return {} as never
    }) as RoleContext['publish'],
    once: (thread, key) => !done.has(`${thread}:${key}`) && done.add(`${thread}:${key}`) !== undefined,
    after: (delayMs, action) => void timers.push({ delayMs, action }),
    duty: () => undefined,
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
  return { context, said, timers, fire, params }
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
