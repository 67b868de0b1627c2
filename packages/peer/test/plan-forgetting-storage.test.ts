/**
 * The storage subsystem that forgets (plan-sync/forgetting-storage.ts): what it remembers stays
 * bounded whatever the number of documents a peer goes through, documents held for long move to
 * the current generation, and with a real repo nothing written is lost across rotations.
 */
import {
  type Chunk,
  type DocumentId,
  Repo,
  type StorageAdapterInterface,
  type StorageKey,
} from '@automerge/automerge-repo/slim'
import { describe, expect, it } from 'vitest'
import { initPlanSyncWasm } from '#plan-sync/wasm'
import { cidOfDagCbor } from '../src/core/codec.ts'
import { type PlanDoc, planDocumentId, planDocumentRoot } from '../src/plan-sync/document.ts'
import {
  forgettingStorage,
  installForgettingStorage,
  type StorageSubsystem,
} from '../src/plan-sync/forgetting-storage.ts'

/** A fake library subsystem that records which documents it was asked about. */
function fakeSubsystem(log: Map<FakeSubsystem, DocumentId[]>): FakeSubsystem {
  const seen: DocumentId[] = []
  const fake = {
    seen,
    loadDocData: async (id: DocumentId) => {
      seen.push(id)
      return null
    },
    saveDoc: async (id: DocumentId) => {
      seen.push(id)
    },
  }
  log.set(fake, seen)
  return fake
}
type FakeSubsystem = { seen: DocumentId[] }
const asSubsystem = (fake: FakeSubsystem) => fake as unknown as StorageSubsystem
const doc = (n: number) => `doc-${n}` as DocumentId

describe('forgetting storage (generations)', () => {
  it('keeps what is remembered bounded while documents come and go', async () => {
    const made = new Map<FakeSubsystem, DocumentId[]>()
    const storage = forgettingStorage(
      () => asSubsystem(fakeSubsystem(made)),
      asSubsystem(fakeSubsystem(made)),
      { rotateAfter: 50, maxGenerations: 3 },
    )
    let most = 0
    // Documents overlap: up to 20 are held at a time.
    for (let n = 0; n < 5_000; n += 1) {
      await storage.subsystem.loadDocData(doc(n))
      await storage.subsystem.saveDoc(doc(n), {} as never)
      if (n >= 20) storage.forget(doc(n - 20))
      const stats = storage.stats()
      most = Math.max(most, stats.remembered)
      expect(stats.generations).toBeLessThanOrEqual(3)
      expect(stats.held).toBeLessThanOrEqual(21)
    }
    // Without rotation the one subsystem would remember all 4 980 forgotten documents.
    expect(most).toBeLessThanOrEqual(3 * 50 + 21)
    // A fresh generation after every 50 forgotten documents (20 of them held across a rotation).
    expect(made.size).toBeGreaterThanOrEqual(Math.floor(4_980 / (50 + 20)))
    // Every call about one document went to one subsystem while it was held.
    for (const seen of made.values()) expect(new Set(seen).size).toBeLessThanOrEqual(50 + 21)
  })

  it('moves documents held for long to the current generation instead of keeping old ones alive', async () => {
    const made = new Map<FakeSubsystem, DocumentId[]>()
    const storage = forgettingStorage(
      () => asSubsystem(fakeSubsystem(made)),
      asSubsystem(fakeSubsystem(made)),
      {
        rotateAfter: 10,
        maxGenerations: 3,
      },
    )
    // Every 11th document stays held: each generation would be kept alive by one of them.
    const stuck: DocumentId[] = []
    for (let n = 0; n < 1_100; n += 1) {
      await storage.subsystem.loadDocData(doc(n))
      if (n % 11 === 0) stuck.push(doc(n))
      else storage.forget(doc(n))
      expect(storage.stats().generations).toBeLessThanOrEqual(3)
      expect(storage.stats().remembered).toBeLessThanOrEqual(3 * 10)
    }
    const stats = storage.stats()
    expect(stats.held).toBe(stuck.length)
    expect(stats.moved).toBeGreaterThan(0)
    // A moved document's new generation was asked for its chunks (so that its next save replaces
    // them), and takes the document's calls from then on.
    const oldest = stuck[0]!
    const asked = [...made.values()].filter((seen) => seen.includes(oldest))
    expect(asked.length).toBeGreaterThan(1)
    await storage.subsystem.saveDoc(oldest, {} as never)
    expect([...made.values()].filter((seen) => seen.at(-1) === oldest)).toHaveLength(1)
    // Once every document is forgotten, one generation remains.
    for (const id of stuck) storage.forget(id)
    for (let n = 1_100; n < 1_120; n += 1) {
      await storage.subsystem.loadDocData(doc(n))
      storage.forget(doc(n))
    }
    expect(storage.stats()).toMatchObject({ generations: 1, held: 0 })
  })

  it('sends a save that comes after forgetting to the generation that knew the document', async () => {
    const made = new Map<FakeSubsystem, DocumentId[]>()
    const first = fakeSubsystem(made)
    const storage = forgettingStorage(() => asSubsystem(fakeSubsystem(made)), asSubsystem(first), {
      rotateAfter: 4,
    })
    await storage.subsystem.loadDocData(doc(1))
    storage.forget(doc(1))
    // The repo's throttled save, after the document left its cache.
    await storage.subsystem.saveDoc(doc(1), {} as never)
    expect(first.seen).toEqual([doc(1), doc(1)])
    expect(storage.stats()).toMatchObject({ held: 0, remembered: 1, generations: 1 })
    // Saves of documents nobody loaded count as forgotten, and rotate like any other.
    for (let n = 2; n < 6; n += 1) await storage.subsystem.saveDoc(doc(n), {} as never)
    // (doc 1 and docs 2–4 filled the first generation; doc 5 went to the second)
    expect(made.size).toBe(2)
    expect(storage.stats()).toMatchObject({ held: 0, remembered: 1, generations: 1 })
    // Loading a forgotten document holds it again, where it is known.
    await storage.subsystem.loadDocData(doc(7))
    storage.forget(doc(7))
    await storage.subsystem.loadDocData(doc(7))
    expect(storage.stats()).toMatchObject({ held: 1, remembered: 1 })
  })

  it('refuses budgets that are not positive integers', () => {
    const made = new Map<FakeSubsystem, DocumentId[]>()
    const make = () => asSubsystem(fakeSubsystem(made))
    expect(() => forgettingStorage(make, make(), { rotateAfter: 0 })).toThrow(RangeError)
    expect(() => forgettingStorage(make, make(), { maxGenerations: 1.5 })).toThrow(RangeError)
  })
})

