/**
 * `can-swarm-anchor bridge` (`node packages/node bridge`): the NATS bridge on its own (hybrid
 * NATS mode, docs/PROTOCOL.md §7.8). It joins the swarm of an anchor as a gossip peer without an
 * agent and carries envelopes both ways between the gossip topics and a NATS subject tree; what
 * comes from NATS passes the bus's gate (the network check, frame and sender quotas — the
 * network's anchors exempt —, freshness, signatures) before it is relayed, within the relay
 * budget. Logs JSON lines: `bridge ready` once NATS is connected, then its counters every
 * `--stats-ms`; stops on SIGINT or SIGTERM.
 */
import { createIdentity, createPeerBus, fetchNetwork } from '@can-swarm/peer'
import { createNetwork } from '@can-swarm/peer/net'
import { natsSubjectPrefix, startNatsBridge, versionLine } from '@can-swarm/peer/node'
import { Command } from 'commander'

/** Runs the command with `argv` (what follows `bridge`); resolves when it has stopped. */
export async function runBridge(command: string, argv: readonly string[]): Promise<void> {
  const program = new Command()
    .name(`${command} bridge`)
    .version(versionLine(new URL('../package.json', import.meta.url)))
    .description(
      "Bridges an anchor's swarm with NATS: envelopes cross both ways, NATS's through the same checks as gossip.",
    )
    .requiredOption('--anchor <url>', "the anchor's HTTP URL (its network and addresses are read from it)")
    .requiredOption('--nats <urls>', 'comma-separated nats-server URLs')
    .option(
      '--nats-subject <prefix>',
      'subject prefix; envelopes travel on <prefix>.<shard> (default can-swarm.<network id>)',
    )
    .option(
      '--peers <multiaddrs>',
      "comma-separated multiaddrs to join through (default: the anchor's TCP addresses)",
    )
    .option('--host <host>', 'libp2p listen host', '127.0.0.1')
    .option('--stats-ms <ms>', 'how often to log the counters, in ms (0: never)', '10000')
    .parse(['node', 'bridge', ...argv])
  const options = program.opts<{
    anchor: string
    nats: string
    natsSubject?: string
    peers?: string
    host: string
    statsMs: string
  }>()
  const statsMs = Number(options.statsMs)
  if (!Number.isSafeInteger(statsMs) || statsMs < 0)
    throw new Error(`--stats-ms ${options.statsMs}: expected an integer ≥ 0`)
  const list = (text: string) =>
    text
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean)
  const { params } = await fetchNetwork(options.anchor)
  let bootstrap = options.peers ? list(options.peers) : []
  if (bootstrap.length === 0) {
    const status = (await (await fetch(`${options.anchor.replace(/\/+$/, '')}/api/status`)).json()) as {
      multiaddrs?: string[]
    }
    bootstrap = (status.multiaddrs ?? []).filter(
      (address) => address.includes('/tcp/') && !address.includes('/ws'),
    )
  }
  if (bootstrap.length === 0) throw new Error('no address to join the swarm through: give --peers')
  const log = (msg: string, fields: Record<string, unknown> = {}) =>
    console.log(JSON.stringify({ time: Date.now(), msg, ...fields }))
  const stopping = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  const network = await createNetwork({
    identity: await createIdentity(),
    bootstrap,
    webRTC: false,
    listen: [`/ip4/${options.host}/tcp/0`],
  })
  // The bus a peer makes: envelopes of this network only, its anchors never throttled.
  const bus = createPeerBus(network, params)
  const subjectPrefix = options.natsSubject ?? natsSubjectPrefix(params.network)
  let bridge: Awaited<ReturnType<typeof startNatsBridge>> | undefined
  let timer: ReturnType<typeof setInterval> | undefined
  try {
    bridge = await startNatsBridge(bus, {
      servers: list(options.nats),
      subjectPrefix,
      shardCount: network.config.shardCount,
      onError: (error) =>
        log('bridge error', { error: error instanceof Error ? error.message : String(error) }),
    })
    const ready = bridge.connected().then(() => true)
    if (await Promise.race([ready, stopping.then(() => false)])) {
      log('bridge ready', {
        network: params.network,
        peerId: network.peerId.toString(),
        nats: bridge.source,
        subjectPrefix,
      })
      const running = bridge
      if (statsMs > 0) timer = setInterval(() => log('bridge stats', { ...running.stats() }), statsMs)
      await stopping
    }
  } finally {
    if (timer) clearInterval(timer)
    await bridge?.close()
    bus.close()
    await network.stop()
  }
  log('bridge stopped', { ...bridge?.stats() })
}
