/**
 * The anchor's faucet (A7, docs/PROTOCOL.md §9): on request (`POST /api/faucet/<did>`) it signs a
 * grant of its network — only if the faucet rule admits it (one account at most `grantCredits` in
 * its life, the network at most `maxCreditsPerWindow` per window) — and keeps every grant in
 * `<data>/grants.jsonl`, one JSON line each, fsync'd before the grant is acknowledged. On start the
 * file is read back and every grant verified; a torn last line (a crash mid-write) is cut off.
 *
 * Anchors that share a consensus store (an etcd group) grant an account once between them: the
 * grant first claims the key `faucet/<did>` with the store's create-if-absent, as DECIDE claims a
 * NEED, and the record carries the signed grant, so that another anchor of the group learns it
 * ({@link GrantStore.learn}) when it checks that account's funds. (Anchors with separate stores each
 * keep their own faucet until a heal merges the stores: an account may then be granted once per
 * such anchor.)
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { ConsensusStore, FaucetRule, Identity } from '@can-swarm/peer'
import {
  didKeyProblem,
  faucetProblem,
  InvalidArgumentError,
  type SignedGrant,
  signGrant,
  verifyGrant,
} from '@can-swarm/peer'

/** Why a grant was refused, with the HTTP status that says so. */
export interface GrantRefusal {
  status: number
  error: string
  field?: string
}

export class GrantStore {
  readonly path: string
  readonly #identity: Identity
  readonly #network: { network: string; anchors: readonly string[] }
  readonly #rule: FaucetRule
  readonly #consensus: ConsensusStore | undefined
  #grants: SignedGrant[]
  #fd: number
  #version = 0
  #clock: () => number

  private constructor(
    path: string,
    fd: number,
    grants: SignedGrant[],
    identity: Identity,
    network: { network: string; anchors: readonly string[] },
    rule: FaucetRule,
    clock: () => number,
    consensus: ConsensusStore | undefined,
  ) {
    this.path = path
    this.#consensus = consensus
    this.#fd = fd
    this.#grants = grants
    this.#identity = identity
    this.#network = network
    this.#rule = rule
    this.#clock = clock
  }

  /** Opens the grants of `dataDir`, verifying each one. */
  static async open(options: {
    dataDir: string
    identity: Identity
    network: { network: string; anchors: readonly string[] }
    rule: FaucetRule
    clock?: () => number
    /** The anchor's consensus store: one grant per account among the anchors sharing it. */
    consensus?: ConsensusStore
  }): Promise<GrantStore> {
    const path = join(options.dataDir, 'grants.jsonl')
    const grants: SignedGrant[] = []
    let keep = 0
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8')
      let offset = 0
      for (const line of text.split('\n')) {
        const end = offset + Buffer.byteLength(line) + 1
        if (line.trim() !== '') {
          try {
            grants.push(await verifyGrant(JSON.parse(line), options.network))
          } catch (error) {
            if (end >= Buffer.byteLength(text)) break // a torn last line: cut below
            throw new InvalidArgumentError(
              `${path} holds a line that is not a grant of this network (${(error as Error).message}): restore it from a backup`,
              'data',
            )
          }
        }
        keep = Math.min(end, Buffer.byteLength(text))
        offset = end
      }
    }
    const fd = openSync(path, 'a+', 0o600)
    if (existsSync(path)) {
      ftruncateSync(fd, keep)
      fsyncSync(fd)
    }
    return new GrantStore(
      path,
      fd,
      grants,
      options.identity,
      options.network,
      options.rule,
      options.clock ?? Date.now,
      options.consensus,
    )
  }

  /** Changes whenever a grant is made. */
  get version(): number {
    return this.#version
  }

  /** Every grant kept, in the order made. */
  all(): readonly SignedGrant[] {
    return this.#grants
  }

  /** The amount the faucet would grant `did` at `atMs`, or why it would not. */
  #check(did: string, atMs: number): number | GrantRefusal {
    const problem = didKeyProblem(did)
    if (problem !== undefined) return { status: 400, error: `not an account: ${problem}`, field: 'did' }
    const received = this.#grants.filter((g) => g.to === did).reduce((sum, g) => sum + g.amount, 0)
    const amount = this.#rule.grantCredits - received
    if (amount <= 0) {
      return {
        status: 409,
        error: `${did} has had the ${this.#rule.grantCredits} credits the faucet gives one account`,
      }
    }
    const refusal = faucetProblem({ to: did, amount, atMs }, this.#grants, this.#rule)
    if (refusal !== undefined)
      return { status: 429, error: `the faucet refuses: ${refusal}; try again later` }
    return amount
  }

  /**
   * Grants the faucet's credits to `did` if the rule admits it, signed and made durable before it
   * resolves; otherwise resolves with why not.
   */
  async request(did: string): Promise<SignedGrant | GrantRefusal> {
    const atMs = Math.floor(this.#clock())
    const amount = this.#check(did, atMs)
    if (typeof amount !== 'number') return amount
    const grant = await signGrant(this.#identity, { net: this.#network.network, to: did, amount, atMs })
    if (this.#consensus) {
      const epoch = await this.#consensus.currentEpoch()
      const claim = await this.#consensus.tryDecide({
        need: `faucet/${did}`,
        proposal: JSON.stringify(grant),
        epoch,
        lamport: 1,
        kPlan: 1,
        decider: this.#identity.did,
      })
      if (claim.outcome === 'conflict') {
        return {
          status: 409,
          error: `${did} was granted the faucet's credits by anchor ${claim.record.decider}`,
        }
      }
    }
    // Checked again: another request may have been granted while this one was being signed.
    const again = this.#check(did, atMs)
    if (typeof again !== 'number' || again !== amount) {
      return typeof again === 'number'
        ? { status: 409, error: 'a grant for this account was just made' }
        : again
    }
    this.#append(grant)
    return grant
  }

  /**
   * Learns the grant another anchor of the group made to `did` (from the shared store), if this
   * anchor holds none: verified, kept durably like its own. Resolves with whether it learnt one.
   */
  async learn(did: string): Promise<boolean> {
    if (!this.#consensus || this.#grants.some((g) => g.to === did)) return false
    const record = await this.#consensus.getDecide(`faucet/${did}`)
    if (!record) return false
    let grant: SignedGrant
    try {
      grant = await verifyGrant(JSON.parse(record.proposal), this.#network)
    } catch {
      return false
    }
    if (grant.to !== did || faucetProblem(grant, this.#grants, this.#rule) !== undefined) return false
    this.#append(grant)
    return true
  }

  #append(grant: SignedGrant): void {
    const line = Buffer.from(`${JSON.stringify(grant)}\n`)
    let written = 0
    while (written < line.length) written += writeSync(this.#fd, line, written, line.length - written)
    fsyncSync(this.#fd)
    this.#grants.push(grant)
    this.#version += 1
  }

  close(): void {
    closeSync(this.#fd)
  }
}
