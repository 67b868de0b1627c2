/**
 * The anchor's HTTP router as a fuzz target, without sockets: an input is a CBOR map
 * `{ method, url, headers, body }`, the router's request listener gets it as an in-memory request
 * (what Node's HTTP parser would hand it; inputs the parser itself refuses — unknown methods,
 * control characters in the target or a header — are refused here the same way) and writes its
 * answer into memory. The router must answer every request, within the time limit, and never with
 * a 5xx: a 500 is a bug the router reports through `onError`.
 *
 * Its backends are small stand-ins with the anchor's own checks: manifests are verified as
 * `ManifestStore.put` does (without keeping them, so that every input meets the same state),
 * artifacts must hash to their CID, accounts must be did:keys, and the static files come from a
 * temporary web root.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { IncomingMessage, METHODS, ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { AnchorArtifacts } from '@can-swarm/node'
import { type HttpOptions, httpRequestListener } from '@can-swarm/node'
import type { AnyEnvelope } from '@can-swarm/peer'
import {
  artifactCid,
  CanSwarmError,
  checkCborBudget,
  didKeyProblem,
  envelopeToJson,
  verifyManifest,
} from '@can-swarm/peer'
import * as dagCbor from '@ipld/dag-cbor'
import { Registry } from 'prom-client'
import { type Item, parseItem } from './cbor.ts'
import { Refused } from './engine.ts'

/** Longest the router may take to answer before the input counts as a hang. */
const HANG_MS = 2_000
/** Node's default `--max-http-header-size`: the parser refuses larger heads. */
const MAX_HEADER_BYTES = 16 * 1024
const KNOWN_METHODS = new Set(METHODS)

export interface HttpFuzzContext {
  thread: AnyEnvelope[]
  network: string
  genesisJson: string
  manifests: Uint8Array[]
  /** A did:key that is in the pool. */
  member: string
}

export interface HttpHarness {
  seeds: Uint8Array[]
  run(input: Uint8Array): Promise<number>
  close(): void
}

interface FuzzRequest {
  method: string
  url: string
  headers: Record<string, string>
  body: Uint8Array
}

/** The text of an item (as the HTTP parser hands it: one character per byte), or a refusal. */
function textOf(item: Item | undefined, what: string): string {
  if (item?.t !== 'text' || item.v.length > MAX_HEADER_BYTES) throw new Refused(`${what} is not short text`)
  return Buffer.from(item.v.buffer, item.v.byteOffset, item.v.length).toString('latin1')
}

/** The request an input describes, or a refusal where Node's HTTP parser would refuse it. */
function requestOf(input: Uint8Array): FuzzRequest {
  // A request is a small map: more structure is no request (and would cost this harness, not the router).
  try {
    checkCborBudget(input, { maxItems: 512, maxDepth: 3 }, 'request')
  } catch {
    throw new Refused('not a request map')
  }
  const tree = parseItem(input)
  if (tree?.t !== 'map') throw new Refused('not a request map')
  const fields = new Map(tree.entries.map(([key, value]) => [textOf(key, 'a field name'), value]))
  const method = textOf(fields.get('method'), 'the method')
  if (!KNOWN_METHODS.has(method)) throw new Refused('the parser knows no such method')
  // The parser takes request targets of visible ASCII and bytes above 0x7f, nothing else.
  const url = textOf(fields.get('url'), 'the request target')
  if (!/^[\x21-\x7e\x80-\xff]+$/.test(url)) throw new Refused('the parser refuses that request target')
  const headers = fields.get('headers')
  if (headers?.t !== 'map') throw new Refused('no header map')
  const lowered: Record<string, string> = {}
  let headBytes = url.length
  for (const [key, value] of headers.entries) {
    const name = textOf(key, 'a header name')
    const raw = textOf(value, 'a header value')
    try {
      validateHeaderName(name)
      validateHeaderValue(name, raw)
    } catch {
      throw new Refused('the parser refuses that header')
    }
    headBytes += name.length + raw.length + 4
    lowered[name.toLowerCase()] = raw.trim()
  }
  if (headBytes > MAX_HEADER_BYTES) throw new Refused('the head is over the parser limit')
  const body = fields.get('body')
  if (body !== undefined && body.t !== 'bytes') throw new Refused('the body is not bytes')
  return { method, url, headers: lowered, body: body?.v ?? new Uint8Array(0) }
}

