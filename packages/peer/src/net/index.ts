/**
 * The libp2p edge of a CAN Swarm peer: the node factory, the gossip bus with envelope validation,
 * the topic scheme, peer reputation, and the adapter that wires an agent to the bus.
 *
 * @example
 * ```ts
 * import { attachAgent, createBus, createNetwork, systemClock } from '@can-swarm/peer/net'
 *
 * const network = await createNetwork({ identity, bootstrap: [relayAddress] })
 * const bus = createBus(network)
 * const agent = new Agent({ identity, bus, clock: systemClock(), … })
 * attachAgent(bus, agent)
 * ```
 *
 * Not yet here (later parts of the libp2p issue): Kad-DHT (client mode in browsers), Automerge
 * plan sync, Helia artifacts.
 *
 * @packageDocumentation
 */
export * from './agent-bus.ts'
export * from './bus.ts'
export * from './frame.ts'
export * from './identity.ts'
export * from './network.ts'
export * from './reputation.ts'
export * from './topics.ts'
export * from './validation.ts'
