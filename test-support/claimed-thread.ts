/**
 * A large, valid thread for sync and late-join tests and benches: NEED, a 250-task PROPOSE, its
 * quorum and DECIDE, then per task a CLAIM, the anchor's GRANT and two HEARTBEATs — 1 004 signed
 * envelopes. Every task reads the one artifact `input` (a CID).
 */

import type { AnyEnvelope, NetworkParams, TaskSpec } from '@can-swarm/peer'
import { decidedOpening, taskOf } from './decided-thread.ts'
import { makeIdentities, sign, testParams } from './envelopes.ts'

export async function claimedThread(
  tag: number,
  input = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku',
): Promise<{ params: NetworkParams; log: AnyEnvelope[]; thread: string }> {
  const [requester, planner, verifier, decider, worker] = await makeIdentities(5, tag)
  const params = testParams({ verifiers: [verifier!.did], anchors: [decider!.did], bootstrap: true })
  const patch: TaskSpec[] = Array.from({ length: 250 }, (_, i) => ({
    name: `t${i}`,
    capability: 'sha256',
    inputs: [input],
    produces: 'text/plain',
  }))
  const opening = await decidedOpening({
    requester: requester!,
    planner: planner!,
    verifier: verifier!,
    decider: decider!,
    params,
    requires: ['sha256'],
    inputs: [input],
    produces: 'text/plain',
    budget: 1000,
    price: 250,
    patch,
  })
  const log = [...opening.log]
  let lamport = 4
  for (let i = 0; i < 250; i += 1) {
    const task = taskOf(opening, `t${i}`)
    const claim = await sign(
      worker!,
      'CLAIM',
      opening.thread,
      { task, leaseTtlMs: 60_000, cost: 1, etaMs: 1 },
      { lamport: ++lamport },
    )
    const grant = await sign(
      decider!,
      'GRANT',
      opening.thread,
      { task, claim: claim.id, leaseTtlMs: 60_000 },
      { lamport: ++lamport },
    )
    log.push(claim, grant)
    for (let h = 0; h < 2; h += 1) {
      log.push(
        await sign(
          worker!,
          'HEARTBEAT',
          opening.thread,
          { task, claim: claim.id, progress: h },
          { fence: claim.id, lamport: ++lamport },
        ),
      )
    }
  }
  return { params, log, thread: opening.thread }
}
