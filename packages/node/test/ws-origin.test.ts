/**
 * The Origin allowlist of the anchor's libp2p WebSocket listener: a real anchor, real WebSocket
 * clients (Node's) sending an Origin header as browsers do. Pages of the anchor's own HTTP origins
 * (loopback names at its HTTP port, its allowed host names) and the listed origins may open a
 * WebSocket; any other page is refused with 403 before the upgrade; clients that send no Origin
 * (other nodes, not browsers) are not affected.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createIdentity } from '@can-swarm/peer'
import { createNetwork } from '@can-swarm/peer/net'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { webSocketOpens } from '../../../test-support/peers.ts'
import type { Anchor } from '../src/anchor/anchor.ts'
import { resolveConfig } from '../src/anchor/config.ts'
import { originAllowed } from '../src/anchor/http.ts'
import { startTestAnchor } from './helpers/in-process.ts'

let dir: string
let anchor: Anchor
let wsUrl: string
let httpPort: number

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-ws-origin-'))
  anchor = await startTestAnchor(dir, {
    allowedHosts: ['anchor.example.org'],
    allowedOrigins: ['https://app.example'],
  })
  const ws = anchor.multiaddrs().find((address) => address.includes('/ws/'))!
  wsUrl = `ws://127.0.0.1:${/\/tcp\/(\d+)\/ws/.exec(ws)![1]}/`
  httpPort = Number(new URL(anchor.url).port)
}, 60_000)

afterAll(async () => {
  await anchor?.stop()
  await rm(dir, { recursive: true, force: true })
})

const opens = (origin: string | undefined) => webSocketOpens(wsUrl, origin)

/** The raw answer to an upgrade request sending `origin`. */
function upgradeAnswer(origin: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(wsUrl.replace('ws:', 'http:'), {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        origin,
      },
    })
    request.on('response', (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
    })
    request.on('upgrade', (response, socket) => {
      socket.destroy()
      resolve({ status: response.statusCode ?? 0, body: '' })
    })
    request.on('error', reject)
    request.end()
  })
}

describe("the anchor's WebSocket Origin allowlist", () => {
  it('refuses pages of other origins with 403, before the upgrade', async () => {
    expect(await opens('http://evil.example')).toBe(false)
    expect(await opens(`http://127.0.0.1:${httpPort + 1}`)).toBe(false) // another local site
    expect(await opens('null')).toBe(false) // a sandboxed frame, a file
    const answer = await upgradeAnswer('https://attacker.example')
    expect(answer.status).toBe(403)
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'ORIGIN_NOT_ALLOWED', field: 'origin' })
  })

  it("accepts the anchor's own origins, the listed ones, and clients that send none", async () => {
    // Another node dials over WebSockets (no Origin) and gets a libp2p connection. (First: the anchor
    // takes at most 5 inbound connections a second from one address, and the sockets below count.)
    const node = await createNetwork({
      identity: await createIdentity(),
      listen: [],
      webRTC: false,
      pubsubDiscovery: false,
      reputationPingMs: 0,
    })
    try {
      const ws = anchor.multiaddrs().find((address) => address.includes('/ws/'))!
      const connection = await node.libp2p.dial(multiaddr(ws), { signal: AbortSignal.timeout(10_000) })
      expect(connection.remotePeer.toString()).toBe(anchor.swarm.network.peerId.toString())
    } finally {
      await node.stop()
    }
    expect(await opens(`http://127.0.0.1:${httpPort}`)).toBe(true)
    expect(await opens(`http://localhost:${httpPort}`)).toBe(true)
    expect(await opens('https://anchor.example.org')).toBe(true) // an allowed host, behind a TLS proxy
    expect(await opens('https://app.example')).toBe(true)
    expect(await opens(undefined)).toBe(true)
    expect((await upgradeAnswer(`http://localhost:${httpPort}`)).status).toBe(101)
  })

  it('takes the allowed origins and the HTTP quotas from options, the environment or a file', () => {
    const config = resolveConfig(
      { allowedOrigins: 'https://app.example, http://localhost:*', uploadBurstBytes: '8388608' },
      { CAN_SWARM_HTTP_REQUESTS_PER_SECOND: '5', CAN_SWARM_ALLOWED_ORIGINS: 'https://ignored.example' },
    )
    expect(config).toMatchObject({
      allowedOrigins: ['https://app.example', 'http://localhost:*'],
      httpRequestsPerSecond: 5,
      httpRequestBurst: 200,
      uploadBytesPerSecond: 1_048_576,
      uploadBurstBytes: 8_388_608,
      artifactStoreBytes: 268_435_456,
      artifactCacheBytes: 67_108_864,
      artifactCacheBytesPerClient: 16_777_216,
    })
    // An upload burst below one largest artifact could never let one through.
    expect(() => resolveConfig({ uploadBurstBytes: '1000' }, {})).toThrow(/uploadBurstBytes/)
  })

  it('matches origins exactly, by port where one is named, and `*` forms', () => {
    const own = {
      host: '127.0.0.1',
      port: 7700,
      allowedHosts: ['anchor.example.org', 'lan.example:8443'],
      allowedOrigins: [],
    }
    expect(originAllowed(undefined, own)).toBe(true)
    expect(originAllowed('http://127.0.0.1:7700', own)).toBe(true)
    expect(originAllowed('http://[::1]:7700', own)).toBe(true)
    expect(originAllowed('http://localhost:7701', own)).toBe(false)
    expect(originAllowed('http://127.0.0.1:7700/path', own)).toBe(false)
    expect(originAllowed('https://anchor.example.org', own)).toBe(true)
    expect(originAllowed('https://anchor.example.org.evil.example', own)).toBe(false)
    expect(originAllowed('https://lan.example:8443', own)).toBe(true)
    expect(originAllowed('https://lan.example', own)).toBe(false)
    expect(originAllowed('ftp://127.0.0.1:7700', own)).toBe(false)
    const listening = { ...own, host: '10.0.0.5' }
    expect(originAllowed('http://10.0.0.5:7700', listening)).toBe(true)
    expect(originAllowed('http://10.0.0.5:7700', { ...own, host: '0.0.0.0' })).toBe(false)
    const dev = { ...own, allowedOrigins: ['http://localhost:*', 'https://app.example/'] }
    expect(originAllowed('http://localhost:5173', dev)).toBe(true)
    expect(originAllowed('http://localhost:5173.evil.example', dev)).toBe(false)
    expect(originAllowed('https://app.example', dev)).toBe(true)
    expect(originAllowed('https://evil.example', { ...own, allowedOrigins: ['*'] })).toBe(true)
  })
})
