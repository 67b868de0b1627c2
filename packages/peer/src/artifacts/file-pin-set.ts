/**
 * A durable {@link PinSet} in one append-only file (Node only): a line `+<cid>` pins, `-<cid>`
 * unpins. Opening folds the file and rewrites it compacted — a temporary file, fsync'd, renamed over
 * the old one, the directory fsync'd — so a crash leaves the old pins or the new ones, never an empty
 * pin set (which would let garbage collection delete pinned blocks). Each pin or unpin is appended
 * and fsync'd before it counts; a torn last line (a crash mid-append) is dropped.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs'
import { dirname } from 'node:path'
import { cidProblem } from '../core/codec.ts'
import type { PinSet } from './pin-set.ts'

function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text)
  let written = 0
  while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written)
}

function fsyncDirectory(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

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
  try {
    writeAll(compacted, [...pins].map((cid) => `+${cid}\n`).join(''))
    fsyncSync(compacted)
  } finally {
    closeSync(compacted)
  }
  renameSync(temporary, path)
  fsyncDirectory(dirname(path))
  const fd = openSync(path, 'a', 0o600)
  let closed = false
  const record = (line: string) => {
    writeAll(fd, line)
    fsyncSync(fd)
  }

  return {
    has: (cid) => pins.has(cid),
    add(cid) {
      if (pins.has(cid)) return
      record(`+${cid}\n`)
      pins.add(cid)
    },
    delete(cid) {
      if (!pins.has(cid)) return
      record(`-${cid}\n`)
      pins.delete(cid)
    },
    values: () => [...pins],
    close() {
      if (closed) return
      closed = true
      closeSync(fd)
    },
  }
}
