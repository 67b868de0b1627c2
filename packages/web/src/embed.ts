/** Example: another web app embedding a CAN Swarm verifier with the peer package's public API. */
import { Agent, createIdentity, fetchNetwork } from '@can-swarm/peer'
import { attachAgent, createBus, createNetwork, systemClock } from '@can-swarm/peer/net'
import { multiaddr } from '@multiformats/multiaddr'
import { AnchorArtifactStore } from './app/artifacts.ts' // through the anchor's Helia gateway

const log = (line: string) => (document.getElementById('log')!.textContent += `\n${line}`)
const { params } = await fetchNetwork('') // the anchor's signed genesis, verified, and its pool
const status = await (await fetch('/api/status')).json()
const identity = await createIdentity() // persist identity.seed to keep it across reloads
const network = await createNetwork({ identity, listen: ['/p2p-circuit', '/webrtc'], allowPrivateDial: true })
await network.libp2p.dial(multiaddr(status.multiaddrs.find((a: string) => a.includes('/ws/'))))
const bus = createBus(network, { ingress: (env) => ({ allowed: env.net === params.network }) }) // this network only
const agent = new Agent({
  identity,
  params,
  bus,
  clock: systemClock(),
  random: { next: Math.random },
  roles: { verifier: true },
  artifacts: new AnchorArtifactStore({ anchorUrl: '' }),
})
attachAgent(bus, agent)
bus.onEnvelope((env) => env.sender === identity.did || log(`${env.kind} from ${env.sender.slice(-8)}`))
log(
  `verifier ${identity.did} joined network ${params.network}; it counts once it stakes (PUT /api/pool/<did>, a signed manifest) or while the pool is open`,
)
