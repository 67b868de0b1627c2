/**
 * Build stand-in for `@automerge/automerge/automerge.wasm.base64` (4.8 MB of base64, 1.6 MiB
 * gzipped). The app hands the peer package Automerge's binary WASM as an asset instead
 * (`SessionOptions.automergeWasm`), so the base64 fallback of `initPlanSyncWasm` must never run
 * here; this alias keeps it out of the build, and reaching it anyway fails loudly.
 */
throw new Error(
  "Automerge's base64 WASM is not part of this build: pass the WASM asset's URL to initPlanSyncWasm before plan sync starts",
)
