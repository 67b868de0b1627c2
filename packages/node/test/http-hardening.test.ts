/**
 * The anchor's HTTP server against hostile clients: host names it does not answer to (DNS
 * rebinding), malformed paths, too many requests at once, handler bugs, metric-label cardinality;
 * and the headers every response carries.
 */
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hostAllowed, startHttp } from '../src/anchor/http.ts'

type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function call(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
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
