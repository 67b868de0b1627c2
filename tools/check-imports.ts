/**
 * The import walls of the repository, checked on every `npm run lint`:
 *
 * 1. **By package name, never by path.** A file of one package never reaches into another package's
 *    files (`../../peer/src/…`); it imports `@can-swarm/peer` (or one of its `exports` subpaths).
 *    The repository's own tooling (bench, fuzz, soak, e2e, policies, test-support, tools) does the
 *    same: it reaches the packages through their names, like any user of them.
 * 2. **Declared.** Every bare import names a dependency its package declares: `dependencies`,
 *    `peerDependencies` or `optionalDependencies` for `src/`; those plus `devDependencies` (the
 *    package's and the root's, which holds the test runner) for tests and build scripts. `#…`
 *    imports must be in the package's `imports` map. Node builtins are imported as `node:…`.
 * 3. **Shipped code holds no test code.** `src/` never imports from a `test/` directory or
 *    `test-support/`.
 * 4. **A pure core.** `packages/peer/src/core/` imports only itself and the few pure libraries in
 *    `CORE_LIBRARIES`: no `node:` module, no libp2p, no I/O (docs/PROTOCOL.md §1).
 * 5. **No cycles.** The modules of a package's `src/` import each other in one direction: no cycle
 *    of value imports (`import type` is erased and may point anywhere).
 *
 * Run: `npm run lint` (or `node --conditions=can-swarm-source tools/check-imports.ts [repo root]`,
 * which reads the peer package from its sources, as every npm script here does); it prints one line per violation and exits 1 if
 * there is any. `checkImports(root)` is the same check as a function (tools/check-imports.test.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stronglyConnectedComponents } from '@can-swarm/peer/core'

/** The only packages the protocol core may import (pure, deterministic, isomorphic). */
export const CORE_LIBRARIES: readonly string[] = [
  '@ipld/dag-cbor',
  '@ipld/dag-json',
  '@noble/hashes',
  'multiformats',
  'zod',
]

/** Top-level directories of the repository's own tooling (checked against the root package.json). */
export const TOOLING_DIRS: readonly string[] = [
  'bench',
  'e2e',
  'fuzz',
  'policies',
  'soak',
  'test-support',
  'tools',
]

/** One broken wall: where, which specifier, and which rule. */
export interface ImportViolation {
  /** The importing file, relative to the repository root, with `/` separators. */
  file: string
  specifier: string
  rule:
    | 'reach-in'
    | 'undeclared'
    | 'test-code-in-src'
    | 'impure-core'
    | 'builtin-prefix'
    | 'unknown-subpath-import'
    | 'cycle'
  message: string
}

interface PackageJson {
  name?: string
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  imports?: Record<string, unknown>
}

const SOURCE_FILE = /\.(?:[cm]?ts|tsx|[cm]?js)$/
const SKIPPED_DIRS = new Set([
  'node_modules',
  'dist',
  '.tools',
  'target',
  'bench-results',
  'test-results',
  '.git',
])
const BUILTINS = new Set(builtinModules.filter((name) => !name.startsWith('_')))

/** The source without its comments, so an import written in a doc comment's example is not a dependency. */
function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1')
}

/** Every module specifier a source file names: static, re-export, side-effect and dynamic imports. */
export function importSpecifiers(source: string): string[] {
  const code = withoutComments(source)
  const found: string[] = []
  const name = String.raw`(['"])([^'"\s$\`,]+)\1`
  const patterns = [
    new RegExp(String.raw`(?:^|[\n;])\s*(?:import|export)\b[^;'"\`]*?\bfrom\s*${name}`, 'g'),
    new RegExp(String.raw`(?:^|[\n;])\s*import\s*${name}`, 'g'),
    new RegExp(String.raw`\bimport\(\s*${name}\s*[,)]`, 'g'),
  ]
  for (const pattern of patterns) for (const match of code.matchAll(pattern)) found.push(match[2]!)
  return found
}

/** The relative specifiers a source file imports as values (`import type …` left out). */
export function valueImports(source: string): string[] {
  const code = withoutComments(source)
  const found: string[] = []
  const pattern = /(?:^|[\n;])\s*(?:import|export)\b(?!\s+type\b)[^;'"`]*?\bfrom\s*(['"])(\.[^'"\s]+)\1/g
  for (const match of code.matchAll(pattern)) found.push(match[2]!)
  return found
}

/**
 * The cycles among `files` (absolute paths), following relative value imports: each as the list of
 * its files (the core's strongly connected components of two or more).
 */
export function importCycles(files: readonly string[]): string[][] {
  const known = new Set(files)
  const edges = new Map<string, string[]>()
  for (const file of files) {
    const targets = valueImports(readFileSync(file, 'utf8')).map((spec) => resolve(dirname(file), spec))
    edges.set(
      file,
      targets.filter((target) => known.has(target)),
    )
  }
  return stronglyConnectedComponents(files, (file) => edges.get(file) ?? []).filter(
    (component) => component.length > 1,
  )
}

/** `@scope/name` or `name` of a bare specifier (`@scope/name/sub/path` → `@scope/name`). */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
}

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) walk(join(dir, entry.name), out)
    } else if (SOURCE_FILE.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(join(dir, entry.name))
  }
  return out
}

const readJson = (path: string): PackageJson => JSON.parse(readFileSync(path, 'utf8')) as PackageJson
const toPosix = (path: string) => path.split(sep).join('/')
const within = (path: string, dir: string) => path === dir || path.startsWith(dir + sep)

