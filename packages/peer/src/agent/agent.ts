/**
 * The agent SDK: one object that holds a peer's identity, its thread replicas and its roles —
 * requester, planner, verifier, worker, decider — and turns thread effects into signed envelopes.
 *
 * The agent does no I/O of its own: envelopes leave through an {@link EnvelopeSink}, arrive
 * (already verified) through {@link Agent.deliver}, and time comes from an {@link AgentClock}.
 * Every method that reacts returns a promise that settles when all resulting work is done, so a
 * deterministic driver (the simulator) can run agents step by step.
 *
 * @example
 * ```ts
 * const agent = new Agent({ identity, params, bus, clock, random, artifacts,
 *   roles: { planner: true, worker: true, verifier: true } })
 * const need = await agent.post({ requires: ['word-frequency'], inputs: [text], budget: 50 })
 * ```
 */
import { type ArtifactStore, artifactCid } from '../core/artifacts.ts'
import type { ConsensusStore, DecideRecord } from '../core/consensus.ts'
import { BUILTIN_POLICY_HASH, evalDigestOf } from '../core/digest.ts'
import { requiredBond, violatesJsonSchema } from '../core/economy/proofs.ts'
import { CanSwarmError, InvalidArgumentError, StaleEpochError } from '../core/errors.ts'
import { LamportClock } from '../core/lamport.ts'
import { fetchTaskInputs, taskInputRefs } from '../core/thread/inputs.ts'
import { inCommittee, isEligibleVerifier, kPlanOf, type NetworkParams } from '../core/thread/params.ts'
import { type ThreadEffect, ThreadReplica } from '../core/thread/replica.ts'
import type { TaskInfo } from '../core/thread/state.ts'
import type { AnyEnvelope, Cid, Envelope, Kind, PayloadByKind, TaskSpec } from '../core/types.ts'
import { PROTOCOL_VERSION } from '../core/types.ts'
import type { Identity } from '../crypto/ed25519.ts'
import { signEnvelope } from '../crypto/envelopes.ts'
import type { PolicyGates } from '../policy/gates.ts'
import { builtinCapabilities, type CapabilityRegistry } from './capabilities.ts'
import type { AgentClock, AgentRandom, EnvelopeSink } from './ports.ts'

/** Roles an agent can play. */
export interface AgentRoles {
  /** Proposes plans for NEEDs whose capabilities it has. @default false */
  planner?: boolean
  /** Attests plans and results, challenges wrong results. Must be in the verifier pool. @default false */
  verifier?: boolean
  /** Claims and performs tasks with its capabilities; scavenges expired leases. @default false */
  worker?: boolean
  /** Turns plan quorums into DECIDEs through the consensus store (anchors). @default false */
  decider?: boolean
}

/** Timings of an agent's behaviour, each in ms. */
export interface AgentTuning {
  /** Lease asked for in CLAIMs. @default 2000 */
  leaseTtlMs: number
  /** Upper bound of the random back-off before proposing (a fraction of the bid window is used when smaller). @default 400 */
  proposeBackoffMs: number
  /** Upper bound of the random back-off before claiming a ready task. @default 150 */
  claimBackoffMs: number
  /** Upper bound of the random back-off before scavenging an expired lease. @default 200 */
  scavengeBackoffMs: number
  /** A planner stays out of a NEED that already has this many proposals. @default 2 */
  maxProposalsSeen: number
  /** Time a worker spends on a task (modelled work; the capability itself runs at once). @default 50 */
  workMs: number
  /** Extra delay before a committee member finalizes in place of an absent worker. @default 600 */
  finalizeBackupMs: number
  /** First retry delay of a failed consensus call (doubles up to 8×). @default 200 */
  decideRetryMs: number
  /** Attempts at a DECIDE before giving up on it. @default 30 */
  decideAttempts: number
  /** Credits a worker escrows for its verifiers with each COMMIT. @default 4 */
  verifyBounty: number
  /** Credits a challenger puts up as a bond, at least the proof's required bond. @default 5 */
  challengeBond: number
}

