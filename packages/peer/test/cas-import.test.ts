/**
 * The CAS migration (artifacts/cas-import.ts, `npm run cas:import`) on real files in a temporary
 * directory: a corrupt file is reported and skipped, an interrupted run (in process, and a process
 * killed with SIGKILL) resumes where it stopped, the mapping is complete and exact, and every
 * imported artifact is pinned and readable through Helia afterwards.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CasImportSummary, casImport } from '../src/artifacts/cas-import.ts'
import { createHeliaArtifacts } from '../src/artifacts/helia.ts'
import { openArtifactStorage } from '../src/artifacts/storage.ts'
import { artifactCid } from '../src/core/artifacts.ts'

const root = join(import.meta.dirname, '..', '..', '..')
const CLI = join(root, 'packages/peer/src/cli/cas-import.ts')
let dir: string
const children: ChildProcess[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'can-swarm-cas-import-'))
})
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')

/**
 * An old store: `count` good files (some in a sharded subdirectory), one corrupt file (named by
 * the hash of other bytes) and one file not named by a hash. Returns the good files' bytes by name.
 */
async function oldStore(
  name: string,
  count: number,
): Promise<{ from: string; good: Map<string, Uint8Array> }> {
  const from = join(dir, name, 'cas')
  await mkdir(join(from, 'ab'), { recursive: true })
  const good = new Map<string, Uint8Array>()
  for (let index = 0; index < count; index += 1) {
    const bytes = new TextEncoder().encode(`artifact number ${index} `.repeat(1 + (index % 50)))
    const hash = sha256(bytes)
    good.set(hash, bytes)
    await writeFile(join(from, index % 3 === 0 ? 'ab' : '', hash), bytes)
  }
  await writeFile(join(from, sha256(new TextEncoder().encode('what it should hold'))), 'bit rot')
  await writeFile(join(from, 'README'), 'not an artifact')
  return { from, good }
}

/** Every mapped artifact is pinned and reads back (a fresh Helia over the same blocks and pins). */
async function expectAllImported(blocks: string, map: string, good: Map<string, Uint8Array>): Promise<void> {
  const mapping = JSON.parse(await readFile(map, 'utf8')) as Record<string, string>
  expect(Object.keys(mapping).sort()).toEqual([...good.keys()].sort())
  const store = await createHeliaArtifacts({ storage: await openArtifactStorage({ blocks }) })
  try {
    for (const [hash, bytes] of good) {
      expect(mapping[hash]).toBe(artifactCid(bytes))
      expect(store.isPinned(mapping[hash]!)).toBe(true)
      expect(await store.get(mapping[hash]!, { offline: true })).toEqual(bytes)
    }
  } finally {
    await store.stop()
  }
}

describe('cas import', () => {
  it('imports, pins and verifies; skips a corrupt file; resumes an interrupted run', async () => {
    const { from, good } = await oldStore('in-process', 12)
    const blocks = join(dir, 'in-process', 'blocks')
    const map = join(dir, 'in-process', 'map.json')
    const stop = new AbortController()
    const first = await casImport({
      from,
      blocks,
      map,
      signal: stop.signal,
      onProgress: (event) => {
        if (event.type === 'imported' && event.position === 5) stop.abort()
      },
    })
    expect(first).toMatchObject({
      files: 13,
      imported: 5,
      resumed: 0,
      complete: false,
      mapped: 5,
      ignored: 1,
    })

    // A crash mid-append leaves a torn journal line: it is not trusted.
    await appendFile(`${map}.journal`, `${[...good.keys()][11]} bafkrei`)
    const mismatches: string[] = []
    const second = await casImport({
      from,
      blocks,
      map,
      onProgress: (event) => {
        if (event.type === 'mismatch') mismatches.push(event.file)
      },
    })
    expect(second).toMatchObject({ files: 13, imported: 7, resumed: 5, complete: true, mapped: 12 })
    expect(second.mismatched).toHaveLength(1)
    expect(mismatches).toEqual(second.mismatched)
    await expectAllImported(blocks, map, good)

    const third = await casImport({ from, blocks, map })
    expect(third).toMatchObject({ imported: 0, resumed: 12, mapped: 12 })
  })

  it('the CLI: --help, a run killed with SIGKILL, then resumed to the end (exit 1 for the corrupt file)', async () => {
    const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' })
    expect(help.status).toBe(0)
    expect(help.stdout).toMatch(/--from <dir>/)
    expect(help.stdout).toMatch(/--map <file>/)
    const missing = spawnSync(
      process.execPath,
      [CLI, '--from', join(dir, 'nope'), '--blocks', dir, '--map', 'x'],
      {
        encoding: 'utf8',
      },
    )
    expect(missing.status).toBe(2)
    expect(missing.stderr).toMatch(/is not a directory/)

    const { from, good } = await oldStore('cli', 300)
    const blocks = join(dir, 'cli', 'anchor', 'blocks')
    const map = join(dir, 'cli', 'map.json')
    const args = [CLI, '--from', from, '--blocks', blocks, '--map', map]
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    await new Promise<void>((resolve, reject) => {
      let stderr = ''
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString()
        if (/imported [0-9a-f]{64}/.test(stderr)) resolve() // the first file is journaled by now
      })
      child.once('exit', () =>
        reject(new Error(`the import ended before its first progress line: ${stderr}`)),
      )
    })
    child.kill('SIGKILL')
    await exited

    const resumed = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000 })
    const lines = resumed.stdout.trim().split('\n')
    const summary = JSON.parse(lines[lines.length - 1]!) as CasImportSummary
    expect(resumed.status, resumed.stderr).toBe(1)
    expect(resumed.stderr).toMatch(/MISMATCH .*: its bytes hash to [0-9a-f]{64}; skipped/)
    expect(summary.resumed).toBeGreaterThanOrEqual(1)
    expect(summary.imported + summary.resumed).toBe(300)
    expect(summary).toMatchObject({ files: 301, mapped: 300, complete: true })
    expect(summary.mismatched).toHaveLength(1)
    await expectAllImported(blocks, map, good)
    // The pins sit where an anchor with --data <dir>/cli/anchor keeps them.
    expect(
      (await readFile(join(dir, 'cli', 'anchor', 'pins.log'), 'utf8')).split('\n').filter(Boolean),
    ).toHaveLength(300)
  })
})
