#!/usr/bin/env node
/**
 * The `can-swarm-anchor` command (and `node packages/node`): checks that this Node.js can run the
 * anchor before loading anything that needs a newer one, then runs `main.ts`. The anchor needs
 * Node.js ≥ 22.19: its embedded DECIDE store is `node:sqlite`, its peer speaks WebSocket, and
 * undici (under Helia's libp2p HTTP) needs zlib's zstd. Checked on Node 22.19.0; 22.13 fails in undici.
 */
const MINIMUM = [22, 19] as const
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < MINIMUM[0] || (major === MINIMUM[0] && minor < MINIMUM[1])) {
  console.error(
    `can-swarm-anchor needs Node.js >= ${MINIMUM.join('.')} (node:sqlite, WebSocket); this is ${process.version}`,
  )
  process.exit(1)
}
await import('./main.ts')
