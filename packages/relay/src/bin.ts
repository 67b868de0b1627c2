#!/usr/bin/env node
/**
 * The `can-swarm-relay` command (and `node packages/relay`): checks that this Node.js can run the
 * relay (≥ 22.19, like the anchor and the peer package) before loading it, then runs `index.ts`.
 */
const MINIMUM = [22, 19] as const
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < MINIMUM[0] || (major === MINIMUM[0] && minor < MINIMUM[1])) {
  console.error(`can-swarm-relay needs Node.js >= ${MINIMUM.join('.')}; this is ${process.version}`)
  process.exit(1)
}
await import('./index.ts')
