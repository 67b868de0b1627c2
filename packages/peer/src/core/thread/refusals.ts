/**
 * Why the fold refuses an envelope, and which rule of docs/PROTOCOL.md §11 the refusal enforces.
 * Every refusal of the fold is one of these codes (some carry a `:detail` suffix, such as
 * `not-claimable:CLAIMED`); peers count refusals per code and per rule.
 *
 * - `network`: the envelope belongs to another network (genesis);
 * - `A1`–`A7`: the authority rules;
 * - `state`: the sender had the authority, but the thread was not in a state where the act applies
 *   (a stale lease, a vote already cast, a task already final) — the ordinary races of a protocol.
 */

/** The rule a refusal enforces. */
export type RefusalRule = 'network' | 'A1' | 'A2' | 'A3' | 'A4' | 'A5' | 'A6' | 'A7' | 'state' | 'budget'

/** Every refusal code the fold produces, with its rule. */
export const REFUSALS = {
  'wrong-network': 'network',
  'wrong-thread': 'A1',
  'thread-id-mismatch': 'A1',
  'need-thread-mismatch': 'A1',
  'duplicate-need': 'A1',
  'no-need': 'A1',
  'unknown-proposal': 'A2',
  'unknown-claim': 'A2',
  'unknown-commit': 'A2',
  'unknown-challenge': 'A2',
  'not-a-claim': 'A2',
  'claim-of-another-task': 'A2',
  'bad-attestation': 'A2',
  'not-an-anchor': 'A3',
  'decider-not-sender': 'A3',
  'epoch-mismatch': 'A3',
  'epoch-not-issued': 'A3',
  'not-lease-holder': 'A5',
  'scavenge-not-by-anchor': 'A5',
  'grant-not-by-anchor': 'A5',
  'finalize-not-by-anchor': 'A6',
  'not-in-committee': 'A6',
  'attester-not-in-committee': 'A6',
  'attester-not-a-verifier': 'A6',
  'not-a-verifier': 'A6',
  'self-attestation': 'A6',
  'kplan-too-small': 'A6',
  'insufficient-quorum': 'A6',
  'not-a-judge': 'A6',
  'judge-is-challenger': 'A6',
  'judge-is-worker': 'A6',
  'judge-attested': 'A6',
  sealed: 'A6',
  'too-many-proposals': 'state',
  'empty-plan': 'state',
  'over-budget': 'state',
  'duplicate-task': 'state',
  'capability-not-required': 'state',
  'no-inputs': 'state',
  'unknown-input': 'state',
  'unknown-parent': 'state',
  'cyclic-plan': 'state',
  'duplicate-vote': 'state',
  undecided: 'state',
  'not-plan-owner': 'state',
  'op-not-allowed': 'state',
  'unknown-task': 'state',
  'orphaned-task': 'state',
  'stale-epoch': 'state',
  'lease-held': 'state',
  'not-claimable': 'state',
  'parents-unfinished': 'state',
  'lease-ttl-out-of-bounds': 'state',
  'claim-not-for-this-round': 'state',
  'stale-lease': 'state',
  'bad-fence': 'state',
  'no-outputs': 'state',
  'stale-inputs': 'state',
  'already-final': 'state',
  'duplicate-challenge': 'state',
  'bond-too-small': 'state',
  'cost-above-price': 'state',
  'reconcile-thread-mismatch': 'state',
  // The agent's bounds (docs/PROTOCOL.md §13), before the fold: not a verdict on the envelope.
  'thread-full': 'budget',
} as const satisfies Record<string, RefusalRule>

/** A refusal code of the fold. */
export type RefusalCode = keyof typeof REFUSALS

/** The code of a refusal reason (`not-claimable:CLAIMED` → `not-claimable`). */
export function refusalCode(reason: string): string {
  const cut = reason.indexOf(':')
  return cut < 0 ? reason : reason.slice(0, cut)
}

/** The rule a refusal reason enforces (`state` for a code this table does not know). */
export function refusalRule(reason: string): RefusalRule {
  return (REFUSALS as Record<string, RefusalRule>)[refusalCode(reason)] ?? 'state'
}

/** Whether a refusal is an authority refusal (any rule but `state`). */
export function isAuthorityRefusal(reason: string): boolean {
  return refusalRule(reason) !== 'state'
}
