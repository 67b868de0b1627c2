/**
 * What a role of the agent (planner, verifier, worker, anchor) works with: the agent's identity,
 * options and parameters, how it speaks (`publish`), its per-thread memos and timers, and the
 * checks roles share. The Agent builds one and hands it to each role; a role holds no reference
 * to the Agent itself, so what a role may touch is exactly this list.
 */
import type { ThreadReplica } from '../../core/thread/replica.ts'
import type { TaskInfo } from '../../core/thread/state.ts'
import type { Cid } from '../../core/types.ts'
import type { Agent, AgentOptions, AgentRoles, AgentTuning, RunningWork, ThreadMemo } from '../agent.ts'
import type { CapabilityRegistry } from '../capabilities.ts'

export interface RoleContext {
  readonly did: string
  readonly tuning: AgentTuning
  readonly capabilities: CapabilityRegistry
  readonly options: AgentOptions
  /** The network's parameters as the agent knows them now (the pool changes at epochs). */
  readonly params: AgentOptions['params']
  /** The roles the agent plays now. */
  readonly roles: Readonly<AgentRoles>
  /** Signs, places and publishes an envelope (the agent's, so a decorated agent's lies too). */
  readonly publish: Agent['publish']
  /** True the first time `key` is asked in `thread`. */
  once(thread: string, key: string): boolean
  /** Runs `action` after `delayMs`, cancelled if `thread` is dropped. */
  after(delayMs: number, action: () => Promise<void>, thread: string): void
  /** An anchor duty: `act` after `delayMs`, again after a back-off while it says so (bounded). */
  duty(thread: string, key: string, delayMs: number, act: () => Promise<boolean>, round?: number): void
  /** The pending timers and duty keys of `thread`. */
  timersOf(thread: string): { cancels: Set<() => void>; duties: Set<string> }
  memoOf(thread: string): ThreadMemo
  /** How long this anchor waits before acting for `replica`'s thread (0 for its home anchor). */
  anchorDelay(replica: ThreadReplica): number
  /** Duty and claim keys with a timer armed. */
  readonly duties: Set<string>
  readonly threadTimers: Map<string, { cancels: Set<() => void>; duties: Set<string> }>
  /** This worker's work in progress, by CLAIM id. */
  readonly running: Map<Cid, RunningWork>
  /** The capability's result on the inputs a COMMIT names (undefined when it cannot tell). */
  expectedOutputs(replica: ThreadReplica, task: TaskInfo): Promise<Cid[] | undefined>
  /** What a challenger expects (the agent's protected seam; see Agent.challengeExpectation). */
  challengeExpectation(replica: ThreadReplica, task: TaskInfo): Promise<Cid[] | undefined>
  /** The input bytes of `task` (undefined when one cannot be fetched). */
  inputsOf(replica: ThreadReplica, task: TaskInfo): Promise<Uint8Array[] | undefined>
}

/** True when two output lists name the same artifacts in the same order. */
export function sameRefs(a: readonly Cid[], b: readonly Cid[]): boolean {
  return a.length === b.length && a.every((ref, index) => ref === b[index])
}
