/**
 * The relay's WebSocket listener admits the pages of the origins it is told (docs/PROTOCOL.md §13):
 * a listed origin opens, any other page is refused before the upgrade, and a client that sends no
 * `Origin` (not a browser) is served.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { webSocketOpens } from '../../../test-support/peers.ts'
import { type Relay, startRelay } from '../src/relay.ts'

let dir: string
let relay: Relay
let wsUrl: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-relay-origin-'))
  relay = await startRelay({ dataDir: dir, allowedOrigins: ['https://app.example', 'http://localhost:*'] })
  const ws = relay.multiaddrs.find((address) => address.includes('/ws'))!
  wsUrl = `ws://127.0.0.1:${/\/tcp\/(\d+)\/ws/.exec(ws)![1]}/`
}, 60_000)

afterAll(async () => {
  await relay?.stop()
  await rm(dir, { recursive: true, force: true })
})

const opens = (origin: string | undefined) => webSocketOpens(wsUrl, origin)

describe('relay WebSocket origins', () => {
  it('opens for listed origins and non-browser clients, refuses other pages', async () => {
    expect(await opens('https://app.example')).toBe(true)
    expect(await opens('http://localhost:5173')).toBe(true)
    expect(await opens(undefined)).toBe(true)
    expect(await opens('https://evil.example')).toBe(false)
    expect(await opens('http://localhost')).toBe(false)
    expect(await opens('null')).toBe(false)
  })
})
