/**
 * The anchor's HTTP server against hostile clients: host names it does not answer to (DNS
 * rebinding), malformed paths, too many requests at once, handler bugs, metric-label cardinality,
 * clients over their request or upload quota (429, loopback addresses included); and the headers
 * every response carries.
 */
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AnchorArtifacts } from '../src/anchor/artifacts.ts'
import { clientAddress, clientKey, hostAllowed, startHttp } from '../src/anchor/http.ts'
import { startTestHttp } from './helpers/http.ts'

type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function call(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
  { from, body }: { from?: string; body?: Uint8Array } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const target = { host: '127.0.0.1', port, path, method, headers, agent: false as const }
    const req = httpRequest(from ? { ...target, localAddress: from } : target, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

let port: number
let close: () => Promise<void>
const routes: string[] = []
const errors: unknown[] = []
let release: (() => void) | undefined

beforeAll(async () => {
  const { server } = await startHttp({
    host: '127.0.0.1',
    port: 0,
    registry: new Registry(),
    webRoot: undefined,
    allowedHosts: ['anchor.example.org'],
    maxInFlight: 2,
    notReady: () => [],
    status: async () => {
      // A slow status (held until released) to fill the in-flight budget.
      if (release === undefined) return { ok: true }
      await new Promise<void>((resolve) => {
        const previous = release!
        release = () => {
          previous()
          resolve()
        }
      })
      return { ok: true }
    },
    ledger: {
      summary: () => {
        throw new Error('secret internal detail /etc/passwd')
      },
      account: () => ({}),
    },
    onRequest: (_method, route) => routes.push(route),
    onError: (error) => errors.push(error),
  })
  port = (server.address() as AddressInfo).port
  close = () => new Promise((resolve) => server.close(() => resolve()))
})
afterAll(async () => {
  await close()
})

describe('the anchor HTTP server', () => {
  it('answers only to loopback, its host and the allowed names (DNS rebinding)', async () => {
    expect((await call(port, '/healthz')).status).toBe(200)
    expect((await call(port, '/healthz', { host: `localhost:${port}` })).status).toBe(200)
    expect((await call(port, '/healthz', { host: 'anchor.example.org' })).status).toBe(200)
    const rebound = await call(port, '/api/status', { host: `attacker.example:${port}` })
    expect(rebound.status).toBe(421)
    expect(JSON.parse(rebound.body)).toMatchObject({ code: 'HOST_NOT_ALLOWED', field: 'host' })
    expect(hostAllowed(undefined, '127.0.0.1', [])).toBe(false)
    expect(hostAllowed('[::1]:7700', '127.0.0.1', [])).toBe(true)
    expect(hostAllowed('10.0.0.5:7700', '10.0.0.5', [])).toBe(true)
    expect(hostAllowed('10.0.0.5:7700', '0.0.0.0', [])).toBe(false)
    expect(hostAllowed('127.0.0.1.attacker.example', '127.0.0.1', [])).toBe(false)
  })

  it('says what was wrong in { code, error, field } and never leaks internals', async () => {
    const malformed = await call(port, '/api/ledger/%E0%A4%A')
    expect(malformed.status).toBe(400)
    expect(JSON.parse(malformed.body)).toMatchObject({ code: 'BAD_REQUEST', field: 'path' })
    // Targets the URL parser refuses (an authority with no host) are the client's error too (found
    // by the fuzzer: they were a 500 and an error in the anchor's log).
    const reported = errors.length
    for (const target of ['//', '///', '//[']) {
      const refused = await call(port, target)
      expect(refused.status).toBe(400)
      expect(JSON.parse(refused.body)).toMatchObject({ code: 'BAD_REQUEST', field: 'path' })
    }
    expect(errors.length).toBe(reported)
    const bug = await call(port, '/api/ledger')
    expect(bug.status).toBe(500)
    expect(bug.body).not.toMatch(/secret|passwd/)
    expect(JSON.parse(bug.body)).toMatchObject({ code: 'INTERNAL' })
    expect(String(errors.at(-1))).toMatch(/secret internal detail/)
    const method = await call(port, '/healthz', {}, 'DELETE')
    expect(method.status).toBe(405)
    expect(JSON.parse(method.body)).toMatchObject({ code: 'METHOD_NOT_ALLOWED' })
  })

  it('labels metrics by fixed route names, whatever the path', async () => {
    const before = new Set(routes)
    for (let i = 0; i < 50; i += 1) await call(port, `/api/nothing-${i}?x=${i}`)
    for (let i = 0; i < 50; i += 1) await call(port, `/random/${i}`)
    const added = new Set(routes.filter((route) => !before.has(route)))
    expect([...added].every((route) => ['/api/unknown', 'other', 'static'].includes(route))).toBe(true)
    expect(added.size).toBeLessThanOrEqual(2)
  })

  it('serves a bounded number of requests at once and sends its security headers', async () => {
    release = () => undefined
    const slow = [call(port, '/api/status'), call(port, '/api/status')]
    await new Promise((resolve) => setTimeout(resolve, 100))
    const busy = await call(port, '/healthz')
    expect(busy.status).toBe(503)
    expect(busy.headers['retry-after']).toBe('1')
    expect(JSON.parse(busy.body)).toMatchObject({ code: 'BUSY' })
    const done = release
    release = undefined
    done()
    expect((await Promise.all(slow)).map((reply) => reply.status)).toEqual([200, 200])
    const page = await call(port, '/')
    expect(page.headers['x-content-type-options']).toBe('nosniff')
    expect(page.headers['x-frame-options']).toBe('DENY')
    expect(page.headers['referrer-policy']).toBe('no-referrer')
    expect(String(page.headers['content-security-policy'])).toMatch(/frame-ancestors 'none'/)
    const data = await call(port, '/api/status')
    expect(String(data.headers['content-security-policy'])).toMatch(/default-src 'none'/)
  })
})

describe('per-client HTTP quotas', () => {
  it('answers a client over its request rate 429 with Retry-After, loopback included, other clients unaffected', async () => {
    let clock = 0
    const stored: string[] = []
    const artifacts = {
      maxArtifactBytes: 4096,
      put: async (cid: string) => void stored.push(cid),
      get: async () => undefined,
    } as unknown as AnchorArtifacts
    const { port: quotaPort, close: closeQuotas } = await startTestHttp({
      artifacts,
      quotas: { requests: { perSecond: 2, burst: 3 }, uploadBytes: { perSecond: 100, burst: 1000 } },
      now: () => clock,
    })
    try {
      const from = (address: string, path = '/healthz') => call(quotaPort, path, {}, 'GET', { from: address })
      for (let i = 0; i < 3; i += 1) expect((await from('127.0.0.2')).status).toBe(200)
      const refused = await from('127.0.0.2')
      expect(refused.status).toBe(429)
      expect(refused.headers['retry-after']).toBe('1')
      expect(JSON.parse(refused.body)).toMatchObject({ code: 'QUOTA_EXCEEDED', field: 'client' })
      expect(JSON.parse(refused.body).error).toMatch(/2 requests\/s/)
      expect((await from('127.0.0.3')).status).toBe(200) // another address has its own budget
      clock += 500 // one token back
      expect((await from('127.0.0.2')).status).toBe(200)
      expect((await from('127.0.0.2')).status).toBe(429)

      // Upload bytes: 1 000 at once, then 100/s; a body over the budget is refused before it is stored.
      const put = (bytes: number) =>
        call(quotaPort, `/api/artifacts/b${'a'.repeat(58)}`, {}, 'PUT', {
          from: '127.0.0.4',
          body: new Uint8Array(bytes),
        })
      expect((await put(600)).status).toBe(201)
      const over = await put(600)
      expect(over.status).toBe(429)
      expect(over.headers['retry-after']).toBe('2') // 200 bytes missing at 100 bytes/s
      expect(JSON.parse(over.body)).toMatchObject({ code: 'QUOTA_EXCEEDED', field: 'body' })
      expect(stored).toHaveLength(1)
      clock += 2000
      expect((await put(600)).status).toBe(201)
    } finally {
      await closeQuotas()
    }
  })

  it('keys the clients of a trusted reverse proxy by the address X-Forwarded-For names, no one else', async () => {
    // The rightmost hop that is not a trusted proxy is the client; an untrusted peer's header is ignored.
    expect(clientAddress('10.0.0.1', '203.0.113.7', ['10.0.0.1'])).toBe('203.0.113.7')
    expect(
      clientAddress('::ffff:10.0.0.1', '198.51.100.1, 203.0.113.7, 10.0.0.2', ['10.0.0.1', '10.0.0.2']),
    ).toBe('203.0.113.7')
    expect(clientAddress('192.0.2.9', '203.0.113.7', ['10.0.0.1'])).toBe('192.0.2.9')
    expect(clientAddress('10.0.0.1', undefined, ['10.0.0.1'])).toBe('10.0.0.1')
    expect(clientAddress('10.0.0.1', '10.0.0.1', ['10.0.0.1'])).toBe('10.0.0.1')
    expect(clientAddress('10.0.0.1', '203.0.113.7', [])).toBe('10.0.0.1')
    // Behind the proxy (loopback here), each forwarded client has its own budget.
    const { port: proxied, close } = await startTestHttp({
      trustedProxies: ['127.0.0.5'],
      quotas: { requests: { perSecond: 0.001, burst: 2 }, uploadBytes: { perSecond: 100, burst: 1000 } },
    })
    try {
      const via = (client: string) =>
        call(proxied, '/healthz', { 'x-forwarded-for': client }, 'GET', { from: '127.0.0.5' })
      expect((await via('203.0.113.1')).status).toBe(200)
      expect((await via('203.0.113.1')).status).toBe(200)
      expect((await via('203.0.113.1')).status).toBe(429)
      expect((await via('203.0.113.2')).status).toBe(200)
      // A client that is not the proxy cannot pick its key by sending the header.
      const direct = (client: string) =>
        call(proxied, '/healthz', { 'x-forwarded-for': client }, 'GET', { from: '127.0.0.6' })
      expect((await direct('198.51.100.1')).status).toBe(200)
      expect((await direct('198.51.100.2')).status).toBe(200)
      expect((await direct('198.51.100.3')).status).toBe(429)
    } finally {
      await close()
    }
  })

  it('keys clients by address: IPv4 as it is, IPv6 by its /64', () => {
    expect(clientKey('127.0.0.1')).toBe('127.0.0.1')
    expect(clientKey('::ffff:10.1.2.3')).toBe('10.1.2.3')
    expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:DB8:1:2:ffff::1')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
    expect(clientKey('::1')).toBe('0:0:0:0::/64')
    expect(clientKey(undefined)).toBe('unknown')
  })
})
