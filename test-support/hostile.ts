/**
 * A hostile peer for tests: fresh keys and fresh libp2p nodes (each attack its own, as a Sybil would
 * bring them), envelopes signed with whatever field values it likes — past the schema's bounds, for
 * another network, back-dated — and two ways to push them at an anchor: gossip (the anchor's bus
 * validator judges them first) and envelope sync (the anchor pulls from every peer that serves it,
 * so what it serves reaches the anchor's agent whatever its timestamp).
 */
import {
  type AnyEnvelope,
  BUILTIN_POLICY_HASH,
  computeEnvelopeId,
  createIdentity,
  encodeEnvelope,
  type Kind,
  type LocalIdentity,
  type PayloadByKind,
  PROTOCOL_VERSION,
  serveSync,
  signingBytes,
} from '@can-swarm/peer'
import {
  createBus,
  createNetwork,
  encodeFrame,
  type GossipBus,
  type Network,
  threadTopic,
} from '@can-swarm/peer/net'

/** What the attacker signs: any values, valid or not. */
export interface Forged<K extends Kind> {
  kind: K
  thread: string
  payload: PayloadByKind[K]
  lamport: number
  net: string
  epoch?: number
  ts?: number
  fence?: string
  refs?: string[]
}

/** Signs anything with `identity`: no schema check, no preflight (the attacker has none). */
export async function forge<K extends Kind>(
  identity: LocalIdentity,
  fields: Forged<K>,
): Promise<AnyEnvelope> {
  const unsigned = {
    v: PROTOCOL_VERSION,
    net: fields.net,
    kind: fields.kind,
    thread: fields.thread,
    sender: identity.did,
    lamport: fields.lamport,
    ts: fields.ts ?? Date.now(),
    payload: fields.payload,
    refs: fields.refs ?? [],
    policy: BUILTIN_POLICY_HASH,
    epoch: fields.epoch ?? 1,
    ...(fields.fence === undefined ? {} : { fence: fields.fence }),
  }
  const sig = await identity.sign(signingBytes(unsigned as never))
  const signed = { ...unsigned, sig }
  return { ...signed, id: computeEnvelopeId(signed as never) } as AnyEnvelope
}

/** A fresh Sybil key. */
export function sybil(): Promise<LocalIdentity> {
  return createIdentity()
}

export interface HostileNode {
  network: Network
  bus: GossipBus
  stop(): Promise<void>
}

async function until(probe: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!probe()) {
    if (Date.now() > deadline)
      throw new Error('the hostile node did not learn the anchor’s subscription in time')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * A fresh hostile node that serves `served` over envelope sync (the anchor pulls it as soon as the
 * two meet) and can gossip raw frames to the anchor once in its mesh for `thread`'s topic.
 */
export async function hostileNode(
  anchorTcp: string,
  options: { served?: readonly AnyEnvelope[]; gossipThread?: string } = {},
): Promise<HostileNode> {
  // Flood publishing: a frame goes to every subscriber of its topic, mesh or not. An attacker picks
  // its own settings, and the test then needs no place in the anchor's mesh for the topic (which
  // the anchor may prune it from, with a backoff, once many hostile nodes have joined).
  const network = await createNetwork({
    identity: await sybil(),
    webRTC: false,
    gossip: { floodPublish: true },
  })
  const bus = createBus(network)
  const stopServing = await serveSync(network.libp2p, { envelopes: () => options.served ?? [] })
  const { multiaddr } = await import('@multiformats/multiaddr')
  // The anchor admits a few inbound connections per second from one host (loopback here, for
  // every node of the test): a refused dial is tried again shortly.
  for (let attempt = 1; ; attempt += 1) {
    try {
      await network.libp2p.dial(multiaddr(anchorTcp))
      break
    } catch (error) {
      if (attempt >= 8) throw error
      await new Promise((resolve) => setTimeout(resolve, 250 * attempt))
    }
  }
  const anchorPeer = anchorTcp.slice(anchorTcp.lastIndexOf('/') + 1)
  if (options.gossipThread !== undefined) {
    const topic = threadTopic(options.gossipThread, network.config.shardCount)
    const pubsub = network.pubsub as unknown as {
      getSubscribers(topic: string): Array<{ toString(): string }>
    }
    await until(() => pubsub.getSubscribers(topic).some((peer) => peer.toString() === anchorPeer), 20_000)
  }
  return {
    network,
    bus,
    async stop() {
      bus.close()
      await stopServing()
      await network.stop()
    },
  }
}

/** Gossips envelope bytes as they are (no check of the sender's own) on their thread's topic. */
export async function gossipRaw(node: HostileNode, env: AnyEnvelope): Promise<void> {
  await node.bus.publishFrame(
    threadTopic(env.thread, node.network.config.shardCount),
    encodeFrame([encodeEnvelope(env)]),
  )
}
