/**
 * The simulator's attacker (fault class `attacker`): a generated adversary that, from its own
 * random stream, keeps choosing among a catalogue of violations of docs/PROTOCOL.md §11 and
 * aims each at what it has seen on the network. It holds Sybil keys (fresh identities, three of
 * them funded at genesis), and outside bootstrap the key of one verifier; it sees every envelope honest
 * peers publish; it chooses every field it signs — ids, lamport, epoch, ts, references, budgets —
 * and may sign what no honest peer would (values past the schema's bounds, other networks).
 *
 * Every attack is an instance of a named catalogue entry. An instance is either refused (its
 * violating envelopes were never accepted by any honest replica: dropped at decode, refused by the
 * fold, or left waiting) or contained (allowed as a request, and shown harmless by a check on the
 * honest replicas at the end). The summary counts, per entry, how often it was tried and refused.
 */

import type { SeededRandom } from '../agent/ports.ts'
import { computeEnvelopeId, encodeEnvelope, signingBytes, threadIdOf } from '../core/codec.ts'
import { BUILTIN_POLICY_HASH } from '../core/digest.ts'
import type { NetworkParams } from '../core/thread/params.ts'
import type { ThreadReplica } from '../core/thread/replica.ts'
import {
  type AnyEnvelope,
  type Cid,
  type Did,
  type Envelope,
  GENESIS_EPOCH,
  type Kind,
  MAX_EPOCH,
  type PayloadByKind,
  PROTOCOL_VERSION,
} from '../core/types.ts'
import type { Identity } from '../crypto/ed25519.ts'

/** The catalogue: every violation the attacker generates, by name. */
export const ATTACKS = [
  'forged-decide',
  'forged-decide-max-epoch',
  'lamport-overflow',
  'lamport-jump',
  'epoch-unissued',
  'need-reuse',
  'proposal-reference-forgery',
  'stranger-release',
  'stranger-heartbeat',
  'stranger-commit',
  'stranger-yield',
  'stranger-grant',
  'non-committee-attest',
  'early-finalize',
  'self-judged-invalidate',
  'compromised-judge',
  'wrong-network',
  'stranger-reconcile',
  'stranger-checkpoint',
  'tampered',
  'impersonation',
  'oversized',
  'bogus-claim-reference',
  'orphan-flood',
  'replay',
  'backdated-claim',
  'sybil-need',
  'double-spend',
  'greedy-claim',
  'backdated-fail',
] as const
export type AttackName = (typeof ATTACKS)[number]

/** Per catalogue entry: how often it was tried and how often it was refused (or contained). */
export type AttackReport = Partial<Record<AttackName, { tried: number; refused: number }>>

/** What the attacker sees of and does to the world. */
export interface AttackerWorld {
  params: NetworkParams
  /** Every envelope honest (and Byzantine) peers have published so far, in order. */
  seen(): readonly AnyEnvelope[]
  /** Sends bytes to every peer through the faulty network, tagged as this instance's. */
  broadcast(bytes: Uint8Array, instance: number): void
  /** Virtual time now. */
  nowMs(): number
  /** Replicas of the honest peers that are up, for the end-of-run checks. */
  honestReplicas(thread: string): ThreadReplica[]
  /** Decided threads whose requester could not fund them, in the ledger an honest peer derives. */
  unfundedThreads(): ReadonlySet<string>
  /** The anchors (up) that hold the envelope `id` of `thread` now. */
  anchorsHolding(thread: string, id: Cid): Did[]
}

interface Instance {
  name: AttackName
  /** Ids of the envelopes that must never be accepted (refuse-class). */
  violating: Set<Cid>
  /** A check on the honest replicas at the end (contain-class); `true` when contained. */
  contained?: () => boolean
  accepted: boolean
  /** A replay of honest envelopes: only an acceptance by a peer that already held it counts. */
  replay?: boolean
}

interface Draft<K extends Kind> {
  kind: K
  thread: string
  payload: PayloadByKind[K]
  lamport: number
  epoch?: number
  ts?: number
  fence?: string
  refs?: Cid[]
  net?: string
}

