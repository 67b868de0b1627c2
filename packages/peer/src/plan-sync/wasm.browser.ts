/**
 * Automerge's WASM in browsers: initialised from the base64 copy the package ships, loaded on
 * first use as a separate chunk, so that bundlers need no WASM plugin and pages that never sync
 * plans never download it. Chosen instead of `wasm.ts` by the package's `imports` map (condition
 * `browser`).
 */
import { initializeBase64Wasm, isWasmInitialized } from '@automerge/automerge/slim'

let loading: Promise<void> | undefined

/** Loads and initialises Automerge's WASM once. */
export function initPlanSyncWasm(): Promise<void> {
  if (isWasmInitialized()) return Promise.resolve()
  loading ??= import('@automerge/automerge/automerge.wasm.base64').then(({ automergeWasmBase64 }) =>
    initializeBase64Wasm(automergeWasmBase64),
  )
  return loading
}
