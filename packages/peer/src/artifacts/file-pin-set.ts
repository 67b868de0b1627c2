/**
 * A durable {@link PinSet} in one append-only file (Node only): a line `+<cid>` pins, `-<cid>`
 * unpins. Opening folds the file and rewrites it compacted (temporary file, then rename), so the
 * file stays proportional to the pins held; a torn last line (a crash mid-append) is dropped.
 */
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs'
import { dirname } from 'node:path'
import { cidProblem } from '../core/codec.ts'
import type { PinSet } from './pin-set.ts'

/** Opens (or creates) the pin file at `path`. */
export function filePinSet(path: string): PinSet {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const pins = new Set<string>()
  if (existsSync(path)) {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const cid = line.slice(1)
      if (cidProblem(cid) !== undefined) continue
      if (line[0] === '+') pins.add(cid)
      else if (line[0] === '-') pins.delete(cid)
    }
  }
  const temporary = `${path}.tmp-${process.pid}`
  const compacted = openSync(temporary, 'w', 0o600)
  writeSync(compacted, [...pins].map((cid) => `+${cid}\n`).join(''))
  closeSync(compacted)
  renameSync(temporary, path)

  return {
    has: (cid) => pins.has(cid),
    add(cid) {
      if (pins.has(cid)) return
      appendFileSync(path, `+${cid}\n`)
      pins.add(cid)
    },
    delete(cid) {
      if (!pins.has(cid)) return
      appendFileSync(path, `-${cid}\n`)
      pins.delete(cid)
    },
    values: () => [...pins],
    close: () => undefined,
  }
}
