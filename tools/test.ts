/**
 * `npm test`: every test, in order — lint (biome and the import walls), typecheck, vitest (the
 * node, api and chromium projects), the browser e2e tests — stopping at the first step that fails,
 * then a closing report of what ran, what failed and what was skipped and why, naming
 * `npm run setup` for every prerequisite this machine lacks (test-support/prerequisites.ts).
 *
 * Usage: `node tools/test.ts [--help] [--version]`. Exit status: 0 when every step passed.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join, relative } from 'node:path'
import { REPO_ROOT, SETUP_COMMAND, SKIP_LOG, type SkipRecord } from '../test-support/prerequisites.ts'

/** The steps of `npm test`, each an npm script of the root package.json. */
export const STEPS: readonly { name: string; script: string }[] = [
  { name: 'lint', script: 'lint' },
  { name: 'typecheck', script: 'typecheck' },
  { name: 'vitest', script: 'test:unit' },
  { name: 'e2e', script: 'test:e2e' },
]

const RESULTS = join(REPO_ROOT, 'test-results')
const REPORTS = [join(RESULTS, 'vitest.json'), join(RESULTS, 'vitest-e2e.json')]

interface VitestReport {
  numPassedTests: number
  numFailedTests: number
  numPendingTests: number
  numTodoTests: number
  testResults: { name: string; assertionResults: { status: string; fullName?: string }[] }[]
}

/** Per test file: how many tests ran and how many were skipped, from vitest's JSON reports. */
export interface TestCounts {
  passed: number
  failed: number
  skipped: number
  files: number
  skippedByFile: Map<string, number>
}

export function countTests(reports: readonly VitestReport[]): TestCounts {
  const counts: TestCounts = { passed: 0, failed: 0, skipped: 0, files: 0, skippedByFile: new Map() }
  for (const report of reports) {
    counts.passed += report.numPassedTests
    counts.failed += report.numFailedTests
    counts.skipped += report.numPendingTests + report.numTodoTests
    for (const file of report.testResults) {
      counts.files++
      const skipped = file.assertionResults.filter(
        (test) => test.status !== 'passed' && test.status !== 'failed',
      )
      if (skipped.length > 0) {
        const name = relative(REPO_ROOT, file.name)
        counts.skippedByFile.set(name, (counts.skippedByFile.get(name) ?? 0) + skipped.length)
      }
    }
  }
  return counts
}

/** The closing report: lines to print, from the reports and the skip records. */
export function summarize(reports: readonly VitestReport[], skips: readonly SkipRecord[]): string[] {
  const lines: string[] = []
  const counts = countTests(reports)
  lines.push(
    `ran ${counts.passed + counts.failed + counts.skipped} tests in ${counts.files} files: ` +
      `${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`,
  )
  const byPrerequisite = new Map<string, { reason: string; where: Set<string> }>()
  for (const skip of skips) {
    const entry = byPrerequisite.get(skip.prerequisite) ?? { reason: skip.reason, where: new Set<string>() }
    entry.where.add(skip.where)
    byPrerequisite.set(skip.prerequisite, entry)
  }
  if (byPrerequisite.size === 0) {
    lines.push('nothing was skipped for a missing prerequisite')
  } else {
    lines.push(
      `SKIPPED for missing prerequisites (\`${SETUP_COMMAND}\` installs them, then run \`npm test\` again):`,
    )
    const explained = new Set<string>()
    for (const [name, { reason, where }] of byPrerequisite) {
      const places = [...where].sort()
      for (const place of places) explained.add(place)
      const tests = places.reduce((sum, place) => sum + (counts.skippedByFile.get(place) ?? 0), 0)
      lines.push(`  - ${name}: ${reason}`)
      lines.push(`    ${tests > 0 ? `${tests} tests in ` : ''}${places.join(', ')}`)
    }
  }
  const other = [...counts.skippedByFile].filter(([file]) => !skips.some((skip) => skip.where === file))
  if (other.length > 0) {
    lines.push(
      `skipped by design (runtime-specific or opt-in): ${other.map(([file, n]) => `${file} (${n})`).join(', ')}`,
    )
  }
  return lines
}

function readReports(): VitestReport[] {
  return REPORTS.filter((path) => existsSync(path)).map(
    (path) => JSON.parse(readFileSync(path, 'utf8')) as VitestReport,
  )
}

function readSkips(): SkipRecord[] {
  if (!existsSync(SKIP_LOG)) return []
  return readFileSync(SKIP_LOG, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as SkipRecord)
}

function main(): number {
  if (process.argv.includes('--help')) {
    console.log(
      `usage: npm test   (node tools/test.ts)\nRuns ${STEPS.map((s) => s.name).join(', ')}; stops at the first failure; ends with what ran and what was skipped and why.`,
    )
    return 0
  }
  if (process.argv.includes('--version')) {
    console.log(JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version)
    return 0
  }
  for (const stale of [...REPORTS, SKIP_LOG]) rmSync(stale, { force: true })
  const timings: string[] = []
  let failed: string | undefined
  for (const step of STEPS) {
    const started = performance.now()
    console.log(`\n[test] ${step.name}: npm run ${step.script}`)
    const result = spawnSync('npm', ['run', '--silent', step.script], { cwd: REPO_ROOT, stdio: 'inherit' })
    const seconds = Math.round((performance.now() - started) / 1000)
    timings.push(`${step.name} ${result.status === 0 ? 'ok' : 'FAILED'} (${seconds} s)`)
    if (result.status !== 0) {
      failed = step.name
      break
    }
  }
  const notRun = STEPS.slice(timings.length).map((step) => `${step.name} not run`)
  console.log(`\n[test] ${[...timings, ...notRun].join(' · ')}`)
  for (const line of summarize(readReports(), readSkips())) console.log(`[test] ${line}`)
  if (failed) console.log(`[test] FAILED at ${failed}`)
  return failed ? 1 : 0
}

if (import.meta.filename === process.argv[1]) process.exit(main())
