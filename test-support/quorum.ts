/** A self-contained plan quorum (NEED, PROPOSE, ATTEST_PLAN) for DECIDE-service tests and benches. */
import type { AnyEnvelope, Identity } from '@can-swarm/peer'
import { sign, signNeed } from './envelopes.ts'

/** An input CID the plans name (the artifact itself is never fetched by these tests). */
export const QUORUM_INPUT = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'

/** A signed quorum: its envelopes, the NEED's thread id and the PROPOSE's id. */
export interface PlanQuorum {
  envelopes: AnyEnvelope[]
  need: string
  proposal: string
}

/**
 * Signs NEED (requester), PROPOSE of one sha256 task (planner) and an accepting ATTEST_PLAN
 * (attester) for network `net`. `nonce` makes distinct NEEDs of one requester (its deadline).
 */
export async function planQuorum(
  signers: { requester: Identity; planner: Identity; attester: Identity },
  net: string,
  options: { nonce?: number; budget?: number; need?: AnyEnvelope } = {},
): Promise<PlanQuorum> {
  const ts = Date.now()
  const needEnv =
    options.need ??
    (await signNeed(
      signers.requester,
      {
        epoch: 1,
        requires: ['sha256'],
        inputs: [QUORUM_INPUT],
        produces: 'text/plain',
        budget: options.budget ?? 10,
        deadlineMs: options.nonce ?? 0,
        bidWindowMs: 1,
      },
      { ts, net },
    ))
  const need = needEnv.thread
  const propose = await sign(
    signers.planner,
    'PROPOSE',
    need,
    {
      need,
      patch: [{ name: 'digest', capability: 'sha256', inputs: [QUORUM_INPUT], produces: 'text/plain' }],
      ballot: 1,
      price: 1,
      etaMs: 1,
      shardDependencies: [],
    },
    { lamport: 2, ts, net },
  )
  const vote = await sign(
    signers.attester,
    'ATTEST_PLAN',
    need,
    { need, proposal: propose.id, verdict: 'accept' },
    { lamport: 3, ts, net },
  )
  return { envelopes: [needEnv as AnyEnvelope, propose, vote], need, proposal: propose.id }
}
