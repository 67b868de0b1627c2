/**
 * @packageDocumentation
 *
 * The CAN Swarm peer package. Today it holds the deterministic protocol core, the envelope layer,
 * the agent SDK, the simulator and the audit traces; the libp2p transport and `createPeer()` join
 * it with the libp2p peer issue.
 *
 * @example
 * ```ts
 * import { Agent, createIdentity, networkParams, MemoryArtifactStore, SeededRandom } from '@can-swarm/peer'
 *
 * const identity = await createIdentity()
 * const params = networkParams({ verifiers: [identity.did], bootstrap: true })
 * const agent = new Agent({
 *   identity, params, artifacts: new MemoryArtifactStore(), random: new SeededRandom(1),
 *   bus: { publish: (env) => gossip(env) },            // your transport
 *   clock: { now: () => Date.now(), setTimer: (at, fn) => { const t = setTimeout(fn, at - Date.now()); return () => clearTimeout(t) } },
 *   roles: { planner: true, worker: true, verifier: true },
 * })
 * const need = await agent.post({ requires: ['word-frequency'], inputs: [new TextEncoder().encode('a b a')], budget: 10 })
 * // feed verified envelopes from the network: await agent.deliver(env)
 * ```
 */
export * from './agent/index.ts'
export * from './audit/trace.ts'
export * from './core/index.ts'
export * from './crypto/index.ts'
export * from './decide/index.ts'
export * from './policy/index.ts'
export {
  FAULT_CLASSES,
  type FaultClass,
  type PeerThreadLog,
  runSimulation,
  type SimOptions,
  type SimResult,
} from './sim/world.ts'
