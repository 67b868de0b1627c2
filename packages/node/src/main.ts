#!/usr/bin/env node
/**
 * `node packages/node` (and `npm start`): runs a CAN Swarm anchor node. `--help` lists every
 * option; each has an environment variable and may come from a JSON config file.
 * `node packages/node genesis --help`: writes the genesis of a network of several anchors.
 * `node packages/node bridge --help`: the NATS bridge on its own (hybrid NATS mode).
 */
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { CanSwarmError } from '@can-swarm/peer'
import { versionLine } from '@can-swarm/peer/node'
import { Command, Option } from 'commander'
import pino from 'pino'
import { startAnchor } from './anchor/anchor.ts'
import { DEFAULT_CONFIG, LOG_LEVELS, resolveConfig } from './anchor/config.ts'
import { createGenesisFile } from './anchor/genesis.ts'
import { loadOrCreateIdentity } from './anchor/identity.ts'

/**
 * How people ran this: `can-swarm-anchor` when installed from npm (the bin, or its file under
 * node_modules), `node packages/node` inside the repository. Used in usage and error lines.
 */
const COMMAND = /can-swarm-anchor$|node_modules/.test(process.argv[1] ?? '')
  ? 'can-swarm-anchor'
  : 'node packages/node'

/** A `--…-ms` value: a positive integer number of milliseconds. */
function positiveMs(text: string): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(`--challenge-ms ${text}: expected a positive integer`)
  return value
}

if (process.argv[2] === 'bridge') {
  const { runBridge } = await import('./bridge.ts')
  try {
    await runBridge(COMMAND, process.argv.slice(3))
    process.exit(0)
  } catch (error) {
    console.error(`${COMMAND} bridge: ${(error as Error).message}`)
    process.exit(2)
  }
}

if (process.argv[2] === 'genesis') {
  const command = new Command()
    .name(`${COMMAND} genesis`)
    .version(versionLine(new URL('../package.json', import.meta.url)))
    .description(
      'Writes the signed genesis of a new network whose anchors are the identities of the given data directories (each created when absent). Start every anchor with --genesis FILE and its own --data.',
    )
    .requiredOption('--data <dirs>', 'comma-separated data directories, one per anchor')
    .requiredOption('--out <file>', 'where to write the genesis (dag-json)')
    .option('--verifiers <dids>', 'comma-separated did:key initial verifier pool')
    .option('--no-bootstrap-mode', 'start outside bootstrap mode (only with ≥ 10 verifiers)')
    .option(
      '--allocate <list>',
      "comma-separated did=credits minted at genesis (beyond each verifier's stake)",
    )
    .option('--name <name>', 'a label for people', 'can-swarm')
    .option('--challenge-ms <ms>', 'T_challenge of the network, in ms (default 10000)')
    .parse(process.argv.slice(1))
  const options = command.opts<{
    data: string
    out: string
    verifiers?: string
    bootstrapMode: boolean
    allocate?: string
    name: string
    challengeMs?: string
  }>()
  try {
    const identities = []
    for (const dir of options.data
      .split(',')
      .map((item) => resolve(item.trim()))
      .filter(Boolean)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      identities.push((await loadOrCreateIdentity(dir)).identity)
    }
    const genesis = await createGenesisFile({
      identities,
      out: resolve(options.out),
      verifiers:
        options.verifiers
          ?.split(',')
          .map((item) => item.trim())
          .filter(Boolean) ?? [],
      bootstrapMode: options.bootstrapMode,
      allocations: (options.allocate ?? '')
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean)
        .map((item) => {
          const [did, amount] = item.split('=')
          const credits = Number(amount)
          if (!did || !Number.isSafeInteger(credits) || credits <= 0)
            throw new Error(`--allocate ${item}: expected did:key:…=<positive credits>`)
          return { did, amount: credits }
        }),
      name: options.name,
      ...(options.challengeMs === undefined ? {} : { challengeWindowMs: positiveMs(options.challengeMs) }),
    })
    console.log(
      JSON.stringify({ network: genesis.id, anchors: genesis.body.anchors, out: resolve(options.out) }),
    )
    process.exit(0)
  } catch (error) {
    console.error(`${COMMAND} genesis: ${(error as Error).message}`)
    process.exit(2)
  }
}

