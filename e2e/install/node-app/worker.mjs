// A Node project that installed @can-swarm/peer from its tarball (no workspace, no TypeScript
// loader): a worker and planner with a capability of its own, which posts a NEED for it and
// follows it to FINAL. Usage: node worker.mjs <anchor url> <anchor multiaddr> <text>
import { CapabilityRegistry, createPeer, fetchNetwork, requestCredits } from '@can-swarm/peer'

const [anchorUrl, anchorAddress, text] = process.argv.slice(2)
const print = (event) => console.log(JSON.stringify(event))
const shout = ([input]) => new TextEncoder().encode(`${new TextDecoder().decode(input).toUpperCase()}!`)
const capabilities = new CapabilityRegistry().register('shout', shout, {
  version: '1.0.0',
  produces: 'text/plain',
  price: 1,
  description: 'Upper-cases a text and adds an exclamation mark.',
})

const { params } = await fetchNetwork(anchorUrl)
const peer = await createPeer({
  params,
  bootstrap: [anchorAddress],
  roles: { planner: true, worker: true },
  capabilities,
})
await requestCredits(anchorUrl, peer.did)
print({ event: 'ready', did: peer.did })
const need = await peer.post({
  requires: ['shout'],
  inputs: [new TextEncoder().encode(text)],
  budget: 10,
  bidWindowMs: 500,
})
print({ event: 'posted', need })
const deadline = Date.now() + 120_000
for (;;) {
  const tasks = [...(peer.agent.replica(need)?.state.tasks.values() ?? [])]
  const final = tasks.find((task) => task.state === 'FINAL')
  if (final) {
    const output = new TextDecoder().decode(await peer.artifacts.get(final.commit.outputs[0]))
    print({ event: 'final', need, output, attesters: [...final.commit.votes.keys()] })
    break
  }
  if (Date.now() > deadline) {
    print({ event: 'timeout', need, states: tasks.map((task) => task.state) })
    process.exitCode = 1
    break
  }
  await new Promise((resolve) => setTimeout(resolve, 250))
}
await peer.stop()
