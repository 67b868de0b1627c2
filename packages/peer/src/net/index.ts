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
 * Discovery: explicit bootstrap multiaddrs, pubsub peer discovery (default on), mDNS (opt-in), and
 * an opt-in Kad-DHT on the swarm's own protocol id (`dht: 'server'` on Node, `'client'` meant for
 * browsers; the browser run is not tested yet).
 *
 * Not yet here (later parts of the libp2p issue): Automerge plan sync, Helia artifacts, the
 * Chromium/WebRTC run, partition tests in veth namespaces.
 *
 * @packageDocumentation
 */
export * from './agent-bus.ts'
export * from './bus.ts'
export * from './frame.ts'
export * from './identity.ts'
export * from './network.ts'
export * from './origins.ts'
export * from './quota.ts'
export * from './reputation.ts'
export * from './topics.ts'
export * from './validation.ts'
