/**
 * The fuzz targets: every decoder that reads bytes or text from a stranger — envelopes (wire and
 * dag-json), gossip frames, DECIDE requests and answers, sync requests and pages, plan-sync frames
 * and Automerge sync messages, verifier manifests, genesis records, policy capsules, Merkle blocks
 * — and the anchor's HTTP router. Each is built lazily (its seeds need a simulator run, signed
 * manifests, a capsule, an Automerge document).
 */
import '@automerge/automerge'
import { next as A } from '@automerge/automerge/slim'
import {
  decodeCapsule,
  decodeEnvelope,
  decodeInnerNode,
  decodeRequest,
  decodeResponse,
  decodeSyncRequest,
  decodeSyncResponse,
  decodeThreadRoot,
  envelopeFromJson,
  genesisFromJson,
  manifestFromJson,
  verifyCapsule,
  verifyGenesis,
  verifyManifest,
} from '@can-swarm/peer'
import { decodeFrame } from '@can-swarm/peer/net'
import {
  DEFAULT_PLAN_DOC_LIMITS,
  decodePlanSyncFrame,
  type PlanDoc,
  PlanSyncFrameError,
  planDocumentStart,
  syncMessageProblem,
} from '@can-swarm/peer/plan-sync'
import { automergeCodec, planSyncSeeds } from './automerge.ts'
import { type FuzzOptions, type FuzzTarget, fuzzTarget, Refused, type TargetReport } from './engine.ts'
import { httpHarness } from './http.ts'
import { jsonCodec } from './mutate.ts'
import {
  capsuleSeeds,
  decideRequestSeeds,
  decideResponseSeeds,
  envelopeJsonSeeds,
  envelopeSeeds,
  FUZZ_NET,
  frameSeeds,
  genesisSeeds,
  loadCorpus,
  manifestSeeds,
  merkleSeeds,
  syncRequestSeeds,
  syncResponseSeeds,
} from './seeds.ts'

/** A target by name, built on demand. */
export interface TargetSpec {
  name: string
  description: string
  create(): Promise<FuzzTarget>
}

const text = new TextDecoder('utf-8', { fatal: false })

function spec(
  name: string,
  description: string,
  create: () => Promise<Omit<FuzzTarget, 'name' | 'description'>>,
): TargetSpec {
  return { name, description, create: async () => ({ name, description, ...(await create()) }) }
}

