/**
 * The economy of CAN Swarm as pure functions: the credit ledger, committee selection by stake,
 * reputation, recency and diversity, reputation from outcomes, and settlement rules.
 */
export * from './derive.ts'
export * from './grants.ts'
export * from './ledger.ts'
export * from './pool.ts'
export * from './proofs.ts'
export * from './reputation.ts'
export * from './selection.ts'
export * from './sequencer.ts'
export * from './settlement.ts'
export * from './thread-settlement.ts'
