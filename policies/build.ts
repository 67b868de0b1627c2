#!/usr/bin/env node
/**
 * Builds the committed policy bundle (`npm run policy:build`) or checks that it is fresh
 * (`npm run policy:check`).
 *
 * Steps: make sure the pinned `opa` (built from the Go module proxy into `.tools/bin`) and the
 * gas instrumenter `tools/wasm-gas` (cargo, into `.tools/bin`) exist; run `opa check --strict` and
 * `opa test policies/` (the conformance tests); compile each policy with `opa build -t wasm`;
 * extract `policy.wasm`; instrument it for gas; write `packages/peer/policy-bundle/<name>.wasm` and, for the
 * base policy, the manifest `packages/peer/policy-bundle/base.json` (policy hash, engine hash, schema version,
 * conformance vector, the conformance vectors themselves).
 *
 * `--check` builds into a temporary directory and fails when any committed file differs.
 * `opa build` is byte-deterministic for the same sources and flags (tar entries carry epoch
 * timestamps); it is always run from `policies/` with relative paths, because the bundle records
 * source paths.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadPolicyEngine } from '@can-swarm/peer'

/** The pinned Open Policy Agent version (DESIGN.md). */
const OPA_VERSION = 'v1.22.3'
const OPA_MODULE = `github.com/open-policy-agent/opa@${OPA_VERSION}`
/** Name and version of the gas model written by tools/wasm-gas; change it when the model changes. */
const GAS_MODEL = 'wasm-gas/control-transfer@1 (wasm-instrument 0.4.0, mutable global gas_left)'
/** Default gas limit of one evaluation (docs/PROTOCOL.md §10.1). */
const GAS_LIMIT = 100_000
/** Version of the input document (policies/README.md). */
const SCHEMA_VERSION = 1

const POLICIES = resolve(dirname(fileURLToPath(import.meta.url)))
const ROOT = resolve(POLICIES, '..')
const TOOLS_BIN = join(ROOT, '.tools', 'bin')
const OPA = join(TOOLS_BIN, 'opa')
const WASM_GAS = join(TOOLS_BIN, 'wasm-gas')
const BUNDLE = join(POLICIES, '..', 'packages', 'peer', 'policy-bundle')

/** The policies compiled to WebAssembly: bundle name, Rego files (relative to policies/), entrypoint. */
const TARGETS = [
  { name: 'base', files: ['base/policy.rego'], entrypoint: 'canswarm/base/decision', manifest: true },
  {
    name: 'expensive',
    files: ['fixtures/expensive.rego'],
    entrypoint: 'canswarm/expensive/decision',
    manifest: false,
  },
] as const

const log = (line: string): void => console.error(`[policy] ${line}`)

function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; quiet?: boolean } = {},
): string {
  return execFileSync(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', options.quiet ? 'pipe' : 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  })
}

function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** JSON with object keys sorted at every level: the same value always gives the same text. */
function stableJson(value: unknown, indent = 2): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort)
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((key) => [key, sort((v as Record<string, unknown>)[key])]),
      )
    return v
  }
  return `${JSON.stringify(sort(value), null, indent)}\n`
}

function ensureOpa(): void {
  if (existsSync(OPA)) {
    const version = run(OPA, ['version']).match(/^Version: (\S+)/m)?.[1]
    if (`v${version}` === OPA_VERSION || version === OPA_VERSION) return
    log(`${OPA} is version ${version}, want ${OPA_VERSION}: rebuilding`)
  }
  log(`building opa ${OPA_VERSION} from the Go module proxy into ${TOOLS_BIN} (once; a few minutes)`)
  mkdirSync(TOOLS_BIN, { recursive: true })
  ensureIgnored()
  try {
    // opa's go.mod asks for Go >= 1.26; GOTOOLCHAIN=auto lets an older Go (>= 1.21) fetch it.
    run('go', ['install', OPA_MODULE], { env: { ...process.env, GOBIN: TOOLS_BIN, GOTOOLCHAIN: 'auto' } })
  } catch (error) {
    throw new Error(
      `could not build opa (${String(error)}): install Go >= 1.21 (it fetches Go 1.26 itself), or use the committed bundle (npm test needs no Go)`,
    )
  }
}

