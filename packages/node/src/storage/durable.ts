/**
 * Durable small files: written whole to a temporary file, fsync'd, renamed over the old one and the
 * directory fsync'd, so a crash leaves either the old file or the new one — never an empty or half
 * file (identity, genesis, manifests, pool snapshots).
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/** fsyncs a directory (after a file in it was created or renamed). */
export function fsyncDirectory(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Writes `text` to `path` atomically and durably (file and directory fsync'd). */
export function writeFileDurably(path: string, text: string, mode = 0o600): void {
  const temporary = `${path}.tmp-${process.pid}`
  const fd = openSync(temporary, 'w', mode)
  try {
    const bytes = Buffer.from(text)
    let written = 0
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, path)
  fsyncDirectory(dirname(path))
}