export const DEFAULT_AGENT_TUNING: AgentTuning = Object.freeze({
  leaseTtlMs: 2000,
  proposeBackoffMs: 400,
  claimBackoffMs: 150,
  scavengeBackoffMs: 200,
  maxProposalsSeen: 2,
  workMs: 50,
  finalizeBackupMs: 600,
  decideRetryMs: 200,
  decideAttempts: 30,
  verifyBounty: 4,
  challengeBond: 5,
})

/**
 * Misbehaviours for the simulator's Byzantine agents. Never set outside tests and simulations.
 * @internal
 */
export interface Adversary {
  /** Commit outputs that are not the capability's result. */
  corruptOutputs?: boolean
  /** Send contradicting votes (accept + reject, pass + fail) and double claims. */
  equivocate?: boolean
  /** Attest `pass` whatever the result. */
  rubberStamp?: boolean
  /** Challenge results that are right (with a made-up expectation). */
  frivolousChallenges?: boolean
}

export interface AgentOptions {
  identity: Identity
  params: NetworkParams
  bus: EnvelopeSink
  clock: AgentClock
  random: AgentRandom
  artifacts: ArtifactStore
  /** Required for the decider role. */
  consensus?: ConsensusStore
  /** @default the built-in capabilities */
  capabilities?: CapabilityRegistry
  roles?: AgentRoles
  tuning?: Partial<AgentTuning>
  /** Hash of the policy capsule this agent evaluates. @default BUILTIN_POLICY_HASH, or the gates' capsule */
  policyHash?: string
  /**
   * Policy gates (PROTOCOL.md §7): preflight before every publish (a denial throws), ingress on
   * every delivered envelope (a denial drops it), commit gate in the verifier's result check (its
   * decision is the verdict and its digest the ATTEST's evalDigest). @default none
   */
  policy?: PolicyGates
  /** Called with errors the agent handled by dropping the action (never thrown from reactions). */
  onError?: (error: unknown) => void
  /** @internal */
  adversary?: Adversary
}

/** What a requester asks for. */
export interface NeedRequest {
  /** Capabilities to chain, in order (each consumes the previous one's output). */
  requires: string[]
  /** Input artifacts (bytes are stored and referenced by CID). */
  inputs: Uint8Array[]
  /** Artifact type wanted back. @default 'application/octet-stream' */
  produces?: string
  budget: number
  /** @default 500 */
  bidWindowMs?: number
  /** Informational wall-clock deadline. @default now + 60 s */
  deadlineMs?: number
}

export class Agent {
  readonly identity: Identity
  readonly params: NetworkParams
  readonly capabilities: CapabilityRegistry
  readonly roles: Readonly<AgentRoles>
  readonly tuning: AgentTuning
  readonly lamport = new LamportClock()
  #options: AgentOptions
  #replicas = new Map<string, ThreadReplica>()
  #epoch = 1
  #needCounter = 0
  #done = new Set<string>()
  #timers = new Set<() => void>()
  #expected = new Map<Cid, Cid[]>()
  #measured = new Map<Cid, { inputBytes: number; outputBytes: number }>()
  #stopped = false
  #observers = new Set<(env: AnyEnvelope) => void>()

  constructor(options: AgentOptions) {
    this.#options = options
    this.identity = options.identity
    this.params = options.params
    this.capabilities = options.capabilities ?? builtinCapabilities()
    this.roles = Object.freeze({ ...options.roles })
    this.tuning = Object.freeze({ ...DEFAULT_AGENT_TUNING, ...options.tuning })
    if (this.roles.decider && !options.consensus) {
      throw new InvalidArgumentError('the decider role needs a consensus store', 'consensus')
    }
  }

  get did(): string {
    return this.identity.did
  }

  /** The replica of a thread, if this agent follows it. */
  replica(thread: string): ThreadReplica | undefined {
    return this.#replicas.get(thread)
  }