const program = new Command()
  .name(COMMAND)
  .version(versionLine(new URL('../package.json', import.meta.url)))
  .description(
    'CAN Swarm anchor node: libp2p relay + gossip + DECIDE service on a durable consensus store, and HTTP health/metrics/status.',
  )
  .option('--data <dir>', `directory for all state [env CAN_SWARM_DATA] (default "${DEFAULT_CONFIG.data}")`)
  .option(
    '--host <host>',
    `HTTP host; other than loopback only on purpose [env CAN_SWARM_HOST] (default ${DEFAULT_CONFIG.host})`,
  )
  .option('--port <n>', `HTTP port, 0 for any free one [env CAN_SWARM_PORT] (default ${DEFAULT_CONFIG.port})`)
  .option(
    '--allowed-hosts <names>',
    'comma-separated host names HTTP requests may use besides loopback and --host (DNS-rebinding guard) [env CAN_SWARM_ALLOWED_HOSTS]',
  )
  .option(
    '--allowed-origins <origins>',
    "comma-separated origins whose pages may open a WebSocket to the libp2p listener besides the anchor's own HTTP origins (e.g. https://app.example, http://localhost:* for any port, * for any) [env CAN_SWARM_ALLOWED_ORIGINS]",
  )
  .option(
    '--trusted-proxies <addresses>',
    'comma-separated addresses of reverse proxies in front of the HTTP API: their requests are keyed for quotas by the client X-Forwarded-For names [env CAN_SWARM_TRUSTED_PROXIES]',
  )
  .option(
    '--http-requests-per-second <n>',
    `HTTP requests per second per client address; beyond, 429 [env CAN_SWARM_HTTP_REQUESTS_PER_SECOND] (default ${DEFAULT_CONFIG.httpRequestsPerSecond})`,
  )
  .option(
    '--http-request-burst <n>',
    `HTTP requests a client address may send at once [env CAN_SWARM_HTTP_REQUEST_BURST] (default ${DEFAULT_CONFIG.httpRequestBurst})`,
  )
  .option(
    '--upload-bytes-per-second <bytes>',
    `bytes of uploads per second per client address; beyond, 429 [env CAN_SWARM_UPLOAD_BYTES_PER_SECOND] (default ${DEFAULT_CONFIG.uploadBytesPerSecond})`,
  )
  .option(
    '--upload-burst-bytes <bytes>',
    `bytes of uploads a client address may send at once [env CAN_SWARM_UPLOAD_BURST_BYTES] (default ${DEFAULT_CONFIG.uploadBurstBytes})`,
  )
  .option(
    '--artifact-store-bytes <bytes>',
    `most bytes of artifact blocks on disk, pinned and cached [env CAN_SWARM_ARTIFACT_STORE_BYTES] (default ${DEFAULT_CONFIG.artifactStoreBytes})`,
  )
  .option(
    '--artifact-cache-bytes <bytes>',
    `most bytes of uploaded artifacts no accepted envelope references yet (unpinned, evicted first) [env CAN_SWARM_ARTIFACT_CACHE_BYTES] (default ${DEFAULT_CONFIG.artifactCacheBytes})`,
  )
  .option(
    '--artifact-cache-bytes-per-client <bytes>',
    `most bytes of that cache one client address holds [env CAN_SWARM_ARTIFACT_CACHE_BYTES_PER_CLIENT] (default ${DEFAULT_CONFIG.artifactCacheBytesPerClient})`,
  )
  .option(
    '--settle-horizon-ms <ms>',
    `how long a thread stays in memory after it settled for good, before the ledger's settled base takes it (it stays in the log) [env CAN_SWARM_SETTLE_HORIZON_MS] (default ${DEFAULT_CONFIG.settleHorizonMs})`,
  )
  .addOption(
    new Option(
      '--log-level <level>',
      `log level [env CAN_SWARM_LOG_LEVEL] (default ${DEFAULT_CONFIG.logLevel})`,
    ).choices(LOG_LEVELS),
  )
  .addOption(
    new Option(
      '--consensus <kind>',
      'DECIDE store: embedded (one anchor, zero setup) or etcd [env CAN_SWARM_CONSENSUS] (default embedded)',
    ).choices(['embedded', 'etcd']),
  )
  .option('--etcd <urls>', 'comma-separated etcd client URLs [env CAN_SWARM_ETCD]')
  .option(
    '--nats <urls>',
    'comma-separated nats-server URLs to bridge gossip with (hybrid NATS mode; envelopes from NATS pass the same checks as gossip) [env CAN_SWARM_NATS] (default none)',
  )
  .option(
    '--nats-subject <prefix>',
    'NATS subject prefix of the bridge; envelopes travel on <prefix>.<shard> [env CAN_SWARM_NATS_SUBJECT] (default can-swarm.<network id>)',
  )
  .option(
    '--etcd-prefix <prefix>',
    `etcd key prefix of this anchor group [env CAN_SWARM_ETCD_PREFIX] (default ${DEFAULT_CONFIG.etcdPrefix})`,
  )
  .option(
    '--p2p-port <n>',
    `libp2p TCP port, 0 for any [env CAN_SWARM_P2P_PORT] (default ${DEFAULT_CONFIG.p2pPort})`,
  )
  .option(
    '--ws-port <n>',
    `libp2p WebSocket port browsers dial, 0 for any [env CAN_SWARM_WS_PORT] (default ${DEFAULT_CONFIG.wsPort})`,
  )
  .option(
    '--webrtc-port <n>',
    `libp2p WebRTC-direct UDP port browsers may dial without a relay; 0 for any, -1 off [env CAN_SWARM_WEBRTC_PORT] (default ${DEFAULT_CONFIG.webrtcPort})`,
  )
  .option(
    '--peers <multiaddrs>',
    'comma-separated multiaddrs of other anchors/relays to keep connected [env CAN_SWARM_PEERS]',
  )
  .option(
    '--genesis <file>',
    'signed genesis of the network to join (see `node packages/node genesis`); kept in --data after the first start [env CAN_SWARM_GENESIS]',
  )
  .option(
    '--verifiers <dids>',
    'comma-separated did:key initial verifier pool of a network created here (its genesis) [env CAN_SWARM_VERIFIERS]',
  )
  .option(
    '--no-bootstrap-mode',
    'create the network outside bootstrap mode (K = 1 otherwise); only with ≥ 10 verifiers [env CAN_SWARM_BOOTSTRAP_MODE=false]',
  )
  .option(
    '--challenge-window-ms <ms>',
    'T_challenge of a network created here (its genesis; default 10 000) [env CAN_SWARM_CHALLENGE_WINDOW_MS]',
  )
  .option(
    '--shutdown-timeout-ms <ms>',
    `longest graceful shutdown [env CAN_SWARM_SHUTDOWN_TIMEOUT_MS] (default ${DEFAULT_CONFIG.shutdownTimeoutMs})`,
  )
  .option(
    '--config <file>',
    'JSON config file (keys as in the options, camelCase); env and options override it',
  )
  .addHelpText(
    'after',
    '\nOn its first start an anchor creates a one-anchor network (its genesis: network id, anchor, parameters, initial verifier pool) in --data, or joins the one --genesis names; it keeps it for ever.\nLogs are JSON lines on stdout. SIGTERM/SIGINT shut down gracefully.',
  )
  .parse()

