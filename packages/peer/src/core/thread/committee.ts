/**
 * Result committees: which verifiers may ATTEST a COMMIT. Deterministic and checkable by every
 * peer from public inputs (the COMMIT id and the verifier pool snapshot). With a pool snapshot in
 * the network parameters, K_result + spares members are drawn by √stake × reputation × recency
 * with per-entity and org/ASN/region caps, the worker and its related parties excluded
 * (economy/selection.ts); without one, verifiers are ranked by SHA-256(commit ‖ did), the worker
 * excluded outside bootstrap.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { relatedParties, selectCommittee } from '../economy/selection.ts'
import type { Cid, Did } from '../types.ts'
import type { NetworkParams } from './params.ts'

/** Memo of recent committees: re-folds recompute them often. Bounded; pure, so safe to share. */
const memo = new Map<string, readonly Did[]>()
const MEMO_ENTRIES = 4096

/** The committee for a commit, in rank order. */
export function committeeFor(
  commit: Cid,
  worker: Did,
  kResult: number,
  params: NetworkParams,
): readonly Did[] {
  const key = `${commit}|${worker}|${kResult}|${params.bootstrap}|${params.committeeSpares}|${params.verifiers.join(',')}|${poolKey(params)}`
  const cached = memo.get(key)
  if (cached) return cached
  const committee = Object.freeze(rankCommittee(commit, worker, kResult, params))
  if (memo.size >= MEMO_ENTRIES) memo.delete(memo.keys().next().value!)
  memo.set(key, committee)
  return committee
}

const poolKeys = new WeakMap<object, string>()

function poolKey(params: NetworkParams): string {
  const pool = params.pool
  if (!pool) return ''
  let key = poolKeys.get(pool)
  if (key === undefined) {
    key = `${params.poolSnapshotMs ?? 0}|${JSON.stringify(pool)}`
    poolKeys.set(pool, key)
  }
  return key
}

function rankCommittee(commit: Cid, worker: Did, kResult: number, params: NetworkParams): Did[] {
  if (params.pool) {
    const related = params.bootstrap ? new Set<Did>() : relatedParties(worker, params.pool)
    return selectCommittee(commit, params.pool, params.poolSnapshotMs ?? 0, {
      size: kResult + params.committeeSpares,
      related,
    })
  }
  const candidates = params.verifiers.filter((did) => params.bootstrap || did !== worker)
  const ranked = candidates
    .map((did) => ({ did, rank: bytesToHex(sha256(utf8ToBytes(`${commit}|${did}`))) }))
    .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0))
  return ranked.slice(0, kResult + params.committeeSpares).map((entry) => entry.did)
}
