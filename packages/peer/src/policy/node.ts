/**
 * Node-only helper: reads the committed policy bundle (`packages/peer/policy-bundle/`, written by
 * `npm run policy:build`). Browsers fetch the same two files instead.
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { BundleManifest } from './capsule.ts'

/** Directory of the committed bundle in this repository. */
export const BUNDLE_DIR: string = fileURLToPath(new URL('../../policy-bundle/', import.meta.url))

/** Reads `<name>.wasm` (and `<name>.json`, when present) from the bundle directory. */
export async function readPolicyBundle(
  name = 'base',
  dir: string = BUNDLE_DIR,
): Promise<{ wasm: Uint8Array; manifest: BundleManifest }> {
  const wasm = new Uint8Array(await readFile(`${dir}/${name}.wasm`))
  const manifest = JSON.parse(await readFile(`${dir}/${name}.json`, 'utf8')) as BundleManifest
  return { wasm, manifest }
}

/** Reads just the WASM of a bundle entry (fixtures have no manifest). */
export async function readPolicyWasm(name: string, dir: string = BUNDLE_DIR): Promise<Uint8Array> {
  return new Uint8Array(await readFile(`${dir}/${name}.wasm`))
}
