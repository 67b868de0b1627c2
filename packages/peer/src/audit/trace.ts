/**
 * Signed per-thread JSONL traces: the audit source of a thread as one peer saw it.
 *
 * ```
 * {"t":"header","v":1,"thread":…,"recorder":"did:key:…","params":{…}}
 * {"t":"env","seq":1,"at":1234,"prev":"<sha256 of the previous line>","env":<DAG-JSON envelope>}
 * …
 * {"t":"end","count":N,"head":"<sha256 of the previous line>","stateHash":"…","sig":"<base64>"}
 * ```
 * Lines are hash-chained; the recorder signs the chain head, the count and the final state hash.
 * Verification re-checks every envelope (id and signature), the chain and the signature, then
 * re-runs the core and compares the state hash: a tampered, reordered or truncated trace fails
 * with a {@link TraceInvalidError} that names the line.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { base64 } from 'multiformats/bases/base64'
import { envelopeFromJson, envelopeToJson } from '../core/codec.ts'
import { CanSwarmError, TraceInvalidError } from '../core/errors.ts'
import { type NetworkParams, networkParams } from '../core/thread/params.ts'
import { ThreadReplica } from '../core/thread/replica.ts'
import type { AnyEnvelope } from '../core/types.ts'
import { type Identity, publicKeyFromDid, verifySignature } from '../crypto/ed25519.ts'
import { verifyEnvelopes } from '../crypto/envelopes.ts'

export const TRACE_VERSION = 1

function lineHash(line: string): string {
  return bytesToHex(sha256(utf8ToBytes(line)))
}

function endMessage(head: string, count: number, stateHash: string): Uint8Array {
  return utf8ToBytes(`can-swarm-trace|${TRACE_VERSION}|${head}|${count}|${stateHash}`)
}

/** Writes a thread's trace as JSONL text (each line ends with a newline). */
export async function writeTrace(options: {
  recorder: Identity
  params: NetworkParams
  thread: string
  entries: readonly { atMs: number; env: AnyEnvelope }[]
}): Promise<string> {
  const lines: string[] = [
    JSON.stringify({
      t: 'header',
      v: TRACE_VERSION,
      thread: options.thread,
      recorder: options.recorder.did,
      params: options.params,
    }),
  ]
  const replica = new ThreadReplica(options.thread, options.params)
  let seq = 0
  for (const { atMs, env } of options.entries) {
    seq += 1
    replica.receive(env, atMs)
    const prev = lineHash(lines[lines.length - 1]!)
    lines.push(
      `{"t":"env","seq":${seq},"at":${Math.floor(atMs)},"prev":"${prev}","env":${envelopeToJson(env)}}`,
    )
  }
  const head = lineHash(lines[lines.length - 1]!)
  const stateHash = replica.stateHash()
  const sig = await options.recorder.sign(endMessage(head, seq, stateHash))
  lines.push(JSON.stringify({ t: 'end', count: seq, head, stateHash, sig: base64.baseEncode(sig) }))
  return `${lines.join('\n')}\n`
}

export interface ReplayResult {
  thread: string
  recorder: string
  envelopes: number
  stateHash: string
  /** The replica rebuilt from the trace. */
  replica: ThreadReplica
}

function describe(error: unknown): string {
  return error instanceof CanSwarmError ? `${error.code}: ${error.message}` : String(error)
}

function parseLine(text: string, line: number): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object')
    return value as Record<string, unknown>
  } catch (error) {
    throw new TraceInvalidError(`not a JSON object: ${(error as Error).message}`, line)
  }
}

/**
 * Verifies and replays a trace. Throws {@link TraceInvalidError} (line-numbered) when anything
 * does not hold; returns the re-computed state hash otherwise.
 */
