/**
 * Where Automerge's WASM comes from, in Node and in Chromium: an app may hand `initPlanSyncWasm`
 * the URL of the binary `automerge.wasm` it serves. In Chromium the module is then fetched from
 * that URL (the page never loads the base64 copy) and plan documents work; in Node the package
 * loads it from disk and the source is ignored.
 */
import { next as A } from '@automerge/automerge/slim'
import { describe, expect, it } from 'vitest'
import { initPlanSyncWasm } from '#plan-sync/wasm'
import { type PlanDoc, planDocumentRoot } from '../src/plan-sync/document.ts'

const WASM_URL = new URL('../../../node_modules/@automerge/automerge/dist/automerge.wasm', import.meta.url)

describe("Automerge's WASM from an app's asset", () => {
  it('initialises from the URL it is given, and plan documents load with it', async () => {
    await initPlanSyncWasm(WASM_URL)
    // A second call, with or without a source, shares the first one's outcome.
    await initPlanSyncWasm()
    if (WASM_URL.protocol !== 'file:') {
      const fetched = performance.getEntriesByType('resource').map((entry) => entry.name)
      expect(fetched).toContain(WASM_URL.href)
      expect(fetched.some((name) => name.includes('wasm_bg_base64'))).toBe(false)
    }
    const doc = A.load<PlanDoc>(planDocumentRoot('need-plan-wasm'))
    const changed = A.change(doc, (draft) => {
      draft.envelopes.key = new Uint8Array([1, 2, 3])
    })
    expect(A.load<PlanDoc>(A.save(changed)).envelopes.key).toEqual(new Uint8Array([1, 2, 3]))
  })
})
