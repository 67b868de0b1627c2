/**
 * The anchor's HTTP endpoint: `/healthz` (the process is alive), `/readyz` (every part is up),
 * `/metrics` (Prometheus text), `/api/status` (JSON), and the built web app (packages/web/dist)
 * at `/` when it has been built. For the web app also: `GET /api/threads/<thread>` (the thread's
 * envelopes as DAG-JSON, for catching up after a reload or an outage; receivers verify them),
 * `GET /api/ledger` and `/api/ledger/<did>` (the live ledger's totals and one account: balance,
 * stake, escrowed and pending credits, derived from signed threads; see economy.ts), `GET /api/pool`
 * (the verifier pool snapshot), `GET /api/pool/<did>` (one verifier's entry) and
 * `PUT /api/pool/<did>` (a verifier's signed manifest: join, change, leave; see manifests.ts), and
 * the gateway to the anchor's Helia artifact store for browsers (`GET`/`PUT /api/artifacts/<cid>`,
 * see artifacts.ts). `GET /api/genesis` serves the network's signed genesis (what a peer needs to
 * join: the network id, the anchors, the parameters), and `POST /api/faucet/<did>` asks the faucet
 * for the credits the network grants a new account (A7: bounded per account and per network per
 * window; see grants.ts).
 *
 * Hardened for strangers: a request must name an allowed host (loopback, the listening host, or
 * `allowedHosts`: the DNS-rebinding guard), each client (a remote address; IPv6 by /64) has a
 * request rate and an upload byte rate (`quotas`: 429 with Retry-After beyond, loopback included),
 * at most `maxConnections` sockets and `maxInFlight`
 * requests are served at once (503 beyond), slow or endless requests time out, every response
 * carries `nosniff`, `Referrer-Policy: no-referrer`, anti-framing and a content security policy,
 * errors are `{ code, error, field? }` JSON without internals (a malformed path is a 400, a bug a
 * bare 500 reported through `onError`), and metrics label requests by fixed route names only.
 */
import { createReadStream, existsSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize, resolve, sep } from 'node:path'
import { didKeyProblem, MAX_MANIFEST_BYTES, manifestFromJson } from '@can-swarm/peer'
import { checkRateBudget, originListed, type RateBudget, RateLimiter } from '@can-swarm/peer/net'
import type { Registry } from 'prom-client'
import type { AnchorArtifacts } from './artifacts.ts'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
}

/** Per-client HTTP quotas: token buckets keyed by remote address (IPv6: its /64). */
export interface HttpQuotas {
  /** Requests, of any kind (refused ones included). */
  requests: RateBudget
  /** Bytes of request bodies (uploads, manifests). */
  uploadBytes: RateBudget
  /** Clients tracked at most (least recently charged forgotten). @default 10 000 */
  maxClients?: number
}

/**
 * Default {@link HttpQuotas}: 50 requests/s (burst 200) and 1 MiB/s of uploads (burst 16 MiB) per
 * client address. A page load of the web app is about 40 requests; its tab then asks about one a
 * second.
 */
export const DEFAULT_HTTP_QUOTAS: HttpQuotas = Object.freeze({
  requests: Object.freeze({ perSecond: 50, burst: 200 }),
  uploadBytes: Object.freeze({ perSecond: 1024 * 1024, burst: 16 * 1024 * 1024 }),
})