export class Attacker {
  readonly #world: AttackerWorld
  readonly #random: SeededRandom
  readonly #sybils: readonly Identity[]
  readonly #funded: readonly Identity[]
  readonly #verifier: Identity | undefined
  readonly #instances: Instance[] = []
  readonly #otherNetwork: string
  /** The attacker's own CLAIMs (an anchor may grant one), by id: their signer. */
  readonly #claimsBy = new Map<Cid, Did>()
  readonly #doubleSpends: { instance: number; key: Identity; first: string; second?: string }[] = []

  /**
   * @param sybils fresh keys with nothing at genesis
   * @param funded keys with a small genesis allocation, one double spend each
   * @param verifier the key of one verifier, outside bootstrap (a compromised minority)
   * @param otherNetwork the id of another network (for cross-network replays)
   */
  constructor(options: {
    world: AttackerWorld
    random: SeededRandom
    sybils: readonly Identity[]
    funded: readonly Identity[]
    verifier?: Identity
    otherNetwork: string
  }) {
    this.#world = options.world
    this.#random = options.random
    this.#sybils = options.sybils
    this.#funded = options.funded
    this.#verifier = options.verifier
    this.#otherNetwork = options.otherNetwork
  }

  /**
   * Records that an honest peer accepted (the fold applied) an envelope of `instance`; `wasHeld`
   * says whether the peer held it before this delivery.
   */
  observeAccepted(instance: number, id: Cid, wasHeld: boolean): void {
    const record = this.#instances[instance]
    if (!record?.violating.has(id)) return
    if (record.replay && !wasHeld) return
    record.accepted = true
  }

  /** Whether deliveries of `instance` bypass the network's de-duplication (replays). */
  isReplay(instance: number): boolean {
    return this.#instances[instance]?.replay === true
  }

  /** Per entry: tried and refused, judged now (call at the end of the run). */
  report(): AttackReport {
    const report: AttackReport = {}
    for (const instance of this.#instances) {
      const entry = report[instance.name] ?? { tried: 0, refused: 0 }
      report[instance.name] = entry
      entry.tried += 1
      if (this.#refused(instance)) entry.refused += 1
    }
    return report
  }

  /** Names of the instances that were neither refused nor contained. */
  failures(): AttackName[] {
    return this.#instances.filter((instance) => !this.#refused(instance)).map((instance) => instance.name)
  }

  #refused(instance: Instance): boolean {
    if (instance.accepted) return false
    return instance.contained ? instance.contained() : true
  }

  #pick<T>(list: readonly T[]): T | undefined {
    return list.length === 0 ? undefined : list[this.#random.int(0, list.length)]
  }