const options = program.opts<Record<string, string | undefined>>()
delete options.bootstrapMode

let config: ReturnType<typeof resolveConfig>
try {
  config = resolveConfig(
    {
      ...(options.config === undefined ? {} : { config: options.config }),
      data: options.data,
      host: options.host,
      port: options.port,
      allowedHosts: options.allowedHosts,
      allowedOrigins: options.allowedOrigins,
      trustedProxies: options.trustedProxies,
      httpRequestsPerSecond: options.httpRequestsPerSecond,
      httpRequestBurst: options.httpRequestBurst,
      uploadBytesPerSecond: options.uploadBytesPerSecond,
      uploadBurstBytes: options.uploadBurstBytes,
      artifactStoreBytes: options.artifactStoreBytes,
      artifactCacheBytes: options.artifactCacheBytes,
      artifactCacheBytesPerClient: options.artifactCacheBytesPerClient,
      settleHorizonMs: options.settleHorizonMs,
      logLevel: options.logLevel,
      consensus: options.consensus,
      etcd: options.etcd,
      etcdPrefix: options.etcdPrefix,
      nats: options.nats,
      natsSubject: options.natsSubject,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
      p2pPort: options.p2pPort,
      wsPort: options.wsPort,
      webrtcPort: options.webrtcPort,
      peers: options.peers,
      verifiers: options.verifiers,
      genesis: options.genesis,
      challengeWindowMs: options.challengeWindowMs,
      bootstrapMode: process.argv.includes('--no-bootstrap-mode') ? false : undefined,
    },
    process.env,
  )
} catch (error) {
  console.error(`${COMMAND}: ${(error as Error).message}`)
  process.exit(2)
}

const logger = pino({ level: config.logLevel, base: { service: 'can-swarm-anchor', pid: process.pid } })

try {
  const anchor = await startAnchor(config, { logger })
  logger.info({ did: anchor.did, url: anchor.url, multiaddrs: anchor.multiaddrs() }, 'anchor ready')
  if (process.stderr.isTTY) process.stderr.write(`\nCAN Swarm anchor ready: open ${anchor.url}\n\n`)
  let signalled = false
  const shutdown = (signal: string, code = 0): void => {
    if (signalled) return
    signalled = true
    logger.info({ signal }, 'shutdown requested')
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'graceful shutdown timed out')
      process.exit(1)
    }, config.shutdownTimeoutMs)
    timer.unref()
    anchor.stop().then(
      () => process.exit(code),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
  // Uncaught errors: a bug, not a state to run on. The anchor logs it, stops as on SIGTERM (what is
  // appended is fsync'd, the store commits, so nothing acknowledged is lost: acknowledgements wait
  // for fsync) and exits 70 for its supervisor to restart it from its durable state.
  const fatal = (kind: string) => (error: unknown) => {
    logger.fatal({ err: error }, `${kind}: stopping (exit 70) so that a supervisor restarts the anchor`)
    shutdown(kind, 70)
  }
  process.on('uncaughtException', fatal('uncaught exception'))
  process.on('unhandledRejection', fatal('unhandled rejection'))
} catch (error) {
  const detail = error instanceof CanSwarmError ? { code: error.code, field: error.field } : {}
  logger.fatal({ err: error, ...detail }, `anchor failed to start: ${(error as Error).message}`)
  process.exit(1)
}
