/**
 * Policy capsules (docs/PROTOCOL.md §10): Rego compiled to gas-metered WebAssembly, capsules that carry
 * it with a signature and a conformance vector, the three gates, and divergence detection.
 * Isomorphic; the Node helper that reads the committed bundle is `./node.ts`.
 */
export * from './base.ts'
export * from './capsule.ts'
export * from './divergence.ts'
export * from './engine.ts'
export * from './gates.ts'
export * from './input.ts'
