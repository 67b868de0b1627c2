/**
 * The policy engine is isomorphic: this file imports no `node:` module, so it runs in Node and in
 * Chromium alike. The committed bundle records, per conformance vector, the decision, the gas units
 * and the eval digest the build measured in Node; here every vector must give exactly those,
 * whatever the runtime.
 */
import { describe, expect, it } from 'vitest'
import manifestJson from '../policy-bundle/base.json' with { type: 'json' }
import { sha256Hex } from '../src/core/codec.ts'
import { type BundleManifest, loadPolicyEngine, runConformance } from '../src/policy/index.ts'

const manifest = manifestJson as BundleManifest

/** The committed WASM: fetched from the test server in a browser, read from disk in Node. */
async function bundleWasm(): Promise<Uint8Array> {
  const url = new URL('../policy-bundle/base.wasm', import.meta.url)
  if (url.protocol === 'file:') {
    const fsModule = 'node:fs/promises' // a variable: browsers never resolve it
    const fs = (await import(/* @vite-ignore */ fsModule)) as typeof import('node:fs/promises')
    return new Uint8Array(await fs.readFile(url))
  }
  const response = await fetch(url)
  if (!response.ok) throw new Error(`GET ${url} → ${response.status}`)
  return new Uint8Array(await response.arrayBuffer())
}

describe('policy engine in this runtime', () => {
  it('loads the committed bundle and passes every vector with the recorded gas units and digests', async () => {
    const wasm = await bundleWasm()
    expect(sha256Hex(wasm)).toBe(manifest.policyHash)
    const engine = await loadPolicyEngine(wasm)
    const { passed, failed } = runConformance(engine, manifest.vectors)
    expect(failed).toEqual([])
    expect(passed).toHaveLength(manifest.vectors.length)
    for (const vector of manifest.vectors)
      expect(engine.evaluate(vector.input).gasUsed).toBe(vector.expect.gasUsed)
  })
})