  /** Every thread this agent follows. */
  threads(): string[] {
    return [...this.#replicas.keys()].sort()
  }

  #replicaFor(thread: string): ThreadReplica {
    let replica = this.#replicas.get(thread)
    if (!replica) {
      replica = new ThreadReplica(thread, this.params)
      this.#replicas.set(thread, replica)
    }
    return replica
  }

  /**
   * Calls `observer` with every envelope newly taken into one of this agent's replicas (delivered,
   * published or restored), right after it is folded. Returns a function that removes it.
   */
  observe(observer: (env: AnyEnvelope) => void): () => void {
    this.#observers.add(observer)
    return () => this.#observers.delete(observer)
  }

  #notify(env: AnyEnvelope): void {
    for (const observer of this.#observers) {
      try {
        observer(env)
      } catch (error) {
        this.#options.onError?.(error)
      }
    }
  }

  /** Stops every timer; the agent ignores further input. */
  stop(): void {
    this.#stopped = true
    for (const cancel of this.#timers) cancel()
    this.#timers.clear()
  }

  // ------------------------------------------------------------------ input

  /**
   * Takes in an envelope that has passed signature and id checks, and performs every reaction it
   * triggers. Returns the reason when the envelope did not apply to its thread.
   */
  async deliver(env: AnyEnvelope): Promise<string | undefined> {
    if (this.#stopped) return undefined
    const gate = this.#options.policy?.ingress(env)
    if (gate && !gate.allowed) {
      const reasons = gate.reasons.map((reason) => `${reason.rule} (${reason.field})`).join(', ')
      return `policy: denied by ${reasons || 'default deny'}`
    }
    this.lamport.observe(env.lamport)
    if (env.epoch > this.#epoch) this.#epoch = env.epoch
    const replica = this.#replicaFor(env.thread)
    const result = replica.receive(env, this.#options.clock.now())
    if (result.added) this.#notify(env)
    await this.#react(replica, result.effects)
    this.#schedule(replica)
    return result.rejected
  }

  /**
   * Restores threads from a durable log after a restart: folds everything once, then resumes
   * whatever duties the restored state implies.
   */
  async restore(envs: readonly AnyEnvelope[]): Promise<void> {
    const byThread = new Map<string, AnyEnvelope[]>()
    for (const env of envs) {
      this.lamport.observe(env.lamport)
      if (env.epoch > this.#epoch) this.#epoch = env.epoch
      const list = byThread.get(env.thread) ?? []
      list.push(env)
      byThread.set(env.thread, list)
    }
    for (const [thread, list] of byThread) {
      const replica = this.#replicaFor(thread)
      const fresh = list.filter((env) => !replica.has(env.id))
      const effects = replica.receiveAll(list, this.#options.clock.now())
      for (const env of fresh) this.#notify(env)
      await this.#react(replica, effects)
      this.#schedule(replica)
    }
  }

  // ------------------------------------------------------------------ output

  /** Signs and publishes an envelope, applying it to the own replica first. */
  async publish<K extends Kind>(
    kind: K,
    thread: string,
    payload: PayloadByKind[K],
    extra: { refs?: Cid[]; fence?: string; epoch?: number; evalDigest?: string } = {},
  ): Promise<Envelope<K>> {
    const unsigned = {
      v: PROTOCOL_VERSION,
      kind,
      thread,
      sender: this.did,
      lamport: this.lamport.tick(),
      ts: Math.max(0, Math.floor(this.#options.clock.now())),
      payload,
      refs: extra.refs ?? [],
      policy: this.#options.policy?.capsule ?? this.#options.policyHash ?? BUILTIN_POLICY_HASH,
      epoch: extra.epoch ?? this.#epoch,
      ...(extra.fence === undefined ? {} : { fence: extra.fence }),
      ...(extra.evalDigest === undefined ? {} : { evalDigest: extra.evalDigest }),
    }
    const gates = this.#options.policy
    if (gates) gates.enforce('preflight', gates.preflight(unsigned), unsigned.policy)
    const env = await signEnvelope(unsigned, this.identity)
    const replica = this.#replicaFor(thread)
    const result = replica.receive(env as AnyEnvelope, this.#options.clock.now())
    if (result.added) this.#notify(env as AnyEnvelope)
    this.#options.bus.publish(env as AnyEnvelope)
    await this.#react(replica, result.effects)
    this.#schedule(replica)
    return env
  }

  /** Posts a NEED (requester role). Returns the NEED id. */
  async post(request: NeedRequest): Promise<string> {
    if (request.requires.length === 0)
      throw new InvalidArgumentError('requires must name a capability', 'requires')
    if (request.inputs.length === 0)
      throw new InvalidArgumentError('a NEED needs at least one input', 'inputs')
    const inputs: Cid[] = []
    for (const bytes of request.inputs) inputs.push(await this.#options.artifacts.put(bytes))
    this.#needCounter += 1
    const need = `need-${this.did.slice(-12)}-${this.lamport.value + 1}-${this.#needCounter}`
    const now = this.#options.clock.now()
    await this.publish('NEED', need, {
      need,
      epoch: this.#epoch,
      requires: request.requires,
      inputs,
      produces: request.produces ?? 'application/octet-stream',
      budget: request.budget,
      deadlineMs: Math.max(0, Math.floor(request.deadlineMs ?? now + 60_000)),
      bidWindowMs: request.bidWindowMs ?? 500,
    })
    return need
  }

  // ------------------------------------------------------------------ reactions

  async #react(replica: ThreadReplica, effects: readonly ThreadEffect[]): Promise<void> {
    for (const effect of effects) {
      if (this.#stopped) return
      try {
        await this.#reactOne(replica, effect)
      } catch (error) {
        this.#options.onError?.(error)
      }
    }
  }

  async #reactOne(replica: ThreadReplica, effect: ThreadEffect): Promise<void> {
    const roles = this.roles
    switch (effect.type) {
      case 'need':
        if (roles.planner) this.#planLater(replica)
        return
      case 'proposal':
        if (roles.verifier) await this.#attestPlan(replica, effect.proposal)
        return
      case 'plan-quorum':
        if (roles.decider) await this.#decide(replica, effect.proposal, 1)
        return
      case 'task-ready':
        if (roles.worker) this.#claimLater(replica, effect.task)
        return
      case 'task-claimed':
        if (roles.worker) this.#workIfMine(replica, effect.task, effect.claim)
        return
      case 'task-committed':
        if (roles.verifier) await this.#attestResult(replica, effect.task, effect.commit)
        return
      case 'task-verified':
      case 'task-final':
        if (roles.verifier) await this.#challengeIfWrong(replica, effect.task, effect.commit)
        return
      case 'challenged':
        if (roles.verifier) await this.#judgeChallenge(replica, effect.task, effect.commit, effect.challenge)
        return
      case 'lease-expired':
        if (roles.worker) this.#scavengeLater(replica, effect.task, effect.claim)
        return
      case 'finalize-due':
        this.#finalizeWhenDue(replica, effect.task, effect.commit)
        return
      case 'decided':
      case 'decide-conflict':
        if (roles.decider) await this.#reconcile(replica)
        return
      case 'task-reopened':
      case 'bid-window-closed':
        return
    }
  }

  #once(key: string): boolean {
    if (this.#done.has(key)) return false
    this.#done.add(key)
    return true
  }

  #after(delayMs: number, action: () => Promise<void>): void {
    if (this.#stopped) return
    const clock = this.#options.clock
    const cancel = clock.setTimer(clock.now() + delayMs, async () => {
      this.#timers.delete(cancel)
      if (this.#stopped) return
      try {
        await action()
      } catch (error) {
        this.#options.onError?.(error)
      }
    })
    this.#timers.add(cancel)
  }

  /** Keeps one timer armed for the replica's next time-driven duty. */
  #schedule(replica: ThreadReplica): void {
    const due = replica.nextDueMs()
    if (due === undefined || !this.#once(`tick:${replica.thread}:${due}`)) return
    const clock = this.#options.clock
    const cancel = clock.setTimer(due, async () => {
      this.#timers.delete(cancel)
      if (this.#stopped) return
      await this.#react(replica, replica.tick(clock.now()))
      this.#schedule(replica)
    })
    this.#timers.add(cancel)
  }

  // planner --------------------------------------------------------------

  #planLater(replica: ThreadReplica): void {
    const need = replica.state.need
    if (!need || !this.#once(`plan:${need.env}`)) return
    if (!need.requires.every((name) => this.capabilities.has(name))) return
    const window = Math.max(1, Math.min(this.tuning.proposeBackoffMs, need.bidWindowMs))
    this.#after(this.#options.random.next() * window, () => this.#propose(replica))
  }

  async #propose(replica: ThreadReplica): Promise<void> {
    const state = replica.state
    const need = state.need
    if (!need || state.winner || state.proposals.size >= this.tuning.maxProposalsSeen) return
    const patch: TaskSpec[] = need.requires.map((capability, index) => ({
      name: `t${index}-${capability}`.slice(0, 64),
      capability,
      inputs:
        index === 0 ? [...need.inputs] : [`task:t${index - 1}-${need.requires[index - 1]}`.slice(0, 69)],
      produces: this.capabilities.get(capability)!.manifest.produces,
    }))
    const price = need.requires.reduce((sum, name) => sum + this.capabilities.get(name)!.manifest.price, 0)
    if (price > need.budget) return
    await this.publish('PROPOSE', replica.thread, {
      need: replica.thread,
      proposal: `p-${this.did.slice(-10)}-${this.lamport.value + 1}`,
      patch,
      ballot: 1,
      price,
      etaMs: this.tuning.workMs * patch.length,
      shardDependencies: [],
    })
  }

  // verifier: plans -------------------------------------------------------

  async #attestPlan(replica: ThreadReplica, proposal: string): Promise<void> {
    if (!isEligibleVerifier(this.params, this.did)) return
    const info = replica.state.proposals.get(proposal)
    if (!info || replica.state.planVotes.get(proposal)?.has(this.did)) return
    if (!this.#once(`attest-plan:${proposal}`)) return
    if (!this.params.bootstrap && info.planner === this.did) return
    const payload = { need: replica.thread, proposal, verdict: 'accept' as const }
    await this.publish('ATTEST_PLAN', replica.thread, payload)
    if (this.#options.adversary?.equivocate) {
      await this.publish('ATTEST_PLAN', replica.thread, { ...payload, verdict: 'reject' })
    }
  }

  // decider ---------------------------------------------------------------

  async #decide(replica: ThreadReplica, proposal: string, attempt: number): Promise<void> {
    const consensus = this.#options.consensus!
    const quorum = replica.state.quorum
    if (!quorum || quorum.proposal !== proposal || replica.state.winner) return
    if (attempt === 1 && !this.#once(`decide:${replica.thread}`)) return
    let record: DecideRecord
    try {
      const epoch = await consensus.currentEpoch()
      if (epoch > this.#epoch) this.#epoch = epoch
      const result = await consensus.tryDecide({
        need: replica.thread,
        proposal,
        epoch,
        lamport: this.lamport.tick(),
        kPlan: kPlanOf(this.params),
        decider: this.did,
      })
      if (result.outcome === 'conflict' || result.record.decider !== this.did) return
      record = result.record
    } catch (error) {
      if (error instanceof StaleEpochError) this.#epoch = error.currentEpoch
      else if (error instanceof CanSwarmError && error.code !== 'STALE_EPOCH') throw error
      if (attempt < this.tuning.decideAttempts) {
        const delay = this.tuning.decideRetryMs * 2 ** Math.min(3, attempt - 1)
        this.#after(delay * (0.5 + this.#options.random.next()), () =>
          this.#decide(replica, proposal, attempt + 1),
        )
      }
      return
    }
    const attestations = quorum.attestations.map((id) => replica.get(id)!)
    await this.publish(
      'DECIDE',
      replica.thread,
      {
        need: record.need,
        proposal: record.proposal,
        epoch: record.epoch,
        lamport: record.lamport,
        kPlan: record.kPlan,
        decider: record.decider,
        attestations: attestations as Envelope[],
      },
      { epoch: record.epoch },
    )
  }

  /**
   * After a heal, a thread may hold DECIDEs of different proposals: the merge rule has picked one
   * everywhere; a decider records the outcome in a RECONCILE (once per winner).
   */
  async #reconcile(replica: ThreadReplica): Promise<void> {
    const state = replica.state
    const winner = state.winner
    if (!winner) return
    const losers = [...state.decides.values()].filter((decide) => decide.proposal !== winner.proposal)
    // The anchor whose DECIDE won records the merge (one RECONCILE, not one per anchor).
    if (losers.length === 0 || winner.decider !== this.did) return
    if (!this.#once(`reconcile:${replica.thread}:${winner.env}`)) return
    await this.publish('RECONCILE', replica.thread, {
      thread: replica.thread,
      merged: [winner.env],
      orphaned: [...new Set(losers.map((decide) => decide.proposal))].sort(),
      salvaged: replica.salvaged(),
    })
  }

  // worker ----------------------------------------------------------------

  /**
   * Arms one claim attempt after a random back-off. Not memoised per round: a re-fold (after a
   * heal) may reject an earlier claim of ours, and the task must stay claimable by us.
   */
  #claimLater(replica: ThreadReplica, taskId: string): void {
    const task = replica.state.tasks.get(taskId)
    if (!task || !this.capabilities.has(task.spec.capability)) return
    const pending = `claim-pending:${taskId}`
    if (this.#done.has(pending)) return
    this.#done.add(pending)
    this.#after(this.#options.random.next() * this.tuning.claimBackoffMs, async () => {
      this.#done.delete(pending)
      const current = replica.state.tasks.get(taskId)
      if (current?.state !== 'DECIDED' || current.lease) return
      if (!current.parents.every((parent) => replica.state.tasks.get(parent)?.state === 'FINAL')) return
      const cost = this.capabilities.get(current.spec.capability)!.manifest.price
      const payload = { task: taskId, leaseTtlMs: this.tuning.leaseTtlMs, cost, etaMs: this.tuning.workMs }
      await this.publish('CLAIM', replica.thread, payload, { epoch: this.#threadEpoch(replica) })
      if (this.#options.adversary?.equivocate) {
        await this.publish(
          'CLAIM',
          replica.thread,
          { ...payload, cost: cost + 1 },
          { epoch: this.#threadEpoch(replica) },
        )
      }
    })
  }

  #threadEpoch(replica: ThreadReplica): number {
    return Math.max(this.#epoch, replica.state.winner?.epoch ?? 0)
  }

  #workIfMine(replica: ThreadReplica, taskId: string, claim: Cid): void {
    const task = replica.state.tasks.get(taskId)
    if (!task?.lease || task.lease.claim !== claim || task.lease.worker !== this.did) return
    if (!this.#once(`work:${claim}`)) return
    const heartbeatEvery = Math.max(1, Math.floor(task.lease.ttlMs / 3))
    const beat = (): void => {
      this.#after(heartbeatEvery, async () => {
        const current = replica.state.tasks.get(taskId)
        if (current?.lease?.claim !== claim) return
        await this.publish(
          'HEARTBEAT',
          replica.thread,
          { task: taskId, claim, progress: 500 },
          { fence: claim, epoch: this.#threadEpoch(replica) },
        )
        beat()
      })
    }
    beat()
    this.#after(this.tuning.workMs, () => this.#commit(replica, taskId, claim))
  }

  async #commit(replica: ThreadReplica, taskId: string, claim: Cid): Promise<void> {
    const task = replica.state.tasks.get(taskId)
    if (task?.lease?.claim !== claim) return
    const inputs = await this.#inputsOf(replica, task)
    if (!inputs) return
    let output = await this.capabilities.run(task.spec.capability, inputs)
    if (this.#options.adversary?.corruptOutputs) output = new TextEncoder().encode(`forged ${claim}`)
    const cid = await this.#options.artifacts.put(output)
    const inputBytes = inputs.reduce((sum, bytes) => sum + bytes.length, 0)
    await this.publish(
      'COMMIT',
      replica.thread,
      {
        task: taskId,
        claim,
        outputs: [cid],
        telemetry: {
          cpuMs: 1,
          wallMs: this.tuning.workMs,
          memoryBytes: 0,
          inputBytes,
          outputBytes: output.length,
        },
        verifyBounty: this.tuning.verifyBounty,
      },
      { fence: claim, refs: [cid], epoch: this.#threadEpoch(replica) },
    )
  }

  #scavengeLater(replica: ThreadReplica, taskId: string, claim: Cid): void {
    const renewedBy = replica.state.tasks.get(taskId)?.lease?.renewedBy
    this.#after(this.#options.random.next() * this.tuning.scavengeBackoffMs, async () => {
      const lease = replica.state.tasks.get(taskId)?.lease
      if (lease?.claim !== claim || lease.renewedBy !== renewedBy) return
      if (!this.#once(`release:${claim}:${renewedBy}`)) return
      await this.publish('RELEASE', replica.thread, { task: taskId, claim, reason: 'lease-expired' })
    })
  }

  /** Input bytes of a task: NEED inputs by CID, `task:x` as the final outputs of task x. */
  #inputsOf(replica: ThreadReplica, task: TaskInfo): Promise<Uint8Array[] | undefined> {
    return fetchTaskInputs(replica.state, task, (cid) => this.#options.artifacts.get(cid))
  }

  // verifier: results ----------------------------------------------------

  /** What a commit's outputs should be: the capability re-run on the task's inputs (cached). */
  async #expectedOutputs(replica: ThreadReplica, task: TaskInfo): Promise<Cid[] | undefined> {
    const commit = task.commit
    if (!commit) return undefined
    // Keyed by the inputs too: a parent reopened and finalized again changes what the task should give.
    const refs = taskInputRefs(replica.state, task)
    if (!refs) return undefined
    const key = `${commit.id}|${refs.join(',')}`
    const cached = this.#expected.get(key)
    if (cached) return cached
    if (!this.capabilities.has(task.spec.capability)) return undefined
    const inputs = await this.#inputsOf(replica, task)
    if (!inputs) return undefined
    const output = await this.capabilities.run(task.spec.capability, inputs)
    const expected = [artifactCid(output)]
    this.#expected.set(key, expected)
    const inputBytes = inputs.reduce((sum, bytes) => sum + bytes.length, 0)
    this.#measured.set(commit.id, { inputBytes, outputBytes: output.length })
    return expected
  }

  async #attestResult(replica: ThreadReplica, taskId: string, commitId: Cid): Promise<void> {
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    if (!task || commit?.id !== commitId || !inCommittee(commit.committee, this.did, this.params)) return
    // Already voted (e.g. before a restart, whose memory of what it did is gone): never vote twice.
    if (commit.votes.has(this.did) || !this.#once(`attest:${commitId}`)) return
    const expected = await this.#expectedOutputs(replica, task)
    if (!expected) return
    let honest: 'pass' | 'fail' = sameRefs(expected, commit.outputs) ? 'pass' : 'fail'
    const policyHash = this.#options.policyHash ?? BUILTIN_POLICY_HASH
    const digest = (v: string) => evalDigestOf({ commit: commitId, outputs: commit.outputs }, v, policyHash)
    let evalDigest: string | undefined
    const gates = this.#options.policy
    if (gates) {
      const decision = gates.commit(replica.get(commitId) as Envelope<'COMMIT'>, {
        outputsMatch: honest === 'pass',
        measured: this.#measured.get(commitId) ?? {},
        taskClass: task.spec.capability,
      })
      honest = decision.allowed ? 'pass' : 'fail'
      evalDigest = decision.evalDigest
    }
    const verdict = this.#options.adversary?.rubberStamp ? 'pass' : honest
    evalDigest ??= digest(verdict)
    await this.publish(
      'ATTEST',
      replica.thread,
      { task: taskId, commit: commitId, verdict, evalDigest },
      { evalDigest },
    )
    if (this.#options.adversary?.equivocate) {
      const other = verdict === 'pass' ? 'fail' : 'pass'
      await this.publish('ATTEST', replica.thread, {
        task: taskId,
        commit: commitId,
        verdict: other,
        evalDigest: digest(other),
      })
    }
  }

  async #challengeIfWrong(replica: ThreadReplica, taskId: string, commitId: Cid): Promise<void> {
    const adversary = this.#options.adversary
    if (adversary && !adversary.frivolousChallenges) return
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    if (!task || commit?.id !== commitId || commit.worker === this.did) return
    let expected = await this.#expectedOutputs(replica, task)
    if (adversary?.frivolousChallenges) {
      // A made-up expectation: the output of another input.
      expected = [artifactCid(new TextEncoder().encode(`frivolous ${commitId}`))]
    }
    if (!expected || sameRefs(expected, commit.outputs)) return
    if (!this.#once(`challenge:${commitId}`)) return
    await this.publish('CHALLENGE', replica.thread, {
      task: taskId,
      commit: commitId,
      proof: { type: 'output-mismatch', expected },
      bond: Math.max(this.tuning.challengeBond, requiredBond({ type: 'output-mismatch', expected })),
    })
  }

  async #judgeChallenge(
    replica: ThreadReplica,
    taskId: string,
    commitId: Cid,
    challenge: Cid,
  ): Promise<void> {
    if (!isEligibleVerifier(this.params, this.did)) return
    const task = replica.state.tasks.get(taskId)
    const commit = task?.commit
    if (!task || commit?.id !== commitId || commit.worker === this.did) return
    const proof = (replica.get(challenge) as Envelope<'CHALLENGE'> | undefined)?.payload.proof
    if (!proof) return
    // Each proof type is judged by its own bounded check; only a proof that the result itself is
    // wrong invalidates it (a contradiction between attestations is the equivocator's fault, settled
    // by slashing, not by throwing away a right result).
    let upheld = false
    if (proof.type === 'output-mismatch') {
      const expected = await this.#expectedOutputs(replica, task)
      upheld = expected !== undefined && !sameRefs(expected, commit.outputs)
    } else if (proof.type === 'schema-violation') {
      const output = commit.outputs.includes(proof.output)
        ? await this.#options.artifacts.get(proof.output)
        : undefined
      upheld = output !== undefined && violatesJsonSchema(task.spec.produces, output)
    } else if (proof.type === 'missing-artifact') {
      upheld =
        commit.outputs.includes(proof.ref) && (await this.#options.artifacts.get(proof.ref)) === undefined
    }
    if (!upheld || !this.#once(`invalidate:${challenge}`)) return
    await this.publish('INVALIDATE', replica.thread, { task: taskId, commit: commitId, challenge })
  }

  // finalizer -------------------------------------------------------------

  #finalizeWhenDue(replica: ThreadReplica, taskId: string, commitId: Cid): void {
    const task = replica.state.tasks.get(taskId)
    if (task?.commit?.id !== commitId) return
    const isWorker = task.commit.worker === this.did
    const isBackup =
      inCommittee(task.commit.committee, this.did, this.params) || replica.state.need?.requester === this.did
    if (!isWorker && !isBackup) return
    const delay = isWorker ? 0 : this.tuning.finalizeBackupMs * (1 + this.#options.random.next())
    this.#after(delay, async () => {
      const current = replica.state.tasks.get(taskId)
      const commit = current?.commit
      if (!current || commit?.id !== commitId || current.state !== 'VERIFIED') return
      if (!this.#once(`finalize:${commitId}`)) return
      const passing = [...commit.votes.values()]
        .filter((vote) => vote.verdict === 'pass')
        .map((vote) => replica.get(vote.env)!)
      await this.publish('FINALIZE', replica.thread, {
        task: taskId,
        commit: commitId,
        attestations: passing as Envelope[],
      })
    })
  }
}

function sameRefs(a: readonly Cid[], b: readonly Cid[]): boolean {
  return a.length === b.length && a.every((ref, index) => ref === b[index])
}
