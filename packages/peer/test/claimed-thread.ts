/**
 * A large, valid thread for sync and late-join tests and benches: NEED, a 250-task PROPOSE, its
 * quorum and DECIDE, then a CLAIM and three HEARTBEATs per task — 1 004 signed envelopes. Every
 * task reads the one artifact `input` (a CID).
 */
import { type NetworkParams, networkParams } from '../src/core/thread/params.ts'
import type { AnyEnvelope, TaskSpec } from '../src/core/types.ts'
import { decidedOpening } from './decided-thread.ts'
import { makeIdentities, sign } from './helpers.ts'

export async function claimedThread(
  thread: string,
  tag: number,
  input = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku',
): Promise<{ params: NetworkParams; log: AnyEnvelope[] }> {
  const [requester, planner, verifier, decider, worker] = await makeIdentities(5, tag)
  const params = networkParams({ verifiers: [verifier!.did], bootstrap: true })
  const patch: TaskSpec[] = Array.from({ length: 250 }, (_, i) => ({
    name: `t${i}`,
    capability: 'sha256',
    inputs: [input],
    produces: 'text/plain',
  }))
  const log = await decidedOpening({
    thread,
    requester: requester!,
    planner: planner!,
    verifier: verifier!,
    decider: decider!,
    requires: ['sha256'],
    inputs: [input],
    produces: 'text/plain',
    budget: 1000,
    price: 250,
    patch,
  })
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
