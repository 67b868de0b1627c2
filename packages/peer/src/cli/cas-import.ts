#!/usr/bin/env node
/**
 * `npm run cas:import -- --from DIR --blocks DIR --map FILE`: moves an older content-addressed
 * store (files named by their SHA-256 hex) into Helia: checks, stores, pins and reads back every
 * file, writes the `{ sha256: CID }` mapping, and resumes where an interrupted run stopped (see
 * artifacts/cas-import.ts). Progress on stderr; the last line on stdout is a JSON summary. Exit
 * code 0 when every file is in, 1 when a file did not hash to its name, was too large or did not
 * read back, 2 for bad options, 130 when interrupted (run it again to continue).
 */
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { Command } from 'commander'
import { type CasImportEvent, casImport } from '../artifacts/cas-import.ts'
import { MAX_ARTIFACT_BYTES } from '../artifacts/helia.ts'
import { peerVersionLine } from './version.ts'

const program = new Command()
  .name('npm run cas:import --')
  .version(peerVersionLine())
  .description(
    'Import a directory of content-addressed files (named by their SHA-256 hex) into a Helia blockstore: verify, pin, map, resume.',
  )
  .requiredOption('--from <dir>', 'the old store: files named by the lowercase hex SHA-256 of their bytes')
  .requiredOption('--blocks <dir>', 'the blockstore-fs directory to import into (an anchor: <data>/blocks)')
  .requiredOption('--map <file>', 'the { "<sha256>": "<cid>" } JSON mapping to write (and resume from)')
  .option('--pins <file>', 'the pin set file (default: pins.log beside the --blocks directory)')
  .option('--quiet', 'no progress lines on stderr')
  .addHelpText(
    'after',
    `
Files over ${MAX_ARTIFACT_BYTES} bytes (one artifact, one block) are reported and skipped.
An interrupted run continues where it stopped: run the same command again.
The last line of stdout is JSON: {"files","imported","resumed","mismatched","tooLarge","verifyFailed","ignored","mapped","complete"}.`,
  )
  .parse()

const options = program.opts<{ from: string; blocks: string; map: string; pins?: string; quiet?: boolean }>()
if (!existsSync(options.from) || !statSync(options.from).isDirectory()) {
  console.error(`cas:import: --from ${options.from} is not a directory`)
  process.exit(2)
}

const interrupt = new AbortController()
process.once('SIGINT', () => {
  console.error('cas:import: interrupted; finishing the file in hand (run the command again to continue)')
  interrupt.abort()
})

let lastLineMs = 0
function progress(event: CasImportEvent): void {
  if (event.type === 'start') {
    if (!options.quiet)
      console.error(`cas:import: ${event.files} files to look at, ${event.done} already mapped`)
  } else if (event.type === 'imported') {
    const now = Date.now()
    if (
      !options.quiet &&
      (event.position === 1 || event.position === event.files || now - lastLineMs >= 1000)
    ) {
      console.error(`cas:import: ${event.position}/${event.files} imported ${event.sha256} → ${event.cid}`)
      lastLineMs = now
    }
  } else if (event.type === 'mismatch') {
    console.error(`cas:import: MISMATCH ${event.file}: its bytes hash to ${event.actual}; skipped`)
  } else if (event.type === 'too-large') {
    console.error(
      `cas:import: TOO LARGE ${event.file}: ${event.sizeBytes} bytes > ${MAX_ARTIFACT_BYTES}; skipped`,
    )
  } else {
    console.error(`cas:import: VERIFY FAILED ${event.file}: ${event.cid} did not read back equal`)
  }
}

try {
  const summary = await casImport({
    from: resolve(options.from),
    blocks: resolve(options.blocks),
    ...(options.pins === undefined ? {} : { pins: resolve(options.pins) }),
    map: resolve(options.map),
    signal: interrupt.signal,
    onProgress: progress,
  })
  console.log(JSON.stringify(summary))
  const failed = summary.mismatched.length + summary.tooLarge.length + summary.verifyFailed.length
  process.exitCode = failed > 0 ? 1 : summary.complete ? 0 : 130
} catch (error) {
  console.error(`cas:import: ${(error as Error).message}`)
  process.exitCode = 2
}
