/**
 * The agent under the authority rules (docs/PROTOCOL.md §5, §11), driven by hand: what `deliver`
 * says of each envelope (duplicates, orphans, pending, refusals), who may hold the anchor's role,
 * the anchor's funding check before a DECIDE, and leases granted by receipt, never by lamport.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { Agent, type AgentOptions, type FundingCheck } from '../src/agent/agent.ts'
import { type AgentClock, SeededRandom } from '../src/agent/ports.ts'
import { artifactCid, MemoryArtifactStore } from '../src/core/artifacts.ts'
import { MemoryConsensusStore } from '../src/core/consensus.ts'
import { InvalidArgumentError } from '../src/core/errors.ts'
import { type NetworkParams, poolSnapshotOf } from '../src/core/thread/params.ts'
import type { AnyEnvelope, Envelope } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'
import { makeIdentities, sign, signNeed, testParams } from './helpers.ts'

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
    const decide = await sign(
      anchor2,
      'DECIDE',
      need.thread,
      {
        need: need.thread,
        proposal: propose.id,
        epoch: 1,
        lamport: 4,
        kPlan: 1,
        decider: anchor2.did,
        attestations: [vote as Envelope],
        pool: poolSnapshotOf(two),
      },
      { lamport: 4 },
    )
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
})