export interface HttpOptions {
  host: string
  port: number
  registry: Registry
  /** Reasons the anchor is not ready (empty = ready). */
  notReady(): string[]
  status(): unknown | Promise<unknown>
  /** Directory of the built web app, if any. */
  webRoot: string | undefined
  /** Called after each request with its method, route label and status (metrics). @default none */
  onRequest?: (method: string, route: string, status: number) => void
  /** A thread's envelopes, one DAG-JSON text each, or undefined for an unknown thread. @default none */
  threadEnvelopes?: (thread: string) => string[] | undefined
  /** The verifier pool: its snapshot (`GET /api/pool`) and signed manifests (`PUT /api/pool/<did>`). @default none */
  pool?: {
    snapshot(): unknown
    put(
      did: string,
      manifest: unknown,
    ): Promise<{ status: number; error: string; field?: string } | undefined>
  }
  /** The live ledger: its totals, and one account's view by did (`/api/ledger`, `/api/ledger/<did>`). @default none */
  ledger?: { summary(): unknown; account(did: string): unknown }
  /** The anchor's Helia artifact store, served as a gateway for browsers. @default none */
  artifacts?: AnchorArtifacts
  /** The network's genesis as dag-json text (`GET /api/genesis`). @default none */
  genesis?: () => string
  /** The faucet (`POST /api/faucet/<did>`): a signed grant, or a refusal with its status. @default none */
  faucet?: (did: string) => Promise<{ status: number; error: string; field?: string } | object>
  /** Host names requests may name besides loopback and `host` (with or without a port). @default none */
  allowedHosts?: readonly string[]
  /** Reverse proxies whose `X-Forwarded-For` names the client (for quotas). @default none */
  trustedProxies?: readonly string[]
  /** Most open sockets. @default 512 */
  maxConnections?: number
  /** Most requests handled at once; more get 503 with Retry-After. @default 128 */
  maxInFlight?: number
  /** Per-client request and upload rates; beyond them 429 with Retry-After. @default DEFAULT_HTTP_QUOTAS */
  quotas?: HttpQuotas
  /** The quotas' clock, in ms. @default Date.now */
  now?: () => number
  /** Unexpected errors (bugs): the client gets a bare 500. @default ignored */
  onError?: (error: unknown) => void
}

/** A request the server refuses before routing it (bad path, host not allowed, over a quota). */
class RequestError extends Error {
  readonly status: number
  readonly code: string
  readonly field: string | undefined
  /** Seconds after which the same request would be served (`Retry-After`). */
  readonly retryAfterS: number | undefined
  constructor(status: number, code: string, message: string, field?: string, retryAfterS?: number) {
    super(message)
    this.status = status
    this.code = code
    this.field = field
    this.retryAfterS = retryAfterS
  }
}

/** The quota error of a client over `limiter` by `amount`. */
function overQuota(
  limiter: RateLimiter,
  client: string,
  amount: number,
  what: string,
  field: string,
): RequestError {
  const retryAfterS = Math.max(1, Math.ceil(limiter.waitMs(client, amount) / 1000))
  const { perSecond, burst } = limiter.budget
  return new RequestError(
    429,
    'QUOTA_EXCEEDED',
    `this client is over its quota of ${perSecond} ${what}/s (burst ${burst}); retry after ${retryAfterS} s`,
    field,
    retryAfterS,
  )
}

/**
 * The quota key of a remote address: an IPv4 address (IPv4-mapped IPv6 included) as it is, an IPv6
 * address by its /64 (one subscriber's usual allocation), `unknown` without one.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown'
  const value = address.toLowerCase().replace(/%.*$/, '')
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(value)
  if (mapped) return mapped[1]!
  if (!value.includes(':')) return value
  const [head = '', tail] = value.split('::')
  const groups = (part: string | undefined) => (part ? part.split(':').filter((group) => group !== '') : [])
  const before = groups(head)
  const after = groups(tail)
  const width = (list: string[]) => list.reduce((sum, group) => sum + (group.includes('.') ? 2 : 1), 0)
  const full = [
    ...before,
    ...Array<string>(Math.max(0, 8 - width(before) - width(after))).fill('0'),
    ...after,
  ]
  return `${full
    .slice(0, 4)
    .map((group) => (/^[0-9a-f]{1,4}$/.test(group) ? Number.parseInt(group, 16).toString(16) : group))
    .join(':')}::/64`
}

/**
 * The address a request's quotas are keyed by: its peer's, unless the peer is a trusted reverse
 * proxy — then the rightmost `X-Forwarded-For` address that is not a trusted proxy (what the
 * proxies in front of the anchor saw), or the peer's own when the header names none.
 */
export function clientAddress(
  remote: string | undefined,
  forwardedFor: string | string[] | undefined,
  trustedProxies: readonly string[],
): string | undefined {
  const bare = (address: string) =>
    address
      .trim()
      .toLowerCase()
      .replace(/^::ffff:(?=\d)/, '')
  if (remote === undefined || trustedProxies.length === 0) return remote
  const trusted = new Set(trustedProxies.map(bare))
  if (!trusted.has(bare(remote))) return remote
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? ''))
    .split(',')
    .map(bare)
    .filter((hop) => hop !== '')
  for (let index = hops.length - 1; index >= 0; index -= 1) if (!trusted.has(hops[index]!)) return hops[index]
  return remote
}

