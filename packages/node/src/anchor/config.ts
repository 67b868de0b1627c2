/**
 * Anchor configuration: defaults < config file (JSON) < environment variables < command-line
 * options. Every value is checked; a bad one is a typed error naming it and saying what to do.
 * Defaults are safe: loopback only, embedded consensus, state under `./.data/anchor`.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { InvalidArgumentError } from '@can-swarm/peer'
import { z } from 'zod'

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

const configSchema = z
  .object({
    /** Directory holding every piece of state (identity, consensus store, later blocks and docs). */
    data: z.string().min(1),
    /** HTTP host. Listening beyond loopback is an explicit operator choice. */
    host: z.string().min(1),
    /** HTTP port (0 picks a free one). */
    port: z.number().int().min(0).max(65_535),
    /**
     * Host names (with or without port) HTTP requests may name besides loopback and the listening
     * host: what guards against DNS rebinding. An anchor reached by a public name lists it here.
     */
    allowedHosts: z.array(z.string().min(1).max(253)).max(64),
    /**
     * Origins (`https://app.example`, `http://localhost:*` for any port, `*` for any) whose pages
     * may open a WebSocket to the libp2p listener, besides the anchor's own HTTP origins (loopback
     * names at its HTTP port, `host`, `allowedHosts`) and clients that send no Origin (not browsers).
     */
    allowedOrigins: z.array(z.string().min(1).max(300)).max(64),
    /**
     * Addresses of reverse proxies in front of the HTTP API: a request from one of them is keyed
     * (for quotas) by the client its `X-Forwarded-For` names — the rightmost address that is not a
     * trusted proxy — instead of the proxy's own address.
     */
    trustedProxies: z.array(z.string().min(1).max(64)).max(64),
    /** HTTP requests per second per client address (its sustained rate). */
    httpRequestsPerSecond: z.number().min(0.001).max(1_000_000),
    /** HTTP requests a client address may send at once above that rate. */
    httpRequestBurst: z.number().int().min(1).max(10_000_000),
    /** Bytes of request bodies (uploads) per second per client address. */
    uploadBytesPerSecond: z
      .number()
      .int()
      .min(1)
      .max(1 << 30),
    /** Bytes of request bodies a client address may send at once above that rate (≥ one largest artifact). */
    uploadBurstBytes: z
      .number()
      .int()
      .min(4 * 1024 * 1024)
      .max(1 << 30),
    /** Most bytes of artifact blocks on disk, pinned and cached. */
    artifactStoreBytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .max(2 ** 50),
    /** Most bytes of unpinned artifact blocks (uploads and reads no accepted envelope references yet). */
    artifactCacheBytes: z
      .number()
      .int()
      .min(4 * 1024 * 1024)
      .max(2 ** 50),
    /** Most bytes of that cache one client address holds. */
    artifactCacheBytesPerClient: z
      .number()
      .int()
      .min(4 * 1024 * 1024)
      .max(2 ** 50),
    /**
     * How long a thread stays in memory after it settled for good (docs/PROTOCOL.md §9.6) before
     * the ledger's settled base takes it and the anchor lets it go (it stays in the log on disk).
     */
    settleHorizonMs: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400_000),
    logLevel: z.enum(LOG_LEVELS),
    consensus: z.enum(['embedded', 'etcd']),
    /** etcd client URLs, when `consensus` is `etcd`. */
    etcd: z.array(z.string().url()).max(16),
    /** Key prefix in etcd (one per anchor group). */
    etcdPrefix: z.string().min(1).max(128),
    /**
     * nats-server URLs to bridge gossip with (hybrid NATS mode, docs/PROTOCOL.md §7.8): envelopes
     * cross both ways, NATS's through the same gate as gossip. Empty: no bridge.
     */
    nats: z.array(z.string().regex(/^(nats|tls):\/\/[^\s]+$/, 'a nats:// or tls:// URL')).max(16),
    /** NATS subject prefix of the bridge (dot-separated [A-Za-z0-9_-] tokens); unset: can-swarm.<network id>. */
    natsSubject: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'dot-separated [A-Za-z0-9_-] tokens')
      .max(200)
      .optional(),
    /** libp2p TCP port (0 picks a free one). */
    p2pPort: z.number().int().min(0).max(65_535),
    /** libp2p WebSocket port, the one browsers dial (0 picks a free one). */
    wsPort: z.number().int().min(0).max(65_535),
    /** libp2p WebRTC-direct UDP port browsers may dial without a relay (0 picks a free one, -1 turns it off). */
    webrtcPort: z.number().int().min(-1).max(65_535),
    /** Multiaddrs (with /p2p/<id>) of other anchors or relays to keep connected to. */
    peers: z.array(z.string().min(1)).max(64),
    /**
     * The initial verifier pool (did:key list) of a network this anchor creates: a genesis
     * parameter, kept for the network's life (later verifiers join by staking).
     */
    verifiers: z.array(z.string().startsWith('did:key:')).max(10_000),
    /**
     * Bootstrap mode (K = 1) at genesis, until the network has ≥ 10 staked verifiers for 24 h.
     * Unset: bootstrap for a network created here; a kept genesis decides otherwise.
     */
    bootstrapMode: z.boolean().optional(),
    /** A signed genesis file to join (a network of several anchors); it must name this anchor. */
    genesis: z.string().min(1).optional(),
    /** T_challenge of a network created here (a genesis parameter, kept for the network's life). */
    challengeWindowMs: z.number().int().min(0).max(86_400_000).optional(),
    /** How long a graceful shutdown may take before the process exits anyway. */
    shutdownTimeoutMs: z.number().int().min(100).max(600_000),
  })
  .strict()

