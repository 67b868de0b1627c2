/**
 * The anchor (decider) role (docs/PROTOCOL.md §5–§7): it decides a NEED once its plan has a
 * quorum and its requester can fund it (DECIDE, A7), reconciles conflicting decisions, grants
 * leases (GRANT, A5), scavenges expired ones (RELEASE) and finalizes unchallenged results
 * (FINALIZE). Its own state is the funds of its DECIDEs in flight.
 */
import type { DecideRecord } from '../../core/consensus.ts'
import { CanSwarmError, InvalidArgumentError, StaleEpochError } from '../../core/errors.ts'
import { kPlanOf, poolSnapshotOf } from '../../core/thread/params.ts'
import type { ThreadReplica } from '../../core/thread/replica.ts'
import type { TaskInfo } from '../../core/thread/state.ts'
import type { Cid, Envelope } from '../../core/types.ts'
import type { RoleContext } from './context.ts'

export class DeciderRole {
  readonly #ctx: RoleContext
  /** The latest `ts` of this anchor's DECIDEs: the next one is later (restored from its log). */
  #lastDecideTs = 0
  /** Budgets of this anchor's DECIDEs in flight, per requester (A7: checked and taken together). */
  #reserved = new Map<string, number>()
  /** The threads of those DECIDEs in flight, per requester. */
  #reservedThreads = new Map<string, Set<string>>()

  /** Notes a DECIDE of this anchor's restored from its log. */
  noteDecide(ts: number): void {
    this.#lastDecideTs = Math.max(this.#lastDecideTs, ts)
  }

  constructor(ctx: RoleContext) {
    this.#ctx = ctx
  }