interface Scope {
  /** The directory whose files the scope owns (a package, or the repository for tooling). */
  dir: string
  manifest: PackageJson
  /** Directories a relative import must not enter (other packages). */
  foreign: string[]
}

/** Checks every source file of the repository at `root`; returns the violations (empty: all good). */
export function checkImports(root: string): ImportViolation[] {
  const rootManifest = readJson(join(root, 'package.json'))
  const packagesDir = join(root, 'packages')
  const packageDirs = existsSync(packagesDir)
    ? readdirSync(packagesDir)
        .map((name) => join(packagesDir, name))
        .filter((dir) => existsSync(join(dir, 'package.json')))
    : []
  const violations: ImportViolation[] = []
  const rootDev = { ...rootManifest.dependencies, ...rootManifest.devDependencies }

  const checkFile = (file: string, scope: Scope, shipped: boolean) => {
    const rel = toPosix(relative(root, file))
    const declared = shipped
      ? {
          ...scope.manifest.dependencies,
          ...scope.manifest.peerDependencies,
          ...scope.manifest.optionalDependencies,
        }
      : {
          ...scope.manifest.dependencies,
          ...scope.manifest.peerDependencies,
          ...scope.manifest.optionalDependencies,
          ...scope.manifest.devDependencies,
          ...rootDev,
        }
    const inCore = within(file, join(root, 'packages', 'peer', 'src', 'core'))
    const add = (specifier: string, rule: ImportViolation['rule'], message: string) =>
      violations.push({ file: rel, specifier, rule, message })
    for (const raw of importSpecifiers(readFileSync(file, 'utf8'))) {
      const specifier = raw.replace(/\?.*$/, '')
      if (specifier.startsWith('.') || specifier.startsWith('/')) {
        const target = resolve(dirname(file), specifier)
        const foreign = scope.foreign.find((dir) => within(target, dir))
        if (foreign) {
          const name = readJson(join(foreign, 'package.json')).name ?? toPosix(relative(root, foreign))
          add(raw, 'reach-in', `reaches into ${toPosix(relative(root, foreign))}: import it as '${name}'`)
          continue
        }
        if (shipped && (target.split(sep).includes('test') || within(target, join(root, 'test-support')))) {
          add(raw, 'test-code-in-src', 'shipped code imports test code')
          continue
        }
        if (inCore && !within(target, join(root, 'packages', 'peer', 'src', 'core'))) {
          add(raw, 'impure-core', 'the core imports only itself and CORE_LIBRARIES')
        }
        continue
      }
      if (specifier.startsWith('#')) {
        if (!scope.manifest.imports || !(specifier in scope.manifest.imports)) {
          add(raw, 'unknown-subpath-import', `'${specifier}' is not in the package's "imports" map`)
        }
        continue
      }
      if (specifier.startsWith('node:')) {
        if (inCore) add(raw, 'impure-core', 'the core does no I/O: no node: modules')
        continue
      }
      if (BUILTINS.has(specifier) || BUILTINS.has(packageOf(specifier))) {
        add(raw, 'builtin-prefix', `import Node's '${specifier}' as 'node:${specifier}'`)
        continue
      }
      const name = packageOf(specifier)
      if (inCore && !CORE_LIBRARIES.includes(name)) {
        add(raw, 'impure-core', `'${name}' is not one of the core's libraries (${CORE_LIBRARIES.join(', ')})`)
        continue
      }
      if (name === scope.manifest.name) continue
      if (!(name in declared)) {
        const where =
          scope.dir === root ? 'package.json' : `${toPosix(relative(root, scope.dir))}/package.json`
        add(raw, 'undeclared', `'${name}' is not declared in ${where}${shipped ? ' "dependencies"' : ''}`)
      }
    }
  }

  for (const dir of packageDirs) {
    const scope: Scope = {
      dir,
      manifest: readJson(join(dir, 'package.json')),
      foreign: packageDirs.filter((d) => d !== dir),
    }
    for (const file of walk(dir)) {
      const shipped = within(file, join(dir, 'src'))
      checkFile(file, scope, shipped)
    }
    for (const cycle of importCycles(walk(join(dir, 'src')))) {
      const names = cycle.map((file) => toPosix(relative(root, file)))
      violations.push({
        file: names[0]!,
        specifier: names.join(' → '),
        rule: 'cycle',
        message: 'these modules import each other: move what they share into a module both import',
      })
    }
  }
  const tooling: Scope = { dir: root, manifest: rootManifest, foreign: packageDirs }
  for (const name of TOOLING_DIRS) for (const file of walk(join(root, name))) checkFile(file, tooling, false)
  for (const entry of readdirSync(root)) {
    const file = join(root, entry)
    if (SOURCE_FILE.test(entry) && statSync(file).isFile()) checkFile(file, tooling, false)
  }
  return violations
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'))
  if (process.argv.includes('--help')) {
    console.log(
      'usage: node tools/check-imports.ts [repo root]\nChecks the import walls (see the comment at the top).',
    )
    process.exit(0)
  }
  const violations = checkImports(root)
  for (const v of violations) console.error(`${v.file}: ${v.rule}: '${v.specifier}': ${v.message}`)
  if (violations.length > 0) {
    console.error(`check-imports: ${violations.length} violation(s)`)
    process.exit(1)
  }
  console.log(
    'check-imports: every import is by package name and declared; src holds no test code; the core is pure',
  )
}