/** Decodes a path segment; a malformed `%` escape is the client's error (400), not the server's. */
function decodeSegment(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new RequestError(400, 'BAD_REQUEST', 'the path holds a malformed % escape', 'path')
  }
}

/**
 * The URL of a request target. A target the URL parser refuses (`//`, `//[`: an authority that is
 * no host) is the client's error (400), not the server's.
 */
function requestUrl(target: string | undefined): URL {
  try {
    return new URL(target ?? '/', 'http://anchor.invalid')
  } catch {
    throw new RequestError(400, 'BAD_REQUEST', 'the request target is not a path', 'path')
  }
}

const LOOPBACK_NAMES = new Set(['localhost', '::1', '[::1]'])

/** The host name of a `Host` header, lower-cased, without its port. */
function hostName(header: string): string {
  const value = header.trim().toLowerCase()
  if (value.startsWith('[')) return value.slice(0, value.indexOf(']') + 1)
  const colon = value.lastIndexOf(':')
  return colon >= 0 && value.indexOf(':') === colon ? value.slice(0, colon) : value
}

/** The anchor's own HTTP origins, as {@link originAllowed} checks them. */
export interface OwnOrigins {
  /** The HTTP listening host (`--host`). */
  host: string
  /** The HTTP port (the bound one). */
  port: number
  /** `allowedHosts`: names (with or without a port) the anchor answers to. */
  allowedHosts: readonly string[]
  /** Other origins allowed: exact (`https://app.example`), any port (`http://localhost:*`) or `*` (any). */
  allowedOrigins: readonly string[]
}

/**
 * Whether a WebSocket upgrade (or any request) carrying `origin` may proceed: without an Origin
 * (not a browser), from one of the anchor's own HTTP origins — a loopback name or the listening
 * host at its HTTP port, or an allowed host name (at its port when it names one, else at any) — or
 * from an origin `allowedOrigins` lists. Anything else (`null`, another site) is refused.
 */
export function originAllowed(origin: string | undefined, own: OwnOrigins): boolean {
  if (origin === undefined) return true
  const value = origin.trim().toLowerCase()
  if (originListed(value, own.allowedOrigins)) return true
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== value) return false
  const name = url.hostname
  const atPort = (url.port || (url.protocol === 'https:' ? '443' : '80')) === String(own.port)
  if (atPort && (LOOPBACK_NAMES.has(name) || /^127(\.\d{1,3}){3}$/.test(name))) return true
  const bare = (host: string) => host.replace(/^\[|\]$/g, '')
  const wildcard = own.host === '0.0.0.0' || own.host === '::'
  if (atPort && !wildcard && bare(name) === bare(hostName(own.host))) return true
  return own.allowedHosts.some((entry) => {
    const wanted = entry.trim().toLowerCase()
    return wanted === url.host || wanted === name
  })
}

/** Whether a request's Host header names this anchor (loopback, its listening host, or an allowed name). */
export function hostAllowed(
  header: string | undefined,
  listening: string,
  allowed: readonly string[],
): boolean {
  if (header === undefined || header === '') return false
  const name = hostName(header)
  if (LOOPBACK_NAMES.has(name) || /^127(\.\d{1,3}){3}$/.test(name)) return true
  const wildcard = listening === '0.0.0.0' || listening === '::'
  if (!wildcard && name === hostName(listening)) return true
  return allowed.some((entry) => {
    const wanted = entry.trim().toLowerCase()
    return wanted === header.trim().toLowerCase() || wanted === name
  })
}

/** Headers every response carries. */
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'cross-origin',
} as const

/** The web app's policy: its own scripts and WebAssembly, any peer to talk to, nothing framing it. */
const APP_CSP =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ws: wss: http: https:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
/** Everything else is data: it runs nothing and is framed by nobody. */
const DATA_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

/** An error response `{ code, error, field? }`. */
function fail(response: ServerResponse, status: number, code: string, error: string, field?: string): number {
  return json(response, status, { code, error, ...(field === undefined ? {} : { field }) })
}

/**
 * Reads a request body of at most `maxBytes`, charged to `client`'s upload quota: refused (429)
 * before it is read when its declared length is over the quota, after it is read when it declared
 * none. An oversized body costs what reading it costs (up to 4 × `maxBytes`, within the burst).
 * Resolves to undefined when it is larger than `maxBytes`.
 */