export const TARGETS: readonly TargetSpec[] = [
  spec('envelope', 'decodeEnvelope: an envelope from its DAG-CBOR wire bytes', async () => ({
    seeds: envelopeSeeds(await loadCorpus()),
    run: decodeEnvelope,
  })),
  spec('envelope-json', 'envelopeFromJson: an envelope from dag-json text', async () => ({
    seeds: envelopeJsonSeeds(await loadCorpus()),
    codec: jsonCodec,
    run: (input) => envelopeFromJson(text.decode(input)),
  })),
  spec(
    'frame',
    'decodeFrame and decodeEnvelope of each envelope: a gossip message (one envelope or a batch)',
    async () => ({
      seeds: frameSeeds(await loadCorpus()),
      run: (input) => decodeFrame(input).map(decodeEnvelope),
    }),
  ),
  spec(
    'decide-request',
    'decodeRequest: a DECIDE service request (NEED, PROPOSE, attestations)',
    async () => ({
      seeds: decideRequestSeeds(await loadCorpus()),
      run: decodeRequest,
    }),
  ),
  spec('decide-response', 'decodeResponse: a DECIDE service answer (a DECIDE, or why not)', async () => ({
    seeds: decideResponseSeeds(await loadCorpus()),
    run: decodeResponse,
  })),
  spec(
    'sync-request',
    'decodeSyncRequest: an envelope-sync request (ranges with fingerprints, ids, a scan)',
    async () => ({
      seeds: syncRequestSeeds(await loadCorpus()),
      run: decodeSyncRequest,
    }),
  ),
  spec(
    'sync-response',
    'decodeSyncResponse: an envelope-sync answer (range answers, a page of envelopes, a refusal)',
    async () => ({
      seeds: syncResponseSeeds(await loadCorpus()),
      run: decodeSyncResponse,
    }),
  ),
  spec('plan-sync-frame', 'decodePlanSyncFrame: a frame of the Automerge plan-sync protocol', async () => ({
    seeds: planSyncSeeds((await loadCorpus()).thread).frames,
    run: (input) => decodePlanSyncFrame(input, 'remote', 'local'),
    typed: (error) => error instanceof PlanSyncFrameError,
  })),
  spec(
    'automerge',
    'syncMessageProblem on a plan document, then receiveSyncMessage for what it lets through',
    async () => {
      const { thread, messages } = planSyncSeeds((await loadCorpus()).thread)
      const { root, shape } = planDocumentStart(thread)
      const base = A.load<PlanDoc>(root)
      return {
        seeds: messages,
        codec: automergeCodec,
        run(input) {
          const problem = syncMessageProblem(input, shape, { entries: 0, bytes: 0 }, DEFAULT_PLAN_DOC_LIMITS)
          if (problem !== undefined) throw new Refused(problem)
          // What the repo does with a message the inspection delivered.
          const doc = A.clone(base)
          const [received] = A.receiveSyncMessage(doc, A.initSyncState(), input)
          const heads = A.getHeads(received)
          A.free(received)
          return heads
        },
      }
    },
  ),
  spec('manifest', 'verifyManifest: a verifier manifest as JSON (PUT /api/pool/<did>)', async () => ({
    seeds: await manifestSeeds(await loadCorpus()),
    codec: jsonCodec,
    run(input) {
      // What the anchor does with a body: the size check and the parse, then the verification.
      return verifyManifest(manifestFromJson(input), FUZZ_NET)
    },
  })),
  spec('genesis', 'genesisFromJson, then verifyGenesis: a network genesis record as dag-json', async () => ({
    seeds: await genesisSeeds(await loadCorpus()),
    codec: jsonCodec,
    run: (input) => verifyGenesis(genesisFromJson(text.decode(input))),
  })),
  spec('capsule', 'decodeCapsule, then verifyCapsule: a policy capsule artifact', async () => ({
    seeds: await capsuleSeeds(await loadCorpus()),
    run: (input) => verifyCapsule(decodeCapsule(input)),
  })),
  spec('merkle-root', 'decodeThreadRoot: the root block of a thread tree', async () => ({
    seeds: merkleSeeds(await loadCorpus()).roots,
    run: decodeThreadRoot,
  })),
  spec('merkle-node', 'decodeInnerNode: an inner node of a thread tree', async () => ({
    seeds: merkleSeeds(await loadCorpus()).nodes,
    run: decodeInnerNode,
  })),
  spec('http', "the anchor's HTTP router (in memory): methods, paths, headers, bodies", async () => {
    const corpus = await loadCorpus()
    const genesis = await genesisSeeds(corpus)
    const manifests = await manifestSeeds(corpus)
    const harness = httpHarness({
      thread: corpus.thread,
      network: FUZZ_NET,
      genesisJson: text.decode(genesis[0]),
      manifests,
      member: corpus.identities[0]!.did,
    })
    return { seeds: harness.seeds, run: harness.run, close: harness.close }
  }),
]

/** Target names, in order. */
export const TARGET_NAMES = TARGETS.map((target) => target.name)

/** Fuzzes the named targets one after the other (each built, run, then closed). */
export async function fuzzTargets(names: readonly string[], options: FuzzOptions): Promise<TargetReport[]> {
  const reports: TargetReport[] = []
  for (const name of names) {
    const spec = TARGETS.find((candidate) => candidate.name === name)
    if (!spec) throw new Error(`unknown fuzz target "${name}"; known: ${TARGET_NAMES.join(', ')}`)
    const target = await spec.create()
    try {
      reports.push(await fuzzTarget(target, options))
    } finally {
      await target.close?.()
    }
  }
  return reports
}