export async function replayTrace(text: string): Promise<ReplayResult> {
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  if (lines.length === 0) throw new TraceInvalidError('empty trace', 1)
  const header = parseLine(lines[0]!, 1)
  if (header.t !== 'header') throw new TraceInvalidError('the first line is not a header', 1, 't')
  if (header.v !== TRACE_VERSION)
    throw new TraceInvalidError(`unsupported trace version ${String(header.v)}`, 1, 'v')
  if (typeof header.thread !== 'string' || typeof header.recorder !== 'string') {
    throw new TraceInvalidError('header lacks thread or recorder', 1)
  }
  let params: NetworkParams
  try {
    params = networkParams(header.params as Partial<NetworkParams>)
  } catch (error) {
    throw new TraceInvalidError(`bad params: ${(error as Error).message}`, 1, 'params')
  }
  const thread = header.thread
  const entries: { env: AnyEnvelope; atMs: number; line: number }[] = []
  let end: Record<string, unknown> | undefined
  for (let index = 1; index < lines.length; index += 1) {
    const lineNo = index + 1
    if (end !== undefined) throw new TraceInvalidError('lines after the end record', lineNo)
    const record = parseLine(lines[index]!, lineNo)
    const expectedPrev = lineHash(lines[index - 1]!)
    if (record.t === 'end') {
      if (record.head !== expectedPrev) {
        throw new TraceInvalidError(
          'end record does not match the chain (lines changed or reordered)',
          lineNo,
          'head',
        )
      }
      end = record
      continue
    }
    if (record.t !== 'env')
      throw new TraceInvalidError(`unknown record type ${String(record.t)}`, lineNo, 't')
    if (record.seq !== index) {
      throw new TraceInvalidError(
        `sequence ${String(record.seq)} where ${index} was expected (reordered or missing lines)`,
        lineNo,
        'seq',
      )
    }
    if (record.prev !== expectedPrev) {
      throw new TraceInvalidError(
        'hash chain broken: the previous line was changed, removed or moved',
        lineNo,
        'prev',
      )
    }
    if (typeof record.at !== 'number' || !Number.isSafeInteger(record.at)) {
      throw new TraceInvalidError('at must be an integer', lineNo, 'at')
    }
    let env: AnyEnvelope
    try {
      env = envelopeFromJson(JSON.stringify(record.env))
    } catch (error) {
      throw new TraceInvalidError(`envelope rejected — ${describe(error)}`, lineNo, 'env')
    }
    if (env.thread !== thread)
      throw new TraceInvalidError(`envelope of thread ${env.thread}`, lineNo, 'env.thread')
    entries.push({ env, atMs: record.at, line: lineNo })
  }
  if (end === undefined) throw new TraceInvalidError('truncated: no end record', lines.length + 1)
  if (end.count !== entries.length) {
    throw new TraceInvalidError(
      `end record counts ${String(end.count)} envelopes, found ${entries.length}`,
      lines.length,
      'count',
    )
  }
  // Signatures: verified together (many in flight), the first failure reported by its line.
  const errors = await verifyEnvelopes(entries.map((entry) => entry.env))
  const failed = errors.findIndex((error) => error !== undefined)
  if (failed >= 0) {
    throw new TraceInvalidError(
      `envelope rejected — ${describe(errors[failed])}`,
      entries[failed]!.line,
      'env',
    )
  }
  const replica = new ThreadReplica(thread, params)
  const receivedAt = new Map(entries.map((entry) => [entry.env.id, entry.atMs]))
  replica.receiveAll(
    entries.map((entry) => entry.env),
    (env) => receivedAt.get(env.id)!,
  )
  const envelopes = entries
  const stateHash = replica.stateHash()
  if (end.stateHash !== stateHash) {
    throw new TraceInvalidError(
      `replayed state hash ${stateHash} differs from the recorded ${String(end.stateHash)}`,
      lines.length,
      'stateHash',
    )
  }
  let sigOk = false
  try {
    sigOk = await verifySignature(
      publicKeyFromDid(header.recorder),
      endMessage(String(end.head), envelopes.length, stateHash),
      base64.baseDecode(String(end.sig)),
    )
  } catch {
    sigOk = false
  }
  if (!sigOk)
    throw new TraceInvalidError(
      "the recorder's signature over the trace does not verify",
      lines.length,
      'sig',
    )
  return { thread, recorder: header.recorder, envelopes: envelopes.length, stateHash, replica }
}
