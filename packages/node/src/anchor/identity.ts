/**
 * The anchor's persistent identity: one Ed25519 seed in `<data>/identity.json` (mode 0600),
 * created on first start. The same key signs envelopes and (with the libp2p peer) names the node.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createIdentity, InvalidArgumentError, type LocalIdentity } from '@can-swarm/peer'
import { writeFileDurably } from '../storage/durable.ts'

const FILE = 'identity.json'

/** Loads the identity from `dataDir`, creating it (atomically) when absent. */
export async function loadOrCreateIdentity(
  dataDir: string,
): Promise<{ identity: LocalIdentity; created: boolean }> {
  const path = join(dataDir, FILE)
  if (existsSync(path)) {
    let seed: Uint8Array
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown; seed?: unknown }
      if (parsed.version !== 1 || typeof parsed.seed !== 'string')
        throw new Error('expected {"version":1,"seed":…}')
      seed = Uint8Array.from(Buffer.from(parsed.seed, 'base64'))
      if (seed.length !== 32) throw new Error(`seed has ${seed.length} bytes, not 32`)
    } catch (error) {
      throw new InvalidArgumentError(
        `identity file ${path} is unreadable (${(error as Error).message}); restore it from a backup or move it away to create a new identity`,
        'identity',
      )
    }
    return { identity: await createIdentity({ seed }), created: false }
  }
  const seed = new Uint8Array(randomBytes(32))
  const identity = await createIdentity({ seed })
  // Durable before it is used: a crash must never leave an empty identity file behind.
  writeFileDurably(
    path,
    `${JSON.stringify({ version: 1, did: identity.did, seed: Buffer.from(seed).toString('base64') })}\n`,
    0o600,
  )
  return { identity, created: true }
}
