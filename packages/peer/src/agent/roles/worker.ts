/**
 * The worker role (docs/PROTOCOL.md §5, §6): it claims a ready task it can do (CLAIM) after a
 * random back-off, works it while it holds the lease (the handler's signal aborts when the lease
 * ends; HEARTBEATs carry its progress) and commits the outputs (COMMIT).
 */
import { taskInputRefs } from '../../core/thread/inputs.ts'
import type { ThreadReplica } from '../../core/thread/replica.ts'
import type { Cid } from '../../core/types.ts'
import type { RunningWork } from '../agent.ts'
import type { RoleContext } from './context.ts'

export class WorkerRole {
  readonly #ctx: RoleContext

  constructor(ctx: RoleContext) {
    this.#ctx = ctx
  }

  /**
   * Arms a claim attempt after a random back-off whenever the task is ready, unless this worker
   * already has a CLAIM of the task's current round in the log (a CLAIM the log refused — a re-fold
   * placed it before the task was claimable — does not count). The CLAIM is a request: the lease
   * starts with the anchor's GRANT.
   */
  claimLater(replica: ThreadReplica, taskId: string): void {
    const task = replica.state.tasks.get(taskId)
    if (!task || !this.#ctx.capabilities.has(task.spec.capability)) return
    const key = `claim:${replica.thread}:${taskId}`
    if (this.#ctx.duties.has(key)) return
    this.#ctx.duties.add(key)
    this.#ctx.timersOf(replica.thread).duties.add(key)
    this.#ctx.after(
      this.#ctx.options.random.next() * this.#ctx.tuning.claimBackoffMs,
      async () => {
        this.#ctx.duties.delete(key)
        this.#ctx.threadTimers.get(replica.thread)?.duties.delete(key)
        const current = replica.state.tasks.get(taskId)
        if (!this.#ctx.roles.worker || current?.state !== 'DECIDED' || current.lease) return
        if (!current.parents.every((parent) => replica.state.tasks.get(parent)?.state === 'FINAL')) return
        for (const [id, round] of current.requests) {
          if (round === current.round && replica.get(id)?.sender === this.#ctx.did) return
        }
        const cost = this.#ctx.capabilities.get(current.spec.capability)!.manifest.price
        const payload = {
          task: taskId,
          leaseTtlMs: this.#ctx.tuning.leaseTtlMs,
          cost,
          etaMs: this.#ctx.tuning.workMs,
        }
        await this.#ctx.publish('CLAIM', replica.thread, payload)
      },
      replica.thread,
    )
  }

  workIfMine(replica: ThreadReplica, taskId: string, claim: Cid): void {
    const task = replica.state.tasks.get(taskId)
    if (!task?.lease || task.lease.claim !== claim || task.lease.worker !== this.#ctx.did) return
    if (!this.#ctx.once(replica.thread, `work:${claim}`)) return
    const heartbeatEvery = Math.max(1, Math.floor(task.lease.ttlMs / 3))
    const beat = (): void => {
      this.#ctx.after(
        heartbeatEvery,
        async () => {
          const current = replica.state.tasks.get(taskId)
          if (current?.lease?.claim !== claim) return
          await this.#ctx.publish(
            'HEARTBEAT',
            replica.thread,
            { task: taskId, claim, progress: this.#ctx.running.get(claim)?.progress ?? 0 },
            { fence: claim },
          )
          beat()
        },
        replica.thread,
      )
    }
    beat()
    this.#ctx.after(this.#ctx.tuning.workMs, () => this.#commit(replica, taskId, claim), replica.thread)
  }

  async #commit(replica: ThreadReplica, taskId: string, claim: Cid): Promise<void> {
    const task = replica.state.tasks.get(taskId)
    if (!this.#ctx.roles.worker || task?.lease?.claim !== claim) return
    const refs = taskInputRefs(replica.state, task)
    const inputs = await this.#ctx.inputsOf(replica, task)
    if (!inputs || !refs) return
    const work: RunningWork = {
      thread: replica.thread,
      task: taskId,
      controller: new AbortController(),
      progress: 0,
    }
    this.#ctx.running.set(claim, work)
    let output: Uint8Array
    try {
      output = await this.#ctx.capabilities.run(task.spec.capability, inputs, {
        signal: work.controller.signal,
        onProgress: (perMille) => {
          work.progress = Number.isFinite(perMille) ? Math.min(1000, Math.max(0, Math.round(perMille))) : 0
        },
      })
    } catch (error) {
      // Work stopped because its lease ended is not an error; anything else is the handler's.
      if (work.controller.signal.aborted) return
      throw error
    } finally {
      if (this.#ctx.running.get(claim) === work) this.#ctx.running.delete(claim)
    }
    // The lease may have ended while the work ran: what it gave is no longer this worker's to commit.
    if (work.controller.signal.aborted || replica.state.tasks.get(taskId)?.lease?.claim !== claim) return
    const cid = await this.#ctx.options.artifacts.put(output)
    const inputBytes = inputs.reduce((sum, bytes) => sum + bytes.length, 0)
    await this.#ctx.publish(
      'COMMIT',
      replica.thread,
      {
        task: taskId,
        claim,
        inputs: refs,
        outputs: [cid],
        telemetry: {
          cpuMs: 1,
          wallMs: this.#ctx.tuning.workMs,
          memoryBytes: 0,
          inputBytes,
          outputBytes: output.length,
        },
        verifyBounty: this.#ctx.tuning.verifyBounty,
      },
      { fence: claim, refs: [cid] },
    )
  }
}
