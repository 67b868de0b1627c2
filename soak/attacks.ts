/**
 * The soak's attacks on a real anchor, each at a fixed rate (times `rate`) so that the machine is
 * loaded, not simply saturated, and each counting what it sent and how the anchor answered:
 *
 * - `flood`: gossip floods of valid signed envelopes from fresh keys (a new key every
 *   {@link KEY_USES} envelopes) through a fresh libp2p node in the anchor's mesh: NEEDs of bogus
 *   threads, PROPOSEs and CLAIMs on them, ATTEST_PLANs from outside the pool on the threads live
 *   on the network, and orphans (votes on threads nobody opened);
 * - `bombs`: decode bombs on the DECIDE service and on envelope sync, on raw streams: declared
 *   lengths over the limit, declared lengths never sent (slow bodies), deeply nested CBOR, CBOR
 *   heads announcing 2^32 items, maximum-size junk;
 * - `http`: slowloris (many sockets dribbling headers, never finishing), slow uploads (a body
 *   dribbled at a few bytes per second), junk uploads (`PUT /api/artifacts/<cid>` of random bytes
 *   that do not hash to the CID, over the size limit, or valid but unasked) and a probe
 *   (`GET /healthz` once a second) that sees whether honest clients are still served;
 * - `sync`: envelope sync abuse from several fresh peers: sessions held open without a request,
 *   sessions beyond the per-peer limit, requests over the rate limit — `ranges` of random bounds
 *   and fingerprints, `get` of ids nobody holds, `scan` of everything — and malformed ranges;
 * - `squat` (not in the default rotation): CLAIMs at cost 0 with the longest lease the policy
 *   allows, from a fresh key each, on the tasks of plans the network just decided (a liveness
 *   attack on honest work);
 * - `poison` (not in the default rotation): the same CLAIMs asking a lease over the policy's limit,
 *   which peers without the policy gate take and relay, and the anchor denies.
 */
import { connect, type Socket } from 'node:net'
import type { AnyEnvelope, Envelope } from '@can-swarm/peer'
import {
  artifactCid,
  createIdentity,
  DECIDE_PROTOCOL,
  decodeResponse,
  decodeSyncResponse,
  encodeSyncRequest,
  type LocalIdentity,
  MAX_MESSAGE_BYTES as MAX_DECIDE_BYTES,
  MAX_RANGES_PER_REQUEST,
  MAX_SYNC_MESSAGE_BYTES,
  MAX_SYNC_REQUEST_BYTES,
  SYNC_PROTOCOL,
  type SyncRequest,
} from '@can-swarm/peer'
import { allShardTopics, createBus, createNetwork, type Network } from '@can-swarm/peer/net'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { signNeed } from '../test-support/envelopes.ts'
import { forge, gossipRaw, type HostileNode } from '../test-support/hostile.ts'

export const ATTACK_KINDS = ['flood', 'bombs', 'http', 'sync', 'squat', 'poison'] as const
export type AttackKind = (typeof ATTACK_KINDS)[number]
/** What a soak rotates through unless told otherwise. */
export const DEFAULT_ATTACK_KINDS: readonly AttackKind[] = ['flood', 'bombs', 'http', 'sync']

/** Counters of one attacker: `<attack>.<what>` → count (or a maximum, for `…_max_ms`). */
export class Counters {
  readonly values: Record<string, number> = {}
  add(key: string, amount = 1): void {
    this.values[key] = (this.values[key] ?? 0) + amount
  }
  max(key: string, value: number): void {
    this.values[key] = Math.max(this.values[key] ?? 0, Math.round(value))
  }
}

export interface AttackContext {
  anchorUrl: string
  /** The anchor's TCP multiaddr, with /p2p/<id>. */
  anchorTcp: string
  /** The network id (every envelope names it). */
  net: string
  /** Multiplies every rate. */
  rate: number
  counters: Counters
  signal: AbortSignal
}

/** Envelopes a flood key signs before a fresh one takes over. */
export const KEY_USES = 8
/** Envelopes per second a flood sends (× rate). */
const FLOOD_PER_S = 40
/** Bombs per second, all kinds (× rate). */
const BOMBS_PER_S = 4
/** Peers the sync bombs come from. */
const SYNC_BOMB_PEERS = 4
/** Sockets slowloris holds at most, slow uploads at most, junk uploads per second (× rate). */
const SLOW_SOCKETS = 100
const SLOW_UPLOADS = 16
const JUNK_PER_S = 2
/** Sync requests per second per abusing peer (the server allows 50, burst 100), peers (× rate). */
const SYNC_REQUESTS_PER_S = 80
const SYNC_PEERS = 3

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        resolve()
      },
      { once: true },
    )
  })

