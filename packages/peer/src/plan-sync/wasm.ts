/**
 * Automerge's WASM on Node: the package's Node entry loads it from disk when imported. Chosen
 * instead of `wasm.browser.ts` by the package's `imports` map.
 */
import '@automerge/automerge'

/** Makes sure Automerge's WASM is loaded (already done on Node by the import above). */
export async function initPlanSyncWasm(): Promise<void> {}
