import { CanSwarmError } from '../errors.ts'

/**
 * The plan graph has a cycle, so it has no topological order.
 *
 * LINK facts are never removed (facts are facts), so a cycle stays in the store; it is reported, not
 * repaired. `cycles` lists some of the offending cycles (at most a few, each starting at its smallest
 * task id), enough to name the LINKs a planner must stop relying on.
 *
 * @example
 * ```ts
 * try {
 *   store.topologicalOrder('need-1')
 * } catch (error) {
 *   if (error instanceof PlanCycleError) console.warn(error.cycles)
 * }
 * ```
 */
export class PlanCycleError extends CanSwarmError {
  /** Cycles found in the graph that was being ordered, each as task ids; sorted. */
  readonly cycles: readonly (readonly string[])[]
  /** The thread whose tasks were being ordered, or `undefined` for the whole store. */
  readonly thread: string | undefined

  constructor(cycles: readonly (readonly string[])[], thread: string | undefined) {
    const scope = thread === undefined ? 'the plan graph' : `the plan graph of thread ${thread}`
    const example = cycles[0] === undefined ? '' : `, e.g. ${[...cycles[0], cycles[0][0]].join(' → ')}`
    super(
      'INVALID_ARGUMENT',
      `${scope} has a cycle${example}, so it has no topological order: ` +
        'list the cycles with findCycles() and re-plan the tasks on them (LINK facts are never removed)',
      'LINK',
    )
    this.name = 'PlanCycleError'
    this.cycles = cycles
    this.thread = thread
  }
}
