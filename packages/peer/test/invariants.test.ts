/**
 * The fold's invariants (core/thread/state.ts) stop loudly, by name, when broken: one live lease
 * per task, and the winner is the least of the decisions held. Honest and hostile inputs never
 * break them (the simulator runs them on every delivery); here the state is corrupted by hand to
 * show that the checks fire.
 */
import { describe, expect, it } from 'vitest'
import { claimedThread } from '../../../test-support/claimed-thread.ts'
import { makeIdentities, sign } from '../../../test-support/envelopes.ts'
import { InvariantError, invariant } from '../src/core/errors.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import { compareDecideInfo, type ThreadState } from '../src/core/thread/state.ts'
import type { Envelope } from '../src/core/types.ts'

describe('invariant()', () => {
  it('passes a true condition and throws InvariantError with the message otherwise', () => {
    expect(() => invariant(true, 'never')).not.toThrow()
    expect(() => invariant(0, 'named-rule: broken')).toThrow(InvariantError)
    expect(() => invariant(undefined, 'named-rule: broken')).toThrow('named-rule: broken')
  })
})

describe('the fold’s invariants', () => {
  it('one-live-lease: a GRANT on a DECIDED task that somehow holds a lease stops the fold', async () => {
    const { params, log, thread } = await claimedThread(41)
    const grantAt = log.findIndex((env) => env.kind === 'GRANT')
    const replica = new ThreadReplica(thread, params)
    replica.receiveAll(log.slice(0, grantAt), 0)
    const grant = log[grantAt]!
    const taskId = (grant.payload as { task: string }).task
    const task = (replica.state as ThreadState).tasks.get(taskId)!
    expect(task.state).toBe('DECIDED')
    // Corrupt: a lease on a task still DECIDED (what a bug elsewhere would leave behind).
    task.lease = { claim: 'x', worker: 'y', ttlMs: 1, grant: 'z', renewedBy: 'z', progress: 0 }
    expect(() => replica.receive(grant, 1)).toThrow(/one-live-lease/)
  })

  it('holds on the honest log: every GRANT lands, the winner is the least DECIDE', async () => {
    const { params, log, thread } = await claimedThread(42)
    const replica = new ThreadReplica(thread, params)
    expect(() => replica.receiveAll(log, 0)).not.toThrow()
    expect([...replica.state.tasks.values()].every((task) => task.state === 'CLAIMED')).toBe(true)
  })

  it('winner-is-least-decide: a winner that is not the least decision stops the next DECIDE', async () => {
    const { params, log, thread } = await claimedThread(43)
    const [, , , decider] = await makeIdentities(5, 43)
    const decideAt = log.findIndex((env) => env.kind === 'DECIDE')
    const decide = log[decideAt] as Envelope<'DECIDE'>
    const replica = new ThreadReplica(thread, params)
    replica.receiveAll(log.slice(0, decideAt + 1), 0)
    const state = replica.state as ThreadState
    const winner = state.winner!
    // Corrupt: a decision that sorts before the winner (the id breaks the tie), held but not chosen.
    const earlier = { ...winner, env: 'bafy-earlier' }
    expect(compareDecideInfo(earlier, winner)).toBeLessThan(0)
    state.decides.set(earlier.env, earlier)
    // The same anchor decides the same proposal again (a later lamport): the fold re-checks the rule.
    const again = await sign(decider!, 'DECIDE', thread, decide.payload, { lamport: decide.lamport + 1000 })
    expect(() => replica.receive(again, 2)).toThrow(/winner-is-least-decide/)
  })
})