function ensureWasmGas(): void {
  const crate = join(ROOT, 'tools', 'wasm-gas')
  const stamp = sha256Hex(
    ['Cargo.toml', 'Cargo.lock', 'src/main.rs']
      .map((file) => readFileSync(join(crate, file), 'utf8'))
      .join('\0'),
  )
  const stampFile = `${WASM_GAS}.source-sha256`
  if (existsSync(WASM_GAS) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return
  log('building tools/wasm-gas with cargo')
  mkdirSync(TOOLS_BIN, { recursive: true })
  ensureIgnored()
  const target = join(ROOT, '.tools', 'cargo-target')
  try {
    run('cargo', ['build', '--release', '--locked', '--quiet'], {
      cwd: crate,
      env: { ...process.env, CARGO_TARGET_DIR: target },
    })
  } catch (error) {
    throw new Error(`could not build tools/wasm-gas (${String(error)}): install Rust (cargo)`)
  }
  writeFileSync(WASM_GAS, readFileSync(join(target, 'release', 'wasm-gas')), { mode: 0o755 })
  writeFileSync(stampFile, stamp)
}

/** `.tools/` holds built binaries only: it ignores itself, so nothing in it is ever committed. */
function ensureIgnored(): void {
  const ignore = join(ROOT, '.tools', '.gitignore')
  if (!existsSync(ignore)) writeFileSync(ignore, '*\n')
}

interface TestResult {
  name: string
  package: string
  fail?: boolean
  error?: unknown
  skip?: boolean
}

/** Runs `opa test policies/`; returns the stable ids of the passing conformance tests. */
function conformanceTests(): string[] {
  run(OPA, ['check', '--strict', 'policies/'])
  let text: string
  try {
    text = run(OPA, ['test', 'policies/', '--format', 'json'])
  } catch (error) {
    run(OPA, ['test', 'policies/', '-v'])
    throw error
  }
  const results = JSON.parse(text) as TestResult[]
  const failed = results.filter((r) => r.fail || r.error)
  if (failed.length > 0) throw new Error(`opa test: ${failed.map((r) => r.name).join(', ')} failed`)
  log(`opa test: ${results.length} tests passed`)
  return results
    .filter(
      (r) => r.package === 'data.canswarm.base_test' && /^test_conf_[a-z]+_\d{3}$/.test(r.name) && !r.skip,
    )
    .map((r) => r.name.slice('test_'.length).replaceAll('_', '-'))
    .sort()
}

/** The conformance vectors as data (one source of truth: base/conformance.rego). */
function conformanceVectors(): {
  id: string
  input: unknown
  expect: { allowed: boolean; rules: string[]; gasUsed?: number; evalDigest?: string }
}[] {
  const out = JSON.parse(
    run(
      OPA,
      ['eval', '--format', 'json', '-d', 'base/conformance.rego', 'data.canswarm.conformance.vectors'],
      {
        cwd: POLICIES,
      },
    ),
  ) as { result: { expressions: { value: Record<string, { input: unknown; expect: never }> }[] }[] }
  const vectors = out.result[0]!.expressions[0]!.value
  return Object.keys(vectors)
    .sort()
    .map((id) => ({ id, ...vectors[id]! }))
}

function compile(target: (typeof TARGETS)[number], work: string): Uint8Array {
  const tarball = join(work, `${target.name}.tar.gz`)
  run(OPA, ['build', '-t', 'wasm', '-e', target.entrypoint, '-o', tarball, ...target.files], {
    cwd: POLICIES,
  })
  const extracted = join(work, target.name)
  mkdirSync(extracted, { recursive: true })
  // Bundle members are named /policy.wasm; GNU tar strips the leading slash (and says so: quiet).
  run('tar', ['-xzf', tarball, '-C', extracted, '/policy.wasm'], { quiet: true })
  const raw = join(extracted, 'policy.wasm')
  const metered = join(extracted, 'metered.wasm')
  run(WASM_GAS, [raw, metered])
  return readFileSync(metered)
}

/**
 * Runs the vectors on the compiled, instrumented WASM (the engine peers run): each must give the
 * decision `opa test` checked on the Go evaluator. Records the gas each one uses and its eval
 * digest, so that a peer accepting the capsule also checks that its engine counts the same units
 * and reaches the same digest.
 */
async function withGas(
  wasm: Uint8Array,
  vectors: ReturnType<typeof conformanceVectors>,
): Promise<ReturnType<typeof conformanceVectors>> {
  const engine = await loadPolicyEngine(wasm, { gasLimit: GAS_LIMIT })
  return vectors.map((vector) => {
    const decision = engine.evaluate(vector.input)
    const rules = [...new Set(decision.reasons.map((r) => r.rule))].sort()
    if (
      decision.allowed !== vector.expect.allowed ||
      rules.join(',') !== [...new Set(vector.expect.rules)].sort().join(',')
    ) {
      throw new Error(
        `${vector.id}: the WASM decides ${JSON.stringify({ allowed: decision.allowed, rules })}, opa test expects ${JSON.stringify(vector.expect)}`,
      )
    }
    return {
      ...vector,
      expect: { ...vector.expect, gasUsed: decision.gasUsed, evalDigest: decision.evalDigest },
    }
  })
}

async function build(outDir: string): Promise<string[]> {
  ensureOpa()
  ensureWasmGas()
  const passed = conformanceTests()
  const vectors = conformanceVectors()
  const missing = vectors.filter((v) => !passed.includes(v.id)).map((v) => v.id)
  if (missing.length > 0) throw new Error(`conformance vectors without a passing test: ${missing.join(', ')}`)
  const opaWasmVersion = (
    JSON.parse(
      readFileSync(join(ROOT, 'node_modules', '@open-policy-agent', 'opa-wasm', 'package.json'), 'utf8'),
    ) as { version: string }
  ).version
  const work = mkdtempSync(join(tmpdir(), 'can-swarm-policy-'))
  const written: string[] = []
  try {
    mkdirSync(outDir, { recursive: true })
    for (const target of TARGETS) {
      const wasm = compile(target, work)
      writeFileSync(join(outDir, `${target.name}.wasm`), wasm)
      written.push(`${target.name}.wasm`)
      if (!target.manifest) continue
      const engine = { opa: OPA_VERSION, target: 'wasm', opaWasm: opaWasmVersion, gas: GAS_MODEL }
      const metered = await withGas(wasm, vectors)
      const manifest = {
        format: 'can-swarm/policy-bundle@1',
        name: `can-swarm/${target.name}`,
        entrypoint: target.entrypoint,
        schemaVersion: SCHEMA_VERSION,
        gasLimit: GAS_LIMIT,
        policyHash: sha256Hex(wasm),
        sourceHash: sha256Hex(
          target.files.map((file) => readFileSync(join(POLICIES, file), 'utf8')).join('\0'),
        ),
        engine,
        engineHash: sha256Hex(stableJson(engine, 0)),
        conformance: vectors.map((v) => v.id),
        vectors: metered,
      }
      writeFileSync(join(outDir, `${target.name}.json`), stableJson(manifest))
      written.push(`${target.name}.json`)
      log(
        `${target.name}: policy ${manifest.policyHash.slice(0, 16)}…, ${vectors.length} conformance vectors`,
      )
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return written
}

const check = process.argv.includes('--check')
try {
  if (!check) {
    const files = await build(BUNDLE)
    log(`wrote ${files.map((f) => `packages/peer/policy-bundle/${f}`).join(', ')}`)
  } else {
    const out = mkdtempSync(join(tmpdir(), 'can-swarm-policy-check-'))
    try {
      const files = await build(out)
      const stale = files.filter((file) => {
        const committed = join(BUNDLE, file)
        return !existsSync(committed) || !readFileSync(committed).equals(readFileSync(join(out, file)))
      })
      if (stale.length > 0) {
        log(
          `STALE: ${stale.map((f) => `packages/peer/policy-bundle/${f}`).join(', ')} differ from a fresh build`,
        )
        log('run `npm run policy:build` and commit packages/peer/policy-bundle/')
        process.exit(1)
      }
      log(`packages/peer/policy-bundle/ matches a fresh build (${files.join(', ')})`)
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  }
} catch (error) {
  log(`FAILED: ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
}
