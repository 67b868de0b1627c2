// Another web app embedding a CAN Swarm verifier, from the installed @can-swarm/peer package.
// The anchor to join comes in the query: ?anchor=<http url>&ws=<its WebSocket multiaddr>.
import { CapabilityRegistry, createPeer, fetchNetwork } from '@can-swarm/peer'

const query = new URLSearchParams(location.search)
const log = (line) => (document.getElementById('log').textContent += `\n${line}`)
// A verifier re-runs the work it checks: it knows the capability (the same code as the worker's).
const shout = ([input]) => new TextEncoder().encode(`${new TextDecoder().decode(input).toUpperCase()}!`)
const capabilities = new CapabilityRegistry().register('shout', shout, {
  version: '1.0.0',
  produces: 'text/plain',
  price: 1,
  description: 'Upper-cases a text and adds an exclamation mark.',
})
const { params } = await fetchNetwork(query.get('anchor'))
const peer = await createPeer({
  params,
  bootstrap: [query.get('ws')],
  roles: { verifier: true },
  capabilities,
  network: { listen: ['/p2p-circuit', '/webrtc'], allowPrivateDial: true },
})
peer.bus.onEnvelope((env) => env.sender === peer.did && log(`sent ${env.kind} ${env.thread}`))
globalThis.swarmPeer = peer
log(`verifier ${peer.did} ready`)