  /**
   * The anchor that decides a requester's NEEDs first (the others only after a back-off), so that
   * one anchor checks and takes each requester's funds in order (A7).
   */
  #homeAnchor(requester: string): string {
    const anchors = this.#ctx.params.anchors
    let hash = 0
    for (let i = 0; i < requester.length; i += 1) hash = (hash * 31 + requester.charCodeAt(i)) >>> 0
    return anchors[hash % anchors.length]!
  }

  async decide(replica: ThreadReplica, proposal: Cid, attempt: number): Promise<void> {
    const quorum = replica.state.quorum
    if (!quorum || quorum.proposal !== proposal || replica.state.winner) return
    if (attempt === 1) {
      // Once per proposal: when a late envelope moves the quorum to another plan, that plan gets its
      // own attempt (the attempts armed for the old one stop at the check above).
      if (!this.#ctx.once(replica.thread, `decide:${replica.thread}:${proposal}`)) return
      const need = replica.state.need!
      if (this.#homeAnchor(need.requester) !== this.#ctx.did) {
        this.#ctx.after(
          this.#ctx.tuning.anchorBackupMs * (1 + this.#ctx.options.random.next()),
          () => this.decide(replica, proposal, 2),
          replica.thread,
        )
        return
      }
    }
    const need = replica.state.need!
    const reserved = this.#reserved.get(need.requester) ?? 0
    const inFlight = new Set(this.#reservedThreads.get(need.requester))
    const unfunded = await this.#ctx.options.funding?.(need, replica.thread, reserved, inFlight)
    if (replica.state.winner) return
    if (unfunded !== undefined) {
      this.#ctx.options.onError?.(
        new InvalidArgumentError(`NEED ${replica.thread} is not decided: ${unfunded}`, 'budget'),
      )
      return
    }
    this.#reserved.set(need.requester, (this.#reserved.get(need.requester) ?? 0) + need.budget)
    const held = this.#reservedThreads.get(need.requester) ?? new Set<string>()
    this.#reservedThreads.set(need.requester, held.add(replica.thread))
    try {
      await this.#decideFunded(replica, proposal, attempt, quorum.attestations)
    } finally {
      const left = (this.#reserved.get(need.requester) ?? 0) - need.budget
      if (left > 0) this.#reserved.set(need.requester, left)
      else this.#reserved.delete(need.requester)
      const still = this.#reservedThreads.get(need.requester)
      still?.delete(replica.thread)
      if (still?.size === 0) this.#reservedThreads.delete(need.requester)
    }
  }

  async #decideFunded(replica: ThreadReplica, proposal: Cid, attempt: number, quorum: Cid[]): Promise<void> {
    const consensus = this.#ctx.options.consensus!
    let record: DecideRecord
    const lamport = replica.nextLamport()
    try {
      const epoch = await consensus.currentEpoch()
      const result = await consensus.tryDecide({
        need: replica.thread,
        proposal,
        epoch,
        lamport,
        kPlan: kPlanOf(this.#ctx.params),
        decider: this.#ctx.did,
      })
      if (result.outcome === 'conflict' || result.record.decider !== this.#ctx.did) return
      record = result.record
    } catch (error) {
      if (!(error instanceof StaleEpochError) && error instanceof CanSwarmError) throw error
      if (attempt < this.#ctx.tuning.decideAttempts) {
        const delay = this.#ctx.tuning.decideRetryMs * 2 ** Math.min(3, attempt - 1)
        this.#ctx.after(
          delay * (0.5 + this.#ctx.options.random.next()),
          () => this.decide(replica, proposal, attempt + 1),
          replica.thread,
        )
      }
      return
    }
    const attestations = quorum.map((id) => replica.get(id)!)
    // The anchors' sequence (A7): an anchor's DECIDEs carry strictly rising times.
    const ts = Math.max(this.#lastDecideTs + 1, Math.floor(this.#ctx.options.clock.now()))
    this.#lastDecideTs = ts
    await this.#ctx.publish(
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
        pool: poolSnapshotOf(this.#ctx.params),
      },
      { epoch: record.epoch, ts },
    )
  }

  /**
   * After a heal, a thread may hold DECIDEs of different proposals: the merge rule has picked one
   * everywhere; a decider records the outcome in a RECONCILE (once per winner).
   */
  async reconcile(replica: ThreadReplica): Promise<void> {
    const state = replica.state
    const winner = state.winner
    if (!winner) return
    const losers = [...state.decides.values()].filter((decide) => decide.proposal !== winner.proposal)
    // The anchor whose DECIDE won records the merge (one RECONCILE, not one per anchor).
    if (losers.length === 0 || winner.decider !== this.#ctx.did) return
    if (!this.#ctx.once(replica.thread, `reconcile:${replica.thread}:${winner.env}`)) return
    await this.#ctx.publish('RECONCILE', replica.thread, {
      thread: replica.thread,
      merged: [winner.env],
      orphaned: [...new Set(losers.map((decide) => decide.proposal))].sort(),
      salvaged: replica.salvaged(),
    })
  }

  /**
   * Grants the lease of a claimable task to the CLAIM of its current round this anchor received
   * first (A5), skipping workers that already let a lease of the task expire. The thread's decider
   * grants at once; other anchors only after a back-off, when no grant has come.
   */
  grantLater(replica: ThreadReplica, taskId: string): void {
    this.#ctx.duty(
      replica.thread,
      `grant:${replica.thread}:${taskId}`,
      this.#ctx.anchorDelay(replica),
      async () => {
        const current = replica.state.tasks.get(taskId)
        if (current?.state !== 'DECIDED' || current.lease) return false
        if (!current.parents.every((parent) => replica.state.tasks.get(parent)?.state === 'FINAL'))
          return false
        const timedOut = new Set(this.#timedOutWorkers(replica, current))
        const held = this.#earlierHolders(replica, current)
        // Workers that never held this task first (a holder that yields and claims again cannot keep
        // it from the others), then the best standing, then the cheapest ask, then the first received.
        const rank = this.#ctx.options.workerRank ?? (() => 0)
        const candidates = [...current.requests]
          .filter(([, round]) => round === current.round)
          .map(([claim]) => replica.get(claim) as Envelope<'CLAIM'>)
          .filter((claim) => claim !== undefined && !timedOut.has(claim.sender))
          .sort(
            (a, b) =>
              (held.get(a.sender) ?? 0) - (held.get(b.sender) ?? 0) ||
              rank(b.sender) - rank(a.sender) ||
              a.payload.cost - b.payload.cost ||
              (replica.receivedAt(a.id) ?? 0) - (replica.receivedAt(b.id) ?? 0) ||
              (a.id < b.id ? -1 : 1),
          )
        const chosen = candidates[0]
        if (!chosen) return false
        // An earlier holder is granted the task again only after one more back-off, so that a worker
        // that yields and claims in one breath does not beat everyone else to every round.
        if (
          (held.get(chosen.sender) ?? 0) > 0 &&
          this.#ctx.once(replica.thread, `regrant:${taskId}:${current.round}`)
        )
          return true
        await this.#ctx.publish('GRANT', replica.thread, {
          task: taskId,
          claim: chosen.id,
          leaseTtlMs: Math.max(
            this.#ctx.params.minLeaseTtlMs,
            Math.min(chosen.payload.leaseTtlMs, this.#ctx.tuning.maxGrantTtlMs),
          ),
        })
        return true
      },
    )
  }

  #earlierHolders(replica: ThreadReplica, task: TaskInfo): Map<string, number> {
    const counts = new Map<string, number>()
    for (const env of replica.envelopes()) {
      if (env.kind !== 'GRANT' || env.payload.task !== task.id || replica.state.rejected.has(env.id)) continue
      const claim = replica.get(env.payload.claim)
      if (claim) counts.set(claim.sender, (counts.get(claim.sender) ?? 0) + 1)
    }
    return counts
  }

  #timedOutWorkers(replica: ThreadReplica, task: TaskInfo): string[] {
    const workers: string[] = []
    for (const env of replica.envelopes()) {
      if (env.kind !== 'RELEASE' || env.payload.task !== task.id || env.payload.reason !== 'lease-expired')
        continue
      if (replica.state.rejected.has(env.id)) continue
      const claim = replica.get(env.payload.claim)
      if (claim) workers.push(claim.sender)
    }
    return workers
  }

  /**
   * Scavenges a lease whose heartbeats stopped (by this anchor's clock), or that has been held
   * longer than `maxLeaseHoldMs` (A5). Only an anchor's RELEASE counts against the worker.
   */
  scavengeLater(replica: ThreadReplica, taskId: string, claim: Cid): void {
    const renewedBy = replica.state.tasks.get(taskId)?.lease?.renewedBy
    this.#ctx.duty(
      replica.thread,
      `release:${claim}:${renewedBy}`,
      this.#ctx.anchorDelay(replica),
      async () => {
        const lease = replica.state.tasks.get(taskId)?.lease
        if (lease?.claim !== claim || lease.renewedBy !== renewedBy) return false
        await this.#ctx.publish('RELEASE', replica.thread, { task: taskId, claim, reason: 'lease-expired' })
        return true
      },
    )
  }

  watchHold(replica: ThreadReplica, taskId: string, claim: Cid): void {
    if (!this.#ctx.once(replica.thread, `hold:${claim}`)) return
    this.#ctx.after(
      this.#ctx.tuning.maxLeaseHoldMs,
      async () => {
        this.#ctx.duty(replica.thread, `release:${claim}:hold`, 0, async () => {
          if (replica.state.tasks.get(taskId)?.lease?.claim !== claim) return false
          await this.#ctx.publish('RELEASE', replica.thread, { task: taskId, claim, reason: 'lease-expired' })
          return true
        })
      },
      replica.thread,
    )
  }

  finalizeLater(replica: ThreadReplica, taskId: string, commitId: Cid): void {
    const task = replica.state.tasks.get(taskId)
    if (task?.commit?.id !== commitId) return
    this.#ctx.duty(replica.thread, `finalize:${commitId}`, this.#ctx.anchorDelay(replica), async () => {
      const current = replica.state.tasks.get(taskId)
      const commit = current?.commit
      if (!current || commit?.id !== commitId || current.state !== 'VERIFIED') return false
      // The first K_result passes in the log's order: enough, and bounded whatever else voted.
      const passing = [...commit.votes.values()]
        .filter((vote) => vote.verdict === 'pass')
        .slice(0, current.kResult)
        .map((vote) => replica.get(vote.env)!)
      await this.#ctx.publish('FINALIZE', replica.thread, {
        task: taskId,
        commit: commitId,
        attestations: passing as Envelope[],
      })
      return true
    })
  }
}
