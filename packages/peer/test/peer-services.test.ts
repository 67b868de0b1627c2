/**
 * createPeer as a composition root: services are built from the peer's components, start in the
 * order given before the agent hears the network (so one can restore history into it), stop in
 * reverse after the agent; a failing service unwinds what was built; an artifact store can be
 * built on the peer's own libp2p node.
 */
import { describe, expect, it } from 'vitest'
import { testParams } from '../../../test-support/envelopes.ts'
import { MemoryArtifactStore } from '../src/core/artifacts.ts'
import { InvalidArgumentError } from '../src/core/errors.ts'
import { createIdentity } from '../src/crypto/ed25519.ts'
import { createBus } from '../src/net/bus.ts'
import { createNetwork } from '../src/net/network.ts'
import { createPeer, type PeerComponents, type PeerLogger } from '../src/peer.ts'

const network = { webRTC: false, listen: ['/ip4/127.0.0.1/tcp/0'], pubsubDiscovery: false } as const

describe('createPeer services', () => {
  it('builds each service from the components, starts them in order before the agent is attached, and stops them in reverse after it', async () => {
    const identity = await createIdentity()
    const params = testParams({ anchors: [identity.did], verifiers: [], bootstrap: true })
    const events: string[] = []
    let seen: PeerComponents | undefined
    const lines: string[] = []
    let builtOn: PeerComponents['network'] | undefined
    const logger: PeerLogger = {
      debug: () => undefined,
      info: (message) => lines.push(message),
      warn: () => undefined,
      error: () => undefined,
    }
    const service = (name: string) => (components: PeerComponents) => {
      seen = components
      events.push(`build ${name}`)
      return {
        start() {
          events.push(`start ${name}`)
        },
        stop() {
          events.push(`stop ${name} (agent stopped ${components.agent.stopped})`)
        },
      }
    }
    const peer = await createPeer({
      identity,
      params,
      network,
      logger,
      services: { first: service('first'), second: service('second') },
      artifacts: async ({ network: node }) => {
        builtOn = node
        events.push('artifacts built')
        return { store: new MemoryArtifactStore(), stop: async () => void events.push('artifacts stopped') }
      },
    })
    expect(seen?.agent).toBe(peer.agent)
    expect(seen?.bus).toBe(peer.bus)
    expect(seen?.network).toBe(peer.network)
    expect(Object.keys(peer.services)).toEqual(['first', 'second'])
    expect(builtOn).toBe(peer.network)
    await peer.stop()
    expect(events).toEqual([
      'artifacts built',
      'build first',
      'start first',
      'build second',
      'start second',
      'stop second (agent stopped true)',
      'stop first (agent stopped true)',
      'artifacts stopped',
    ])
    expect(lines).toEqual(['peer started', 'peer stopped'])
  })

  it('unwinds what it built when a service fails to start, and rejects', async () => {
    const identity = await createIdentity()
    const params = testParams({ anchors: [identity.did], verifiers: [], bootstrap: true })
    const events: string[] = []
    let node: PeerComponents['network'] | undefined
    await expect(
      createPeer({
        identity,
        params,
        network,
        artifacts: new MemoryArtifactStore(),
        services: {
          ok: (components) => {
            node = components.network
            return { stop: () => void events.push('ok stopped') }
          },
          broken: () => ({
            start() {
              throw new Error('cannot open its store')
            },
            stop: () => void events.push('broken stopped'),
          }),
        },
      }),
    ).rejects.toThrow('cannot open its store')
    expect(events).toEqual(['broken stopped', 'ok stopped'])
    // The libp2p node it had started is stopped too.
    expect(node?.libp2p.status).toBe('stopped')
  })

  it('runs on a node and bus the caller keeps: stopping the peer leaves them running; hooks see what it says', async () => {
    const identity = await createIdentity()
    const params = testParams({ anchors: [identity.did], verifiers: [], bootstrap: true })
    const node = await createNetwork({ ...network, identity })
    const bus = createBus(node)
    try {
      await expect(
        createPeer({ identity: await createIdentity(), params, network: node, bus }),
      ).rejects.toThrow(InvalidArgumentError)
      const published: string[] = []
      const counters = new Map<string, number>()
      const peer = await createPeer({
        params,
        network: node,
        bus,
        artifacts: new MemoryArtifactStore(),
        hooks: { onPublish: (env) => published.push(env.kind) },
        metrics: {
          count: (name, value = 1, labels = {}) => {
            const key = `${name}${JSON.stringify(labels)}`
            counters.set(key, (counters.get(key) ?? 0) + value)
          },
          gauge: () => undefined,
        },
      })
      expect(peer.did).toBe(identity.did)
      const need = await peer.post({
        requires: ['sha256'],
        inputs: [new TextEncoder().encode('x')],
        budget: 10,
      })
      expect(published).toEqual(['NEED'])
      // Pushed as it happens, not polled: the NEED said and placed.
      expect(counters.get('can_swarm_envelopes_published_total{"kind":"NEED"}')).toBe(1)
      expect(counters.get('can_swarm_envelopes_placed_total{"kind":"NEED"}')).toBe(1)
      expect(peer.agent.replica(need)).toBeDefined()
      await peer.stop()
      expect(node.libp2p.status).toBe('started')
    } finally {
      bus.close()
      await node.stop()
    }
  })

  it('gives up starting when its signal aborts: what it built is stopped and it rejects with the reason', async () => {
    const identity = await createIdentity()
    const params = testParams({ anchors: [identity.did], verifiers: [], bootstrap: true })
    const controller = new AbortController()
    const events: string[] = []
    let node: PeerComponents['network'] | undefined
    await expect(
      createPeer({
        identity,
        params,
        network,
        artifacts: new MemoryArtifactStore(),
        signal: controller.signal,
        services: {
          slow: (components) => {
            node = components.network
            return {
              start: () => controller.abort(new Error('the page was closed')),
              stop: () => void events.push('slow stopped'),
            }
          },
          never: () => {
            events.push('never built')
            return {}
          },
        },
      }),
    ).rejects.toThrow('the page was closed')
    expect(events).toEqual(['slow stopped'])
    expect(node?.libp2p.status).toBe('stopped')
  })

  it('posts nothing when the signal of post aborts before the NEED is published', async () => {
    const identity = await createIdentity()
    const params = testParams({ anchors: [identity.did], verifiers: [], bootstrap: true })
    const published: string[] = []
    const peer = await createPeer({
      identity,
      params,
      network,
      artifacts: new MemoryArtifactStore(),
      hooks: { onPublish: (env) => published.push(env.kind) },
    })
    try {
      const request = { requires: ['sha256'], inputs: [new TextEncoder().encode('x')], budget: 10 }
      await expect(peer.post(request, { signal: AbortSignal.abort(new Error('cancelled')) })).rejects.toThrow(
        'cancelled',
      )
      expect(published).toEqual([])
      expect(peer.agent.threads()).toEqual([])
      const posted = await peer.post(request, { signal: new AbortController().signal })
      expect(published).toEqual(['NEED'])
      expect(peer.agent.threads()).toEqual([posted])
    } finally {
      await peer.stop()
    }
  })
})
