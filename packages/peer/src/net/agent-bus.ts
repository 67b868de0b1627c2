/**
 * Connects an {@link Agent} to a {@link GossipBus} without changing the agent: the bus is the
 * agent's `EnvelopeSink`, and valid envelopes from the bus are handed to `agent.deliver` one at a
 * time, in arrival order (the agent's reactions to one envelope finish before the next starts, as
 * in the simulator).
 *
 * @example
 * ```ts
 * const bus = createBus(network)
 * const agent = new Agent({ bus, identity, params, clock: systemClock(), … })
 * const detach = attachAgent(bus, agent, { onError: console.error })
 * ```
 */
import type { Agent } from '../agent/agent.ts'
import type { AgentClock } from '../agent/ports.ts'
import type { AnyEnvelope } from '../core/types.ts'
import type { GossipBus } from './bus.ts'

/** Options of {@link attachAgent}. */
export interface AttachAgentOptions {
  /** Called with errors thrown by `agent.deliver`. */
  onError?: (error: unknown) => void
  /** Most envelopes waiting for the agent; beyond it new ones are dropped and counted. @default 100 000 */
  maxQueuedEnvelopes?: number
  /** The bus runs the policy ingress gate (its `ingress` hook): the agent does not run it again. @default false */
  gated?: boolean
}

/** A handle on an attached agent. */
export interface AttachedAgent {
  /** Envelopes dropped because the queue was full. */
  readonly dropped: number
  /** Resolves when every queued envelope has been delivered. */
  idle(): Promise<void>
  /** Stops delivering. */
  detach(): void
}

/** Feeds the bus's valid envelopes to the agent, in order. */
export function attachAgent(bus: GossipBus, agent: Agent, options: AttachAgentOptions = {}): AttachedAgent {
  const maxQueued = options.maxQueuedEnvelopes ?? 100_000
  let queued = 0
  let dropped = 0
  let chain: Promise<void> = Promise.resolve()
  const deliver = async (env: AnyEnvelope): Promise<void> => {
    try {
      await agent.deliver(env, { gated: options.gated === true })
    } catch (error) {
      options.onError?.(error)
    } finally {
      queued -= 1
    }
  }
  const remove = bus.onEnvelope((env) => {
    if (queued >= maxQueued) {
      dropped += 1
      return
    }
    queued += 1
    chain = chain.then(() => deliver(env))
  })
  return {
    get dropped() {
      return dropped
    },
    idle: () => chain,
    detach: remove,
  }
}

/** The wall clock with `setTimeout` timers, as an {@link AgentClock}. */
export function systemClock(): AgentClock {
  return {
    now: () => Date.now(),
    setTimer(atMs, callback) {
      const timer = setTimeout(() => void callback(), Math.max(0, atMs - Date.now()))
      return () => clearTimeout(timer)
    },
  }
}
