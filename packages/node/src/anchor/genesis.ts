/**
 * The anchor's network genesis (docs/PROTOCOL.md §3): kept in `<data>/genesis.json`. On the first
 * start an anchor either takes a genesis it is given (`--genesis FILE`, for a network of several
 * anchors, which must name it) or creates a one-anchor genesis from its configuration (the initial
 * verifier pool or bootstrap mode); afterwards it keeps that genesis for ever — the network id of
 * everything it has signed depends on it — and refuses a configuration that contradicts it.
 *
 * Files are written atomically: a temporary file, fsync'd, renamed, and the directory fsync'd.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Identity } from '@can-swarm/peer'
import {
  type Genesis,
  genesisBody,
  genesisFromJson,
  genesisToJson,
  InvalidArgumentError,
  signGenesis,
  verifyGenesis,
} from '@can-swarm/peer'
import { writeFileDurably } from '../storage/durable.ts'

/** The genesis file of a data directory. */
export const GENESIS_FILE = 'genesis.json'

/** Reads and verifies a genesis file (every anchor's signature). */
export async function readGenesisFile(path: string): Promise<Genesis> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new InvalidArgumentError(`cannot read genesis ${path}: ${(error as Error).message}`, 'genesis')
  }
  try {
    return await verifyGenesis(genesisFromJson(text))
  } catch (error) {
    throw new InvalidArgumentError(
      `genesis ${path} is not a valid signed genesis (${(error as Error).message}): ask the network's operators for its genesis file`,
      'genesis',
    )
  }
}

/** What the configuration says about a genesis to create (and must agree with a kept one). */
export interface GenesisConfig {
  /** A genesis file to join with (its anchors must include this anchor). */
  genesisFile?: string | undefined
  /** The initial verifier pool (given explicitly: checked against a kept genesis). */
  verifiers?: readonly string[] | undefined
  /** Bootstrap mode at genesis (given explicitly: checked against a kept genesis). */
  bootstrapMode?: boolean | undefined
  /** T_challenge of a new genesis (given explicitly: checked against a kept genesis). */
  challengeWindowMs?: number | undefined
  /** Network name for a new genesis. @default 'can-swarm' */
  name?: string
  /** Clock of a new genesis. @default Date.now */
  nowMs?: () => number
}

/**
 * The anchor's genesis: kept, given, or created (in that order of preference).
 * @throws {InvalidArgumentError} field `genesis` for a damaged file, a genesis that does not name
 *   this anchor, a `--genesis` other than the kept one, or a pool contradicting the kept genesis.
 */
export async function loadOrCreateGenesis(
  dataDir: string,
  identity: Identity,
  config: GenesisConfig,
): Promise<{ genesis: Genesis; created: boolean }> {
  const path = join(dataDir, GENESIS_FILE)
  const given = config.genesisFile === undefined ? undefined : await readGenesisFile(config.genesisFile)
  if (existsSync(path)) {
    const kept = await readGenesisFile(path)
    if (given && given.id !== kept.id) {
      throw new InvalidArgumentError(
        `this data directory belongs to network ${kept.id}; the genesis given is network ${given.id}: use another --data directory to join another network`,
        'genesis',
      )
    }
    checkAgrees(kept, config)
    checkMember(kept, identity, path)
    return { genesis: kept, created: false }
  }
  if (given) {
    checkMember(given, identity, config.genesisFile!)
    writeFileDurably(path, `${genesisToJson(given)}\n`)
    return { genesis: given, created: true }
  }
  const body = genesisBody({
    name: config.name ?? 'can-swarm',
    createdMs: (config.nowMs ?? Date.now)(),
    anchors: [identity.did],
    pool: { bootstrap: config.bootstrapMode ?? true, verifiers: [...(config.verifiers ?? [])] },
    economy: { allocations: stakeAllocations(config.verifiers ?? []) },
    ...(config.challengeWindowMs === undefined ? {} : { params: { tChallengeMs: config.challengeWindowMs } }),
  })
  const genesis = await signGenesis(body, [identity])
  writeFileDurably(path, `${genesisToJson(genesis)}\n`)
  return { genesis, created: true }
}

/**
 * The genesis allocations of a network created here: each initial verifier is allocated the stake
 * it bonds at genesis (and nothing to spend); everyone else starts with nothing but the faucet.
 */
function stakeAllocations(verifiers: readonly string[]): { did: string; amount: number }[] {
  return verifiers.map((did) => ({ did, amount: DEFAULT_VERIFIER_STAKE }))
}

/** The stake each initial verifier bonds at genesis (the genesis rule's `verifierStake`). */
const DEFAULT_VERIFIER_STAKE = 300

function checkMember(genesis: Genesis, identity: Identity, source: string): void {
  if (!genesis.body.anchors.includes(identity.did)) {
    throw new InvalidArgumentError(
      `genesis ${source} does not name this anchor (${identity.did}) among its anchors: start it with the data directory whose identity the genesis lists`,
      'genesis',
    )
  }
}

function checkAgrees(genesis: Genesis, config: GenesisConfig): void {
  const pool = genesis.body.pool
  if (config.verifiers !== undefined && config.verifiers.length > 0) {
    const wanted = [...config.verifiers].sort().join(',')
    if (wanted !== pool.verifiers.join(',')) {
      throw new InvalidArgumentError(
        `--verifiers differs from this network's genesis pool (${pool.verifiers.length} verifiers): the genesis is kept for the life of the network; verifiers join later by staking (PUT /api/pool/<did>)`,
        'verifiers',
      )
    }
  }
  if (
    config.challengeWindowMs !== undefined &&
    config.challengeWindowMs !== genesis.body.params.tChallengeMs
  ) {
    throw new InvalidArgumentError(
      `this network's challenge window is ${genesis.body.params.tChallengeMs} ms (its genesis); the genesis is kept for the life of the network`,
      'challengeWindowMs',
    )
  }
  if (config.bootstrapMode !== undefined && config.bootstrapMode !== pool.bootstrap) {
    throw new InvalidArgumentError(
      `this network's genesis ${pool.bootstrap ? 'is' : 'is not'} in bootstrap mode; the genesis is kept for the life of the network`,
      'bootstrapMode',
    )
  }
}

/**
 * Creates a genesis for several anchors (`node packages/node genesis`): the identity of each data
 * directory (created when absent) becomes an anchor and signs; the file is written to `out`.
 */
export async function createGenesisFile(input: {
  identities: readonly Identity[]
  out: string
  verifiers?: readonly string[]
  bootstrapMode?: boolean
  /** Credits minted at genesis, beyond each initial verifier's stake. */
  allocations?: readonly { did: string; amount: number }[]
  name?: string
  nowMs?: number
  /** T_challenge of the network, in ms. @default the genesis default (10 000) */
  challengeWindowMs?: number
}): Promise<Genesis> {
  const body = genesisBody({
    name: input.name ?? 'can-swarm',
    createdMs: input.nowMs ?? Date.now(),
    anchors: input.identities.map((identity) => identity.did),
    pool: { bootstrap: input.bootstrapMode ?? true, verifiers: [...(input.verifiers ?? [])] },
    economy: { allocations: [...stakeAllocations(input.verifiers ?? []), ...(input.allocations ?? [])] },
    ...(input.challengeWindowMs === undefined ? {} : { params: { tChallengeMs: input.challengeWindowMs } }),
  })
  const genesis = await signGenesis(body, input.identities)
  writeFileDurably(input.out, `${genesisToJson(genesis)}\n`, 0o644)
  return genesis
}
