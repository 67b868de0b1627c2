/**
 * @packageDocumentation
 *
 * The CAN Swarm peer package: `createPeer()` (the front door: identity, libp2p node, gossip bus,
 * agent, sync), the deterministic protocol core, the envelope layer, the agent SDK, policies, the
 * DECIDE client, the simulator and the audit traces. The libp2p edge is also at `@can-swarm/peer/net`.
 *
 * @example
 * ```ts
 * import { createPeer } from '@can-swarm/peer'
 *
 * const peer = await createPeer({
 *   params: { verifiers: [], bootstrap: true },               // the network's shared parameters
 *   bootstrap: ['/ip4/127.0.0.1/tcp/7701/p2p/12D3Koo…'],      // an anchor or relay
 *   roles: { planner: true, worker: true, verifier: true },
 * })
 * const need = await peer.post({ requires: ['word-frequency'], inputs: [new TextEncoder().encode('a b a')], budget: 10 })
 * // follow it: peer.agent.replica(need)?.state
 * await peer.stop()
 * ```
 *
 * The pieces compose without it too: `new Agent({ identity, params, bus, clock, random, artifacts })`
 * with any transport that calls `agent.deliver(env)` for verified envelopes (the simulator does).
 */
export * from './agent/index.ts'
export * from './audit/trace.ts'
export * from './core/index.ts'
export * from './crypto/index.ts'
export * from './decide/index.ts'
export * from './join.ts'
export * from './peer.ts'
export * from './policy/index.ts'
export {
  FAULT_CLASSES,
  type FaultClass,
  type PeerThreadLog,
  runSimulation,
  type SimOptions,
  type SimResult,
} from './sim/world.ts'
export * from './sync/index.ts'
