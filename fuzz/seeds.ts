/**
 * Valid inputs for every fuzz target, made with the project's own encoders and signers. They are
 * deterministic (fixed identity seeds, Ed25519's deterministic signatures, a seeded simulation,
 * Automerge changes at time 0 by fixed actors), so an input index names the same bytes in every
 * run.
 *
 * The envelopes come from two seeded simulator runs (with attackers and with a partition), which
 * between them sign nearly every kind of the protocol the way live peers do.
 */
import { readFileSync } from 'node:fs'
import type { AnyEnvelope } from '@can-swarm/peer'
import {
  type BundleManifest,
  buildThreadTree,
  compareKeys,
  createCapsule,
  createIdentity,
  decodeEnvelope,
  encodeCapsule,
  encodeEnvelope,
  encodeRequest,
  encodeResponse,
  encodeSyncRequest,
  encodeSyncResponse,
  envelopeToJson,
  genesisBody,
  genesisToJson,
  type Identity,
  runSimulation,
  type SyncKeyed,
  sha256Hex,
  signGenesis,
  signManifest,
} from '@can-swarm/peer'
import { encodeFrame } from '@can-swarm/peer/net'

/** Envelopes kept per kind (enough variety, few enough that each seed is mutated often). */
const PER_KIND = 3

export interface Corpus {
  /** Distinct valid envelopes, a few of each kind the simulator signs. */
  envelopes: AnyEnvelope[]
  /** One whole thread (NEED first, in the order a peer received it). */
  thread: AnyEnvelope[]
  identities: Identity[]
}

let corpus: Promise<Corpus> | undefined

/** The shared envelopes and identities (built once per process, ~1 s). */
export function loadCorpus(): Promise<Corpus> {
  corpus ??= buildCorpus()
  return corpus
}

async function buildCorpus(): Promise<Corpus> {
  const byKind = new Map<string, AnyEnvelope[]>()
  const seen = new Set<string>()
  let thread: AnyEnvelope[] = []
  const keep = (env: AnyEnvelope): void => {
    if (seen.has(env.id)) return
    seen.add(env.id)
    // Only what decodes is a seed (a simulated attacker signs envelopes honest peers refuse).
    try {
      decodeEnvelope(encodeEnvelope(env))
    } catch {
      return
    }
    const list = byKind.get(env.kind) ?? []
    if (list.length < PER_KIND) byKind.set(env.kind, [...list, env])
  }
  for (const faults of ['attacker', 'partition'] as const) {
    await runSimulation({
      seed: 1,
      needs: 1,
      faults,
      onTrace: (trace) => {
        const envelopes = trace.entries.map((entry) => entry.env)
        for (const env of envelopes) keep(env)
        if (envelopes.length > thread.length) thread = envelopes
      },
    })
  }
  const identities = await Promise.all(
    [1, 2, 3].map((tag) => createIdentity({ seed: new Uint8Array(32).fill(0x40 + tag) })),
  )
  return { envelopes: [...byKind.values()].flat(), thread, identities }
}

/** Wire bytes of every corpus envelope. */
export function envelopeSeeds(c: Corpus): Uint8Array[] {
  return c.envelopes.map((env) => encodeEnvelope(env))
}

/** dag-json text (as UTF-8) of every corpus envelope. */
export function envelopeJsonSeeds(c: Corpus): Uint8Array[] {
  return c.envelopes.map((env) => new TextEncoder().encode(envelopeToJson(env)))
}

/** Gossip frames: single envelopes, a batch of one, batches of several. */
export function frameSeeds(c: Corpus): Uint8Array[] {
  const wire = envelopeSeeds(c)
  return [
    encodeFrame([wire[0]!]),
    encodeFrame([wire[1]!], true),
    encodeFrame(wire.slice(0, 4)),
    encodeFrame(wire.slice(4, 12)),
    encodeFrame(c.thread.slice(0, 6).map((env) => encodeEnvelope(env))),
  ]
}

function opening(c: Corpus): { need: AnyEnvelope; propose: AnyEnvelope; votes: AnyEnvelope[] } {
  const need = c.thread.find((env) => env.kind === 'NEED')!
  const propose = c.thread.find((env) => env.kind === 'PROPOSE')!
  const votes = c.thread.filter((env) => env.kind === 'ATTEST_PLAN' && env.payload.proposal === propose.id)
  return { need, propose, votes }
}

export function decideRequestSeeds(c: Corpus): Uint8Array[] {
  const { need, propose, votes } = opening(c)
  return [
    encodeRequest({ need: need.id, proposal: propose.id, envelopes: [need, propose, ...votes] }),
    encodeRequest({ need: need.id, proposal: propose.id, envelopes: [need, propose] }),
    encodeRequest({ need: need.id, proposal: propose.id, envelopes: [] }),
  ]
}

export function decideResponseSeeds(c: Corpus): Uint8Array[] {
  const decide = c.thread.find((env) => env.kind === 'DECIDE')! as never
  return [
    encodeResponse({ outcome: 'decided', decide }),
    encodeResponse({ outcome: 'refused', reason: 'the quorum is not there' }),
    encodeResponse({ outcome: 'pending', reason: 'waiting for the store' }),
  ]
}

/** The place of an envelope in the sync order (thread, lamport, sender, id). */
function keyOf(env: AnyEnvelope): SyncKeyed {
  return { thread: env.thread, lamport: env.lamport, sender: env.sender, id: env.id }
}

/** Envelopes of the corpus thread in the sync order. */
function sorted(c: Corpus): AnyEnvelope[] {
  return [...c.thread].sort((a, b) => compareKeys(keyOf(a), keyOf(b)))
}

