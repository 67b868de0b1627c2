/**
 * Network genesis (docs/PROTOCOL.md §3): the record that names a network. It holds the anchor
 * set, the protocol parameters, the initial verifier pool (or bootstrap) and the economy's genesis
 * rule; its id — the CID of its canonical body — is the network id every envelope carries in
 * `net` and every signature covers, so an envelope signed for one network is worthless in
 * another. Every anchor of the set signs the id (`crypto/genesis.ts`).
 *
 * Pure: building, encoding, validating and deriving parameters. Signing and verifying live in
 * `crypto/genesis.ts`.
 *
 * @example
 * ```ts
 * const body = genesisBody({ name: 'local', createdMs: Date.now(), anchors: [anchor.did] })
 * const genesis = await signGenesis(body, [anchor])      // crypto/genesis.ts
 * const params = paramsFromGenesis(genesis)               // what every replica folds with
 * ```
 */
import * as dagJson from '@ipld/dag-json'
import { z } from 'zod'
import { cidOfDagCbor, cidProblem, didKeyProblem, encodeCanonical } from './codec.ts'
import { DEFAULT_QUORUM_PARAMS, type QuorumParams } from './consensus.ts'
import { decodeDagJson, type JsonBudget } from './dag-json.ts'
import { InvalidArgumentError, MalformedEnvelopeError } from './errors.ts'
import { DEFAULT_NETWORK_PARAMS, type NetworkParams, networkParams } from './thread/params.ts'
import type { Cid, Did, PoolEntrySnapshot } from './types.ts'

/** Version of the genesis format. */
export const GENESIS_VERSION = 1 as const

/** Most anchors a genesis may name. */
export const MAX_GENESIS_ANCHORS = 64
/** Longest genesis text accepted, in characters (a genesis with a 256-verifier pool fits well). */
export const MAX_GENESIS_JSON_CHARS = 1_048_576
/**
 * The structure a genesis text may carry: every value and key a 1 MiB genesis can legitimately
 * hold (allocations are the bulk: two keys and five values each), nested no deeper than the body.
 */
const GENESIS_JSON_BUDGET: JsonBudget = Object.freeze({ maxItems: 200_000, maxDepth: 8, maxKeys: 32_768 })

/** The protocol parameters a genesis fixes for the life of the network. */
export interface GenesisParams {
  quorum: QuorumParams
  tChallengeMs: number
  committeeSpares: number
  leaseGraceMs: number
  minLeaseTtlMs: number
  maxLeaseTtlMs: number
  maxProposalsPerPlanner: number
  maxLamportStep: number
  /** How long a decided thread may take before it settles for good. @default 24 h (absent: the default) */
  threadLifetimeMs?: number
}

/** The faucet of A7: credits minted on request, bounded per account and per network per window. */
export interface FaucetRule {
  /** Credits one grant gives, and the most one account may ever receive from the faucet. @default 1 000 */
  grantCredits: number
  /** The window the network-wide cap counts over, in ms. @default 1 h */
  windowMs: number
  /** Credits the faucet may grant in all within any window. @default 20 000 */
  maxCreditsPerWindow: number
}

/** The economy's genesis rule (A7): the only credits ever minted are these and faucet grants. */
export interface GenesisEconomy {
  /** Credits minted at genesis. */
  allocations: { did: Did; amount: number }[]
  /** Stake each genesis verifier bonds out of its allocation. @default 300 */
  verifierStake: number
  faucet: FaucetRule
}

/** The initial verifier pool (pool epoch 0). */
export interface GenesisPool {
  bootstrap: boolean
  verifiers: Did[]
  entries: PoolEntrySnapshot[]
}

/** What a genesis says; its canonical encoding's CID is the network id. */
export interface GenesisBody {
  v: typeof GENESIS_VERSION
  /** A label for people (not an identifier: two networks may share it). */
  name: string
  /** When the network was created (the first anchor's clock, ms). */
  createdMs: number
  /** The anchor set, sorted. */
  anchors: Did[]
  params: GenesisParams
  pool: GenesisPool
  economy: GenesisEconomy
}

/** One anchor's signature of a network id. */
export interface GenesisSignature {
  did: Did
  sig: Uint8Array
}

/** A genesis record: its body, its id and the anchors' signatures. */
export interface Genesis {
  id: Cid
  body: GenesisBody
  signatures: GenesisSignature[]
}

export const DEFAULT_FAUCET: FaucetRule = Object.freeze({
  grantCredits: 1_000,
  windowMs: 3_600_000,
  maxCreditsPerWindow: 20_000,
})

