/**
 * Finality and worker pay against senders that backdate (docs/PROTOCOL.md §6.8, §11 A5–A7): a
 * result an anchor finalized is sealed — no envelope placed before it after the fact (a YIELD or
 * RELEASE of its lease, another COMMIT on the lease, fail votes) can undo it; only a CHALLENGE can.
 * A worker asks at most the plan's price, and the plan's price bounds what the budget pays.
 */
import { describe, expect, it } from 'vitest'
import { makeIdentities, sign } from '../../../test-support/envelopes.ts'
import { wordFrequencyCapability } from '../src/agent/capabilities.ts'
import { compareEnvelopes } from '../src/core/codec.ts'
import { deriveLedger } from '../src/core/economy/derive.ts'
import type { AnyEnvelope, Envelope } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'
import { finalThread } from './final-thread.ts'

const right = () => wordFrequencyCapability([new TextEncoder().encode('a b a')])
const telemetry = { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 5, outputBytes: 1 }

/**
 * Signs `make({ lamport, ts })` until it sorts after `after` and before `before` in the total order
 * (lamport, then sender, then id): a backdated envelope slipped in between.
 */
async function between(
  after: AnyEnvelope,
  before: AnyEnvelope,
  make: (at: { lamport: number; ts: number }) => Promise<AnyEnvelope>,
): Promise<AnyEnvelope> {
  for (let lamport = before.lamport; lamport >= after.lamport; lamport -= 1) {
    for (let ts = 1; ts <= 64; ts += 1) {
      const env = await make({ lamport, ts })
      if (compareEnvelopes(env, after) > 0 && compareEnvelopes(env, before) < 0) return env
    }
  }
  throw new Error('no envelope sorts between those two')
}

const kindOf = (log: readonly AnyEnvelope[], kind: string) => log.find((env) => env.kind === kind)!

describe('a finalized result is sealed (§6.8)', () => {
  it('refuses a backdated YIELD, worker-failed RELEASE, scavenging RELEASE or second COMMIT of its lease', async () => {
    const fixture = await finalThread({ output: right(), tag: 81 })
    const { replica, task, thread, worker, decider } = fixture
    const claim = kindOf(fixture.log, 'CLAIM')
    const grant = kindOf(fixture.log, 'GRANT')
    const commit = kindOf(fixture.log, 'COMMIT')
    const hash = replica.stateHash()
    expect(replica.state.tasks.get(task)?.state).toBe('FINAL')
    const attempts = [
      await between(grant, commit, (at) => sign(worker, 'YIELD', thread, { task, claim: claim.id }, at)),
      await between(grant, commit, (at) =>
        sign(worker, 'RELEASE', thread, { task, claim: claim.id, reason: 'worker-failed' }, at),
      ),
      await between(grant, commit, (at) =>
        sign(decider, 'RELEASE', thread, { task, claim: claim.id, reason: 'lease-expired' }, at),
      ),
      await between(grant, commit, async (at) =>
        sign(
          worker,
          'COMMIT',
          thread,
          {
            task,
            claim: claim.id,
            outputs: [await fixture.artifacts.put(new TextEncoder().encode(`another result ${at.ts}`))],
            telemetry,
            verifyBounty: 2,
          },
          { ...at, fence: claim.id },
        ),
      ),
    ]
    for (const env of attempts) {
      expect(replica.receive(env, 1).rejected, env.kind).toBe('sealed')
      expect(replica.stateHash()).toBe(hash)
    }
    const state = replica.state.tasks.get(task)!
    expect(state.state).toBe('FINAL')
    expect(state.commit?.id).toBe(commit.id)
    // The same envelopes before the FINALIZE was placed did undo the lease: the seal is what holds.
    const unsealed = fixture.log.filter((env) => env.kind !== 'FINALIZE')
    const { ThreadReplica } = await import('../src/core/thread/replica.ts')
    const before = new ThreadReplica(thread, fixture.params)
    before.receiveAll([...unsealed, attempts[0]!], 0)
    expect(before.state.rejected.get(commit.id)).toBe('stale-lease')
    // Whatever the order they arrive in, the FINALIZE seals the lease and every replica agrees.
    const late = new ThreadReplica(thread, fixture.params)
    late.receiveAll([...unsealed, ...attempts], 0)
    late.receive(kindOf(fixture.log, 'FINALIZE'), 0)
    expect(late.stateHash()).toBe(hash)
  })

  it('keeps a finalized result against fail votes that sort before the pass (open pool)', async () => {
    const fixture = await finalThread({ output: right(), tag: 82, params: { verifiers: [] } })
    const { replica, task, thread } = fixture
    const commit = kindOf(fixture.log, 'COMMIT')
    const pass = kindOf(fixture.log, 'ATTEST')
    expect(replica.state.tasks.get(task)?.state).toBe('FINAL')
    const hash = replica.stateHash()
    // Keys whose did sorts before the passing verifier's: their votes at its lamport come first.
    const sybils = (await makeIdentities(24, 83)).filter((key) => key.did < pass.sender).slice(0, 3)
    expect(sybils.length).toBe(3)
    for (const sybil of sybils as Identity[]) {
      const fail = await between(commit, pass, (at) =>
        sign(sybil, 'ATTEST', thread, { task, commit: commit.id, verdict: 'fail', evalDigest: 'x' }, at),
      )
      replica.receive(fail, 1)
      expect(replica.state.tasks.get(task)?.state).toBe('FINAL')
    }
    expect(replica.state.tasks.get(task)?.commit?.id).toBe(commit.id)
    expect(replica.state.rejected.has(kindOf(fixture.log, 'FINALIZE').id)).toBe(false)
    // The votes are kept (they are evidence), the result is not: only the FINAL fact set matters.
    expect(replica.stateHash()).not.toBe(hash)
    const again = replica.state.tasks.get(task)!
    expect(again.round).toBe(1)
  })

  it('counts a verifier contradicting itself once, however many times it does', async () => {
    const fixture = await finalThread({ output: right(), tag: 84 })
    const { replica, task, thread, verifier } = fixture
    const commit = kindOf(fixture.log, 'COMMIT')
    const pass = kindOf(fixture.log, 'ATTEST')
    const votes: AnyEnvelope[] = []
    for (let i = 1; i <= 3; i += 1) {
      votes.push(
        await sign(
          verifier,
          'ATTEST',
          thread,
          { task, commit: commit.id, verdict: 'fail', evalDigest: `x${i}` },
          { lamport: pass.lamport + i },
        ),
      )
    }
    expect(replica.receive(votes[0]!, 1).rejected).toBeUndefined()
    expect(replica.receive(votes[1]!, 1).rejected).toBe('duplicate-vote')
    expect(replica.receive(votes[2]!, 1).rejected).toBe('duplicate-vote')
    expect(replica.state.equivocations.filter((record) => record.sender === verifier.did)).toHaveLength(1)
  })
})