export type AnchorConfig = z.infer<typeof configSchema>

export const DEFAULT_CONFIG: AnchorConfig = Object.freeze({
  data: '.data/anchor',
  host: '127.0.0.1',
  port: 7700,
  allowedHosts: [],
  allowedOrigins: [],
  trustedProxies: [],
  httpRequestsPerSecond: 50,
  httpRequestBurst: 200,
  uploadBytesPerSecond: 1024 * 1024,
  uploadBurstBytes: 16 * 1024 * 1024,
  artifactStoreBytes: 256 * 1024 * 1024,
  artifactCacheBytes: 64 * 1024 * 1024,
  artifactCacheBytesPerClient: 16 * 1024 * 1024,
  settleHorizonMs: 300_000,
  logLevel: 'info',
  consensus: 'embedded',
  etcd: [],
  etcdPrefix: 'can-swarm',
  nats: [],
  p2pPort: 7701,
  wsPort: 7702,
  webrtcPort: 0,
  peers: [],
  verifiers: [],
  shutdownTimeoutMs: 10_000,
})

/** Environment variables and the config keys they set. */
export const ENVIRONMENT: Readonly<Record<string, keyof AnchorConfig>> = Object.freeze({
  CAN_SWARM_DATA: 'data',
  CAN_SWARM_HOST: 'host',
  CAN_SWARM_PORT: 'port',
  CAN_SWARM_ALLOWED_HOSTS: 'allowedHosts',
  CAN_SWARM_ALLOWED_ORIGINS: 'allowedOrigins',
  CAN_SWARM_TRUSTED_PROXIES: 'trustedProxies',
  CAN_SWARM_HTTP_REQUESTS_PER_SECOND: 'httpRequestsPerSecond',
  CAN_SWARM_HTTP_REQUEST_BURST: 'httpRequestBurst',
  CAN_SWARM_UPLOAD_BYTES_PER_SECOND: 'uploadBytesPerSecond',
  CAN_SWARM_UPLOAD_BURST_BYTES: 'uploadBurstBytes',
  CAN_SWARM_ARTIFACT_STORE_BYTES: 'artifactStoreBytes',
  CAN_SWARM_ARTIFACT_CACHE_BYTES: 'artifactCacheBytes',
  CAN_SWARM_ARTIFACT_CACHE_BYTES_PER_CLIENT: 'artifactCacheBytesPerClient',
  CAN_SWARM_SETTLE_HORIZON_MS: 'settleHorizonMs',
  CAN_SWARM_LOG_LEVEL: 'logLevel',
  CAN_SWARM_CONSENSUS: 'consensus',
  CAN_SWARM_ETCD: 'etcd',
  CAN_SWARM_ETCD_PREFIX: 'etcdPrefix',
  CAN_SWARM_NATS: 'nats',
  CAN_SWARM_NATS_SUBJECT: 'natsSubject',
  CAN_SWARM_SHUTDOWN_TIMEOUT_MS: 'shutdownTimeoutMs',
  CAN_SWARM_P2P_PORT: 'p2pPort',
  CAN_SWARM_WS_PORT: 'wsPort',
  CAN_SWARM_WEBRTC_PORT: 'webrtcPort',
  CAN_SWARM_PEERS: 'peers',
  CAN_SWARM_VERIFIERS: 'verifiers',
  CAN_SWARM_BOOTSTRAP_MODE: 'bootstrapMode',
  CAN_SWARM_GENESIS: 'genesis',
  CAN_SWARM_CHALLENGE_WINDOW_MS: 'challengeWindowMs',
})

