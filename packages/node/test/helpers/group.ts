/** A network of several anchors for tests: one genesis, signed by the identity of each data directory. */
import { mkdirSync } from 'node:fs'
import { createGenesisFile } from '../../src/anchor/genesis.ts'
import { loadOrCreateIdentity } from '../../src/anchor/identity.ts'

/** Creates the data directories (and their identities) and writes the group's genesis to `out`; returns `out`. */
export async function groupGenesis(
  dataDirs: readonly string[],
  out: string,
  options: {
    verifiers?: readonly string[]
    bootstrapMode?: boolean
    allocations?: readonly { did: string; amount: number }[]
  } = {},
): Promise<string> {
  const identities = []
  for (const dir of dataDirs) {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    identities.push((await loadOrCreateIdentity(dir)).identity)
  }
  await createGenesisFile({
    identities,
    out,
    ...(options.verifiers ? { verifiers: options.verifiers } : {}),
    ...(options.allocations ? { allocations: options.allocations } : {}),
    ...(options.bootstrapMode === undefined ? {} : { bootstrapMode: options.bootstrapMode }),
  })
  return out
}
