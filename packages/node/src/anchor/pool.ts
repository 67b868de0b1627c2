/**
 * The verifier pool an anchor decides under (docs/PROTOCOL.md §8): the genesis pool, then each new
 * snapshot the anchor adopts when its live ledger's pool changes (verifiers stake or leave through
 * signed manifests) or the bootstrap monitor says the network may leave bootstrap mode.
 *
 * A snapshot is adopted at an epoch boundary: the anchor advances its consensus store's epoch and
 * then decides under the new snapshot, which every DECIDE carries — so the fold of a thread follows
 * the pool its own DECIDE names and never splits between replicas that know different pools. The
 * last adopted snapshot is kept in `<data>/pool.json` (durably) so that pool epochs only rise.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Agent, Genesis, PoolEntry, PoolSnapshot } from '@can-swarm/peer'
import { type NetworkParams, withPool } from '@can-swarm/peer'
import { writeFileDurably } from '../storage/durable.ts'
import type { HealingStore } from './sync.ts'

/** The genesis pool as a snapshot of pool epoch 0; verifiers without entries get one of their own org. */
export function genesisSnapshot(genesis: Genesis): PoolSnapshot {
  const { pool, createdMs, economy } = genesis.body
  const entries = new Map(pool.entries.map((entry) => [entry.did, entry]))
  return {
    epoch: 0,
    bootstrap: pool.bootstrap,
    verifiers: [...pool.verifiers],
    entries: pool.verifiers.map(
      (did) =>
        entries.get(did) ?? {
          did,
          stake: economy.verifierStake,
          reputationPerMille: 500,
          lastActiveMs: createdMs,
          entity: did,
          org: did,
          asn: did,
          region: 'genesis',
        },
    ),
    snapshotMs: createdMs,
  }
}

/**
 * The pool the anchor wants now: the genesis verifiers (unless their manifest left) and every
 * staked verifier of the live ledger, with bootstrap as the genesis says until the monitor
 * recommends leaving it.
 */
export function desiredSnapshot(input: {
  genesis: Genesis
  ledgerPool: readonly PoolEntry[]
  /** Verifiers whose newest manifest declared stake 0 (they left). */
  left: ReadonlySet<string>
  bootstrap: boolean
  nowMs: number
}): Omit<PoolSnapshot, 'epoch'> {
  const base = genesisSnapshot(input.genesis)
  const byDid = new Map<string, PoolEntry>()
  for (const entry of base.entries) if (!input.left.has(entry.did)) byDid.set(entry.did, entry)
  for (const entry of input.ledgerPool) byDid.set(entry.did, entry)
  const entries = [...byDid.values()].sort((a, b) => (a.did < b.did ? -1 : 1))
  return {
    bootstrap: input.bootstrap,
    verifiers: entries.map((entry) => entry.did),
    entries: entries.map((entry) => ({ ...entry })),
    snapshotMs: Math.floor(input.nowMs),
  }
}

/** Whether two snapshots name the same pool (members, stake, diversity, bootstrap). */
export function samePool(
  a: Omit<PoolSnapshot, 'epoch' | 'snapshotMs'>,
  b: Omit<PoolSnapshot, 'epoch' | 'snapshotMs'>,
): boolean {
  const key = (p: Omit<PoolSnapshot, 'epoch' | 'snapshotMs'>) =>
    JSON.stringify([
      p.bootstrap,
      p.verifiers,
      p.entries.map((e) => [e.did, e.stake, e.entity, e.org, e.asn, e.region]),
    ])
  return key(a) === key(b)
}

/** Adopts new pool snapshots at epoch boundaries and hands them to the anchor's agent. */
export class PoolAdopter {
  readonly #path: string
  readonly #genesisParams: NetworkParams
  readonly #store: HealingStore
  #agent: Agent | undefined
  #adopted: PoolSnapshot

  private constructor(path: string, params: NetworkParams, store: HealingStore, adopted: PoolSnapshot) {
    this.#path = path
    this.#genesisParams = params
    this.#store = store
    this.#adopted = adopted
  }

  /** The adopter of `dataDir`, with the last snapshot adopted there (or the genesis pool). */
  static open(input: {
    dataDir: string
    genesis: Genesis
    params: NetworkParams
    store: HealingStore
  }): PoolAdopter {
    const path = join(input.dataDir, 'pool.json')
    const adopted = existsSync(path)
      ? (JSON.parse(readFileSync(path, 'utf8')) as PoolSnapshot)
      : genesisSnapshot(input.genesis)
    return new PoolAdopter(path, input.params, input.store, adopted)
  }

  /** Hands every snapshot adopted from now on to `agent` (which starts with {@link adopted}). */
  attach(agent: Agent): void {
    this.#agent = agent
    agent.setParams(withPool(this.#genesisParams, this.#adopted))
  }

  /** The snapshot the anchor decides under now. */
  get adopted(): PoolSnapshot {
    return this.#adopted
  }

  /**
   * Adopts `desired` if it names another pool than the adopted one: the consensus store's epoch
   * advances first (the boundary), then the snapshot is kept and handed to the agent. Returns
   * whether it changed.
   */
  async adopt(desired: Omit<PoolSnapshot, 'epoch'>): Promise<boolean> {
    if (samePool(desired, this.#adopted)) return false
    const current = await this.#store.currentEpoch()
    if (this.#store.fenceEpoch) await this.#store.fenceEpoch(current + 1)
    const next: PoolSnapshot = { ...desired, epoch: this.#adopted.epoch + 1 }
    writeFileDurably(this.#path, `${JSON.stringify(next)}\n`)
    this.#adopted = next
    this.#agent?.setParams(withPool(this.#genesisParams, next))
    return true
  }
}
