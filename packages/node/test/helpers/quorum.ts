/** A self-contained plan quorum (NEED, PROPOSE, ATTEST_PLAN) for DECIDE-service tests and benches. */
import type { AnyEnvelope } from '../../../peer/src/core/types.ts'
import type { Identity } from '../../../peer/src/crypto/ed25519.ts'
import { sign } from '../../../peer/test/helpers.ts'

/** An input CID the plans name (the artifact itself is never fetched by these tests). */
export const QUORUM_INPUT = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'

/** Signs NEED (requester), PROPOSE of one sha256 task (planner) and an accepting ATTEST_PLAN (attester). */
export async function planQuorum(
  signers: { requester: Identity; planner: Identity; attester: Identity },
  need: string,
  proposal: string,
): Promise<AnyEnvelope[]> {
  const ts = Date.now()
  return [
    await sign(
      signers.requester,
      'NEED',
      need,
      {
        need,
        epoch: 1,
        requires: ['sha256'],
        inputs: [QUORUM_INPUT],
        produces: 'text/plain',
        budget: 10,
        deadlineMs: 0,
        bidWindowMs: 1,
      },
      { lamport: 1, ts },
    ),
    await sign(
      signers.planner,
      'PROPOSE',
      need,
      {
        need,
        proposal,
        patch: [{ name: 'digest', capability: 'sha256', inputs: [QUORUM_INPUT], produces: 'text/plain' }],
        ballot: 1,
        price: 1,
        etaMs: 1,
        shardDependencies: [],
      },
      { lamport: 2, ts },
    ),
    await sign(
      signers.attester,
      'ATTEST_PLAN',
      need,
      { need, proposal, verdict: 'accept' },
      { lamport: 3, ts },
    ),
  ]
}
