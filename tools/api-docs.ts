/**
 * `npm run docs`: the API reference of the installable packages, generated from their doc
 * comments. It builds the packages (`npm run build:packages`: JavaScript and declarations), reads
 * each package's declarations from its root entry with API Extractor (which brings its own
 * TypeScript: this repository's TypeScript 7 has no compiler API, and TypeDoc supports up to 6),
 * and writes Markdown with API Documenter into `docs/api/` (generated, not committed).
 *
 * It also checks the rule of the SDK issue: every optional property of an exported `…Options`
 * interface says its default (`@default`). `node tools/api-docs.ts --check` checks without writing
 * the Markdown; both exit 1 on a missing default, naming it.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Extractor, ExtractorConfig, ExtractorLogLevel } from '@microsoft/api-extractor'

const ROOT = join(import.meta.dirname, '..')
/** The packages documented (their root entry: `dist/index.d.ts`). */
export const DOCUMENTED_PACKAGES: readonly string[] = ['peer', 'node', 'relay']

interface ApiItem {
  kind: string
  name: string
  isOptional?: boolean
  docComment?: string
  members?: ApiItem[]
}

/** Optional `…Options` properties without `@default` in an API Extractor doc model, as `Interface.property`. */
export function missingDefaults(model: ApiItem): string[] {
  const missing: string[] = []
  const walk = (item: ApiItem) => {
    if (item.kind === 'Interface' && /Options$/.test(item.name)) {
      for (const member of item.members ?? []) {
        if (
          member.kind === 'PropertySignature' &&
          member.isOptional &&
          !/@default\b/.test(member.docComment ?? '')
        )
          missing.push(`${item.name}.${member.name}`)
      }
    }
    for (const child of item.members ?? []) walk(child)
  }
  walk(model)
  return missing
}

/** Reads the declarations of `pkg` into a doc model at `modelPath`. */
function extract(pkg: string, modelPath: string): void {
  const folder = join(ROOT, 'packages', pkg)
  const config = ExtractorConfig.prepare({
    configObject: {
      projectFolder: folder,
      mainEntryPointFilePath: join(folder, 'dist', 'index.d.ts'),
      compiler: {
        overrideTsconfig: {
          compilerOptions: {
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2024',
            lib: ['es2024', 'dom'],
            types: ['node'],
            skipLibCheck: true,
            strict: true,
          },
          include: [join(folder, 'dist', '**', '*.d.ts')],
        },
      },
      docModel: { enabled: true, apiJsonFilePath: modelPath },
      apiReport: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        extractorMessageReporting: { default: { logLevel: ExtractorLogLevel.None } },
        tsdocMessageReporting: { default: { logLevel: ExtractorLogLevel.None } },
        compilerMessageReporting: { default: { logLevel: ExtractorLogLevel.Warning } },
      },
    },
    configObjectFullPath: join(folder, 'api-extractor.json'),
    packageJsonFullPath: join(folder, 'package.json'),
  })
  const result = Extractor.invoke(config, { localBuild: true })
  if (!result.succeeded)
    throw new Error(`API Extractor failed on @can-swarm/${pkg}: ${result.errorCount} errors`)
}

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { cwd: ROOT, stdio: 'inherit' })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}`)
}

function main(): number {
  if (process.argv.includes('--help')) {
    console.log(
      'usage: npm run docs [-- --check]\nBuilds the packages, writes docs/api/ (Markdown), checks every optional option has a @default.',
    )
    return 0
  }
  const check = process.argv.includes('--check')
  if (!process.argv.includes('--no-build')) run('npm', ['run', '--silent', 'build:packages'])
  const models = mkdtempSync(join(tmpdir(), 'can-swarm-api-'))
  try {
    const missing: string[] = []
    for (const pkg of DOCUMENTED_PACKAGES) {
      const modelPath = join(models, `${pkg}.api.json`)
      extract(pkg, modelPath)
      const model = JSON.parse(readFileSync(modelPath, 'utf8')) as ApiItem
      for (const name of missingDefaults(model)) missing.push(`@can-swarm/${pkg}: ${name}`)
    }
    if (!check) {
      const out = join(ROOT, 'docs', 'api')
      rmSync(out, { recursive: true, force: true })
      mkdirSync(out, { recursive: true })
      run(process.execPath, [
        join(ROOT, 'node_modules', '@microsoft', 'api-documenter', 'bin', 'api-documenter'),
        'markdown',
        '-i',
        models,
        '-o',
        out,
      ])
      console.log(`api-docs: wrote docs/api/ (start at docs/api/index.md)`)
    }
    if (missing.length > 0) {
      console.error(
        `api-docs: ${missing.length} optional option(s) without @default:\n  ${missing.join('\n  ')}`,
      )
      return 1
    }
    console.log(
      `api-docs: every optional option of ${DOCUMENTED_PACKAGES.map((p) => `@can-swarm/${p}`).join(', ')} says its default`,
    )
    return 0
  } finally {
    rmSync(models, { recursive: true, force: true })
  }
}

if (import.meta.filename === process.argv[1]) process.exit(main())
