/**
 * Verifier committees chosen by stake, reputation, recency and diversity (docs/PROTOCOL.md §8.3):
 * weight = ⌊√stake⌋ × reputation × recency, a cap per entity, caps per org / ASN / region, and no
 * verifier related to the worker. The draw is deterministic and checkable by every peer from
 * public inputs (a seed such as the COMMIT id, and the pool snapshot): integer arithmetic only
 * (BigInt), randomness from SHA-256 of the seed — no floating point, so every runtime agrees.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { InvalidArgumentError } from '../errors.ts'
import type { Did } from '../types.ts'

/** A verifier as its signed manifest and the ledger describe it. */
export interface PoolEntry {
  did: Did
  /** Credits staked (from the ledger). */
  stake: number
  /** Reputation in per-mille, 0–1000 (from reputation.ts). */
  reputationPerMille: number
  /** When the verifier was last seen active (sequencer time, ms). */
  lastActiveMs: number
  /** Root of the verifier's identity graph: entries sharing it are one entity. */
  entity: string
  org: string
  asn: string
  region: string
}

export interface SelectionParams {
  /** Committee size wanted. */
  size: number
  /** Members one entity may hold. @default 1 */
  maxPerEntity: number
  /** Members one org / ASN / region may hold. @default 1 / 2 / 3 */
  maxPerOrg: number
  maxPerAsn: number
  maxPerRegion: number
  /** Stake below which a verifier is not eligible. @default 1 */
  minStake: number
  /** Full recency weight while active within this window; then it falls linearly to 10 % over the next window. @default 24 h */
  recencyWindowMs: number
}

export const DEFAULT_SELECTION_PARAMS: Omit<SelectionParams, 'size'> = Object.freeze({
  maxPerEntity: 1,
  maxPerOrg: 1,
  maxPerAsn: 2,
  maxPerRegion: 3,
  minStake: 1,
  recencyWindowMs: 24 * 3_600_000,
})

/** ⌊√n⌋ for a non-negative integer, exactly. */
export function isqrt(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(`isqrt needs a non-negative integer, got ${n}`, 'n')
  let x = BigInt(Math.floor(Math.sqrt(n)))
  const big = BigInt(n)
  while (x * x > big) x -= 1n
  while ((x + 1n) * (x + 1n) <= big) x += 1n
  return Number(x)
}

/** Recency factor in per-mille (1000 while fresh, down to 100). */
export function recencyPerMille(lastActiveMs: number, nowMs: number, windowMs: number): number {
  const age = Math.max(0, nowMs - lastActiveMs)
  if (age <= windowMs) return 1000
  if (age >= 2 * windowMs) return 100
  return 1000 - Math.floor(((age - windowMs) * 900) / windowMs)
}

/** The integer weight of a pool entry. */
export function selectionWeight(
  entry: PoolEntry,
  nowMs: number,
  params: Omit<SelectionParams, 'size'>,
): bigint {
  if (entry.stake < params.minStake) return 0n
  const reputation = Math.max(0, Math.min(1000, Math.floor(entry.reputationPerMille)))
  return (
    BigInt(isqrt(entry.stake)) *
    BigInt(reputation) *
    BigInt(recencyPerMille(entry.lastActiveMs, nowMs, params.recencyWindowMs))
  )
}

function draw(seed: string, round: number, total: bigint): bigint {
  const hex = bytesToHex(sha256(utf8ToBytes(`can-swarm/committee|${seed}|${round}`)))
  return BigInt(`0x${hex}`) % total
}

/**
 * Draws a committee. `related` lists dids that may not serve (the worker, and anyone of its org
 * or identity graph, decided by the caller). Returns fewer than `size` members when caps or the
 * pool leave too few — the caller decides whether that is enough for K_result.
 */
export function selectCommittee(
  seed: string,
  pool: readonly PoolEntry[],
  nowMs: number,
  options: Partial<SelectionParams> & { size: number; related?: ReadonlySet<Did> },
): Did[] {
  const params: SelectionParams = { ...DEFAULT_SELECTION_PARAMS, ...options }
  if (!Number.isSafeInteger(params.size) || params.size < 1) {
    throw new InvalidArgumentError('committee size must be a positive integer', 'size')
  }
  const related = options.related ?? new Set<Did>()
  let candidates = [...pool]
    .filter((entry) => !related.has(entry.did))
    .sort((a, b) => (a.did < b.did ? -1 : a.did > b.did ? 1 : 0))
    .map((entry) => ({ entry, weight: selectionWeight(entry, nowMs, params) }))
    .filter((candidate) => candidate.weight > 0n)
  const chosen: Did[] = []
  const counts = {
    entity: new Map<string, number>(),
    org: new Map<string, number>(),
    asn: new Map<string, number>(),
    region: new Map<string, number>(),
  }
  const limits = {
    entity: params.maxPerEntity,
    org: params.maxPerOrg,
    asn: params.maxPerAsn,
    region: params.maxPerRegion,
  }
  const full = (entry: PoolEntry) =>
    (['entity', 'org', 'asn', 'region'] as const).some(
      (key) => (counts[key].get(entry[key]) ?? 0) >= limits[key],
    )
  let round = 0
  while (chosen.length < params.size) {
    candidates = candidates.filter((candidate) => !full(candidate.entry))
    const total = candidates.reduce((sum, candidate) => sum + candidate.weight, 0n)
    if (total === 0n) break
    let point = draw(seed, round, total)
    round += 1
    const index = candidates.findIndex((candidate) => {
      if (point < candidate.weight) return true
      point -= candidate.weight
      return false
    })
    const { entry } = candidates[index]!
    chosen.push(entry.did)
    for (const key of ['entity', 'org', 'asn', 'region'] as const)
      counts[key].set(entry[key], (counts[key].get(entry[key]) ?? 0) + 1)
    candidates.splice(index, 1)
  }
  return chosen
}

/** Dids related to `worker`: same entity or same org (no payout and no committee seat for them). */
export function relatedParties(worker: Did, pool: readonly PoolEntry[]): Set<Did> {
  const self = pool.find((entry) => entry.did === worker)
  const related = new Set<Did>([worker])
  if (!self) return related
  for (const entry of pool) if (entry.entity === self.entity || entry.org === self.org) related.add(entry.did)
  return related
}