async function readUpload(
  request: IncomingMessage,
  maxBytes: number,
  client: string,
  quota: RateLimiter,
): Promise<Uint8Array | undefined> {
  const cost = (bytes: number) => Math.min(bytes, 4 * maxBytes, quota.budget.burst)
  const declared = Number(request.headers['content-length'] ?? Number.NaN)
  const known = Number.isSafeInteger(declared) && declared >= 0
  if (known && !quota.take(client, cost(declared)))
    throw overQuota(quota, client, cost(declared), 'upload bytes', 'body')
  const body = await readBody(request, maxBytes)
  const read = body?.length ?? 4 * maxBytes
  if (!known && !quota.take(client, cost(read)))
    throw overQuota(quota, client, cost(read), 'upload bytes', 'body')
  return body
}

/**
 * Reads a request body of at most `maxBytes`; resolves to undefined when it is larger. An
 * oversized body is drained (up to 4 × `maxBytes`, then the socket is cut) so that the client
 * reads the refusal instead of a reset.
 */
function readBody(request: IncomingMessage, maxBytes: number): Promise<Uint8Array | undefined> {
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > 4 * maxBytes) {
        resolvePromise(undefined)
        request.destroy()
      } else if (size <= maxBytes) chunks.push(chunk)
    })
    request.on('end', () =>
      resolvePromise(size > maxBytes ? undefined : new Uint8Array(Buffer.concat(chunks))),
    )
    request.on('error', reject)
  })
}

async function handleArtifact(
  store: AnchorArtifacts,
  method: string,
  cid: string,
  request: IncomingMessage,
  response: ServerResponse,
  client: string,
  uploads: RateLimiter,
): Promise<number> {
  if (method === 'PUT') {
    const body = await readUpload(request, store.maxArtifactBytes, client, uploads)
    if (body === undefined) {
      return fail(
        response,
        413,
        'PAYLOAD_TOO_LARGE',
        `artifact exceeds ${store.maxArtifactBytes} bytes`,
        'body',
      )
    }
    const refusal = await store.put(cid, body, client)
    return refusal
      ? fail(response, refusal.status, 'ARTIFACT_REFUSED', refusal.error, 'cid')
      : json(response, 201, { cid })
  }
  const bytes = await store.get(cid, client)
  if (!bytes) return fail(response, 404, 'NOT_FOUND', `artifact ${cid.slice(0, 130)} is not held here`, 'cid')
  response.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-security-policy': DATA_CSP,
    'content-type': 'application/octet-stream',
    'cache-control': 'public, max-age=31536000, immutable',
  })
  response.end(bytes)
  return 200
}

/** Largest manifest body accepted. */

/**
 * Routes any web app may call from another origin (the genesis, the status, the faucet: what an app
 * that embeds the peer needs to join); everything else stays same-origin.
 */
const OPEN_ROUTES = ['/api/genesis', '/api/status', '/api/faucet/']

function send(response: ServerResponse, status: number, type: string, body: string): number {
  const open = OPEN_ROUTES.some((route) => (response.req.url ?? '').startsWith(route))
  response.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-security-policy': type.startsWith('text/html') ? APP_CSP : DATA_CSP,
    'content-type': type,
    'cache-control': 'no-store',
    ...(open ? { 'access-control-allow-origin': '*' } : {}),
  })
  response.end(body)
  return status
}

function json(response: ServerResponse, status: number, value: unknown): number {
  return send(response, status, 'application/json', `${JSON.stringify(value)}\n`)
}

function serveStatic(root: string, pathname: string, response: ServerResponse): number {
  const relative = normalize(decodeSegment(pathname)).replace(/^([/\\])+/, '')
  if (relative.includes('\0')) return fail(response, 400, 'BAD_REQUEST', 'the path holds a NUL byte', 'path')
  let file = resolve(root, relative)
  if (file !== root && !file.startsWith(root + sep))
    return fail(response, 403, 'FORBIDDEN', 'forbidden path', 'path')
  if (!existsSync(file) || statSync(file).isDirectory()) file = join(root, 'index.html')
  if (!existsSync(file)) return fail(response, 404, 'NOT_FOUND', 'not found', 'path')
  const type = TYPES[extname(file)] ?? 'application/octet-stream'
  response.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-security-policy': type.startsWith('text/html') ? APP_CSP : DATA_CSP,
    'content-type': type,
  })
  createReadStream(file).pipe(response)
  return 200
}

