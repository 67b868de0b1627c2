/**
 * The Node plan document storage as a file system sees it: framed chunks written through a
 * fsync'd temporary file and a rename, torn or flipped files quarantined instead of breaking the
 * document, keys that cannot name a file refused, and a process killed while saving documents
 * leaves every one of them loadable.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Repo } from '@automerge/automerge-repo/slim'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { frameChunk, PlanStorageKeyError, planStorage, unframeChunk } from '../src/plan-sync/storage.ts'
import { initPlanSyncWasm } from '../src/plan-sync/wasm.ts'

const dirs: string[] = []
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'can-swarm-plan-storage-'))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** Every file under `dir`, relative. */
function tree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort()
}

const DOC = '4NMNnkMhL8jXrdJ9jamS58PAVdXu'

describe('plan document files', () => {
  it('frames round-trip, and any cut or flipped byte is refused', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (payload, at, flip) => {
          const framed = frameChunk(payload)
          expect(unframeChunk(framed)).toEqual(payload)
          expect(unframeChunk(framed.subarray(0, at % framed.length))).toBeUndefined()
          const flipped = framed.slice()
          const index = at % flipped.length
          flipped[index] = (flipped[index] ?? 0) ^ flip
          expect(unframeChunk(flipped)).toBeUndefined()
        },
      ),
    )
  })

  it('saves, loads, lists and removes by key, with nothing left behind but the chunks', async () => {
    const dir = scratch()
    const storage = planStorage(dir)
    await storage.save([DOC, 'incremental', 'aa'], new Uint8Array([1, 2]))
    await storage.save([DOC, 'incremental', 'bb'], new Uint8Array([3]))
    await storage.save([DOC, 'snapshot', 'cc'], new Uint8Array([4, 5, 6]))
    await storage.save(['storage-adapter-id'], new TextEncoder().encode('me'))
    expect(tree(dir)).toEqual([
      `4N/${DOC.slice(2)}/incremental/aa`,
      `4N/${DOC.slice(2)}/incremental/bb`,
      `4N/${DOC.slice(2)}/snapshot/cc`,
      'st/orage-adapter-id',
    ])
    expect(await storage.load([DOC, 'snapshot', 'cc'])).toEqual(new Uint8Array([4, 5, 6]))
    expect(await storage.load([DOC, 'snapshot', 'zz'])).toBeUndefined()
    const incremental = await storage.loadRange([DOC, 'incremental'])
    expect(incremental.map((chunk) => [chunk.key, chunk.data])).toEqual([
      [[DOC, 'incremental', 'aa'], new Uint8Array([1, 2])],
      [[DOC, 'incremental', 'bb'], new Uint8Array([3])],
    ])
    expect((await storage.loadRange([DOC])).length).toBe(3)
    await storage.remove([DOC, 'incremental', 'aa'])
    await storage.remove([DOC, 'incremental', 'aa'])
    expect((await storage.loadRange([DOC, 'incremental'])).length).toBe(1)
    await storage.removeRange([DOC])
    expect(await storage.loadRange([DOC])).toEqual([])
    expect(await new TextDecoder().decode(await storage.load(['storage-adapter-id']))).toBe('me')
  })

  it('keeps the last of several saves of one key, whatever order they were started in', async () => {
    const storage = planStorage(scratch())
    const saves = Array.from({ length: 20 }, (_, i) =>
      storage.save([DOC, 'sync-state', 'peer'], new Uint8Array([i])),
    )
    await Promise.all(saves)
    expect(await storage.load([DOC, 'sync-state', 'peer'])).toEqual(new Uint8Array([19]))
  })

  it('a failed save rejects, and reads of that key go on', async () => {
    const dir = scratch()
    const storage = planStorage(dir)
    await storage.save([DOC, 'snapshot', 'a'], new Uint8Array([1]))
    // The kind's directory is a file: the save cannot create its temporary file.
    writeFileSync(join(dir, '4N', DOC.slice(2), 'incremental'), 'not a directory')
    const failing = storage.save([DOC, 'incremental', 'x'], new Uint8Array([2]))
    const reading = storage.load([DOC, 'incremental', 'x'])
    await expect(failing).rejects.toThrow()
    await expect(reading).resolves.toBeUndefined()
    expect((await storage.loadRange([DOC])).map((chunk) => chunk.key[2])).toEqual(['a'])
  })

  it('quarantines a torn, flipped or foreign chunk and loads the rest', async () => {
    const dir = scratch()
    const storage = planStorage(dir)
    for (const name of ['a', 'b', 'c', 'd'])
      await storage.save([DOC, 'incremental', name], new Uint8Array(40).fill(7))
    const file = (name: string) => join(dir, '4N', DOC.slice(2), 'incremental', name)
    writeFileSync(file('a'), readFileSync(file('a')).subarray(0, 30)) // torn
    const flipped = readFileSync(file('b'))
    flipped[20] = (flipped[20] ?? 0) ^ 1
    writeFileSync(file('b'), flipped)
    writeFileSync(file('c'), new Uint8Array([0x85, 0x6f, 0x4a, 0x83])) // a raw Automerge chunk header, unframed
    // a crash between writing a temporary file and its rename
    writeFileSync(`${file('d')}.tmp-0123456789ab`, new Uint8Array([1]))
    const chunks = await storage.loadRange([DOC, 'incremental'])
    expect(chunks.map((chunk) => chunk.key[2])).toEqual(['d'])
    expect(storage.stats().quarantined).toBe(3)
    expect(existsSync(`${file('d')}.tmp-0123456789ab`)).toBe(false)
    expect(readdirSync(join(dir, 'quarantine'))).toHaveLength(3)
    expect(await storage.load([DOC, 'incremental', 'a'])).toBeUndefined()
  })

  it('refuses keys that would leave its directory or hide among its own files', async () => {
    const storage = planStorage(scratch())
    for (const key of [
      [],
      ['..', 'x'],
      [DOC, '..', 'x'],
      [DOC, 'a/b'],
      [DOC, 'a\\b'],
      [DOC, ''],
      [DOC, '.tmp-1'],
      ['a\0'],
    ]) {
      await expect(storage.save(key, new Uint8Array([1])), JSON.stringify(key)).rejects.toBeInstanceOf(
        PlanStorageKeyError,
      )
      await expect(storage.loadRange(key)).rejects.toBeInstanceOf(PlanStorageKeyError)
    }
  })

  it('a document saved by a process killed mid-write still loads, with every change it flushed', async () => {
    await initPlanSyncWasm()
    const dir = scratch()
    // A child keeps changing documents and reports each change once its flush has resolved.
    const script = `
      import { Repo } from '@automerge/automerge-repo/slim'
      import { planStorage } from '${join(import.meta.dirname, '../src/plan-sync/storage.ts')}'
      import { initPlanSyncWasm } from '${join(import.meta.dirname, '../src/plan-sync/wasm.ts')}'
      await initPlanSyncWasm()
      const repo = new Repo({ storage: planStorage(${JSON.stringify(dir)}), saveDebounceRate: 1 })
      const handles = Array.from({ length: 4 }, () => repo.create({ n: 0, blob: [] }))
      for (const h of handles) process.stdout.write('doc ' + h.documentId + '\\n')
      for (let i = 1; ; i++) {
        const h = handles[i % handles.length]
        h.change((d) => { d.n = i; d.blob.push(i) })
        if (i % 3 === 0) { await repo.flush(); process.stdout.write('flushed ' + i + '\\n') }
        else await new Promise((r) => setImmediate(r))
      }
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject)
      child.stdout.on('data', (data: Buffer) => {
        out += data.toString()
        // enough flushes, with compactions among them
        if ((out.match(/flushed/g)?.length ?? 0) >= 60) {
          child.kill('SIGKILL')
          resolve()
        }
      })
      child.on('exit', () => resolve())
    })
    const docs = [...out.matchAll(/^doc (\S+)$/gm)].map((m) => m[1] as string)
    const flushed = Math.max(...[...out.matchAll(/^flushed (\d+)$/gm)].map((m) => Number(m[1])))
    expect(docs).toHaveLength(4)
    expect(flushed).toBeGreaterThanOrEqual(180)
    const repo = new Repo({ storage: planStorage(dir) })
    for (const [index, id] of docs.entries()) {
      const handle = await repo.find<{ n: number; blob: number[] }>(id as never)
      const doc = handle.doc()
      // every change up to the last acknowledged flush is there, for each document
      const last = flushed - ((flushed - index + 4) % 4)
      expect(doc.n, id).toBeGreaterThanOrEqual(last)
      expect(doc.blob.slice(0, 3)).toEqual([index || 4, (index || 4) + 4, (index || 4) + 8])
    }
    await repo.shutdown()
  }, 60_000)
})
