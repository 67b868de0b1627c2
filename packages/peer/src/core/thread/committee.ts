/**
 * Result committees: which verifiers may ATTEST a COMMIT. Deterministic and checkable by every
 * peer from public inputs (the COMMIT id and the verifier pool): verifiers are ranked by
 * SHA-256(commit ‖ did) and the first K_result + spares are drawn, the worker excluded outside
 * bootstrap. (Stake, reputation and diversity weighting arrive with the economy.)
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
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
  const key = `${commit}|${worker}|${kResult}|${params.bootstrap}|${params.committeeSpares}|${params.verifiers.join(',')}`
  const cached = memo.get(key)
  if (cached) return cached
  const committee = Object.freeze(rankCommittee(commit, worker, kResult, params))
  if (memo.size >= MEMO_ENTRIES) memo.delete(memo.keys().next().value!)
  memo.set(key, committee)
  return committee
}

function rankCommittee(commit: Cid, worker: Did, kResult: number, params: NetworkParams): Did[] {
  const candidates = params.verifiers.filter((did) => params.bootstrap || did !== worker)
  const ranked = candidates
    .map((did) => ({ did, rank: bytesToHex(sha256(utf8ToBytes(`${commit}|${did}`))) }))
    .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0))
  return ranked.slice(0, kResult + params.committeeSpares).map((entry) => entry.did)
}