describe('worker pay is bounded by the plan’s price (A7)', () => {
  it('refuses a CLAIM asking more than the plan’s price, and pays at most the price in all', async () => {
    const fixture = await finalThread({ output: right(), tag: 85, budget: 500 })
    const { replica, task, thread, worker } = fixture
    const price = (kindOf(fixture.log, 'PROPOSE') as Envelope<'PROPOSE'>).payload.price
    const greedy = await sign(
      worker,
      'CLAIM',
      thread,
      { task, leaseTtlMs: 1000, cost: price + 1, etaMs: 1 },
      { lamport: 5 },
    )
    const { ThreadReplica } = await import('../src/core/thread/replica.ts')
    const opening = new ThreadReplica(thread, fixture.params)
    opening.receiveAll(
      fixture.log.filter((env) => ['NEED', 'PROPOSE', 'ATTEST_PLAN', 'DECIDE'].includes(env.kind)),
      0,
    )
    expect(opening.receive(greedy, 1).rejected).toBe('cost-above-price')
    // The honest thread: its worker is paid its cost (the price), the rest of the budget refunded.
    const derived = deriveLedger({
      replicas: [replica],
      params: fixture.params,
      nowMs: Number.POSITIVE_INFINITY,
      genesis: { allocations: [{ did: fixture.requester.did, amount: 500 }] },
    })
    expect(derived.ledger.account(worker.did).balance).toBe(price)
    expect(derived.ledger.account(fixture.requester.did).balance).toBeGreaterThanOrEqual(500 - price - 2)
    expect(derived.ledger.conservationGap()).toBe(0)
  })
})

describe('an unfunded challenger', () => {
  it('risks nothing and is paid nothing when its challenge is upheld; a funded one is paid', async () => {
    // A wrong result, finalized; a challenge proves it and the anchor upholds it.
    const wrong = new TextEncoder().encode('{"a":9}')
    const settle = async (challengerFunds: number) => {
      const fixture = await finalThread({ output: wrong, tag: 86, budget: 100, verifyBounty: 20 })
      const { replica, task, thread, decider } = fixture
      const commit = kindOf(fixture.log, 'COMMIT')
      const [challenger] = (await makeIdentities(1, 87)) as [Identity]
      const top = Math.max(...fixture.log.map((env) => env.lamport))
      const challenge = await sign(
        challenger,
        'CHALLENGE',
        thread,
        {
          task,
          commit: commit.id,
          bond: 10,
          proof: { type: 'output-mismatch', expected: [await fixture.artifacts.put(right())] },
        },
        { lamport: top + 1 },
      )
      const invalidate = await sign(
        decider,
        'INVALIDATE',
        thread,
        { task, commit: commit.id, challenge: challenge.id },
        { lamport: top + 2 },
      )
      expect(replica.receive(challenge, 1).rejected).toBeUndefined()
      expect(replica.receive(invalidate, 1).rejected).toBeUndefined()
      const allocations = [
        { did: fixture.requester.did, amount: 100 },
        { did: fixture.worker.did, amount: 500 },
        ...(challengerFunds > 0 ? [{ did: challenger.did, amount: challengerFunds }] : []),
      ]
      const derived = deriveLedger({
        replicas: [replica],
        params: fixture.params,
        nowMs: Number.POSITIVE_INFINITY,
        genesis: { allocations },
        genesisVerifiers: [fixture.verifier.did],
      })
      expect(derived.ledger.conservationGap()).toBe(0)
      return derived.ledger.account(challenger.did).balance - challengerFunds
    }
    expect(await settle(0)).toBe(0)
    expect(await settle(50)).toBeGreaterThan(0)
  })
})
