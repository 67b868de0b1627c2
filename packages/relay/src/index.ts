#!/usr/bin/env node
/**
 * `node packages/relay` — runs a CAN Swarm relay/bootstrap node until SIGINT/SIGTERM.
 * Prints its multiaddrs (one per line, then one JSON line) so scripts can read them.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs'
import { PROTOCOL_VERSION } from '@can-swarm/peer/core'
import { Command, InvalidArgumentError } from 'commander'
import { startRelay } from './relay.ts'

export { loadOrCreateIdentity, type Relay, type RelayOptions, startRelay } from './relay.ts'

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])

function port(value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65_535) {
    throw new InvalidArgumentError('a port is an integer from 0 to 65535')
  }
  return parsed
}

function positive(value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a positive integer')
  return parsed
}

/** `--version`: this package's version and the envelope protocol version it speaks. */
function versionLine(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return `@can-swarm/relay ${pkg.version} (protocol v${PROTOCOL_VERSION})`
}

async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('node packages/relay')
    .version(versionLine())
    .description(
      'CAN Swarm relay and bootstrap node: circuit relay v2 server, WebSocket listener, pubsub peer discovery.\n' +
        'Listens on 127.0.0.1 unless told otherwise; prints its multiaddrs and a JSON line.',
    )
    .option('--data <dir>', 'directory of the persistent identity (identity.key)', '.can-swarm-relay')
    .option('--host <address>', 'address to listen on (non-loopback only when you mean it)', '127.0.0.1')
    .option('--tcp-port <port>', 'TCP port (0 = any free port)', port, 0)
    .option('--ws-port <port>', 'WebSocket port (0 = any free port)', port, 0)
    .option('--listen <multiaddr...>', 'listen multiaddrs, replacing --host and the ports')
    .option('--max-reservations <n>', 'most relay reservations at once', positive, 128)
    .option(
      '--allowed-origins <list>',
      'comma-separated web origins whose pages may connect over WebSocket (exact, scheme://host:* or *); default none',
    )
    .showHelpAfterError()
  program.parse(argv)
  const options = program.opts<{
    data: string
    host: string
    tcpPort: number
    wsPort: number
    listen?: string[]
    maxReservations: number
    allowedOrigins?: string
  }>()
  if (!LOOPBACK.has(options.host) || options.listen) {
    process.stderr.write(
      'notice: listening beyond loopback as asked; make sure this network is one you mean to serve\n',
    )
  }
  const relay = await startRelay({
    dataDir: options.data,
    host: options.host === 'localhost' ? '127.0.0.1' : options.host,
    tcpPort: options.tcpPort,
    wsPort: options.wsPort,
    maxReservations: options.maxReservations,
    allowedOrigins: (options.allowedOrigins ?? '')
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean),
    ...(options.listen ? { listen: options.listen } : {}),
  })
  process.stdout.write(`relay ${relay.peerId}\n`)
  for (const address of relay.multiaddrs) process.stdout.write(`${address}\n`)
  process.stdout.write(`${JSON.stringify({ peerId: relay.peerId, multiaddrs: relay.multiaddrs })}\n`)
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    relay.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  process.on('disconnect', stop)
}

main(process.argv).catch((error: unknown) => {
  process.stderr.write(`relay failed: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
