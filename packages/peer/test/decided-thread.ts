/** The opening every hand-built test thread shares: NEED → PROPOSE (proposal `p`) → ATTEST_PLAN → DECIDE. */
import type { AnyEnvelope, Cid, Envelope, TaskSpec } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'
import { sign } from './helpers.ts'

export async function decidedOpening(input: {
  thread: string
  requester: Identity
  planner: Identity
  verifier: Identity
  decider: Identity
  requires: string[]
  inputs: Cid[]
  produces: string
  budget: number
  price: number
  patch: TaskSpec[]
}): Promise<AnyEnvelope[]> {
  const { thread } = input
  // Signed in this order: the helpers' Lamport counter makes call order the total order.
  const need = await sign(input.requester, 'NEED', thread, {
    need: thread,
    epoch: 1,
    requires: input.requires,
    inputs: input.inputs,
    produces: input.produces,
    budget: input.budget,
    deadlineMs: 0,
    bidWindowMs: 1,
  })
  const propose = await sign(input.planner, 'PROPOSE', thread, {
    need: thread,
    proposal: 'p',
    patch: input.patch,
    ballot: 1,
    price: input.price,
    etaMs: 1,
    shardDependencies: [],
  })
  const vote = await sign(input.verifier, 'ATTEST_PLAN', thread, {
    need: thread,
    proposal: 'p',
    verdict: 'accept',
  })
  const decide = await sign(input.decider, 'DECIDE', thread, {
    need: thread,
    proposal: 'p',
    epoch: 1,
    lamport: 10,
    kPlan: 1,
    decider: input.decider.did,
    attestations: [vote as Envelope],
  })
  return [need, propose, vote, decide]
}
