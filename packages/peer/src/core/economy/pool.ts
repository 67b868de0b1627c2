/**
 * The verifier pool from signed manifests and the ledger (docs/PROTOCOL.md §9): a verifier joins by
 * declaring its org, ASN and region and a stake in a manifest it signs (see `crypto/manifest.ts`),
 * and the stake is bonded from its balance; a manifest with `stake: 0` leaves, and the stake goes
 * through unbonding. The pool snapshot — stake from the ledger, reputation from outcomes, recency
 * from activity — is what committee selection draws from.
 */
import type { Did } from '../types.ts'
import type { AccountState, LedgerOp } from './ledger.ts'
import type { PoolEntry } from './selection.ts'

/** A verifier's declaration, already signature-checked (a `VerifierManifest` without its `sig`). */
export interface PoolManifest {
  did: Did
  /** The network the manifest was signed for; one of another network counts for nothing. */
  net?: string
  org: string
  asn: string
  region: string
  /** Stake to hold bonded while in the pool; 0 leaves. */
  stake: number
  /** A higher `seq` replaces a lower one. */
  seq: number
}

/** The newest manifest of each verifier, in did order. */
export function latestManifests(manifests: Iterable<PoolManifest>): PoolManifest[] {
  const latest = new Map<Did, PoolManifest>()
  for (const manifest of manifests) {
    const held = latest.get(manifest.did)
    if (!held || manifest.seq > held.seq) latest.set(manifest.did, manifest)
  }
  return [...latest.values()].sort((a, b) => (a.did < b.did ? -1 : a.did > b.did ? 1 : 0))
}

/** The operation that brings a verifier's bonded stake to what its manifest declares, if any. */
export function stakeOpFor(manifest: PoolManifest, account: Readonly<AccountState>): LedgerOp | undefined {
  if (manifest.stake > account.staked) {
    return { op: 'stake', account: manifest.did, amount: manifest.stake - account.staked }
  }
  if (manifest.stake < account.staked) {
    return { op: 'unbond', account: manifest.did, amount: account.staked - manifest.stake }
  }
  return undefined
}

/**
 * The pool snapshot: every verifier whose manifest is in force with a bonded stake of at least
 * `minStake`. The entity of a verifier is its did (identity graphs beyond one key are a later
 * addition); reputation defaults to `initialPerMille` for a verifier with no outcome yet.
 */
export function poolSnapshot(input: {
  manifests: readonly PoolManifest[]
  account: (did: Did) => Readonly<AccountState>
  reputationPerMille: ReadonlyMap<Did, number>
  lastActiveMs: ReadonlyMap<Did, number>
  minStake?: number
  initialPerMille?: number
}): PoolEntry[] {
  const entries: PoolEntry[] = []
  for (const manifest of latestManifests(input.manifests)) {
    const stake = input.account(manifest.did).staked
    if (manifest.stake === 0 || stake < (input.minStake ?? 1)) continue
    entries.push({
      did: manifest.did,
      stake,
      reputationPerMille: input.reputationPerMille.get(manifest.did) ?? input.initialPerMille ?? 500,
      lastActiveMs: input.lastActiveMs.get(manifest.did) ?? 0,
      entity: manifest.did,
      org: manifest.org,
      asn: manifest.asn,
      region: manifest.region,
    })
  }
  return entries
}