/** Calls `step` `perSecond` times a second (never overlapping itself) until `signal` aborts. */
async function paced(perSecond: number, signal: AbortSignal, step: () => Promise<void>): Promise<void> {
  const interval = 1000 / perSecond
  let next = performance.now()
  while (!signal.aborted) {
    await step()
    next += interval
    const wait = next - performance.now()
    if (wait > 0) await sleep(wait, signal)
    else if (wait < -1000) next = performance.now() // fell behind: do not burst to catch up
  }
}

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n))
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!
const randomBytes = (n: number) => {
  const bytes = new Uint8Array(n)
  for (let at = 0; at < n; at += 65_536) bytes.set(random(Math.min(65_536, n - at)), at)
  return bytes
}

/** The short name of an error or refusal, for a counter: its code, or its class. */
function reasonOf(text: string): string {
  const code = /^([A-Z][A-Z_]+):/.exec(text)?.[1]
  return (code ?? text.split(/[\s:(]/)[0] ?? 'other').slice(0, 40).toLowerCase() || 'other'
}

/** A fresh libp2p node of a fresh key, connected to the anchor (dials are retried: the anchor admits a few inbound connections per second per host). */
async function freshNode(ctx: AttackContext, gossip: boolean): Promise<Network> {
  const network = await createNetwork({
    identity: await createIdentity(),
    webRTC: false,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    ...(gossip ? {} : { pubsubDiscovery: false, dialDiscoveredBelow: 0 }),
  })
  for (let attempt = 1; ; attempt += 1) {
    try {
      await network.libp2p.dial(multiaddr(ctx.anchorTcp), { signal: AbortSignal.timeout(10_000) })
      ctx.counters.add('nodes.connected')
      return network
    } catch (error) {
      ctx.counters.add('nodes.dial_refused')
      if (attempt >= 10 || ctx.signal.aborted) {
        await network.stop().catch(() => undefined)
        throw error
      }
      await sleep(300 * attempt, ctx.signal)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Gossip floods

interface LiveThread {
  thread: string
  propose: Envelope<'PROPOSE'>
  decide?: Envelope<'DECIDE'>
}

/** A NEED under its own thread id (any key can open a thread, A1), for a capability. */
function bogusNeed(identity: LocalIdentity, net: string, capability: string): Promise<AnyEnvelope> {
  return signNeed(
    identity,
    {
      epoch: 1,
      requires: [capability],
      inputs: [artifactCid(random(32))],
      produces: 'text/plain',
      budget: 5,
      deadlineMs: Date.now() + 60_000,
      bidWindowMs: 100,
    },
    { net, ts: Date.now() },
  )
}

/** A node in the anchor's gossip mesh that hears the network's live plans. */
async function gossipNode(ctx: AttackContext): Promise<{ node: HostileNode; live: LiveThread[] }> {
  const network = await freshNode(ctx, true)
  const bus = createBus(network)
  const live: LiveThread[] = []
  bus.onEnvelope((env) => {
    if (env.kind === 'PROPOSE') {
      live.push({ thread: env.thread, propose: env as Envelope<'PROPOSE'> })
      if (live.length > 64) live.shift()
    } else if (env.kind === 'DECIDE') {
      const entry = live.find((item) => item.thread === env.thread)
      if (entry) entry.decide = env as Envelope<'DECIDE'>
    }
  })
  // Wait (a while) for the anchor in the mesh of every shard topic; fanout serves otherwise.
  const anchorPeer = ctx.anchorTcp.slice(ctx.anchorTcp.lastIndexOf('/') + 1)
  const pubsub = network.pubsub as unknown as { getMeshPeers(topic: string): string[] }
  const deadline = Date.now() + 10_000
  while (
    !ctx.signal.aborted &&
    Date.now() < deadline &&
    !allShardTopics(network.config.shardCount).every((t) => pubsub.getMeshPeers(t).includes(anchorPeer))
  )
    await sleep(200, ctx.signal)
  return {
    node: {
      network,
      bus,
      async stop() {
        bus.close()
        await network.stop()
      },
    },
    live,
  }
}

/** Gossip floods of valid envelopes from rotating fresh keys (see the module's comment). */
export async function flood(ctx: AttackContext): Promise<void> {
  const { node, live } = await gossipNode(ctx)
  const { counters, net } = ctx
  const own: Array<{ need: AnyEnvelope; propose?: AnyEnvelope }> = []
  let key = await createIdentity()
  let uses = 0
  const signer = async () => {
    if (uses++ >= KEY_USES) {
      key = await createIdentity()
      uses = 1
      counters.add('flood.keys')
    }
    return key
  }
  const build = async (): Promise<[string, AnyEnvelope]> => {
    const roll = Math.random()
    const mine = own.length > 0 ? pick(own) : undefined
    if (roll < 0.3 || !mine) {
      // Most bogus NEEDs ask for a capability nobody has; one in four for one honest planners do.
      const need = await bogusNeed(await signer(), net, Math.random() < 0.25 ? 'sha256' : 'soak-nothing')
      own.push({ need })
      if (own.length > 64) own.shift()
      return ['need', need]
    }
    if (roll < 0.5) {
      const inputs = (mine.need.payload as { inputs: string[] }).inputs
      const propose = await forge(await signer(), {
        kind: 'PROPOSE',
        thread: mine.need.thread,
        net,
        lamport: 2,
        payload: {
          need: mine.need.thread,
          patch: [{ name: 'bogus', capability: 'soak-nothing', inputs, produces: 'text/plain' }],
          ballot: 1,
          price: 1,
          etaMs: 1,
          shardDependencies: [],
        },
      })
      mine.propose = propose
      return ['propose', propose]
    }
    if (roll < 0.7 && live.length > 0) {
      // A vote from outside the verifier pool on a plan live on the network.
      const target = pick(live)
      return [
        'attest_plan_live',
        await forge(await signer(), {
          kind: 'ATTEST_PLAN',
          thread: target.thread,
          net,
          lamport: target.propose.lamport + 1,
          payload: { need: target.thread, proposal: target.propose.id, verdict: 'accept' },
        }),
      ]
    }
    if (roll < 0.85 && mine.propose) {
      // A CLAIM of a task of an undecided plan.
      return [
        'claim',
        await forge(await signer(), {
          kind: 'CLAIM',
          thread: mine.need.thread,
          net,
          lamport: 3,
          payload: { task: `${mine.propose.id}/bogus`, leaseTtlMs: 1000, cost: 1, etaMs: 1 },
        }),
      ]
    }
    // An orphan: a vote in a thread nobody opened.
    const thread = artifactCid(random(32))
    return [
      'orphan',
      await forge(await signer(), {
        kind: 'ATTEST_PLAN',
        thread,
        net,
        lamport: 2,
        payload: { need: thread, proposal: artifactCid(random(32)), verdict: 'accept' },
      }),
    ]
  }
  try {
    await paced(FLOOD_PER_S * ctx.rate, ctx.signal, async () => {
      const [what, env] = await build()
      try {
        await gossipRaw(node, env)
        counters.add('flood.sent')
        counters.add(`flood.sent.${what}`)
      } catch (error) {
        counters.add(`flood.publish_error.${reasonOf((error as Error).message)}`)
      }
    })
  } finally {
    await node.stop().catch(() => undefined)
  }
}

/**
 * CLAIMs at cost 0, a fresh key each, on the tasks of freshly decided plans, asking a lease of
 * `leaseTtlMs`: within the base policy (`squat`), or over it (`poison`: every peer's schema takes
 * it, the anchor's policy gate denies it, so honest peers without that gate relay it and are
 * penalised for it).
 */
function claimsOnLiveTasks(name: 'squat' | 'poison', leaseTtlMs: number) {
  return async (ctx: AttackContext): Promise<void> => {
    const { node, live } = await gossipNode(ctx)
    const claimed = new Set<string>()
    try {
      await paced(5 * ctx.rate, ctx.signal, async () => {
        const target = live.find((item) => item.decide && !claimed.has(item.thread))
        if (!target) return
        claimed.add(target.thread)
        for (const spec of target.propose.payload.patch) {
          const env = await forge(await createIdentity(), {
            kind: 'CLAIM',
            thread: target.thread,
            net: ctx.net,
            lamport: target.decide!.lamport + 1,
            payload: { task: `${target.propose.id}/${spec.name}`, leaseTtlMs, cost: 0, etaMs: 1 },
          })
          await gossipRaw(node, env)
            .then(() => ctx.counters.add(`${name}.sent`))
            .catch(() => ctx.counters.add(`${name}.publish_error`))
        }
      })
    } finally {
      await node.stop().catch(() => undefined)
    }
  }
}

/** The longest lease the base policy allows a CLAIM to ask (`budget-ttl`). */
const POLICY_MAX_LEASE_MS = 600_000

// ---------------------------------------------------------------------------------------------
// Decode bombs on raw streams

/** The varint of `n` (a length prefix), for any n up to 2^53. */
function varint(n: number): Uint8Array {
  const bytes: number[] = []
  let rest = n
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80)
    rest = Math.floor(rest / 0x80)
  }
  bytes.push(rest)
  return Uint8Array.from(bytes)
}

/** `depth` nested one-element CBOR arrays around a 0. */
function nestedCbor(depth: number): Uint8Array {
  const bytes = new Uint8Array(depth + 1).fill(0x81)
  bytes[depth] = 0
  return bytes
}

/** A CBOR map head announcing 2^32 − 1 entries, then a few. */
const ITEMS_BOMB = Uint8Array.from([0xba, 0xff, 0xff, 0xff, 0xff, 0x61, 0x61, 0x00, 0x61, 0x62, 0x00])

interface Bomb {
  name: string
  /** The declared length (the varint prefix). */
  declared: number
  /** What is sent after the prefix (less than declared for a slow body). */
  body: Uint8Array
}

function bombsFor(maxBytes: number): Array<() => Bomb> {
  return [
    () => ({ name: 'over_length', declared: maxBytes * 16, body: randomBytes(1024) }),
    () => ({ name: 'never_sent', declared: maxBytes - 1, body: randomBytes(1024) }),
    () => {
      const body = nestedCbor(Math.min(100_000, maxBytes - 1))
      return { name: 'nested', declared: body.length, body }
    },
    () => ({ name: 'items', declared: ITEMS_BOMB.length, body: ITEMS_BOMB }),
    () => {
      const body = randomBytes(Math.min(maxBytes, 1024 * 1024))
      return { name: 'junk', declared: body.length, body }
    },
  ]
}

/** Writes `bytes` to a stream, waiting for it to drain. */
async function write(stream: Stream, bytes: Uint8Array, signal: AbortSignal): Promise<void> {
  for (let at = 0; at < bytes.length; at += 65_536) {
    if (stream.writeStatus !== 'writable') return
    if (!stream.send(bytes.subarray(at, at + 65_536))) await stream.onDrain({ signal })
  }
}

/** Sends one bomb and classifies the answer: a typed refusal, a reset, a timeout. */
async function detonate(
  network: Network,
  ctx: AttackContext,
  target: 'decide' | 'sync',
  bomb: Bomb,
): Promise<void> {
  const key = `bombs.${target}.${bomb.name}`
  const started = performance.now()
  ctx.counters.add(`${key}.sent`)
  const signal = AbortSignal.timeout(20_000)
  let stream: Stream | undefined
  try {
    stream = await network.libp2p.dialProtocol(
      multiaddr(ctx.anchorTcp),
      target === 'decide' ? DECIDE_PROTOCOL : SYNC_PROTOCOL,
      { signal },
    )
    await write(stream, varint(bomb.declared), signal)
    void write(stream, bomb.body, signal).catch(() => undefined)
    const bytes = (
      await lpStream(stream, { maxDataLength: MAX_SYNC_MESSAGE_BYTES }).read({ signal })
    ).subarray()
    let answer: string
    if (target === 'decide') {
      const response = decodeResponse(bytes)
      answer = response.outcome === 'decided' ? 'decided' : `refused.${reasonOf(response.reason)}`
    } else {
      const response = decodeSyncResponse(bytes)
      answer = response.op === 'refused' ? `refused.${response.reason}` : `answered.${response.op}`
    }
    ctx.counters.add(`${key}.${answer}`)
  } catch (error) {
    const name = (error as Error).name
    ctx.counters.add(
      `${key}.${name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : name === 'UnexpectedEOFError' || /reset|abort|closed/i.test((error as Error).message) ? 'reset' : `error.${reasonOf(name)}`}`,
    )
  } finally {
    ctx.counters.max(`${key}.answer_max_ms`, performance.now() - started)
    stream?.abort(new Error('done'))
  }
}

/**
 * Decode bombs on the DECIDE service and envelope sync (see the module's comment). Sync bombs come
 * from {@link SYNC_BOMB_PEERS} peers, at most two sessions each (the server's per-peer limit), so
 * that they reach the decoder instead of being refused as busy.
 */
export async function bombs(ctx: AttackContext): Promise<void> {
  const nodes: Array<{ network: Network; target: 'decide' | 'sync'; inFlight: number; limit: number }> = []
  const kinds: Array<['decide' | 'sync', () => Bomb]> = [
    ...bombsFor(MAX_DECIDE_BYTES).map((make) => ['decide', make] as ['decide', () => Bomb]),
    ...bombsFor(MAX_SYNC_REQUEST_BYTES).map((make) => ['sync', make] as ['sync', () => Bomb]),
  ]
  const shots = new Set<Promise<void>>()
  let next = 0
  try {
    nodes.push({ network: await freshNode(ctx, false), target: 'decide', inFlight: 0, limit: 8 })
    for (let i = 0; i < SYNC_BOMB_PEERS; i += 1)
      nodes.push({ network: await freshNode(ctx, false), target: 'sync', inFlight: 0, limit: 2 })
    await paced(BOMBS_PER_S * ctx.rate, ctx.signal, async () => {
      const [target, make] = kinds[next++ % kinds.length]!
      const node = nodes.find(
        (candidate) => candidate.target === target && candidate.inFlight < candidate.limit,
      )
      if (!node) {
        ctx.counters.add(`bombs.${target}.held_back`)
        return
      }
      node.inFlight += 1
      const shot = detonate(node.network, ctx, target, make()).finally(() => {
        node.inFlight -= 1
        shots.delete(shot)
      })
      shots.add(shot)
    })
    await Promise.race([Promise.allSettled(shots), sleep(2_000)])
  } finally {
    for (const node of nodes) await node.network.stop().catch(() => undefined)
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP: slowloris, slow uploads, junk uploads, and a probe

interface Slow {
  socket: Socket
  openedAt: number
  answered: boolean
}

/** Opens a socket that sends `head`, then dribbles `drip()` every `everyMs`, until cut or stopped. */
function slowSocket(
  ctx: AttackContext,
  name: string,
  head: string,
  drip: () => string,
  everyMs: number,
  held: Set<Slow>,
): void {
  const url = new URL(ctx.anchorUrl)
  const socket = connect({ host: url.hostname, port: Number(url.port) })
  const slow: Slow = { socket, openedAt: performance.now(), answered: false }
  held.add(slow)
  ctx.counters.add(`http.${name}.opened`)
  let timer: ReturnType<typeof setInterval> | undefined
  socket.setNoDelay(true)
  socket.on('connect', () => {
    socket.write(head)
    timer = setInterval(() => {
      if (!socket.destroyed) socket.write(drip())
    }, everyMs)
  })
  socket.on('data', (chunk: Buffer) => {
    if (slow.answered) return
    slow.answered = true
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 'other'
    ctx.counters.add(`http.${name}.answered.${status}`)
  })
  socket.on('error', () => undefined)
  socket.on('close', () => {
    clearInterval(timer)
    held.delete(slow)
    if (ctx.signal.aborted) return
    const lived = performance.now() - slow.openedAt
    // Closed within a second of opening: the server refused the connection (at its socket limit).
    ctx.counters.add(`http.${name}.${lived < 1000 && !slow.answered ? 'refused' : 'cut'}`)
    ctx.counters.max(`http.${name}.lived_max_ms`, lived)
  })
}

async function junkUpload(ctx: AttackContext): Promise<void> {
  const roll = Math.random()
  let variant: string
  let path: string
  let body: Uint8Array<ArrayBuffer>
  if (roll < 0.5) {
    variant = 'mismatch' // bytes that do not hash to the CID named
    body = randomBytes(64 * 1024)
    path = `/api/artifacts/${artifactCid(random(32))}`
  } else if (roll < 0.7) {
    variant = 'oversize'
    body = randomBytes(5 * 1024 * 1024)
    path = `/api/artifacts/${artifactCid(body)}`
  } else if (roll < 0.85) {
    variant = 'valid' // an upload the anchor keeps (until its store is full): nobody asked for it
    body = randomBytes(256 * 1024)
    path = `/api/artifacts/${artifactCid(body)}`
  } else {
    variant = 'bad_path'
    body = randomBytes(1024)
    path = `/api/artifacts/..%2F..%2F${'%ZZ'.repeat(40)}`
  }
  ctx.counters.add(`http.junk.${variant}.sent`)
  ctx.counters.add(`http.junk.bytes_sent`, body.length)
  try {
    const response = await fetch(`${ctx.anchorUrl}${path}`, {
      method: 'PUT',
      body,
      signal: AbortSignal.timeout(15_000),
    })
    await response.arrayBuffer().catch(() => undefined)
    ctx.counters.add(`http.junk.${variant}.status.${response.status}`)
  } catch (error) {
    ctx.counters.add(`http.junk.${variant}.error.${reasonOf((error as Error).name)}`)
  }
}

async function probe(ctx: AttackContext): Promise<void> {
  const started = performance.now()
  try {
    const response = await fetch(`${ctx.anchorUrl}/healthz`, { signal: AbortSignal.timeout(5_000) })
    await response.arrayBuffer()
    ctx.counters.add(`http.probe.status.${response.status}`)
  } catch (error) {
    ctx.counters.add(`http.probe.error.${reasonOf((error as Error).name)}`)
  }
  ctx.counters.max('http.probe.answer_max_ms', performance.now() - started)
}

/** Slowloris, slow uploads, junk uploads and a probe (see the module's comment). */
export async function http(ctx: AttackContext): Promise<void> {
  const slow = new Set<Slow>()
  const uploads = new Set<Slow>()
  const host = new URL(ctx.anchorUrl).host
  let header = 0
  const tasks = [
    // Slowloris: up to SLOW_SOCKETS, 20 new ones a second at most, a header line every 2 s.
    paced(20 * ctx.rate, ctx.signal, async () => {
      if (slow.size >= SLOW_SOCKETS * ctx.rate) return
      slowSocket(
        ctx,
        'slowloris',
        `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n`,
        () => `X-Soak-${header++}: ${'a'.repeat(8)}\r\n`,
        2_000,
        slow,
      )
    }),
    // Slow uploads: a 1 MiB body announced, 64 bytes a second sent.
    paced(2 * ctx.rate, ctx.signal, async () => {
      if (uploads.size >= SLOW_UPLOADS * ctx.rate) return
      slowSocket(
        ctx,
        'slow_upload',
        `PUT /api/artifacts/${artifactCid(random(32))} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1048576\r\n\r\n`,
        () => 'x'.repeat(64),
        1_000,
        uploads,
      )
    }),
    paced(JUNK_PER_S * ctx.rate, ctx.signal, () => junkUpload(ctx)),
    paced(1, ctx.signal, () => probe(ctx)),
  ]
  await Promise.all(tasks)
  ctx.counters.add('http.slowloris.held_at_end', slow.size)
  ctx.counters.add('http.slow_upload.held_at_end', uploads.size)
  for (const held of [...slow, ...uploads]) held.socket.destroy()
}

// ---------------------------------------------------------------------------------------------
// Envelope sync abuse

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'
const randomId = () => `bafyrei${Array.from(random(52), (b) => BASE32[b % 32]).join('')}`
const randomKey = () => ({
  thread: randomId(),
  lamport: 1 + Math.floor(Math.random() * 1000),
  sender: 'did:key:z6Mk',
  id: randomId(),
})

function abusiveRequest(): [string, SyncRequest] {
  const roll = Math.random()
  if (roll < 0.45) {
    const ranges = Array.from({ length: MAX_RANGES_PER_REQUEST }, () => {
      const [a, b] = [randomKey(), randomKey()].sort((x, y) => (x.thread < y.thread ? -1 : 1))
      return { lo: a!, hi: b!, count: Math.floor(Math.random() * 1000), sum: random(32) }
    })
    return ['ranges', { op: 'ranges', ranges }]
  }
  if (roll < 0.7) return ['get', { op: 'get', ids: Array.from({ length: 512 }, randomId) }]
  if (roll < 0.95) return ['scan', { op: 'scan', lo: null, hi: null }]
  // lo after hi: malformed (the server ends the session).
  const key = randomKey()
  return ['malformed', { op: 'scan', lo: { ...key, thread: `${key.thread}z` }, hi: key }]
}

interface SyncSession {
  stream: Stream
  framed: ReturnType<typeof lpStream>
}

async function openSession(network: Network, ctx: AttackContext, what: string): Promise<SyncSession> {
  const stream = await network.libp2p.dialProtocol(multiaddr(ctx.anchorTcp), SYNC_PROTOCOL, {
    signal: AbortSignal.timeout(10_000),
  })
  ctx.counters.add(`sync.${what}.opened`)
  return {
    stream,
    framed: lpStream(stream, {
      maxDataLength: MAX_SYNC_MESSAGE_BYTES,
      maxBufferSize: MAX_SYNC_MESSAGE_BYTES + 16,
    }),
  }
}

/** One abusing peer: a session held open without a word, and a session of requests over the rate. */
async function abuser(network: Network, ctx: AttackContext): Promise<void> {
  const hoard = async () => {
    while (!ctx.signal.aborted) {
      const started = performance.now()
      try {
        const session = await openSession(network, ctx, 'hoard')
        // Nothing is sent: the server waits for a request until its timeout, then ends the session.
        const answer = decodeSyncResponse(
          (
            await session.framed.read({ signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(60_000)]) })
          ).subarray(),
        )
        ctx.counters.add(`sync.hoard.${answer.op === 'refused' ? `refused.${answer.reason}` : 'answered'}`)
        session.stream.abort(new Error('done'))
      } catch (error) {
        if (ctx.signal.aborted) return
        ctx.counters.add(`sync.hoard.ended.${reasonOf((error as Error).name)}`)
      }
      ctx.counters.max('sync.hoard.held_max_ms', performance.now() - started)
      await sleep(100, ctx.signal)
    }
  }
  const requests = async () => {
    let session: SyncSession | undefined
    await paced(SYNC_REQUESTS_PER_S, ctx.signal, async () => {
      const [what, request] = abusiveRequest()
      const started = performance.now()
      try {
        session ??= await openSession(network, ctx, 'requests')
        ctx.counters.add(`sync.${what}.sent`)
        await session.framed.write(encodeSyncRequest(request), { signal: AbortSignal.timeout(10_000) })
        const response = decodeSyncResponse(
          (await session.framed.read({ signal: AbortSignal.timeout(10_000) })).subarray(),
        )
        ctx.counters.add(
          `sync.${what}.${response.op === 'refused' ? `refused.${response.reason}` : 'answered'}`,
        )
        if (response.op === 'refused' && response.reason !== 'rate') {
          session.stream.abort(new Error('refused'))
          session = undefined
        }
      } catch (error) {
        ctx.counters.add(`sync.${what}.error.${reasonOf((error as Error).name)}`)
        session?.stream.abort(new Error('error'))
        session = undefined
      }
      ctx.counters.max(`sync.${what}.answer_max_ms`, performance.now() - started)
    })
    session?.stream.abort(new Error('stopped'))
  }
  // A third session, over the per-peer limit of two: refused as busy.
  const extra = async () => {
    await sleep(1_000, ctx.signal)
    while (!ctx.signal.aborted) {
      try {
        const session = await openSession(network, ctx, 'extra')
        session.framed.write(encodeSyncRequest({ op: 'get', ids: [randomId()] })).catch(() => undefined)
        const response = decodeSyncResponse(
          (await session.framed.read({ signal: AbortSignal.timeout(10_000) })).subarray(),
        )
        ctx.counters.add(
          `sync.extra.${response.op === 'refused' ? `refused.${response.reason}` : 'answered'}`,
        )
        session.stream.abort(new Error('done'))
      } catch (error) {
        ctx.counters.add(`sync.extra.error.${reasonOf((error as Error).name)}`)
      }
      await sleep(2_000, ctx.signal)
    }
  }
  await Promise.all([hoard(), requests(), extra()])
}

/** Envelope sync abuse from several fresh peers (see the module's comment). */
export async function syncAbuse(ctx: AttackContext): Promise<void> {
  const networks: Network[] = []
  try {
    for (let i = 0; i < Math.max(1, Math.round(SYNC_PEERS * ctx.rate)); i += 1)
      networks.push(await freshNode(ctx, false))
    await Promise.all(networks.map((network) => abuser(network, ctx)))
  } finally {
    for (const network of networks) await network.stop().catch(() => undefined)
  }
}

/** Each attack by name. */
export const ATTACKS: Record<AttackKind, (ctx: AttackContext) => Promise<void>> = {
  flood,
  bombs,
  http,
  sync: syncAbuse,
  squat: claimsOnLiveTasks('squat', POLICY_MAX_LEASE_MS),
  poison: claimsOnLiveTasks('poison', 3_600_000),
}
