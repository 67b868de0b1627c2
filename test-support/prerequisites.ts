/**
 * What some tests need from the machine beyond `npm ci`, in one place: each prerequisite with its
 * probe and the reason it gives when missing. `npm run setup` (tools/setup.sh) installs all of
 * them; a test that needs one asks {@link need} first.
 *
 * - With `CI=true` a missing prerequisite is an error: CI must run every test.
 * - Otherwise the test is skipped, and the skip is recorded (prerequisite, reason, test file) in
 *   `test-results/skipped.jsonl`, so that `npm test` ends by naming what it skipped and why
 *   (tools/test.ts) instead of letting a notice scroll by.
 */
import { spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { CHROMIUM } from '../e2e/support/chromium-flags.ts'

/** The repository root. */
export const REPO_ROOT: string = join(import.meta.dirname, '..')

/** Where skips are recorded, one JSON object per line ({@link SkipRecord}). */
export const SKIP_LOG: string = join(REPO_ROOT, 'test-results', 'skipped.jsonl')

/** Where the tests look for etcd. @default /usr/bin/etcd, or $ETCD_BIN */
export const ETCD_BIN: string = process.env.ETCD_BIN ?? '/usr/bin/etcd'

/** The command that installs every prerequisite. */
export const SETUP_COMMAND = 'npm run setup'

/** One recorded skip. */
export interface SkipRecord {
  prerequisite: PrerequisiteName
  reason: string
  /** The test file (or project) that skipped, relative to the repository root. */
  where: string
}

const isRoot = () => process.getuid?.() === 0

function runs(command: string, args: string[]): boolean {
  try {
    return spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 }).status === 0
  } catch {
    return false
  }
}

/** Each prerequisite: a probe that returns why it is missing, or `undefined` when it is there. */
export const PREREQUISITES = {
  chromium: () =>
    existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (Debian's chromium package)`,
  etcd: () =>
    existsSync(ETCD_BIN)
      ? undefined
      : `etcd not found at ${ETCD_BIN} (Debian's etcd-server, or set ETCD_BIN)`,
  opa: () => {
    const bin = join(REPO_ROOT, '.tools', 'bin', 'opa')
    return existsSync(bin)
      ? undefined
      : `${relative(REPO_ROOT, bin)} not built (npm run policy:build builds it)`
  },
  /** A private network namespace holding only `lo` (root, unshare, ip). */
  netns: () =>
    isRoot() && runs('unshare', ['-n', 'sh', '-c', 'ip link set lo up'])
      ? undefined
      : 'no private network namespace: needs root, unshare (util-linux) and ip (iproute2)',
  /** Named network namespaces joined by veth links (root, `ip netns`). */
  'ip-netns': () =>
    isRoot() && runs('ip', ['netns', 'list']) ? undefined : 'no `ip netns`: needs root and iproute2',
  /** A private mount namespace (for a tmpfs that fills up). */
  'mount-namespace': () =>
    runs('unshare', ['-m', 'true']) ? undefined : 'no private mount namespace: needs root and unshare',
  'nats-server': () =>
    runs('nats-server', ['--version']) ? undefined : "nats-server not found (Debian's nats-server)",
} satisfies Record<string, () => string | undefined>

export type PrerequisiteName = keyof typeof PREREQUISITES

const probed = new Map<PrerequisiteName, string | undefined>()

/** Why `name` is missing here, or `undefined` when it is present (probed once per process). */
export function missing(name: PrerequisiteName): string | undefined {
  if (!probed.has(name)) probed.set(name, PREREQUISITES[name]())
  return probed.get(name)
}

/**
 * Whether the tests of `where` (a file path or a project name) can run what needs `name`.
 * Missing under `CI=true`: throws. Missing otherwise: warns, records the skip and returns false.
 *
 * @example
 * ```ts
 * const available = need('etcd', import.meta.filename)
 * describe.skipIf(!available)('on a real etcd', () => { … })
 * ```
 */
export function need(name: PrerequisiteName, where: string): boolean {
  const reason = missing(name)
  if (reason === undefined) return true
  const at = where.startsWith('/') ? relative(REPO_ROOT, where) : where
  if (process.env.CI === 'true') throw new Error(`CI=true and ${reason} (${at}): run ${SETUP_COMMAND}`)
  console.warn(`\n[skip] ${at}: ${reason}; ${SETUP_COMMAND} installs it\n`)
  recordSkip({ prerequisite: name, reason, where: at })
  return false
}

/** Appends one skip to {@link SKIP_LOG}. */
export function recordSkip(record: SkipRecord): void {
  try {
    mkdirSync(join(REPO_ROOT, 'test-results'), { recursive: true })
    appendFileSync(SKIP_LOG, `${JSON.stringify(record)}\n`)
  } catch {
    // The record is a courtesy for the summary; the warning above has been printed.
  }
}