  #sybil(): Identity {
    return this.#pick(this.#sybils)!
  }

  #seenOf<K extends Kind>(kind: K): Envelope<K>[] {
    return this.#world.seen().filter((env) => env.kind === kind) as unknown as Envelope<K>[]
  }

  #maxLamport(thread: string): number {
    let max = 0
    for (const env of this.#world.seen()) if (env.thread === thread && env.lamport > max) max = env.lamport
    return max
  }

  /** Signs anything, valid or not: the attacker is not bound by the schema a sender's preflight applies. */
  async #sign<K extends Kind>(
    identity: Identity,
    draft: Draft<K>,
  ): Promise<{ env: AnyEnvelope; bytes: Uint8Array }> {
    const unsigned = {
      v: PROTOCOL_VERSION,
      net: draft.net ?? this.#world.params.network,
      kind: draft.kind,
      thread: draft.thread,
      sender: identity.did,
      lamport: draft.lamport,
      ts: draft.ts ?? Math.max(0, Math.floor(this.#world.nowMs())),
      payload: draft.payload,
      refs: draft.refs ?? [],
      policy: BUILTIN_POLICY_HASH,
      epoch: draft.epoch ?? GENESIS_EPOCH,
      ...(draft.fence === undefined ? {} : { fence: draft.fence }),
    }
    const sig = await identity.sign(signingBytes(unsigned as never))
    const signed = { ...unsigned, sig }
    const env = { ...signed, id: computeEnvelopeId(signed as never) } as AnyEnvelope
    if (env.kind === 'CLAIM') this.#claimsBy.set(env.id, identity.did)
    return { env, bytes: encodeEnvelope(env) }
  }

  #record(name: AttackName, contained?: () => boolean): number {
    this.#instances.push({ name, violating: new Set(), accepted: false, ...(contained ? { contained } : {}) })
    return this.#instances.length - 1
  }

  #send(instance: number, signed: { env: AnyEnvelope; bytes: Uint8Array }, violating = true): void {
    if (violating) this.#instances[instance]!.violating.add(signed.env.id)
    this.#world.broadcast(signed.bytes, instance)
  }

  /** A Sybil's copy of a seen CLAIM, changed as `change` says: a refuse-class instance. */
  async #copyClaim(
    name: AttackName,
    change: (claim: Envelope<'CLAIM'>) => { lamport: number; epoch?: number; cost?: number },
  ): Promise<void> {
    const claim = this.#pick(this.#seenOf('CLAIM'))
    if (!claim) return
    const { lamport, epoch, cost } = change(claim)
    const instance = this.#record(name)
    this.#send(
      instance,
      await this.#sign(this.#sybil(), {
        kind: 'CLAIM',
        thread: claim.thread,
        payload: { ...claim.payload, ...(cost === undefined ? {} : { cost }) },
        lamport,
        ...(epoch === undefined ? {} : { epoch }),
      }),
    )
  }

  /** Chooses one attack from the catalogue and carries it out against what it has seen. */
  async act(): Promise<void> {
    const name = ATTACKS[this.#random.int(0, ATTACKS.length)]!
    await this.#run(name)
  }

  async #run(name: AttackName): Promise<void> {
    const needs = this.#seenOf('NEED')
    const need = this.#pick(needs)
    const thread = need?.thread
    const top = thread === undefined ? 0 : this.#maxLamport(thread)
    // A lamport the attacker chooses: anywhere from just after the NEED to just past the thread's top.
    const anyLamport = () =>
      need ? need.lamport + 1 + this.#random.int(0, Math.max(1, top - need.lamport + 2)) : 2
    switch (name) {
      case 'forged-decide': {
        const propose = this.#pick(this.#seenOf('PROPOSE'))
        if (!propose) return
        const votes = this.#seenOf('ATTEST_PLAN').filter((v) => v.payload.proposal === propose.id)
        const mine = await this.#sign(this.#sybil(), {
          kind: 'ATTEST_PLAN',
          thread: propose.thread,
          payload: { need: propose.thread, proposal: propose.id, verdict: 'accept' },
          lamport: propose.lamport + 1,
        })
        const attestations = votes.length > 0 ? votes : [mine.env]
        const sybil = this.#sybil()
        const instance = this.#record(name)
        if (votes.length === 0) this.#send(instance, mine, false)
        const epoch = 1 + this.#random.int(0, 1000)
        this.#send(
          instance,
          await this.#sign(sybil, {
            kind: 'DECIDE',
            thread: propose.thread,
            payload: {
              need: propose.thread,
              proposal: propose.id,
              epoch,
              lamport: 1 + this.#random.int(0, 1_000_000),
              kPlan: 1,
              decider: sybil.did,
              attestations: attestations as Envelope[],
              pool: { epoch: 0, bootstrap: true, verifiers: [], entries: [], snapshotMs: 0 },
            },
            lamport: anyLamport(),
            epoch,
          }),
        )
        return
      }
      case 'forged-decide-max-epoch': {
        const propose = this.#pick(this.#seenOf('PROPOSE'))
        const vote = this.#pick(this.#seenOf('ATTEST_PLAN').filter((v) => v.payload.proposal === propose?.id))
        if (!propose || !vote) return
        const sybil = this.#sybil()
        const instance = this.#record(name)
        const epoch = this.#random.chance(0.5) ? MAX_EPOCH : Number.MAX_SAFE_INTEGER
        this.#send(
          instance,
          await this.#sign(sybil, {
            kind: 'DECIDE',
            thread: propose.thread,
            payload: {
              need: propose.thread,
              proposal: propose.id,
              epoch,
              lamport: Number.MAX_SAFE_INTEGER,
              kPlan: 1,
              decider: sybil.did,
              attestations: [vote as Envelope],
              pool: { epoch: 0, bootstrap: true, verifiers: [], entries: [], snapshotMs: 0 },
            },
            lamport: anyLamport(),
            epoch,
          }),
        )
        return
      }
      case 'lamport-overflow': {
        if (!thread) return
        const instance = this.#record(name)
        const lamport = Number.MAX_SAFE_INTEGER - this.#random.int(0, 3)
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'PROPOSE',
            thread,
            payload: {
              need: thread,
              patch: [
                {
                  name: 'x',
                  capability: need!.payload.requires[0]!,
                  inputs: [...need!.payload.inputs],
                  produces: 'text/plain',
                },
              ],
              ballot: 1,
              price: 0,
              etaMs: 1,
              shardDependencies: [],
            },
            lamport,
          }),
        )
        return
      }
      case 'lamport-jump': {
        if (!thread) return
        const instance = this.#record(name)
        const lamport = top + this.#world.params.maxLamportStep + 1 + this.#random.int(0, 1_000_000)
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'CHALLENGE',
            thread,
            payload: {
              task: `${thread}/x`,
              commit: thread,
              proof: { type: 'missing-artifact', ref: thread },
              bond: 10,
            },
            lamport,
          }),
        )
        return
      }
      case 'epoch-unissued':
        // A CLAIM at an epoch no anchor issued (A3).
        await this.#copyClaim(name, (claim) => ({
          lamport: claim.lamport + this.#random.int(0, 3),
          epoch: 1_000 + this.#random.int(0, MAX_EPOCH - 1_000),
        }))
        return
      case 'need-reuse': {
        if (!need) return
        const instance = this.#record(name)
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'NEED',
            thread: need.thread,
            payload: { ...need.payload, budget: need.payload.budget + 1 + this.#random.int(0, 99) },
            lamport: 1,
          }),
        )
        return
      }
      case 'proposal-reference-forgery': {
        if (!need) return
        const instance = this.#record(name)
        // Votes and decisions naming something that is no PROPOSE: the NEED itself, or a made-up id.
        const target = this.#random.chance(0.5) ? need.id : need.payload.inputs[0]!
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'ATTEST_PLAN',
            thread: need.thread,
            payload: { need: need.thread, proposal: target, verdict: 'accept' },
            lamport: anyLamport(),
          }),
        )
        return
      }
      case 'stranger-release':
      case 'stranger-heartbeat':
      case 'stranger-commit':
      case 'stranger-yield': {
        const grant = this.#pick(this.#seenOf('GRANT'))
        if (!grant) return
        const claim = this.#world.seen().find((env) => env.id === grant.payload.claim) as
          | Envelope<'CLAIM'>
          | undefined
        // A stranger to the lease: not the key that holds it (a Sybil's CLAIM may have been granted).
        const holder = claim?.sender ?? this.#claimsBy.get(grant.payload.claim)
        const sybil = this.#pick(this.#sybils.filter((key) => key.did !== holder))
        if (!sybil) return
        const instance = this.#record(name)
        const base = {
          thread: grant.thread,
          lamport: grant.lamport + 1 + this.#random.int(0, 4),
          fence: grant.payload.claim,
        }
        const task = grant.payload.task
        const output = this.#seenOf('COMMIT').find((c) => c.payload.task === task)?.payload.outputs ?? [
          grant.payload.claim,
        ]
        const signed =
          name === 'stranger-release'
            ? await this.#sign(sybil, {
                kind: 'RELEASE',
                ...base,
                payload: {
                  task,
                  claim: grant.payload.claim,
                  reason: this.#random.chance(0.5) ? 'lease-expired' : 'orphaned',
                },
              })
            : name === 'stranger-heartbeat'
              ? await this.#sign(sybil, {
                  kind: 'HEARTBEAT',
                  ...base,
                  payload: { task, claim: grant.payload.claim, progress: 999 },
                })
              : name === 'stranger-yield'
                ? await this.#sign(sybil, {
                    kind: 'YIELD',
                    ...base,
                    payload: { task, claim: grant.payload.claim },
                  })
                : await this.#sign(sybil, {
                    kind: 'COMMIT',
                    ...base,
                    payload: {
                      task,
                      claim: grant.payload.claim,
                      outputs: [...output],
                      telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
                      verifyBounty: 0,
                    },
                  })
        if (claim === undefined || claim.sender !== sybil.did) this.#send(instance, signed)
        return
      }
      case 'stranger-grant': {
        const claim = this.#pick(this.#seenOf('CLAIM'))
        if (!claim) return
        const instance = this.#record(name)
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'GRANT',
            thread: claim.thread,
            payload: { task: claim.payload.task, claim: claim.id, leaseTtlMs: claim.payload.leaseTtlMs },
            lamport: claim.lamport + 1,
          }),
        )
        return
      }
      case 'non-committee-attest': {
        const commit = this.#pick(this.#seenOf('COMMIT'))
        if (!commit) return
        const instance = this.#record(name)
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'ATTEST',
            thread: commit.thread,
            payload: {
              task: commit.payload.task,
              commit: commit.id,
              verdict: this.#random.chance(0.5) ? 'pass' : 'fail',
              evalDigest: 'forged',
            },
            lamport: commit.lamport + 1,
          }),
        )
        return
      }
      case 'early-finalize': {
        const attest = this.#pick(this.#seenOf('ATTEST').filter((a) => a.payload.verdict === 'pass'))
        if (!attest) return
        const instance = this.#record(name)
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'FINALIZE',
            thread: attest.thread,
            payload: {
              task: attest.payload.task,
              commit: attest.payload.commit,
              attestations: [attest as Envelope],
            },
            lamport: attest.lamport + 1,
            // Back-dated, so that a payout timed by the sender's clock would fall due at once.
            ts: 0,
          }),
        )
        return
      }
      case 'self-judged-invalidate':
      case 'compromised-judge': {
        const key = name === 'compromised-judge' ? this.#verifier : this.#sybil()
        const commit = this.#pick(this.#seenOf('COMMIT'))
        if (!key || !commit) return
        const instance = this.#record(name)
        const challenge = await this.#sign(key, {
          kind: 'CHALLENGE',
          thread: commit.thread,
          payload: {
            task: commit.payload.task,
            commit: commit.id,
            proof: { type: 'missing-artifact', ref: commit.payload.outputs[0]! },
            bond: 6,
          },
          lamport: commit.lamport + 1,
        })
        this.#send(instance, challenge, false)
        this.#send(
          instance,
          await this.#sign(key, {
            kind: 'INVALIDATE',
            thread: commit.thread,
            payload: { task: commit.payload.task, commit: commit.id, challenge: challenge.env.id },
            lamport: commit.lamport + 2,
          }),
        )
        return
      }
      case 'wrong-network': {
        const honest = this.#pick(this.#world.seen().filter((env) => env.kind !== 'NEED'))
        if (!honest) return
        const instance = this.#record(name)
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: honest.kind,
            thread: honest.thread,
            payload: honest.payload as never,
            lamport: honest.lamport,
            epoch: honest.epoch,
            net: this.#otherNetwork,
            ...(honest.fence === undefined ? {} : { fence: honest.fence }),
          }),
        )
        return
      }
      case 'stranger-reconcile':
      case 'stranger-checkpoint': {
        if (!thread) return
        const instance = this.#record(name)
        const signed =
          name === 'stranger-reconcile'
            ? await this.#sign(this.#sybil(), {
                kind: 'RECONCILE',
                thread,
                payload: { thread, merged: [need!.id], orphaned: [], salvaged: [] },
                lamport: anyLamport(),
              })
            : await this.#sign(this.#sybil(), {
                kind: 'CHECKPOINT',
                thread,
                payload: { epoch: 1, merkleRoot: 'forged', signers: [this.#sybil().did] },
                lamport: anyLamport(),
              })
        this.#send(instance, signed)
        return
      }
      case 'tampered':
      case 'impersonation': {
        const honest = this.#pick(this.#world.seen())
        if (!honest) return
        const instance = this.#record(name)
        if (name === 'tampered') {
          const forged = { ...honest, lamport: honest.lamport + 1 } as AnyEnvelope
          forged.id = computeEnvelopeId(forged as never)
          this.#send(instance, { env: forged, bytes: encodeEnvelope(forged) })
        } else {
          const mine = await this.#sign(this.#sybil(), {
            kind: honest.kind,
            thread: honest.thread,
            payload: honest.payload as never,
            lamport: honest.lamport,
            epoch: honest.epoch,
          })
          const claimed = { ...mine.env, sender: honest.sender } as AnyEnvelope
          claimed.id = computeEnvelopeId(claimed as never)
          this.#send(instance, { env: claimed, bytes: encodeEnvelope(claimed) })
        }
        return
      }
      case 'oversized': {
        if (!thread) return
        const instance = this.#record(name)
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'UPDATE_PLAN',
            thread,
            payload: {
              ops: Array.from({ length: 300 }, (_, i) => ({
                op: 'ANNOTATE' as const,
                task: `t${i}`,
                key: 'k',
                value: 'x'.repeat(4000),
              })),
            },
            lamport: anyLamport(),
          }),
        )
        return
      }
      case 'bogus-claim-reference': {
        const grant = this.#pick(this.#seenOf('GRANT'))
        if (!grant || !need) return
        const instance = this.#record(name)
        // A lease verb whose "claim" is some other envelope the attacker signed itself.
        const decoy =
          this.#pick(
            this.#world.seen().filter((env) => env.kind !== 'CLAIM' && env.thread === grant.thread),
          ) ?? need
        this.#send(
          instance,
          await this.#sign(this.#sybil(), {
            kind: 'HEARTBEAT',
            thread: grant.thread,
            payload: { task: grant.payload.task, claim: decoy.id, progress: 1 },
            lamport: grant.lamport + 1,
            fence: decoy.id,
          }),
        )
        return
      }
      case 'orphan-flood': {
        const instance = this.#record(name)
        const count = 5 + this.#random.int(0, 20)
        for (let i = 0; i < count; i += 1) {
          const made = `bafyreig${'a'.repeat(44)}${String(this.#random.int(0, 1_000_000)).padStart(7, '0')}`
          this.#send(
            instance,
            await this.#sign(this.#sybil(), {
              kind: 'CLAIM',
              thread: made,
              payload: { task: `${made}/t`, leaseTtlMs: 1000, cost: 1, etaMs: 1 },
              lamport: 2,
            }),
          )
        }
        return
      }
      case 'replay': {
        const honest = this.#pick(this.#world.seen())
        if (!honest) return
        const instance = this.#record(name)
        this.#instances[instance]!.replay = true
        // Delivered again past the network's own de-duplication: a peer that already holds it must
        // take it as a duplicate (a second acceptance marks the instance accepted).
        this.#send(instance, { env: honest, bytes: encodeEnvelope(honest) })
        return
      }
      case 'backdated-claim': {
        const grant = this.#pick(this.#seenOf('GRANT'))
        if (!grant) return
        const decide = this.#seenOf('DECIDE').find((d) => d.thread === grant.thread)
        const sybil = this.#sybil()
        const signed = await this.#sign(sybil, {
          kind: 'CLAIM',
          thread: grant.thread,
          payload: { task: grant.payload.task, leaseTtlMs: 3_600_000, cost: 0, etaMs: 1 },
          // Just after the DECIDE: it sorts before the granted CLAIM.
          lamport: (decide?.lamport ?? grant.lamport - 2) + 1,
        })
        const id = signed.env.id
        // An anchor that holds the lease the attacker saw must never grant it the task (it grants by
        // receipt, not by lamport). An anchor cut off from that lease (a partition) may: to it, the
        // attacker's is just the first CLAIM it heard, and such a lease ends by scavenging.
        const witnesses = new Set(this.#world.anchorsHolding(grant.thread, grant.id))
        const instance = this.#record(name, () =>
          this.#world
            .honestReplicas(grant.thread)
            .every((replica) =>
              replica
                .envelopes()
                .every(
                  (env) =>
                    env.kind !== 'GRANT' ||
                    env.payload.claim !== id ||
                    replica.state.rejected.has(env.id) ||
                    !witnesses.has(env.sender),
                ),
            ),
        )
        this.#send(instance, signed, false)
        return
      }
      case 'greedy-claim':
        // A CLAIM asking far more than the plan's price: its worker would be paid the budget.
        await this.#copyClaim(name, (claim) => ({ lamport: claim.lamport, cost: 999_999 }))
        return
      case 'backdated-fail': {
        // Fail votes signed after a result was finalized, slipped in before its passes: a result an
        // anchor finalized must stay FINAL (only an upheld CHALLENGE undoes it, §6.8).
        const finalize = this.#pick(this.#seenOf('FINALIZE'))
        if (!finalize) return
        const commitId = finalize.payload.commit
        const commit = this.#world.seen().find((env) => env.id === commitId)
        if (!commit) return
        const instance = this.#record(name, () =>
          this.#world.honestReplicas(finalize.thread).every((replica) => {
            // Contained unless a replica that holds the FINALIZE rejected the commit by votes.
            if (!replica.has(finalize.id)) return true
            const task = replica.state.tasks.get(finalize.payload.task)
            return !task?.pastCommits.some((past) => past.id === commitId && past.outcome === 'rejected')
          }),
        )
        const voters = [this.#verifier ?? this.#sybil(), this.#sybil(), this.#sybil()]
        for (const voter of voters) {
          this.#send(
            instance,
            await this.#sign(voter, {
              kind: 'ATTEST',
              thread: finalize.thread,
              payload: { task: finalize.payload.task, commit: commitId, verdict: 'fail', evalDigest: 'late' },
              lamport: commit.lamport + 1,
            }),
            false,
          )
        }
        return
      }
      case 'sybil-need': {
        const sybil = this.#sybil()
        const signed = await this.#postNeed(sybil, 10 + this.#random.int(0, 500))
        if (!signed) return
        const instance = this.#record(name, () =>
          this.#world
            .honestReplicas(signed.env.thread)
            .every((replica) => replica.state.winner === undefined),
        )
        this.#send(instance, signed, false)
        return
      }
      case 'double-spend': {
        // Retroactive double spend: a funded key (100 credits, used for nothing else) posts NEED A
        // (80); once A is decided it posts NEED B (80). Whatever B's id and clock, B must never take
        // A's budget: A, decided first, stays funded in every ledger derived later (A7).
        const open = this.#doubleSpends.find(
          (pending) =>
            pending.second === undefined && this.#seenOf('DECIDE').some((d) => d.thread === pending.first),
        )
        if (open) {
          const second = await this.#postNeed(open.key, 80)
          if (!second) return
          open.second = second.env.thread
          this.#send(open.instance, second, false)
          return
        }
        // Each key spends once: a key's second A would be an overdraft, not a double spend.
        const key = this.#funded[this.#doubleSpends.length]
        if (!key) return
        const first = await this.#postNeed(key, 80)
        if (!first) return
        const thread = first.env.thread
        const instance = this.#record(name, () => !this.#world.unfundedThreads().has(thread))
        this.#doubleSpends.push({ instance, key, first: thread })
        this.#send(instance, first, false)
        return
      }
    }
  }

  async #postNeed(
    identity: Identity,
    budget: number,
  ): Promise<{ env: AnyEnvelope; bytes: Uint8Array } | undefined> {
    const template = this.#pick(this.#seenOf('NEED'))
    if (!template) return undefined
    const payload = { ...template.payload, need: '', budget, bidWindowMs: 300 }
    const draft = {
      v: PROTOCOL_VERSION,
      net: this.#world.params.network,
      kind: 'NEED' as const,
      thread: '',
      sender: identity.did,
      lamport: 1,
      ts: Math.max(0, Math.floor(this.#world.nowMs())) + this.#random.int(0, 1000),
      payload,
      refs: [],
      policy: BUILTIN_POLICY_HASH,
      epoch: GENESIS_EPOCH,
    }
    const thread = threadIdOf(draft)
    return this.#sign(identity, {
      kind: 'NEED',
      thread,
      payload: { ...payload, need: thread },
      lamport: 1,
      ts: draft.ts,
    })
  }
}
