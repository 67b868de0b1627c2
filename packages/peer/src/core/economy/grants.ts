/**
 * Faucet grants (A7, docs/PROTOCOL.md §9.3): the only credits minted after genesis. An anchor
 * grants on request and signs the grant (`crypto/records.ts`); every ledger that derives from the
 * grants applies the same bounds, so an anchor that granted too much changes nothing:
 * - one account receives at most `grantCredits` from the faucet over its whole life;
 * - the network mints at most `maxCreditsPerWindow` in any window of `windowMs` (by the anchors'
 *   clocks, the grants' `atMs`).
 * No envelope and no manifest mints anything: a fresh key holds nothing until it is granted or paid.
 */
import type { FaucetRule } from '../genesis.ts'
import type { Cid, Did } from '../types.ts'

/** A faucet grant, already signature-checked (a `SignedGrant` without its `sig`). */
export interface FaucetGrant {
  /** The network the grant is minted in. */
  net: Cid
  to: Did
  amount: number
  /** The granting anchor's clock, ms. */
  atMs: number
  /** The anchor that granted. */
  anchor: Did
}

/** Why a grant does not fit the faucet rule, or `undefined` when it fits after `earlier`. */
export function faucetProblem(
  grant: Pick<FaucetGrant, 'to' | 'amount' | 'atMs'>,
  earlier: readonly Pick<FaucetGrant, 'to' | 'amount' | 'atMs'>[],
  rule: FaucetRule,
): string | undefined {
  if (!Number.isSafeInteger(grant.amount) || grant.amount <= 0) return 'amount must be a positive integer'
  const received = earlier.filter((g) => g.to === grant.to).reduce((sum, g) => sum + g.amount, 0)
  if (received + grant.amount > rule.grantCredits) {
    return `${grant.to} has received ${received} of the ${rule.grantCredits} credits the faucet gives one account`
  }
  const inWindow = earlier
    .filter((g) => g.atMs > grant.atMs - rule.windowMs && g.atMs <= grant.atMs)
    .reduce((sum, g) => sum + g.amount, 0)
  if (inWindow + grant.amount > rule.maxCreditsPerWindow) {
    return `the network's faucet has granted ${inWindow} of its ${rule.maxCreditsPerWindow} credits per ${rule.windowMs} ms`
  }
  return undefined
}

/** Grants in the order the ledger applies them: by `atMs`, then recipient, then anchor. */
export function orderGrants<T extends FaucetGrant>(grants: readonly T[]): T[] {
  return [...grants].sort((a, b) =>
    a.atMs !== b.atMs
      ? a.atMs - b.atMs
      : a.to !== b.to
        ? a.to < b.to
          ? -1
          : 1
        : a.anchor < b.anchor
          ? -1
          : 1,
  )
}

/** The grants of `grants` that the faucet rule admits, in ledger order (the rest are dropped). */
export function admittedGrants<T extends FaucetGrant>(grants: readonly T[], rule: FaucetRule): T[] {
  const admitted: T[] = []
  for (const grant of orderGrants(grants)) {
    if (faucetProblem(grant, admitted, rule) === undefined) admitted.push(grant)
  }
  return admitted
}