/** The fixed parameters of {@link DEFAULT_NETWORK_PARAMS}. */
export const DEFAULT_GENESIS_PARAMS: GenesisParams = Object.freeze({
  quorum: DEFAULT_QUORUM_PARAMS,
  tChallengeMs: DEFAULT_NETWORK_PARAMS.tChallengeMs,
  committeeSpares: DEFAULT_NETWORK_PARAMS.committeeSpares,
  leaseGraceMs: DEFAULT_NETWORK_PARAMS.leaseGraceMs,
  minLeaseTtlMs: DEFAULT_NETWORK_PARAMS.minLeaseTtlMs,
  maxLeaseTtlMs: DEFAULT_NETWORK_PARAMS.maxLeaseTtlMs,
  maxProposalsPerPlanner: DEFAULT_NETWORK_PARAMS.maxProposalsPerPlanner,
  maxLamportStep: DEFAULT_NETWORK_PARAMS.maxLamportStep,
})

// ---------------------------------------------------------------- schema

const count = z.int().min(0)
const did = z.string().superRefine((value, context) => {
  const problem = didKeyProblem(value)
  if (problem !== undefined) context.addIssue({ code: 'custom', message: `did ${problem}` })
})
const label = z.string().min(1).max(256)
const sortedDistinct = (max: number) =>
  z
    .array(did)
    .max(max)
    .refine((list) => list.every((value, index) => index === 0 || list[index - 1]! < value), {
      error: 'must be sorted and distinct',
    })

const genesisBodySchema = z.strictObject({
  v: z.literal(GENESIS_VERSION),
  name: label,
  createdMs: count,
  anchors: sortedDistinct(MAX_GENESIS_ANCHORS).refine((list) => list.length > 0, {
    error: 'a network needs at least one anchor',
  }),
  params: z.strictObject({
    quorum: z.strictObject({
      kTarget: z.int().min(1).max(64),
      alphaPerMille: z.int().min(0).max(1000),
      bootstrapThreshold: count,
      bootstrapStableMs: count,
    }),
    tChallengeMs: count,
    committeeSpares: z.int().min(0).max(64),
    leaseGraceMs: count,
    minLeaseTtlMs: count,
    maxLeaseTtlMs: count,
    maxProposalsPerPlanner: z.int().min(1).max(256),
    maxLamportStep: z.int().min(1).max(1_000_000),
    threadLifetimeMs: z.int().min(1).optional(),
  }),
  pool: z.strictObject({
    bootstrap: z.boolean(),
    verifiers: sortedDistinct(256),
    entries: z
      .array(
        z.strictObject({
          did,
          stake: count,
          reputationPerMille: z.int().min(0).max(1000),
          lastActiveMs: count,
          entity: label,
          org: label,
          asn: label,
          region: label,
        }),
      )
      .max(256),
  }),
  economy: z.strictObject({
    allocations: z.array(z.strictObject({ did, amount: count })).max(100_000),
    verifierStake: count,
    faucet: z.strictObject({ grantCredits: count, windowMs: z.int().min(1), maxCreditsPerWindow: count }),
  }),
})

// ---------------------------------------------------------------- building

/** What {@link genesisBody} needs; everything but the anchors has a default. */
export interface GenesisInput {
  name?: string
  createdMs: number
  anchors: readonly Did[]
  params?: Partial<GenesisParams>
  /** @default an open bootstrap pool (no verifiers) */
  pool?: Partial<GenesisPool>
  economy?: Partial<Omit<GenesisEconomy, 'faucet'>> & { faucet?: Partial<FaucetRule> }
}

/**
 * Builds and checks a genesis body (anchors and verifiers sorted).
 * @throws {InvalidArgumentError} naming the field that is wrong.
 */
export function genesisBody(input: GenesisInput): GenesisBody {
  const verifiers = [...(input.pool?.verifiers ?? [])].sort()
  const body: GenesisBody = {
    v: GENESIS_VERSION,
    name: input.name ?? 'can-swarm',
    createdMs: Math.max(0, Math.floor(input.createdMs)),
    anchors: [...input.anchors].sort(),
    params: { ...DEFAULT_GENESIS_PARAMS, ...input.params },
    pool: {
      bootstrap: input.pool?.bootstrap ?? true,
      verifiers,
      entries: (input.pool?.entries ?? []).map((entry) => ({ ...entry })),
    },
    economy: {
      allocations: (input.economy?.allocations ?? []).map((a) => ({ ...a })),
      verifierStake: input.economy?.verifierStake ?? 300,
      faucet: { ...DEFAULT_FAUCET, ...input.economy?.faucet },
    },
  }
  return checkGenesisBody(body)
}

