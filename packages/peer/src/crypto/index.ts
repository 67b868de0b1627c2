/**
 * Ed25519 identities and envelope signatures for CAN Swarm, isomorphic (WebCrypto fast path,
 * `@noble/ed25519` fallback).
 *
 * @example
 * ```ts
 * import { createIdentity, signEnvelope, verifyEnvelope } from '@can-swarm/peer/crypto'
 *
 * const identity = await createIdentity()
 * const env = await signEnvelope({ ...unsigned, sender: identity.did }, identity)
 * await verifyEnvelope(env)
 * ```
 *
 * @packageDocumentation
 */

export * from './ed25519.ts'
export * from './envelopes.ts'
export * from './genesis.ts'
export * from './grants.ts'
export * from './manifest.ts'