/** An in-memory storage adapter. */
function memoryAdapter(): StorageAdapterInterface & { keys(): string[] } {
  const data = new Map<string, { key: StorageKey; data: Uint8Array }>()
  const name = (key: StorageKey) => key.join('\u0000')
  const under = (prefix: StorageKey) =>
    [...data.values()].filter(({ key }) => prefix.every((part, i) => key[i] === part))
  return {
    load: async (key) => data.get(name(key))?.data,
    save: async (key, bytes) => {
      data.set(name(key), { key, data: bytes })
    },
    remove: async (key) => {
      data.delete(name(key))
    },
    loadRange: async (prefix): Promise<Chunk[]> => under(prefix).map(({ key, data }) => ({ key, data })),
    removeRange: async (prefix) => {
      for (const { key } of under(prefix)) data.delete(name(key))
    },
    keys: () => [...data.keys()],
  }
}

describe('forgetting storage with a real repo', () => {
  it('loses nothing across rotations, moves and reloads', async () => {
    await initPlanSyncWasm()
    const adapter = memoryAdapter()
    const repo = new Repo({ storage: adapter })
    const storage = installForgettingStorage(repo, adapter, { rotateAfter: 3, maxGenerations: 2 })
    expect(storage).toBeDefined()
    const entry = (text: string) => {
      const bytes = new TextEncoder().encode(text)
      return [cidOfDagCbor(bytes), bytes] as const
    }
    const open = async (thread: string) => {
      const docId = planDocumentId(thread)
      const stored = await repo.storageSubsystem?.loadDocData(docId)
      if (stored) repo.import<PlanDoc>(stored, { docId })
      const handle = repo.import<PlanDoc>(planDocumentRoot(thread), { docId })
      await handle.whenReady()
      return handle
    }
    const write = async (thread: string, text: string) => {
      const handle = await open(thread)
      const [key, bytes] = entry(text)
      handle.change((d) => {
        d.envelopes[key] = bytes
      })
      await repo.flush([handle.documentId])
      return handle
    }
    const close = async (thread: string) => {
      const docId = planDocumentId(thread)
      await repo.removeFromCache(docId)
      storage!.forget(docId)
    }

    // One thread stays open through many rotations and keeps changing; every 4th thread also
    // stays open for a while, so that generations are kept alive and the long thread moves.
    await write('need-long', 'long 0')
    const lingering: string[] = []
    for (let n = 0; n < 30; n += 1) {
      await write(`need-${n}`, `first ${n}`)
      if (n % 4 === 0) lingering.push(`need-${n}`)
      else await close(`need-${n}`)
      await write('need-long', `long ${n + 1}`)
    }
    for (const thread of lingering) await close(thread)
    expect(storage!.stats().moved).toBeGreaterThan(0)
    expect(storage!.stats().generations).toBeLessThanOrEqual(2)
    // A forgotten thread comes back with what it had, and takes more.
    for (const n of [0, 14, 29]) {
      const handle = await write(`need-${n}`, `again ${n}`)
      const texts = Object.values(handle.doc().envelopes).map((b) => new TextDecoder().decode(b))
      expect(texts.sort()).toEqual([`again ${n}`, `first ${n}`])
      await close(`need-${n}`)
    }
    await close('need-long')
    await repo.shutdown()

    // A new repo on the same storage reads every entry of every document.
    const again = new Repo({ storage: adapter })
    const found = await again.find<PlanDoc>(planDocumentId('need-long'))
    expect(Object.keys(found.doc().envelopes)).toHaveLength(31)
    const other = await again.find<PlanDoc>(planDocumentId('need-14'))
    expect(Object.keys(other.doc().envelopes)).toHaveLength(2)
    // Moves did not strand chunks: the long thread's snapshots were compacted as it was saved.
    const longChunks = adapter.keys().filter((key) => key.startsWith(planDocumentId('need-long')))
    expect(longChunks.length).toBeLessThan(31)
    await again.shutdown()
  })
})