export function syncRequestSeeds(c: Corpus): Uint8Array[] {
  const thread = sorted(c)
  const sum = new Uint8Array(32).fill(9)
  return [
    encodeSyncRequest({
      op: 'ranges',
      ranges: [
        { lo: null, hi: keyOf(thread[2]!), count: 2, sum },
        { lo: keyOf(thread[2]!), hi: keyOf(thread[5]!), count: 3, sum },
        { lo: keyOf(thread[5]!), hi: null, count: thread.length - 5, sum },
      ],
    }),
    encodeSyncRequest({ op: 'get', ids: thread.slice(0, 6).map((env) => env.id) }),
    encodeSyncRequest({ op: 'scan', lo: keyOf(thread[1]!), hi: null }),
    encodeSyncRequest({ op: 'scan', lo: null, hi: null }),
  ]
}

export function syncResponseSeeds(c: Corpus): Uint8Array[] {
  const thread = sorted(c)
  const sum = new Uint8Array(32).fill(3)
  return [
    encodeSyncResponse({
      op: 'ranges',
      answers: [
        { kind: 'equal' },
        { kind: 'items', ids: thread.slice(0, 4).map((env) => env.id) },
        {
          kind: 'split',
          parts: [
            { lo: null, count: 3, sum },
            { lo: keyOf(thread[3]!), count: 2, sum },
            { lo: keyOf(thread[6]!), count: 1, sum },
          ],
        },
      ],
    }),
    encodeSyncResponse({
      op: 'get',
      envelopes: thread.slice(0, 6).map((env) => encodeEnvelope(env)),
      consumed: 6,
    }),
    encodeSyncResponse({
      op: 'scan',
      envelopes: thread.slice(6, 9).map((env) => encodeEnvelope(env)),
      next: keyOf(thread[9]!),
    }),
    encodeSyncResponse({ op: 'refused', reason: 'rate', retryMs: 1000, field: 'ranges' }),
  ]
}

/** The network id manifests and genesis seeds name. */
export const FUZZ_NET = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

export async function manifestSeeds(c: Corpus): Promise<Uint8Array[]> {
  const [a, b] = c.identities
  const manifests = [
    await signManifest(a!, {
      net: FUZZ_NET,
      org: 'acme',
      asn: 'AS64500',
      region: 'eu-west',
      stake: 300,
      seq: 1,
    }),
    await signManifest(b!, {
      net: FUZZ_NET,
      org: 'b.org',
      asn: 'AS1',
      region: 'us:east-2',
      stake: 0,
      seq: 7,
    }),
  ]
  return manifests.map((manifest) => new TextEncoder().encode(JSON.stringify(manifest)))
}

export async function genesisSeeds(c: Corpus): Promise<Uint8Array[]> {
  const [a, b, v] = c.identities
  const anchors = [a!, b!].sort((x, y) => (x.did < y.did ? -1 : 1))
  const small = genesisBody({ createdMs: 1_700_000_000_000, anchors: [a!.did] })
  const full = genesisBody({
    name: 'fuzz',
    createdMs: 1_700_000_000_000,
    anchors: anchors.map((identity) => identity.did),
    pool: {
      bootstrap: false,
      verifiers: [v!.did],
      entries: [
        {
          did: v!.did,
          stake: 300,
          reputationPerMille: 500,
          lastActiveMs: 0,
          entity: 'v',
          org: 'acme',
          asn: 'AS64500',
          region: 'eu',
        },
      ],
    },
    economy: { allocations: [{ did: v!.did, amount: 1000 }] },
  })
  const signed = [await signGenesis(small, [a!]), await signGenesis(full, anchors)]
  return signed.map((genesis) => new TextEncoder().encode(genesisToJson(genesis)))
}

/** Capsules: the real base policy bundle and small synthetic ones. */
export async function capsuleSeeds(c: Corpus): Promise<Uint8Array[]> {
  const bundle = new URL('../packages/peer/policy-bundle/', import.meta.url)
  const manifest = JSON.parse(readFileSync(new URL('base.json', bundle), 'utf8')) as BundleManifest
  const wasm = new Uint8Array(readFileSync(new URL('base.wasm', bundle)))
  const author = c.identities[0]!
  const seeds = [encodeCapsule(await createCapsule({ wasm, manifest }, author))]
  // Small ones too, most of the inputs: the real one is 190 KB, each of its mutants costs ~1 ms.
  for (const [size, vectors] of [
    [0, 0],
    [0, 2],
    [64, 1],
    [64, 4],
    [300, 8],
  ] as const) {
    const tiny = new Uint8Array(size).fill(7)
    const small: BundleManifest = {
      ...manifest,
      policyHash: sha256Hex(tiny),
      conformance: manifest.conformance.slice(0, vectors),
      vectors: manifest.vectors.slice(0, vectors),
    }
    seeds.push(encodeCapsule(await createCapsule({ wasm: tiny, manifest: small }, author)))
  }
  return seeds
}

/** Merkle blocks of the corpus thread's tree: the root block and every inner node. */
export function merkleSeeds(c: Corpus): { roots: Uint8Array[]; nodes: Uint8Array[] } {
  const tree = buildThreadTree(c.thread)
  const small = buildThreadTree(c.thread.slice(0, 1))
  return {
    roots: [tree.blocks[0]!.bytes, small.blocks[0]!.bytes],
    nodes: tree.blocks.slice(1, 6).map((block) => block.bytes),
  }
}
