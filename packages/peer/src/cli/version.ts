/**
 * The version line every command prints for `--version`: the package's version and the envelope
 * protocol version it speaks (docs/PROTOCOL.md §2.1), so two peers' operators can tell at a glance
 * whether they can talk.
 */
import { readFileSync } from 'node:fs'
import { PROTOCOL_VERSION } from '../core/types.ts'

/** `<name> <version> (protocol v<N>)` of the package.json at `packageJson` (a file URL). */
export function versionLine(packageJson: URL): string {
  const parsed = JSON.parse(readFileSync(packageJson, 'utf8')) as { name?: unknown; version?: unknown }
  const name = typeof parsed.name === 'string' ? parsed.name : 'can-swarm'
  const version = typeof parsed.version === 'string' ? parsed.version : '0.0.0'
  return `${name} ${version} (protocol v${PROTOCOL_VERSION})`
}

/** The peer package's own version line. */
export function peerVersionLine(): string {
  return versionLine(new URL('../../package.json', import.meta.url))
}
