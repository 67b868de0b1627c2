/**
 * Plan document storage, in Node (a directory) and in Chromium (IndexedDB), through the same
 * `planStorage`: a document written by one repo is found, entries and all, by a new repo on the
 * same storage — what a restart or a reloaded tab relies on.
 */
import { Repo } from '@automerge/automerge-repo/slim'
import { afterAll, describe, expect, it } from 'vitest'
import { planStorage } from '#plan-sync/storage'
import { initPlanSyncWasm } from '#plan-sync/wasm'
import { cidOfDagCbor } from '../src/core/codec.ts'
import { type PlanDoc, planDocumentId, planDocumentRoot } from '../src/plan-sync/document.ts'

const LOCATION = `.data/test-plan-storage-${Math.random().toString(36).slice(2)}`

afterAll(async () => {
  // Under the git-ignored .data/ on Node; in Chromium a throwaway profile's IndexedDB.
  const storage = planStorage(LOCATION)
  await storage.removeRange([planDocumentId('need-plan-storage')])
  await storage.remove(['storage-adapter-id'])
})

describe('plan document storage', () => {
  it('keeps a document across repos on the same storage', async () => {
    await initPlanSyncWasm()
    const thread = 'need-plan-storage'
    const docId = planDocumentId(thread)
    const bytes = new Uint8Array([0xa1, 0x61, 0x61, 0x01])
    const key = cidOfDagCbor(bytes)

    const first = new Repo({ storage: planStorage(LOCATION) })
    const handle = first.import<PlanDoc>(planDocumentRoot(thread), { docId })
    await handle.whenReady()
    handle.change((doc) => {
      doc.envelopes[key] = bytes
    })
    await first.flush()
    await first.shutdown()

    const second = new Repo({ storage: planStorage(LOCATION) })
    const found = await second.find<PlanDoc>(docId)
    expect(Object.keys(found.doc().envelopes)).toEqual([key])
    expect(found.doc().envelopes[key]).toEqual(bytes)
    await second.shutdown()
  })
})
