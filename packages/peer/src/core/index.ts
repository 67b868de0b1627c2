/**
 * The protocol core of CAN Swarm: pure, deterministic, isomorphic. It imports nothing from
 * libp2p, etcd, Helia, Automerge, the DOM or `node:` modules; time, randomness and I/O are
 * injected by the shell.
 *
 * @packageDocumentation
 */

export * from './artifacts.ts'
export * from './cbor-budget.ts'
export * from './codec.ts'
export * from './consensus.ts'
export * from './digest.ts'
export * from './economy/index.ts'
export * from './errors.ts'
export * from './genesis.ts'
export * from './lamport.ts'
export * from './plan/index.ts'
export * from './schemas.ts'
export * from './thread/committee.ts'
export * from './thread/inputs.ts'
export * from './thread/merkle.ts'
export * from './thread/params.ts'
export * from './thread/refusals.ts'
export * from './thread/replica.ts'
export * from './thread/state.ts'
export * from './types.ts'
