/**
 * A large, valid thread for sync and late-join tests and benches: NEED, a 250-task PROPOSE, its
 * quorum and DECIDE, then a CLAIM and three HEARTBEATs per task — 1 004 signed envelopes.
 */
import { type NetworkParams, networkParams } from '../src/core/thread/params.ts'
import type { AnyEnvelope, Envelope, TaskSpec } from '../src/core/types.ts'
import { makeIdentities, sign } from './helpers.ts'

export async function claimedThread(
  thread: string,
  tag: number,
): Promise<{ params: NetworkParams; log: AnyEnvelope[] }> {
  const [requester, planner, verifier, decider, worker] = await makeIdentities(5, tag)
  const params = networkParams({ verifiers: [verifier!.did], bootstrap: true })
  const input = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
  const log: AnyEnvelope[] = [
    await sign(requester!, 'NEED', thread, {
      need: thread,
      epoch: 1,
      requires: ['sha256'],
      inputs: [input],
      produces: 'text/plain',
      budget: 1000,
      deadlineMs: 0,
      bidWindowMs: 1,
    }),
  ]
  const patch: TaskSpec[] = Array.from({ length: 250 }, (_, i) => ({
    name: `t${i}`,
    capability: 'sha256',
    inputs: [input],
    produces: 'text/plain',
  }))
  log.push(
    await sign(planner!, 'PROPOSE', thread, {
      need: thread,
      proposal: 'p',
      patch,
      ballot: 1,
      price: 250,
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
      lamport: 10,
      kPlan: 1,
      decider: decider!.did,
      attestations: [vote as Envelope],
    }),
  )
  for (let i = 0; i < 250; i += 1) {
    const task = `p/t${i}`
    const claim = await sign(worker!, 'CLAIM', thread, { task, leaseTtlMs: 60_000, cost: 1, etaMs: 1 })
    log.push(claim)
    for (let h = 0; h < 3; h += 1) {
      log.push(
        await sign(worker!, 'HEARTBEAT', thread, { task, claim: claim.id, progress: h }, { fence: claim.id }),
      )
    }
  }
  return { params, log }
}