/** Validates a genesis body; returns a fresh typed copy. */
export function checkGenesisBody(value: unknown): GenesisBody {
  const result = genesisBodySchema.safeParse(value)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const field = ['body', ...issue.path.map(String)].join('.')
    throw new InvalidArgumentError(`genesis ${field}: ${issue.message}`, field)
  }
  const body = result.data as GenesisBody
  const listed = new Set(body.pool.verifiers)
  const stray = body.pool.entries.find((entry) => !listed.has(entry.did))
  if (stray)
    throw new InvalidArgumentError(`genesis pool entry ${stray.did} is not a verifier`, 'body.pool.entries')
  if (body.params.minLeaseTtlMs > body.params.maxLeaseTtlMs) {
    throw new InvalidArgumentError(
      'genesis minLeaseTtlMs is above maxLeaseTtlMs',
      'body.params.minLeaseTtlMs',
    )
  }
  return body
}

/** The network id of a genesis body: the CID of its canonical DAG-CBOR encoding. */
export function genesisId(body: GenesisBody): Cid {
  return cidOfDagCbor(encodeCanonical(body))
}

/** The bytes each anchor signs: the network id under a domain tag (never valid as an envelope). */
export function genesisSigningBytes(id: Cid): Uint8Array {
  return encodeCanonical({ domain: 'can-swarm/genesis/1', network: id })
}

/** The parameters every replica of this network folds with (its genesis pool as the current view). */
export function paramsFromGenesis(genesis: Pick<Genesis, 'id' | 'body'>): NetworkParams {
  const { body } = genesis
  return networkParams({
    ...body.params,
    network: genesis.id,
    anchors: body.anchors,
    verifiers: body.pool.verifiers,
    bootstrap: body.pool.bootstrap,
    ...(body.pool.entries.length > 0 ? { pool: body.pool.entries } : {}),
    poolSnapshotMs: body.createdMs,
    poolEpoch: 0,
  })
}

// ---------------------------------------------------------------- JSON

const textDecoder = new TextDecoder()

/** The dag-json text of a genesis record (`{ id, body, signatures }`, keys sorted). */
export function genesisToJson(genesis: Genesis): string {
  return textDecoder.decode(
    dagJson.encode({ id: genesis.id, body: genesis.body, signatures: genesis.signatures }),
  )
}

/**
 * Reads a genesis from {@link genesisToJson} text: validates the body, recomputes the id and
 * checks it against the carried one. Does not verify signatures (`verifyGenesis` does).
 * @throws {MalformedEnvelopeError} for text that is not a genesis; {@link InvalidArgumentError} for a bad body.
 */
export function genesisFromJson(text: string): Genesis {
  if (typeof text !== 'string' || text.length > MAX_GENESIS_JSON_CHARS) {
    throw new MalformedEnvelopeError(
      `a genesis must be dag-json text of at most ${MAX_GENESIS_JSON_CHARS} characters`,
      'genesis',
    )
  }
  let value: unknown
  try {
    value = decodeDagJson(text, GENESIS_JSON_BUDGET, 'genesis')
  } catch (error) {
    throw new MalformedEnvelopeError(`the genesis is not dag-json (${(error as Error).message})`, 'genesis')
  }
  if (typeof value !== 'object' || value === null)
    throw new MalformedEnvelopeError('a genesis must be an object', 'genesis')
  const record = value as Record<string, unknown>
  const body = checkGenesisBody(record.body)
  const id = genesisId(body)
  if (record.id !== undefined && record.id !== id) {
    throw new MalformedEnvelopeError(
      `the genesis id ${String(record.id)} is not the hash of its body (${id})`,
      'id',
    )
  }
  if (!Array.isArray(record.signatures) || record.signatures.length > MAX_GENESIS_ANCHORS) {
    throw new MalformedEnvelopeError('genesis signatures must be a list', 'signatures')
  }
  const signatures: GenesisSignature[] = record.signatures.map((entry, index) => {
    const item = entry as Record<string, unknown>
    if (typeof item?.did !== 'string' || !(item.sig instanceof Uint8Array) || item.sig.length !== 64) {
      throw new MalformedEnvelopeError(
        `genesis signatures.${index} must be { did, sig: 64 bytes }`,
        `signatures.${index}`,
      )
    }
    return { did: item.did, sig: item.sig }
  })
  if (cidProblem(id) !== undefined) throw new MalformedEnvelopeError('genesis id is not a CID', 'id')
  return { id, body, signatures }
}
