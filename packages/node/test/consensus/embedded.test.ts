/**
 * The embedded store on a real file: crash safety under SIGKILL, one process per file, clear
 * errors for bad paths and damaged files, persistence across restarts, and merges.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'
import { MAX_EPOCH, MAX_EPOCH_STEP, MAX_LAMPORT, MemoryConsensusStore } from '@can-swarm/peer'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { EmbeddedConsensusStore } from '../../src/consensus/embedded.ts'
import { eventually } from './helpers/anchors.ts'

const BURST = fileURLToPath(new URL('./fixtures/embedded-burst.ts', import.meta.url))
const root = mkdtempSync(join(tmpdir(), 'can-swarm-embedded-'))
const children = new Set<ChildProcess>()
afterEach(() => {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
})
afterAll(() => rmSync(root, { recursive: true, force: true }))

let counter = 0
function freshPath(): string {
  counter += 1
  const dir = join(root, `store-${counter}`)
  mkdirSync(dir)
  return join(dir, 'consensus.sqlite')
}

interface Burst {
  child: ChildProcess
  lines: Array<{
    ack?: { need: string; proposal: string; outcome: string }
    opened?: true
    error?: string
    done?: true
  }>
  exited: Promise<number | null>
}

function burst(path: string, needs: number, tag: string): Burst {
  const child = spawn(process.execPath, [BURST, path, String(needs), tag], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.add(child)
  const lines: Burst['lines'] = []
  let buffer = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk
    let newline = buffer.indexOf('\n')
    while (newline >= 0) {
      lines.push(JSON.parse(buffer.slice(0, newline)))
      buffer = buffer.slice(newline + 1)
      newline = buffer.indexOf('\n')
    }
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { child, lines, exited }
}

const request = (need: string, proposal: string, epoch = 1) => ({
  need,
  proposal,
  epoch,
  lamport: 1,
  kPlan: 1,
  decider: 'did:key:z6MkTest',
})

describe('embedded store', () => {
  it('SIGKILL during a burst: every acknowledged decision is there after restart', async () => {
    const path = freshPath()
    const first = burst(path, 20_000, 'first')
    await eventually('500 acknowledged decisions', () => first.lines.filter((l) => l.ack).length >= 500)
    first.child.kill('SIGKILL')
    await first.exited
    const acked = first.lines.flatMap((l) => (l.ack ? [l.ack] : []))
    expect(first.lines.some((l) => l.done)).toBe(false) // it really died mid-burst

    const store = await EmbeddedConsensusStore.open({ path })
    try {
      for (const ack of acked) {
        expect((await store.getDecide(ack.need))?.proposal, ack.need).toBe(ack.proposal)
      }
    } finally {
      await store.close()
    }

    // A restarted anchor finds its earlier decisions: retries are idempotent, nothing is decided twice.
    const second = burst(path, 1_000, 'first')
    expect(await second.exited).toBe(0)
    const retried = new Map(second.lines.flatMap((l) => (l.ack ? [[l.ack.need, l.ack] as const] : [])))
    for (const ack of acked.filter((a) => Number(a.need.slice(5)) < 1_000)) {
      expect(retried.get(ack.need)).toEqual({ ...ack, outcome: 'existing' })
    }
  }, 120_000)

  it('one process per file: a second process gets STORE_LOCKED, and the lock dies with its holder', async () => {
    const path = freshPath()
    const holder = burst(path, 0, 'x')
    await eventually('the holder to open the store', () => holder.lines.length > 0)
    expect(holder.lines[0]).toEqual({ opened: true })
    const contender = burst(path, 0, 'x')
    await contender.exited
    expect(contender.lines[0]).toEqual({ error: 'STORE_LOCKED' })
    await expect(EmbeddedConsensusStore.open({ path })).rejects.toMatchObject({
      code: 'STORE_LOCKED',
      field: 'path',
    })
    holder.child.kill('SIGKILL')
    await holder.exited
    const store = await EmbeddedConsensusStore.open({ path })
    await store.close()
  }, 60_000)

  it('bad paths name the field', async () => {
    await expect(EmbeddedConsensusStore.open({ path: '' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'path',
    })
    await expect(
      EmbeddedConsensusStore.open({ path: join(root, 'no-such-dir', 'consensus.sqlite') }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'path', message: /does not exist/ })
    await expect(EmbeddedConsensusStore.open({ path: root })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'path',
      message: /is a directory/,
    })
  })

  it('damaged or foreign files are reported as STORE_CORRUPT', async () => {
    const garbage = freshPath()
    writeFileSync(
      garbage,
      'this is not a database, just some text that is long enough to look like a header'.repeat(20),
    )
    await expect(EmbeddedConsensusStore.open({ path: garbage })).rejects.toMatchObject({
      code: 'STORE_CORRUPT',
    })

    const foreign = freshPath()
    const db = new DatabaseSync(foreign)
    db.exec(
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT; INSERT INTO meta VALUES ('format', 99)",
    )
    db.close()
    await expect(EmbeddedConsensusStore.open({ path: foreign })).rejects.toMatchObject({
      code: 'STORE_CORRUPT',
      message: /format version 99/,
    })

    const tampered = freshPath()
    const store = await EmbeddedConsensusStore.open({ path: tampered })
    await store.tryDecide(request('n1', 'p1'))
    await store.close()
    const raw = new DatabaseSync(tampered)
    raw.exec("UPDATE decides SET bucket = (bucket + 1) % 256 WHERE need = 'n1'")
    raw.close()
    const reopened = await EmbeddedConsensusStore.open({ path: tampered })
    try {
      await expect(reopened.getDecide('n1')).rejects.toMatchObject({ code: 'STORE_CORRUPT' })
    } finally {
      await reopened.close()
    }
  })

  it('keeps decisions and the epoch across restarts', async () => {
    const path = freshPath()
    const store = await EmbeddedConsensusStore.open({ path })
    await store.tryDecide(request('n1', 'p1'))
    expect(await store.advanceEpoch()).toBe(2)
    await store.close()
    await expect(store.tryDecide(request('n2', 'p2', 2))).rejects.toMatchObject({
      code: 'CONSENSUS_UNAVAILABLE',
    })
    const again = await EmbeddedConsensusStore.open({ path, initialEpoch: 7 })
    try {
      expect(await again.currentEpoch()).toBe(2)
      expect((await again.tryDecide(request('n1', 'p1', 2))).outcome).toBe('existing')
      await expect(again.tryDecide(request('n1', 'p1', 1))).rejects.toMatchObject({ code: 'STALE_EPOCH' })
    } finally {
      await again.close()
    }
  })

  it('raises its epoch only by bounded steps, never past MAX_EPOCH (A3), and refuses requests past the bounds', async () => {
    const store = await EmbeddedConsensusStore.open({ path: freshPath() })
    try {
      // A heal or a pool adoption may fence ahead by a little; a record claiming 2^53 − 1 may not.
      await expect(store.fenceEpoch(Number.MAX_SAFE_INTEGER)).rejects.toMatchObject({ field: 'epoch' })
      await expect(store.fenceEpoch(1 + MAX_EPOCH_STEP + 1)).rejects.toMatchObject({ field: 'epoch' })
      expect(await store.currentEpoch()).toBe(1)
      expect(await store.fenceEpoch(1 + MAX_EPOCH_STEP)).toBe(1 + MAX_EPOCH_STEP)
      await expect(store.advanceEpoch(MAX_EPOCH + 1)).rejects.toMatchObject({ field: 'epoch' })
      // The store still decides afterwards: nothing it was offered wedged it.
      expect((await store.tryDecide(request('n1', 'p1', 1 + MAX_EPOCH_STEP))).outcome).toBe('decided')
      await expect(
        store.tryDecide({ ...request('n2', 'p2', 1 + MAX_EPOCH_STEP), lamport: MAX_LAMPORT + 1 }),
      ).rejects.toMatchObject({
        field: 'lamport',
      })
    } finally {
      await store.close()
    }
  })

  it('group commit: concurrent calls for one NEED in one batch still decide it once', async () => {
    const store = await EmbeddedConsensusStore.open({ path: freshPath() })
    try {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.tryDecide(request('hot', `p${i % 5}`))),
      )
      expect(results.filter((r) => r.outcome === 'decided')).toHaveLength(1)
      const winner = results.find((r) => r.outcome === 'decided')!.record
      for (const result of results) expect(result.record).toEqual(winner)
      const aborted = new AbortController()
      aborted.abort(new Error('caller gave up'))
      await expect(store.tryDecide(request('cold', 'p'), { signal: aborted.signal })).rejects.toThrow(
        'caller gave up',
      )
      expect(await store.getDecide('cold')).toBeUndefined()
    } finally {
      await store.close()
    }
  })

  it('merges the other side of a split exactly like MemoryConsensusStore.mergeFrom', async () => {
    const ours = await EmbeddedConsensusStore.open({ path: freshPath() })
    const theirs = await EmbeddedConsensusStore.open({ path: freshPath(), initialEpoch: 2 })
    const reference = new MemoryConsensusStore({ epoch: 1 })
    const referenceTheirs = new MemoryConsensusStore({ epoch: 2 })
    try {
      for (let i = 0; i < 60; i += 1) {
        if (i < 40) {
          const a = { ...request(`n${i}`, `a${i}`), lamport: i % 4 }
          await ours.tryDecide(a)
          reference.tryDecideSync(a)
        }
        if (i >= 20) {
          const b = { ...request(`n${i}`, i % 3 === 0 ? `a${i}` : `b${i}`, 2), lamport: i % 3 }
          await theirs.tryDecide(b)
          referenceTheirs.tryDecideSync(b)
        }
      }
      const report = await ours.mergeFrom(theirs)
      const expected = reference.mergeFrom(referenceTheirs, 3)
      expect(report.epoch).toBe(3)
      expect(report.losers).toEqual([...expected].sort((x, y) => (x.need < y.need ? -1 : 1)))
      expect(await ours.records()).toEqual(reference.records())
      expect(await theirs.currentEpoch()).toBe(3) // the source is fenced
      await expect(ours.mergeFrom(theirs, { epoch: 3 })).rejects.toMatchObject({ field: 'epoch' })
    } finally {
      await ours.close()
      await theirs.close()
    }
  })
})