const NUMERIC = new Set<keyof AnchorConfig>([
  'port',
  'shutdownTimeoutMs',
  'p2pPort',
  'wsPort',
  'webrtcPort',
  'challengeWindowMs',
  'httpRequestsPerSecond',
  'httpRequestBurst',
  'uploadBytesPerSecond',
  'uploadBurstBytes',
  'artifactStoreBytes',
  'artifactCacheBytes',
  'artifactCacheBytesPerClient',
  'settleHorizonMs',
])
const LISTS = new Set<keyof AnchorConfig>([
  'etcd',
  'nats',
  'peers',
  'verifiers',
  'allowedHosts',
  'allowedOrigins',
  'trustedProxies',
])

function coerce(key: keyof AnchorConfig, raw: string, source: string): unknown {
  if (NUMERIC.has(key)) {
    const value = Number(raw)
    if (raw.trim() === '' || !Number.isFinite(value)) {
      throw new InvalidArgumentError(`${source}: "${raw}" is not a number`, key)
    }
    return value
  }
  if (LISTS.has(key)) {
    return raw
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0)
  }
  if (key === 'bootstrapMode') {
    if (raw !== 'true' && raw !== 'false')
      throw new InvalidArgumentError(`${source}: "${raw}" is not true or false`, key)
    return raw === 'true'
  }
  return raw
}

/** Reads and checks a JSON config file. */
export function readConfigFile(path: string): Partial<AnchorConfig> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new InvalidArgumentError(`cannot read config file ${path}: ${(error as Error).message}`, 'config')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new InvalidArgumentError(`config file ${path} is not JSON: ${(error as Error).message}`, 'config')
  }
  const parsed = configSchema.partial().safeParse(value)
  if (!parsed.success) throw issueError(parsed.error, `config file ${path}`)
  return parsed.data as Partial<AnchorConfig>
}

function issueError(error: z.ZodError, source: string): InvalidArgumentError {
  const issue = error.issues[0]!
  const field = issue.path.join('.') || 'config'
  return new InvalidArgumentError(`${source}: ${field}: ${issue.message}`, field)
}

/**
 * Resolves the configuration. `cli` holds only the options given on the command line (strings
 * or numbers as parsed), `env` the process environment.
 */
export function resolveConfig(
  cli: Partial<Record<keyof AnchorConfig, unknown>> & { config?: string },
  env: Readonly<Record<string, string | undefined>>,
): AnchorConfig {
  const merged: Record<string, unknown> = { ...DEFAULT_CONFIG }
  if (cli.config !== undefined) Object.assign(merged, readConfigFile(cli.config))
  for (const [name, key] of Object.entries(ENVIRONMENT)) {
    const raw = env[name]
    if (raw !== undefined) merged[key] = coerce(key, raw, `environment variable ${name}`)
  }
  for (const [key, value] of Object.entries(cli)) {
    if (key === 'config' || value === undefined) continue
    merged[key] = typeof value === 'string' ? coerce(key as keyof AnchorConfig, value, `--${key}`) : value
  }
  const parsed = configSchema.safeParse(merged)
  if (!parsed.success) throw issueError(parsed.error, 'configuration')
  const config = parsed.data
  if (config.consensus === 'etcd' && config.etcd.length === 0) {
    throw new InvalidArgumentError(
      'consensus "etcd" needs at least one --etcd URL (or CAN_SWARM_ETCD)',
      'etcd',
    )
  }
  return {
    ...config,
    data: resolve(config.data),
    ...(config.genesis === undefined ? {} : { genesis: resolve(config.genesis) }),
  }
}
