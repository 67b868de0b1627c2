/**
 * The verifier manifests' store (anchor/manifests.ts): a put appends one line (its cost does not
 * grow with the verifiers held), concurrent puts share an fsync and keep seq order, a torn or
 * damaged line is dropped on open, the file of earlier versions is folded in, runs of puts compact
 * the file, and a process killed with SIGKILL mid-stream loses no acknowledged manifest.
 */
import { spawn } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Identity } from '@can-swarm/peer'
import { signManifest } from '@can-swarm/peer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeIdentities, TEST_NET } from '../../../test-support/envelopes.ts'
import { ManifestStore } from '../src/anchor/manifests.ts'

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-manifests-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const manifest = (identity: Identity, seq: number, stake = 100) =>
  signManifest(identity, { net: TEST_NET, org: 'acme', asn: 'AS64500', region: 'eu', stake, seq })

async function fresh(name: string): Promise<string> {
  const data = join(dir, name)
  await mkdir(data, { recursive: true })
  return data
}

describe('the manifest store', () => {
  it('appends one line per put, whatever the number of verifiers held', async () => {
    const data = await fresh('append')
    const store = await ManifestStore.open(data, TEST_NET)
    const verifiers = await makeIdentities(200, 31)
    const growth: number[] = []
    for (const identity of verifiers) {
      const before = existsSync(store.path) ? statSync(store.path).size : 0
      expect(await store.put(identity.did, await manifest(identity, 1))).toBeUndefined()
      growth.push(statSync(store.path).size - before)
    }
    // Every put wrote about one line, the 200th no more than the first.
    expect(Math.max(...growth)).toBeLessThan(1_000)
    expect(Math.max(...growth) - Math.min(...growth)).toBeLessThan(8)
    expect(store.lines).toBe(200)
    // Concurrent puts of one verifier: the higher seq wins, the equal one is refused.
    const [alice] = verifiers
    const answers = await Promise.all([
      store.put(alice!.did, await manifest(alice!, 2)),
      store.put(alice!.did, await manifest(alice!, 3)),
      store.put(alice!.did, await manifest(alice!, 3, 7)),
    ])
    expect(answers.map((answer) => answer?.status)).toEqual([undefined, undefined, 409])
    store.close()
    const reopened = await ManifestStore.open(data, TEST_NET)
    expect(reopened.all()).toHaveLength(200)
    expect(reopened.all().find((entry) => entry.did === alice!.did)?.seq).toBe(3)
    expect(reopened.lines).toBe(200) // superseded lines compacted away on open
    reopened.close()
  })

  it('drops a torn or damaged line on open, folds in the file of earlier versions, and compacts', async () => {
    const data = await fresh('torn')
    const [alice, bob, carol] = await makeIdentities(3, 32)
    // An earlier version's single file holds carol's seq 1.
    writeFileSync(
      join(data, 'manifests.json'),
      `${JSON.stringify([{ manifest: await manifest(carol!, 1), atMs: 5 }])}\n`,
    )
    let store = await ManifestStore.open(data, TEST_NET)
    expect(existsSync(join(data, 'manifests.json'))).toBe(false)
    expect(await store.put(alice!.did, await manifest(alice!, 1))).toBeUndefined()
    expect(await store.put(bob!.did, await manifest(bob!, 1))).toBeUndefined()
    store.close()
    const whole = readFileSync(store.path, 'utf8')
    // A bit flip in bob's line (its signature no longer holds), then a crash mid-append of alice's seq 2.
    const lines = whole
      .split('\n')
      .map((line) => (line.includes(bob!.did) ? line.replace('"stake":100', '"stake":900') : line))
    writeFileSync(store.path, lines.join('\n'))
    appendFileSync(store.path, JSON.stringify({ manifest: await manifest(alice!, 2), atMs: 9 }).slice(0, 80))
    store = await ManifestStore.open(data, TEST_NET)
    const held = new Map(store.all().map((entry) => [entry.did, entry]))
    expect(held.get(carol!.did)).toMatchObject({ seq: 1, atMs: 5 })
    expect(held.get(alice!.did)?.seq).toBe(1)
    expect(held.has(bob!.did)).toBe(false) // its only line was damaged: dropped, not trusted
    expect(held.size).toBe(2)
    expect(readFileSync(store.path, 'utf8').endsWith('\n')).toBe(true) // the torn tail is gone
    expect(await store.put(alice!.did, await manifest(alice!, 2))).toBeUndefined()
    store.close()
    expect(
      (await ManifestStore.open(data, TEST_NET)).all().find((entry) => entry.did === alice!.did)?.seq,
    ).toBe(2)
  })

  it('loses no acknowledged manifest when the process is killed mid-stream (SIGKILL), compactions included', async () => {
    // 16 verifiers, 80 rounds of puts: past 2 × 16 + 1 024 lines the writer compacts its file.
    const data = await fresh('killed')
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, 'helpers', 'manifest-writer.ts'), data],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    const acknowledged = new Map<string, number>()
    let buffered = ''
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject)
      child.on('exit', (code, signal) =>
        signal === 'SIGKILL' ? resolve() : reject(new Error(`exited ${code}`)),
      )
      child.stdout.setEncoding('utf8')
      child.stdout.on('data', (chunk: string) => {
        buffered += chunk
        const lines = buffered.split('\n')
        buffered = lines.pop()!
        for (const line of lines) {
          const [did, seq] = line.split(' ')
          acknowledged.set(did!, Math.max(Number(seq), acknowledged.get(did!) ?? 0))
        }
        if ([...acknowledged.values()].reduce((sum, seq) => sum + seq, 0) >= 16 * 80) child.kill('SIGKILL')
      })
    })
    expect(acknowledged.size).toBe(16)
    const store = await ManifestStore.open(data, TEST_NET)
    const held = new Map(store.all().map((entry) => [entry.did, entry.seq]))
    for (const [did, seq] of acknowledged) expect(held.get(did)).toBeGreaterThanOrEqual(seq)
    store.close()
  }, 60_000)
})
