/** Views of a thread's state for people: its position in the state machine and its plan. */
import type { TaskInfo, ThreadState } from '@can-swarm/peer'

/** The positions of a NEED's life, in order (docs/PROTOCOL.md §5). */
export const STAGES = [
  'NEED',
  'PROPOSED',
  'PLAN QUORUM',
  'DECIDED',
  'CLAIMED',
  'COMMITTED',
  'VERIFIED',
  'FINAL',
] as const

/** What each position means, in words (shown as the stepper's tooltips). */
export const STAGE_WORDS: Readonly<Record<(typeof STAGES)[number], string>> = {
  NEED: 'a requester signed the NEED (its thread id is the hash of the NEED)',
  PROPOSED: 'a planner proposed a plan (named by its PROPOSE envelope)',
  'PLAN QUORUM': 'enough verifiers of the pool accepted a plan',
  DECIDED: 'an anchor decided the plan (only for a requester who can fund the budget)',
  CLAIMED: 'a worker CLAIMed a task and an anchor GRANTed it the lease',
  COMMITTED: 'the lease holder committed its outputs',
  VERIFIED: "the commit's committee attested the result",
  FINAL: 'an anchor signed FINALIZE after the challenge window',
}

const TASK_STAGE: Record<string, number> = {
  DRAFT: 3,
  DECIDED: 3,
  CLAIMED: 4,
  COMMITTED: 5,
  VERIFIED: 6,
  FINAL: 7,
}

/** The tasks of the plan shown: the decided one, else the first proposal's. */
export function planTasks(state: ThreadState): TaskInfo[] {
  const proposal = state.winner?.proposal ?? [...state.proposals.keys()][0]
  return [...state.tasks.values()].filter((task) => task.proposal === proposal)
}

/** A task id (`<PROPOSE id>/<name>`) for people: its name and a short form of its plan's id. */
export function taskLabel(task: string): string {
  const cut = task.lastIndexOf('/')
  if (cut < 0) return task
  const plan = task.slice(0, cut)
  return `${task.slice(cut + 1)} (plan ${plan.length > 13 ? `${plan.slice(0, 6)}…${plan.slice(-6)}` : plan})`
}

/** Index in {@link STAGES} of where a thread is (the least advanced task once decided). */
export function stageOf(state: ThreadState): number {
  if (state.winner) {
    const tasks = planTasks(state)
    if (tasks.length === 0) return 3
    return Math.min(...tasks.map((task) => TASK_STAGE[task.state] ?? 3))
  }
  if (state.quorum) return 2
  if (state.proposals.size > 0) return 1
  return 0
}

/** True when every task of the decided plan is FINAL. */
export function isFinal(state: ThreadState): boolean {
  return stageOf(state) === STAGES.length - 1
}

/** The output CIDs of the plan's last tasks (those no other task depends on), once FINAL. */
export function finalOutputs(state: ThreadState): string[] {
  const tasks = planTasks(state)
  const parents = new Set(tasks.flatMap((task) => task.parents))
  return tasks
    .filter((task) => !parents.has(task.id) && task.state === 'FINAL' && task.commit)
    .flatMap((task) => [...task.commit!.outputs])
}
