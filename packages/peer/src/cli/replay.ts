#!/usr/bin/env node
/**
 * `npm run replay -- FILE|DIR …`: verifies signed JSONL traces (every envelope's id and signature,
 * the hash chain, the recorder's signature), re-runs the core over them and prints, as its last
 * line, JSON with the final state hash. Exits 1 with the reason when a trace is tampered,
 * reordered or truncated.
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { Command } from 'commander'
import { replayTrace } from '../audit/trace.ts'
import { hashCanonical } from '../core/codec.ts'
import { CanSwarmError } from '../core/errors.ts'
import { peerVersionLine } from './version.ts'

const program = new Command()
  .name('npm run replay --')
  .version(peerVersionLine())
  .description(
    'Verify and replay signed CAN Swarm thread traces (.jsonl); directories are searched recursively.',
  )
  .argument('<paths...>', 'trace files or directories')
  .option('--quiet', 'only the final JSON line')
  .parse()

const quiet = program.opts<{ quiet?: boolean }>().quiet === true

/** Collects trace files; `name` is the path relative to the argument, so hashes survive a move. */
async function collect(root: string, path: string, into: { path: string; name: string }[]): Promise<void> {
  const info = await stat(path)
  if (info.isDirectory()) {
    for (const entry of (await readdir(path)).sort()) await collect(root, join(path, entry), into)
  } else if (path === root || path.endsWith('.jsonl')) {
    into.push({ path, name: path === root ? path : relative(root, path) })
  }
}

const files: { path: string; name: string }[] = []
try {
  for (const path of program.args) await collect(path, path, files)
} catch (error) {
  console.error(`replay: ${(error as Error).message}`)
  process.exit(2)
}
if (files.length === 0) {
  console.error('replay: no .jsonl traces found')
  process.exit(2)
}

const results: { file: string; name: string; thread: string; envelopes: number; stateHash: string }[] = []
for (const { path: file, name } of files) {
  try {
    const result = await replayTrace(await readFile(file, 'utf8'))
    results.push({
      file,
      name,
      thread: result.thread,
      envelopes: result.envelopes,
      stateHash: result.stateHash,
    })
    if (!quiet && files.length > 1)
      console.error(`ok ${file} ${result.envelopes} envelopes ${result.stateHash}`)
  } catch (error) {
    const reason = error instanceof CanSwarmError ? error.message : String(error)
    console.error(`replay: ${file}: ${reason}`)
    console.log(JSON.stringify({ ok: false, file, error: reason }))
    process.exit(1)
  }
}
const last =
  results.length === 1
    ? {
        ok: true,
        file: results[0]!.file,
        thread: results[0]!.thread,
        envelopes: results[0]!.envelopes,
        stateHash: results[0]!.stateHash,
      }
    : {
        ok: true,
        files: results.length,
        envelopes: results.reduce((sum, r) => sum + r.envelopes, 0),
        stateHash: hashCanonical(results.map((r) => [r.name, r.stateHash])),
      }
console.log(JSON.stringify(last))
