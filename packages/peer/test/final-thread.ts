/**
 * A one-task thread signed by hand and run to FINAL: NEED → PROPOSE → ATTEST_PLAN → DECIDE → CLAIM
 * → COMMIT → ATTEST(pass) → FINALIZE, with a word-frequency task over `a b a`. The commit carries
 * `outputs` as given (the honest result or not), so economy tests can settle right and wrong work.
 */
import { MemoryArtifactStore } from '../src/core/artifacts.ts'
import { type NetworkParams, networkParams } from '../src/core/thread/params.ts'
import { ThreadReplica } from '../src/core/thread/replica.ts'
import type { AnyEnvelope, Cid, Envelope } from '../src/core/types.ts'
import type { Identity } from '../src/crypto/ed25519.ts'
import { decidedOpening } from './decided-thread.ts'
import { makeIdentities, sign } from './helpers.ts'

export interface FinalThread {
  requester: Identity
  planner: Identity
  worker: Identity
  verifier: Identity
  decider: Identity
  params: NetworkParams
  artifacts: MemoryArtifactStore
  input: Cid
  log: AnyEnvelope[]
  replica: ThreadReplica
  /** `ts` of the FINALIZE. */
  finalizedAtMs: number
}

export async function finalThread(options: {
  thread: string
  /** What the commit claims the task produced. */
  output: Uint8Array
  budget?: number
  cost?: number
  verifyBounty?: number
  finalizedAtMs?: number
  tag?: number
}): Promise<FinalThread> {
  const [requester, planner, worker, verifier, decider] = await makeIdentities(5, options.tag ?? 42)
  const params = networkParams({ verifiers: [verifier!.did], bootstrap: true })
  const artifacts = new MemoryArtifactStore()
  const input = await artifacts.put(new TextEncoder().encode('a b a'))
  const output = await artifacts.put(options.output)
  const thread = options.thread
  const finalizedAtMs = options.finalizedAtMs ?? 0
  const log = await decidedOpening({
    thread,
    requester: requester!,
    planner: planner!,
    verifier: verifier!,
    decider: decider!,
    requires: ['word-frequency'],
    inputs: [input],
    produces: 'application/json',
    budget: options.budget ?? 10,
    price: 3,
    patch: [{ name: 'count', capability: 'word-frequency', inputs: [input], produces: 'application/json' }],
  })
  const claim = await sign(worker!, 'CLAIM', thread, {
    task: 'p/count',
    leaseTtlMs: 1000,
    cost: options.cost ?? 3,
    etaMs: 1,
  })
  const commit = await sign(
    worker!,
    'COMMIT',
    thread,
    {
      task: 'p/count',
      claim: claim.id,
      outputs: [output],
      telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
      verifyBounty: options.verifyBounty ?? 2,
    },
    { fence: claim.id },
  )
  const pass = await sign(verifier!, 'ATTEST', thread, {
    task: 'p/count',
    commit: commit.id,
    verdict: 'pass',
    evalDigest: 'x',
  })
  const finalize = await sign(
    worker!,
    'FINALIZE',
    thread,
    { task: 'p/count', commit: commit.id, attestations: [pass as Envelope] },
    { ts: finalizedAtMs },
  )
  log.push(claim, commit, pass, finalize)
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
    log,
    replica,
    finalizedAtMs,
  }
}
