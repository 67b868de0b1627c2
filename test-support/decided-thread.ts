/**
 * The opening every hand-built test thread shares: NEED → PROPOSE → ATTEST_PLAN → DECIDE, with the
 * thread id bound to the NEED (A1), the proposal named by its PROPOSE's id (A2) and the DECIDE
 * signed by an anchor (A3) under the pool of `params`.
 */

import type { AnyEnvelope, Cid, Envelope, Identity, TaskSpec } from '@can-swarm/peer'
import { type NetworkParams, poolSnapshotOf } from '@can-swarm/peer'
import { sign, signNeed } from './envelopes.ts'

export interface DecidedOpening {
  /** NEED, PROPOSE, ATTEST_PLAN, DECIDE in total order. */
  log: AnyEnvelope[]
  thread: string
  /** The PROPOSE's envelope id. */
  proposal: Cid
  need: Envelope<'NEED'>
  decide: Envelope<'DECIDE'>
}

/** A task id of the opening's plan. */
export function taskOf(opening: Pick<DecidedOpening, 'proposal'>, name: string): string {
  return `${opening.proposal}/${name}`
}

export async function decidedOpening(input: {
  requester: Identity
  planner: Identity
  verifier: Identity
  /** An anchor of `params`. */
  decider: Identity
  params: NetworkParams
  requires: string[]
  inputs: Cid[]
  produces: string
  budget: number
  price: number
  patch: TaskSpec[]
  /** `ts` of the DECIDE (the ledger's order). @default 0 */
  decideTs?: number
}): Promise<DecidedOpening> {
  // Signed in this order with rising lamports: NEED 1, PROPOSE 2, ATTEST_PLAN 3, DECIDE 4.
  const need = await signNeed(input.requester, {
    epoch: 1,
    requires: input.requires,
    inputs: input.inputs,
    produces: input.produces,
    budget: input.budget,
    deadlineMs: 0,
    bidWindowMs: 1,
  })
  const thread = need.thread
  const propose = await sign(
    input.planner,
    'PROPOSE',
    thread,
    { need: thread, patch: input.patch, ballot: 1, price: input.price, etaMs: 1, shardDependencies: [] },
    { lamport: 2 },
  )
  const vote = await sign(
    input.verifier,
    'ATTEST_PLAN',
    thread,
    { need: thread, proposal: propose.id, verdict: 'accept' },
    { lamport: 3 },
  )
  const decide = (await sign(
    input.decider,
    'DECIDE',
    thread,
    {
      need: thread,
      proposal: propose.id,
      epoch: 1,
      lamport: 4,
      kPlan: 1,
      decider: input.decider.did,
      attestations: [vote as Envelope],
      pool: poolSnapshotOf(input.params),
    },
    { lamport: 4, ts: input.decideTs ?? 0 },
  )) as Envelope<'DECIDE'>
  return { log: [need as AnyEnvelope, propose, vote, decide], thread, proposal: propose.id, need, decide }
}
