/**
 * Migration of an older content-addressed store into Helia (Node only; `npm run cas:import`).
 *
 * The old `.cas` layout is a directory (searched recursively) of files named by the lowercase hex
 * SHA-256 of their bytes. Each file is checked (its SHA-256 must equal its name: a mismatch is
 * reported and skipped), stored as one raw block in a blockstore-fs directory, pinned, and read
 * back through Helia and compared before it counts as imported. The result is a JSON mapping
 * `{ "<sha256 hex>": "<CID>" }` (the CID is `artifactCid(bytes)`: raw, sha2-256 of the same digest).
 *
 * Resumable: every imported file is appended to `<map>.journal` as soon as it is verified; a run
 * skips what the mapping and the journal already hold (and whose block is still there), so an
 * interrupted run — Ctrl-C, a kill, a crash — continues where it stopped. The mapping is written
 * atomically (a temporary file, then a rename) at the end of every run, and the journal is then
 * emptied into it.
 */
import { createHash } from 'node:crypto'
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { artifactCid } from '../core/artifacts.ts'
import { createHeliaArtifacts, MAX_ARTIFACT_BYTES } from './helia.ts'
import { openArtifactStorage } from './storage.ts'

/** Options of {@link casImport}. */
export interface CasImportOptions {
  /** Directory of files named by their SHA-256 (hex), searched recursively. */
  from: string
  /** blockstore-fs directory the blocks go to (created if missing). */
  blocks: string
  /** File of the pin set. @default `pins.log` beside `blocks` (as an anchor's data directory has it) */
  pins?: string
  /** The `{ sha256: CID }` JSON mapping to write (and to resume from). */
  map: string
  /** Stops after the file in hand; what is done stays done. */
  signal?: AbortSignal
  /** Called after each file and for each problem. */
  onProgress?: (event: CasImportEvent) => void
}

/** What {@link casImport} reports as it goes. */
export type CasImportEvent =
  | { type: 'start'; files: number; done: number }
  | { type: 'imported'; sha256: string; cid: string; position: number; files: number }
  | { type: 'mismatch'; file: string; actual: string }
  | { type: 'too-large'; file: string; sizeBytes: number }
  | { type: 'verify-failed'; file: string; cid: string }

/** The outcome of a run (printed by the CLI as its last line). */
export interface CasImportSummary {
  /** Files named by a SHA-256 under `from`. */
  files: number
  /** Imported and verified by this run. */
  imported: number
  /** Already imported by an earlier run. */
  resumed: number
  /** Files whose bytes do not hash to their name (relative paths). */
  mismatched: string[]
  /** Files larger than one artifact may be. */
  tooLarge: string[]
  /** Files whose block did not read back equal. */
  verifyFailed: string[]
  /** Other files under `from` (not named by a SHA-256). */
  ignored: number
  /** Entries in the mapping now. */
  mapped: number
  /** False when the run was interrupted before every file was looked at. */
  complete: boolean
}

const SHA256_NAME = /^[0-9a-fA-F]{64}$/

/**
 * Imports, pins and verifies every file of an old content-addressed directory; see the module
 * comment. Never throws for a bad file (it is counted in the summary); throws when `from` cannot
 * be read or the targets cannot be written.
 */
export async function casImport(options: CasImportOptions): Promise<CasImportSummary> {
  const { files, ignored } = await listCasFiles(options.from)
  const journal = `${options.map}.journal`
  const done = readMapping(options.map, journal)
  mkdirSync(dirname(options.map), { recursive: true })
  const store = await createHeliaArtifacts({
    storage: await openArtifactStorage({
      blocks: options.blocks,
      ...(options.pins ? { pins: options.pins } : {}),
    }),
    pinOnPut: true,
  })
  const summary: CasImportSummary = {
    files: files.length,
    imported: 0,
    resumed: 0,
    mismatched: [],
    tooLarge: [],
    verifyFailed: [],
    ignored,
    mapped: 0,
    complete: false,
  }
  const report = options.onProgress ?? (() => undefined)
  try {
    report({ type: 'start', files: files.length, done: done.size })
    let position = 0
    for (const file of files) {
      if (options.signal?.aborted) break
      position += 1
      const name = relative(options.from, file)
      const sha256 = fileName(file).toLowerCase()
      const known = done.get(sha256)
      if (known !== undefined && (await store.has(known)) && store.isPinned(known)) {
        summary.resumed += 1
        continue
      }
      const sizeBytes = (await stat(file)).size
      if (sizeBytes > MAX_ARTIFACT_BYTES) {
        summary.tooLarge.push(name)
        report({ type: 'too-large', file: name, sizeBytes })
        continue
      }
      const bytes = new Uint8Array(await readFile(file))
      const actual = createHash('sha256').update(bytes).digest('hex')
      if (actual !== sha256) {
        summary.mismatched.push(name)
        report({ type: 'mismatch', file: name, actual })
        continue
      }
      const cid = await store.put(bytes)
      const back = await store.get(cid, { offline: true })
      if (back === undefined || !equalBytes(back, bytes) || cid !== artifactCid(back)) {
        summary.verifyFailed.push(name)
        report({ type: 'verify-failed', file: name, cid })
        continue
      }
      appendFileSync(journal, `${sha256} ${cid}\n`)
      done.set(sha256, cid)
      summary.imported += 1
      report({ type: 'imported', sha256, cid, position, files: files.length })
    }
    summary.complete = !options.signal?.aborted || position === files.length
  } finally {
    await store.stop()
  }
  writeMapping(options.map, done)
  rmSync(journal, { force: true })
  summary.mapped = done.size
  return summary
}

/** Files under `dir` named by a SHA-256, sorted by path, and how many others there are. */
export async function listCasFiles(dir: string): Promise<{ files: string[]; ignored: number }> {
  const files: string[] = []
  let ignored = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    if (SHA256_NAME.test(entry.name)) files.push(join(entry.parentPath, entry.name))
    else ignored += 1
  }
  files.sort()
  return { files, ignored }
}

/** The mapping so far: the JSON file, then the journal's complete lines. */
function readMapping(map: string, journal: string): Map<string, string> {
  const done = new Map<string, string>()
  if (existsSync(map)) {
    const value = JSON.parse(readFileSync(map, 'utf8')) as Record<string, unknown>
    for (const [sha256, cid] of Object.entries(value)) {
      if (SHA256_NAME.test(sha256) && typeof cid === 'string') done.set(sha256.toLowerCase(), cid)
    }
  }
  if (existsSync(journal)) {
    const text = readFileSync(journal, 'utf8')
    // A line without its newline was cut short by a crash: it is not trusted.
    for (const line of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) {
      const [sha256, cid] = line.split(' ')
      if (sha256 && cid && SHA256_NAME.test(sha256)) done.set(sha256, cid)
    }
  }
  return done
}

function writeMapping(map: string, done: ReadonlyMap<string, string>): void {
  const sorted = Object.fromEntries([...done.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  const temporary = `${map}.tmp-${process.pid}`
  writeFileSync(temporary, `${JSON.stringify(sorted, null, 2)}\n`)
  renameSync(temporary, map)
}

function fileName(path: string): string {
  return path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1)
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let index = 0; index < a.length; index += 1) if (a[index] !== b[index]) return false
  return true
}
