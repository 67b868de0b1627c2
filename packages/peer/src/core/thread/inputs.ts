/**
 * A task's input artifacts: its NEED inputs by CID, and `task:x` as the final outputs of task x of
 * the same proposal. Undefined while a parent is not FINAL.
 */
import type { Cid } from '../types.ts'
import type { TaskInfo, ThreadState } from './state.ts'

export function taskInputRefs(state: Readonly<ThreadState>, task: TaskInfo): Cid[] | undefined {
  const refs: Cid[] = []
  for (const input of task.spec.inputs) {
    if (!input.startsWith('task:')) {
      refs.push(input)
      continue
    }
    const parent = state.tasks.get(`${task.proposal}/${input.slice(5)}`)
    if (parent?.state !== 'FINAL' || !parent.commit) return undefined
    refs.push(...parent.commit.outputs)
  }
  return refs
}

/** Fetches every input of a task, in order; undefined when a parent is unfinished or an artifact missing. */
export async function fetchTaskInputs(
  state: Readonly<ThreadState>,
  task: TaskInfo,
  get: (cid: Cid) => Promise<Uint8Array | undefined>,
): Promise<Uint8Array[] | undefined> {
  const refs = taskInputRefs(state, task)
  if (!refs) return undefined
  const result: Uint8Array[] = []
  for (const ref of refs) {
    const bytes = await get(ref)
    if (!bytes) return undefined
    result.push(bytes)
  }
  return result
}