/** Sends a request through the listener in memory; resolves to the status it answered. */
function serve(
  listener: (request: IncomingMessage, response: ServerResponse) => void,
  { method, url, headers, body }: FuzzRequest,
): Promise<number> {
  const request = new IncomingMessage(new Socket())
  request.method = method
  request.url = url
  request.headers = headers
  for (let offset = 0; offset < body.length; offset += 65_536)
    request.push(Buffer.from(body.buffer, body.byteOffset + offset, Math.min(65_536, body.length - offset)))
  request.push(null)
  const response = new ServerResponse(request)
  const sink = new Writable({
    write(_chunk, _encoding, done) {
      done()
    },
  })
  response.assignSocket(sink as unknown as Socket)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the router did not answer ${method} ${url.slice(0, 80)} within ${HANG_MS} ms`)),
      HANG_MS,
    )
    response.once('finish', () => {
      clearTimeout(timer)
      response.detachSocket(sink as unknown as Socket)
      response.emit('close')
      resolve(response.statusCode)
    })
    listener(request, response)
  })
}

function requestSeed(
  method: string,
  url: string,
  body?: Uint8Array,
  headers: Record<string, string> = {},
): Uint8Array {
  return dagCbor.encode({
    method,
    url,
    headers: { host: 'localhost:7700', 'user-agent': 'can-swarm-fuzz', ...headers },
    ...(body === undefined ? {} : { body }),
  })
}

export function httpHarness(context: HttpFuzzContext): HttpHarness {
  const webRoot = mkdtempSync(join(tmpdir(), 'can-swarm-fuzz-web-'))
  writeFileSync(join(webRoot, 'index.html'), '<!doctype html><title>fuzz</title>')
  writeFileSync(join(webRoot, 'app.js'), 'console.log("fuzz")')
  const artifact = new TextEncoder().encode('an artifact the anchor holds')
  const artifactId = artifactCid(artifact)
  const threadId = context.thread[0]!.thread
  const lines = context.thread.map(envelopeToJson)
  const registry = new Registry()
  const errors: unknown[] = []
  const artifacts = {
    maxArtifactBytes: 64 * 1024,
    get: async (cid: string) => (cid === artifactId ? artifact : undefined),
    put: async (cid: string, bytes: Uint8Array) =>
      artifactCid(bytes) === cid ? undefined : { status: 400, error: 'the bytes do not hash to the CID' },
  } as unknown as AnchorArtifacts
  const options: HttpOptions = {
    host: '127.0.0.1',
    port: 0,
    registry,
    webRoot,
    allowedHosts: ['anchor.example.org'],
    notReady: () => [],
    status: () => ({ did: context.member, threads: 1 }),
    threadEnvelopes: (thread) => (thread === threadId ? lines : undefined),
    pool: {
      snapshot: () => ({ atMs: 0, entries: [{ did: context.member, stake: 300 }] }),
      // ManifestStore.put without its state (every input meets the same anchor).
      put: async (did, manifest) => {
        try {
          const verified = await verifyManifest(manifest, context.network)
          if (verified.did !== did) return { status: 400, error: 'signed by another did', field: 'did' }
          return undefined
        } catch (error) {
          if (!(error instanceof CanSwarmError)) throw error
          return { status: 400, error: error.message, ...(error.field ? { field: error.field } : {}) }
        }
      },
    },
    ledger: { summary: () => ({ accounts: 1 }), account: (did) => ({ did, balance: 0 }) },
    genesis: () => context.genesisJson,
    faucet: async (did) => {
      const problem = didKeyProblem(did)
      return problem === undefined
        ? { did, credits: 1000 }
        : { status: 400, error: `not an account: ${problem}`, field: 'did' }
    },
    artifacts,
    // One in-memory client sending thousands of requests a second: at the anchor's quotas nearly all
    // would be answered 429 unrouted. The quota check still runs; its limits are out of reach.
    quotas: { requests: { perSecond: 1e12, burst: 1e12 }, uploadBytes: { perSecond: 1e15, burst: 1e15 } },
    onError: (error) => errors.push(error),
  }
  const listener = httpRequestListener(options)
  const member = encodeURIComponent(context.member)
  const seeds = [
    requestSeed('GET', '/healthz'),
    requestSeed('GET', '/readyz'),
    requestSeed('GET', '/metrics'),
    requestSeed('GET', '/api/status'),
    requestSeed('GET', '/api/genesis', undefined, { origin: 'https://app.example' }),
    requestSeed('GET', '/api/pool'),
    requestSeed('GET', `/api/pool/${member}`),
    requestSeed('PUT', `/api/pool/${member}`, context.manifests[0], { 'content-type': 'application/json' }),
    requestSeed('GET', '/api/ledger'),
    requestSeed('GET', `/api/ledger/${member}`),
    requestSeed('POST', `/api/faucet/${member}`),
    requestSeed('GET', `/api/threads/${threadId}`),
    requestSeed('GET', `/api/artifacts/${artifactId}`),
    requestSeed('PUT', `/api/artifacts/${artifactId}`, artifact),
    requestSeed('HEAD', '/'),
    requestSeed('GET', '/app.js?v=1'),
    requestSeed('GET', '/missing/../index.html', undefined, { host: 'anchor.example.org' }),
    requestSeed('DELETE', '/healthz'),
    requestSeed('OPTIONS', '*'),
  ]
  return {
    seeds,
    async run(input) {
      const request = requestOf(input)
      const status = await serve(listener, request)
      const reported = errors.splice(0)
      if (reported.length > 0 || status >= 500)
        throw new Error(
          `${request.method} ${request.url.slice(0, 120)} answered ${status}${reported.length > 0 ? `: ${String(reported[0])}` : ''}`,
        )
      if (status >= 400) throw new Refused(`HTTP ${status}`)
      return status
    },
    close() {
      rmSync(webRoot, { recursive: true, force: true })
    },
  }
}
