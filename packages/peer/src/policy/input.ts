/**
 * The input document of the base policy, schema version 1 (policies/README.md). It is derived
 * from the envelope alone (plus, at the commit gate, the verifier's measurement), and small: kind,
 * sizes, the payload numbers that budgets cover, never the payload itself. Every value is an
 * integer, string or boolean, so the document has one canonical encoding for the eval digest.
 */
import { encodeCanonical } from '../core/codec.ts'
import type { Envelope, Telemetry, UnsignedEnvelope } from '../core/types.ts'

/** Version of the input document built here; the policy denies any other (`schema-version`). */
export const POLICY_SCHEMA_VERSION = 1

/** The three gates of docs/PROTOCOL.md §10. */
export type PolicyGate = 'preflight' | 'ingress' | 'commit'

/** Payload numbers the budgets cover, by payload field name. */
export type PolicyFields = Partial<
  Record<
    'budget' | 'bidWindowMs' | 'price' | 'ballot' | 'etaMs' | 'cost' | 'leaseTtlMs' | 'verifyBounty' | 'bond',
    number
  >
>

/** Resources a verifier measured when it re-ran a task (only what it can measure exactly). */
export type MeasuredResources = Partial<Telemetry>

/** The document a policy evaluates. */
export interface PolicyInput {
  schema: number
  gate: PolicyGate
  kind: string
  sizes: { payloadBytes: number; refs: number }
  fields: PolicyFields
  /** The task's capability, where the evaluator knows the task (commit gate). */
  taskClass?: string
  /** Ingress: envelopes this sender has put into this thread, this one included. */
  counters?: { messages: number }
  /** Commit gate: the worker's claimed telemetry and the verifier's measurement. */
  telemetry?: { claimed: Telemetry; measured: MeasuredResources }
  /** Commit gate: whether the verifier's re-execution produced the committed outputs. */
  outputsMatch?: boolean
}

const FIELD_NAMES = [
  'budget',
  'bidWindowMs',
  'price',
  'ballot',
  'etaMs',
  'cost',
  'leaseTtlMs',
  'verifyBounty',
  'bond',
] as const

/** Canonical payload size in bytes; anything that does not encode counts as over every limit. */
function payloadBytesOf(payload: unknown): number {
  try {
    return encodeCanonical(payload).length
  } catch {
    return Number.MAX_SAFE_INTEGER
  }
}

/** Extra context of {@link envelopeInput}. */
export interface EnvelopeInputContext {
  /** Ingress message count of the sender in the thread. */
  messages?: number
  /** Capability of the task the envelope is about. */
  taskClass?: string
  /** Canonical payload size, when the caller already knows it. */
  payloadBytes?: number
}

/** The input document for an envelope at the preflight or ingress gate. */
export function envelopeInput(
  env: UnsignedEnvelope,
  gate: PolicyGate,
  context: EnvelopeInputContext = {},
): PolicyInput {
  const payload = (env.payload ?? {}) as unknown as Record<string, unknown>
  const fields: PolicyFields = {}
  for (const name of FIELD_NAMES) {
    const value = payload[name]
    if (typeof value === 'number' && Number.isSafeInteger(value)) fields[name] = value
  }
  const input: PolicyInput = {
    schema: POLICY_SCHEMA_VERSION,
    gate,
    kind: String(env.kind),
    sizes: {
      payloadBytes: context.payloadBytes ?? payloadBytesOf(env.payload),
      refs: Array.isArray(env.refs) ? env.refs.length : 0,
    },
    fields,
  }
  if (context.taskClass !== undefined) input.taskClass = context.taskClass
  if (context.messages !== undefined) input.counters = { messages: context.messages }
  return input
}

/** What a verifier knows about a COMMIT after re-running its task. */
export interface CommitCheck {
  /** Whether the re-execution produced exactly the committed outputs. */
  outputsMatch: boolean
  /** Resources measured exactly (byte counts); time and memory only when measured deterministically. */
  measured: MeasuredResources
  /** Capability of the task. */
  taskClass: string
}

/** The input document of the commit gate. */
export function commitInput(env: Envelope<'COMMIT'>, check: CommitCheck): PolicyInput {
  const input = envelopeInput(env, 'commit', { taskClass: check.taskClass })
  const { cpuMs, wallMs, memoryBytes, inputBytes, outputBytes } = env.payload.telemetry
  input.telemetry = {
    claimed: { cpuMs, wallMs, memoryBytes, inputBytes, outputBytes },
    measured: Object.fromEntries(
      Object.entries(check.measured).filter(([, value]) => typeof value === 'number'),
    ) as MeasuredResources,
  }
  input.outputsMatch = check.outputsMatch
  return input
}
