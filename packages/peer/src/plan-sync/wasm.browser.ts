/**
 * Automerge's WASM in browsers. An embedding app that serves Automerge's binary `automerge.wasm`
 * (e.g. as a bundler asset: `import wasmUrl from '@automerge/automerge/automerge.wasm?url'`)
 * passes where it is to {@link initPlanSyncWasm} before plan sync starts: the browser then
 * compiles it while it streams in, and the page never carries the 4.8 MB base64 copy. Without a
 * source, the base64 copy the package ships is loaded on first use as a separate chunk, so that
 * bundlers need no WASM plugin and pages that never sync plans never download it. Chosen instead
 * of `wasm.ts` by the package's `imports` map (condition `browser`).
 */
import { initializeBase64Wasm, initializeWasm, isWasmInitialized } from '@automerge/automerge/slim'

/** Where Automerge's binary WASM comes from: its URL, a request for it, or its bytes. */
export type PlanSyncWasmSource = string | URL | Request | Uint8Array

let loading: Promise<void> | undefined

/**
 * Loads and initialises Automerge's WASM once: from `source` when given (the first call wins;
 * later calls share its outcome), else from the package's base64 copy. Call it with a source
 * before `createPlanSync` (or `createPeer` with plan sync) to choose where the WASM comes from.
 */
export function initPlanSyncWasm(source?: PlanSyncWasmSource): Promise<void> {
  if (isWasmInitialized()) return Promise.resolve()
  loading ??=
    source === undefined
      ? import('@automerge/automerge/automerge.wasm.base64').then(({ automergeWasmBase64 }) =>
          initializeBase64Wasm(automergeWasmBase64),
        )
      : initializeWasm(source instanceof URL ? source.href : source)
  // A failed load (e.g. the asset could not be fetched) may be retried.
  loading.catch(() => {
    loading = undefined
  })
  return loading
}
