/**
 * The requester role (docs/PROTOCOL.md §5): it checks a NEED before anything is said (a capability
 * to ask for, inputs, and — unless the NEED is unlisted — capabilities this peer knows and a budget
 * that covers their price), stores its inputs, and signs and publishes the NEED, whose id is its
 * thread's (A1). An aborted signal stops it until the NEED is published, never after.
 */
import { threadIdOf } from '../../core/codec.ts'
import { InvalidArgumentError } from '../../core/errors.ts'
import type { AnyEnvelope, Cid, Envelope, PayloadByKind, UnsignedEnvelope } from '../../core/types.ts'
import { GENESIS_EPOCH } from '../../core/types.ts'
import type { NeedRequest } from '../agent.ts'
import { checkNeedRequest } from '../capabilities.ts'
import type { RoleContext } from './context.ts'

/** What only the requester needs of the agent: a NEED's first draft, signing and placing it. */
export interface RequesterPort {
  /** The unsigned NEED (thread not known yet: it is the NEED's own id). */
  draftNeed(payload: PayloadByKind['NEED']): UnsignedEnvelope<'NEED'>
  sign(unsigned: UnsignedEnvelope<'NEED'>): Promise<Envelope<'NEED'>>
  /** Places this agent's envelope in its (new) thread and publishes it. */
  place(thread: string, env: AnyEnvelope): Promise<void>
}

export class RequesterRole {
  readonly #ctx: RoleContext
  readonly #port: RequesterPort

  constructor(ctx: RoleContext, port: RequesterPort) {
    this.#ctx = ctx
    this.#port = port
  }

  async post(request: NeedRequest, options: { signal?: AbortSignal } = {}): Promise<string> {
    const signal = options.signal
    signal?.throwIfAborted()
    if (request.requires.length === 0)
      throw new InvalidArgumentError('requires must name a capability', 'requires')
    if (request.inputs.length === 0)
      throw new InvalidArgumentError('a NEED needs at least one input', 'inputs')
    if (!request.unlisted) checkNeedRequest(request, this.#ctx.capabilities)
    const inputs: Cid[] = []
    for (const bytes of request.inputs)
      inputs.push(await this.#ctx.options.artifacts.put(bytes, signal ? { signal } : undefined))
    const now = this.#ctx.options.clock.now()
    const payload = {
      need: '',
      epoch: GENESIS_EPOCH,
      requires: request.requires,
      inputs,
      produces: request.produces ?? 'application/octet-stream',
      budget: request.budget,
      deadlineMs: Math.max(0, Math.floor(request.deadlineMs ?? now + 60_000)),
      bidWindowMs: request.bidWindowMs ?? 500,
    }
    const draft = this.#port.draftNeed(payload)
    const thread = threadIdOf(draft)
    const env = await this.#port.sign({ ...draft, thread, payload: { ...payload, need: thread } })
    // The last moment to give up: once placed, the NEED is published.
    signal?.throwIfAborted()
    await this.#port.place(thread, env as AnyEnvelope)
    return thread
  }
}
