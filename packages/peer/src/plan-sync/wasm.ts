/**
 * Automerge's WASM on Node: the package's Node entry loads it from disk when imported. Chosen
 * instead of `wasm.browser.ts` by the package's `imports` map.
 */
import '@automerge/automerge'

/** Where Automerge's binary WASM comes from (browsers; Node reads it from the package). */
export type PlanSyncWasmSource = string | URL | Request | Uint8Array

/** Makes sure Automerge's WASM is loaded (already done on Node by the import above; `source` is ignored). */
export async function initPlanSyncWasm(_source?: PlanSyncWasmSource): Promise<void> {}
