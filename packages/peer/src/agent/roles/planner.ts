/**
 * The planner role (docs/PROTOCOL.md §5): on a NEED whose capabilities it has, it bids a plan
 * (PROPOSE) after a random part of the bid window, so planners do not all answer at once.
 */
import type { ThreadReplica } from '../../core/thread/replica.ts'
import type { TaskSpec } from '../../core/types.ts'
import type { RoleContext } from './context.ts'

export class PlannerRole {
  readonly #ctx: RoleContext

  constructor(ctx: RoleContext) {
    this.#ctx = ctx
  }

  planLater(replica: ThreadReplica): void {
    const need = replica.state.need
    if (!need || !this.#ctx.once(replica.thread, `plan:${need.env}`)) return
    if (!need.requires.every((name) => this.#ctx.capabilities.has(name))) return
    const window = Math.max(1, Math.min(this.#ctx.tuning.proposeBackoffMs, need.bidWindowMs))
    this.#ctx.after(this.#ctx.options.random.next() * window, () => this.#propose(replica), replica.thread)
  }

  async #propose(replica: ThreadReplica): Promise<void> {
    const state = replica.state
    const need = state.need
    if (
      !this.#ctx.roles.planner ||
      !need ||
      state.winner ||
      state.proposals.size >= this.#ctx.tuning.maxProposalsSeen
    )
      return
    const patch: TaskSpec[] = need.requires.map((capability, index) => ({
      name: `t${index}-${capability}`.slice(0, 64),
      capability,
      inputs:
        index === 0 ? [...need.inputs] : [`task:t${index - 1}-${need.requires[index - 1]}`.slice(0, 69)],
      produces: this.#ctx.capabilities.get(capability)!.manifest.produces,
    }))
    const price = need.requires.reduce(
      (sum, name) => sum + this.#ctx.capabilities.get(name)!.manifest.price,
      0,
    )
    if (price > need.budget) return
    await this.#ctx.publish('PROPOSE', replica.thread, {
      need: replica.thread,
      patch,
      ballot: 1,
      price,
      etaMs: this.#ctx.tuning.workMs * patch.length,
      shardDependencies: [],
    })
  }
}