const NO_WEB_APP = `<!doctype html><meta charset="utf-8"><title>CAN Swarm anchor</title>
<h1>CAN Swarm anchor</h1><p>This anchor is running. The web app has not been built into
<code>packages/web/dist</code> yet; see <a href="/api/status">/api/status</a>, <a href="/healthz">/healthz</a>,
<a href="/readyz">/readyz</a> and <a href="/metrics">/metrics</a>.</p>`

/**
 * The request listener of {@link startHttp}: the Host check, the in-flight bound and the router.
 * Needs no socket of its own, so the fuzzer drives it with in-memory requests.
 */
export function httpRequestListener(
  options: HttpOptions,
): (request: IncomingMessage, response: ServerResponse) => void {
  const quotas = options.quotas ?? DEFAULT_HTTP_QUOTAS
  checkRateBudget(quotas.requests, 'quotas.requests')
  checkRateBudget(quotas.uploadBytes, 'quotas.uploadBytes')
  const limiter = (budget: RateBudget) =>
    new RateLimiter({
      ...budget,
      ...(quotas.maxClients === undefined ? {} : { maxKeys: quotas.maxClients }),
      ...(options.now ? { now: options.now } : {}),
    })
  const requests = limiter(quotas.requests)
  const uploads = limiter(quotas.uploadBytes)
  const handle = async (
    request: IncomingMessage,
    response: ServerResponse,
    client: string,
  ): Promise<void> => {
    const url = requestUrl(request.url)
    const method = request.method ?? 'GET'
    let route = url.pathname
    let status: number
    if (options.artifacts && route.startsWith('/api/artifacts/') && ['GET', 'HEAD', 'PUT'].includes(method)) {
      route = '/api/artifacts'
      status = await handleArtifact(
        options.artifacts,
        method,
        url.pathname.slice(15),
        request,
        response,
        client,
        uploads,
      )
    } else if (options.pool && method === 'PUT' && route.startsWith('/api/pool/')) {
      const did = decodeSegment(route.slice('/api/pool/'.length))
      route = '/api/pool'
      const body = await readUpload(request, MAX_MANIFEST_BYTES, client, uploads)
      let manifest: unknown
      try {
        manifest = body === undefined ? undefined : manifestFromJson(body)
      } catch {
        manifest = undefined
      }
      if (manifest === undefined) {
        status = fail(
          response,
          400,
          'BAD_REQUEST',
          `the body must be a signed manifest in JSON, at most ${MAX_MANIFEST_BYTES} bytes`,
          'body',
        )
      } else {
        const refusal = await options.pool.put(did, manifest)
        status = refusal
          ? json(response, refusal.status, refusal)
          : json(response, 200, { accepted: true, did })
      }
    } else if (options.faucet && method === 'POST' && route.startsWith('/api/faucet/')) {
      const did = decodeSegment(route.slice('/api/faucet/'.length))
      route = '/api/faucet'
      const answer = await options.faucet(did)
      const refusal = answer as { status?: number; error?: string }
      status =
        typeof refusal.status === 'number' && typeof refusal.error === 'string'
          ? json(response, refusal.status, answer)
          : json(response, 201, answer)
    } else if (method !== 'GET' && method !== 'HEAD') {
      route = 'other'
      status = fail(
        response,
        405,
        'METHOD_NOT_ALLOWED',
        `method ${method.slice(0, 16)} not allowed`,
        'method',
      )
    } else if (route === '/healthz') {
      status = json(response, 200, { status: 'ok' })
    } else if (route === '/readyz') {
      const reasons = options.notReady()
      status = json(
        response,
        reasons.length === 0 ? 200 : 503,
        reasons.length === 0 ? { status: 'ready' } : { status: 'not ready', reasons },
      )
    } else if (route === '/metrics') {
      status = send(response, 200, options.registry.contentType, await options.registry.metrics())
    } else if (route === '/api/status') {
      status = json(response, 200, await options.status())
    } else if (options.genesis && route === '/api/genesis') {
      status = send(response, 200, 'application/json', options.genesis())
    } else if (options.threadEnvelopes && route.startsWith('/api/threads/')) {
      const lines = options.threadEnvelopes(decodeSegment(route.slice(13)))
      route = '/api/threads'
      status = lines
        ? send(response, 200, 'application/json', `[${lines.join(',')}]\n`)
        : fail(response, 404, 'NOT_FOUND', 'no such thread here', 'thread')
    } else if (options.pool && route === '/api/pool') {
      status = json(response, 200, options.pool.snapshot())
    } else if (options.pool && route.startsWith('/api/pool/')) {
      const did = decodeSegment(route.slice('/api/pool/'.length))
      route = '/api/pool'
      const snapshot = options.pool.snapshot() as { atMs: number; entries: Array<{ did: string }> }
      const entry = snapshot.entries.find((candidate) => candidate.did === did)
      status = entry
        ? json(response, 200, { atMs: snapshot.atMs, entry })
        : fail(response, 404, 'NOT_FOUND', `${did.slice(0, 120)} is not in the staked verifier pool`, 'did')
    } else if (options.ledger && (route === '/api/ledger' || route.startsWith('/api/ledger/'))) {
      const did = decodeSegment(route.slice('/api/ledger/'.length))
      const problem = route === '/api/ledger' ? undefined : didKeyProblem(did)
      route = '/api/ledger'
      status =
        problem !== undefined
          ? fail(response, 400, 'BAD_REQUEST', `not an account: ${problem}`, 'did')
          : json(response, 200, did === '' ? options.ledger.summary() : options.ledger.account(did))
    } else if (route.startsWith('/api/')) {
      status = fail(response, 404, 'NOT_FOUND', `no API endpoint ${route.slice(0, 120)}`, 'path')
      route = '/api/unknown'
    } else if (options.webRoot) {
      route = 'static'
      status = serveStatic(options.webRoot, url.pathname, response)
    } else if (route === '/') {
      status = send(response, 200, 'text/html; charset=utf-8', NO_WEB_APP)
    } else {
      route = 'other'
      status = fail(response, 404, 'NOT_FOUND', 'not found', 'path')
    }
    options.onRequest?.(method, route, status)
  }
  const allowed = options.allowedHosts ?? []
  const maxInFlight = options.maxInFlight ?? 128
  let inFlight = 0
  return (request, response) => {
    const client = clientKey(
      clientAddress(
        request.socket?.remoteAddress,
        request.headers['x-forwarded-for'],
        options.trustedProxies ?? [],
      ),
    )
    if (!requests.take(client)) {
      const refusal = overQuota(requests, client, 1, 'requests', 'client')
      response.setHeader('retry-after', String(refusal.retryAfterS))
      const status = fail(response, 429, refusal.code, refusal.message, refusal.field)
      options.onRequest?.(request.method ?? 'GET', 'refused', status)
      return
    }
    if (!hostAllowed(request.headers.host, options.host, allowed)) {
      const status = fail(
        response,
        421,
        'HOST_NOT_ALLOWED',
        'this anchor does not answer to that host name (add it with --allowed-hosts)',
        'host',
      )
      options.onRequest?.(request.method ?? 'GET', 'refused', status)
      return
    }
    if (inFlight >= maxInFlight) {
      response.setHeader('retry-after', '1')
      const status = fail(
        response,
        503,
        'BUSY',
        'the anchor is serving as many requests as it takes; try again shortly',
      )
      options.onRequest?.(request.method ?? 'GET', 'refused', status)
      return
    }
    inFlight += 1
    response.once('close', () => {
      inFlight -= 1
    })
    handle(request, response, client).catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy()
        return
      }
      if (error instanceof RequestError) {
        if (error.retryAfterS !== undefined) response.setHeader('retry-after', String(error.retryAfterS))
        const status = fail(response, error.status, error.code, error.message, error.field)
        options.onRequest?.(request.method ?? 'GET', 'refused', status)
        return
      }
      options.onError?.(error)
      const status = fail(response, 500, 'INTERNAL', 'internal error (reported in the anchor log)')
      options.onRequest?.(request.method ?? 'GET', 'error', status)
    })
  }
}

/** Starts the HTTP server; resolves once it listens. */
export async function startHttp(options: HttpOptions): Promise<{ server: Server; url: string }> {
  const server = createServer(httpRequestListener(options))
  server.maxConnections = options.maxConnections ?? 512
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      resolvePromise()
    })
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return { server, url: `http://${host}:${address.port}` }
}
