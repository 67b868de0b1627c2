/**
 * A one-task thread signed by hand and run to FINAL: NEED → PROPOSE → ATTEST_PLAN → DECIDE → CLAIM
 * → GRANT → COMMIT → ATTEST(pass) → FINALIZE, with a word-frequency task over `a b a`. The commit
 * carries `outputs` as given (the honest result or not), so economy tests can settle right and
 * wrong work. The decider is the network's one anchor: it decides, grants and finalizes.
 */

import { decidedOpening, taskOf } from '../../../test-support/decided-thread.ts'
import { makeIdentities, sign, testParams } from '../../../test-support/envelopes.ts'
import { MemoryArtifactStore } from '../src/core/artifacts.ts'
import type { NetworkParams } from '../src/core/thread/params.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import type { AnyEnvelope, Cid, Envelope } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'

export interface FinalThread {
  requester: Identity
  planner: Identity
  worker: Identity
  verifier: Identity
  /** The network's anchor. */
  decider: Identity
  params: NetworkParams
  artifacts: MemoryArtifactStore
  input: Cid
  thread: string
  /** The one task's id. */
  task: string
  log: AnyEnvelope[]
  replica: ThreadReplica
  /** `ts` of the FINALIZE. */
  finalizedAtMs: number
}

export async function finalThread(options: {
  /** What the commit claims the task produced. */
  output: Uint8Array
  budget?: number
  cost?: number
  verifyBounty?: number
  finalizedAtMs?: number
  /** `ts` of the DECIDE (the ledger's order). @default 0 */
  decidedAtMs?: number
  tag?: number
  /** Extra genesis parameters (the anchor and the verifier pool are set here). */
  params?: Partial<NetworkParams>
}): Promise<FinalThread> {
  const [requester, planner, worker, verifier, decider] = await makeIdentities(5, options.tag ?? 42)
  const params = testParams({
    verifiers: [verifier!.did],
    anchors: [decider!.did],
    bootstrap: true,
    ...options.params,
  })
  const artifacts = new MemoryArtifactStore()
  const input = await artifacts.put(new TextEncoder().encode('a b a'))
  const output = await artifacts.put(options.output)
  const finalizedAtMs = options.finalizedAtMs ?? 0
  const opening = await decidedOpening({
    requester: requester!,
    planner: planner!,
    verifier: verifier!,
    decider: decider!,
    params,
    requires: ['word-frequency'],
    inputs: [input],
    produces: 'application/json',
    budget: options.budget ?? 10,
    price: 3,
    patch: [{ name: 'count', capability: 'word-frequency', inputs: [input], produces: 'application/json' }],
    decideTs: options.decidedAtMs ?? 0,
  })
  const { thread } = opening
  const task = taskOf(opening, 'count')
  const claim = await sign(
    worker!,
    'CLAIM',
    thread,
    { task, leaseTtlMs: 1000, cost: options.cost ?? 3, etaMs: 1 },
    { lamport: 5 },
  )
  const grant = await sign(
    decider!,
    'GRANT',
    thread,
    { task, claim: claim.id, leaseTtlMs: 1000 },
    { lamport: 6 },
  )
  const commit = await sign(
    worker!,
    'COMMIT',
    thread,
    {
      task,
      claim: claim.id,
      outputs: [output],
      telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
      verifyBounty: options.verifyBounty ?? 2,
    },
    { fence: claim.id, lamport: 7 },
  )
  const pass = await sign(
    verifier!,
    'ATTEST',
    thread,
    { task, commit: commit.id, verdict: 'pass', evalDigest: 'x' },
    { lamport: 8 },
  )
  const finalize = await sign(
    decider!,
    'FINALIZE',
    thread,
    { task, commit: commit.id, attestations: [pass as Envelope] },
    { ts: finalizedAtMs, lamport: 9 },
  )
  const log = [...opening.log, claim, grant, commit, pass, finalize]
  const replica = new ThreadReplica(thread, params)
  replica.receiveAll(log, 0)
  return {
    requester: requester!,
    planner: planner!,
    worker: worker!,
    verifier: verifier!,
    decider: decider!,
    params,
    artifacts,
    input,
    thread,
    task,
    log,
    replica,
    finalizedAtMs,
  }
}
