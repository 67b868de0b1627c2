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
 */
import { createReadStream, existsSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize, resolve, sep } from 'node:path'
import type { Registry } from 'prom-client'
import { didKeyProblem } from '../../../peer/src/core/codec.ts'
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

export interface HttpOptions {
  host: string
  port: number
  registry: Registry
  /** Reasons the anchor is not ready (empty = ready). */
  notReady(): string[]
  status(): unknown | Promise<unknown>
  /** Directory of the built web app, if any. */
  webRoot: string | undefined
  onRequest?: (method: string, route: string, status: number) => void
  /** A thread's envelopes, one DAG-JSON text each, or undefined for an unknown thread. */
  threadEnvelopes?: (thread: string) => string[] | undefined
  /** The verifier pool: its snapshot (`GET /api/pool`) and signed manifests (`PUT /api/pool/<did>`). */
  pool?: {
    snapshot(): unknown
    put(
      did: string,
      manifest: unknown,
    ): Promise<{ status: number; error: string; field?: string } | undefined>
  }
  /** The live ledger: its totals, and one account's view by did (`/api/ledger`, `/api/ledger/<did>`). */
  ledger?: { summary(): unknown; account(did: string): unknown }
  /** The anchor's Helia artifact store, served as a gateway for browsers. */
  artifacts?: AnchorArtifacts
  /** The network's genesis as dag-json text (`GET /api/genesis`). */
  genesis?: () => string
  /** The faucet (`POST /api/faucet/<did>`): a signed grant, or a refusal with its status. */
  faucet?: (did: string) => Promise<{ status: number; error: string; field?: string } | object>
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
): Promise<number> {
  if (method === 'PUT') {
    const body = await readBody(request, store.maxArtifactBytes)
    if (body === undefined) {
      return json(response, 413, { error: `artifact exceeds ${store.maxArtifactBytes} bytes` })
    }
    const refusal = await store.put(cid, body)
    return refusal ? json(response, refusal.status, { error: refusal.error }) : json(response, 201, { cid })
  }
  const bytes = await store.get(cid)
  if (!bytes) return json(response, 404, { error: `artifact ${cid.slice(0, 130)} is not held here` })
  response.writeHead(200, {
    'content-type': 'application/octet-stream',
    'cache-control': 'public, max-age=31536000, immutable',
  })
  response.end(bytes)
  return 200
}

/** Largest manifest body accepted. */
const MAX_MANIFEST_BYTES = 4096

/**
 * Routes any web app may call from another origin (the genesis, the status, the faucet: what an app
 * that embeds the peer needs to join); everything else stays same-origin.
 */
const OPEN_ROUTES = ['/api/genesis', '/api/status', '/api/faucet/']

function send(response: ServerResponse, status: number, type: string, body: string): number {
  const open = OPEN_ROUTES.some((route) => (response.req.url ?? '').startsWith(route))
  response.writeHead(status, {
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
  const relative = normalize(decodeURIComponent(pathname)).replace(/^([/\\])+/, '')
  let file = resolve(root, relative)
  if (file !== root && !file.startsWith(root + sep)) return json(response, 403, { error: 'forbidden path' })
  if (!existsSync(file) || statSync(file).isDirectory()) file = join(root, 'index.html')
  if (!existsSync(file)) return json(response, 404, { error: 'not found' })
  response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
  createReadStream(file).pipe(response)
  return 200
}

const NO_WEB_APP = `<!doctype html><meta charset="utf-8"><title>CAN Swarm anchor</title>
<h1>CAN Swarm anchor</h1><p>This anchor is running. The web app has not been built into
<code>packages/web/dist</code> yet; see <a href="/api/status">/api/status</a>, <a href="/healthz">/healthz</a>,
<a href="/readyz">/readyz</a> and <a href="/metrics">/metrics</a>.</p>`

/** Starts the HTTP server; resolves once it listens. */
export async function startHttp(options: HttpOptions): Promise<{ server: Server; url: string }> {
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://anchor.invalid')
    const method = request.method ?? 'GET'
    let route = url.pathname
    let status: number
    if (options.artifacts && route.startsWith('/api/artifacts/') && ['GET', 'HEAD', 'PUT'].includes(method)) {
      status = await handleArtifact(options.artifacts, method, route.slice(15), request, response)
      route = '/api/artifacts'
    } else if (options.pool && method === 'PUT' && route.startsWith('/api/pool/')) {
      const did = decodeURIComponent(route.slice('/api/pool/'.length))
      route = '/api/pool'
      const body = await readBody(request, MAX_MANIFEST_BYTES)
      let manifest: unknown
      try {
        manifest = body === undefined ? undefined : JSON.parse(new TextDecoder().decode(body))
      } catch {
        manifest = undefined
      }
      if (manifest === undefined) {
        status = json(response, 400, {
          error: `the body must be a signed manifest in JSON, at most ${MAX_MANIFEST_BYTES} bytes`,
        })
      } else {
        const refusal = await options.pool.put(did, manifest)
        status = refusal
          ? json(response, refusal.status, refusal)
          : json(response, 200, { accepted: true, did })
      }
    } else if (options.faucet && method === 'POST' && route.startsWith('/api/faucet/')) {
      const did = decodeURIComponent(route.slice('/api/faucet/'.length))
      route = '/api/faucet'
      const answer = await options.faucet(did)
      const refusal = answer as { status?: number; error?: string }
      status =
        typeof refusal.status === 'number' && typeof refusal.error === 'string'
          ? json(response, refusal.status, answer)
          : json(response, 201, answer)
    } else if (method !== 'GET' && method !== 'HEAD') {
      status = json(response, 405, { error: `method ${method} not allowed` })
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
      const lines = options.threadEnvelopes(decodeURIComponent(route.slice(13)))
      route = '/api/threads'
      status = lines
        ? send(response, 200, 'application/json', `[${lines.join(',')}]\n`)
        : json(response, 404, { error: 'no such thread here' })
    } else if (options.pool && route === '/api/pool') {
      status = json(response, 200, options.pool.snapshot())
    } else if (options.pool && route.startsWith('/api/pool/')) {
      const did = decodeURIComponent(route.slice('/api/pool/'.length))
      route = '/api/pool'
      const snapshot = options.pool.snapshot() as { atMs: number; entries: Array<{ did: string }> }
      const entry = snapshot.entries.find((candidate) => candidate.did === did)
      status = entry
        ? json(response, 200, { atMs: snapshot.atMs, entry })
        : json(response, 404, { error: `${did.slice(0, 120)} is not in the staked verifier pool` })
    } else if (options.ledger && (route === '/api/ledger' || route.startsWith('/api/ledger/'))) {
      const did = decodeURIComponent(route.slice('/api/ledger/'.length))
      const problem = route === '/api/ledger' ? undefined : didKeyProblem(did)
      route = '/api/ledger'
      status =
        problem !== undefined
          ? json(response, 400, { error: `not an account: ${problem}` })
          : json(response, 200, did === '' ? options.ledger.summary() : options.ledger.account(did))
    } else if (route.startsWith('/api/')) {
      status = json(response, 404, { error: `no API endpoint ${route}` })
    } else if (options.webRoot) {
      route = 'static'
      status = serveStatic(options.webRoot, url.pathname, response)
    } else if (route === '/') {
      status = send(response, 200, 'text/html; charset=utf-8', NO_WEB_APP)
    } else {
      route = 'other'
      status = json(response, 404, { error: 'not found' })
    }
    options.onRequest?.(method, route, status)
  }
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) json(response, 500, { error: (error as Error).message })
      else response.destroy()
    })
  })
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
