/** Test helpers: deterministic identities and a terse way to sign envelopes. */
import { BUILTIN_POLICY_HASH } from '../src/core/digest.ts'
import {
  type AnyEnvelope,
  type Cid,
  type Kind,
  type PayloadByKind,
  PROTOCOL_VERSION,
} from '../src/core/types.ts'
import { createIdentity, type Identity } from '../src/crypto/ed25519.ts'
import { signEnvelope } from '../src/crypto/envelopes.ts'

/** `count` identities from fixed seeds (`tag` keeps sets apart). */
export async function makeIdentities(count: number, tag = 1): Promise<Identity[]> {
  const result: Identity[] = []
  for (let index = 0; index < count; index += 1) {
    const seed = new Uint8Array(32)
    seed[0] = tag
    seed[1] = index
    seed[31] = 0xcc
    result.push(await createIdentity({ seed }))
  }
  return result
}

let lamportCounter = 0

/** Signs an envelope; lamport defaults to a global increasing counter (so call order = total order). */
export async function sign<K extends Kind>(
  identity: Identity,
  kind: K,
  thread: string,
  payload: PayloadByKind[K],
  extra: { lamport?: number; epoch?: number; fence?: string; refs?: Cid[]; ts?: number } = {},
): Promise<AnyEnvelope> {
  lamportCounter += 1
  const env = await signEnvelope(
    {
      v: PROTOCOL_VERSION,
      kind,
      thread,
      sender: identity.did,
      lamport: extra.lamport ?? lamportCounter,
      ts: extra.ts ?? 0,
      payload,
      refs: extra.refs ?? [],
      policy: BUILTIN_POLICY_HASH,
      epoch: extra.epoch ?? 1,
      ...(extra.fence === undefined ? {} : { fence: extra.fence }),
    },
    identity,
  )
  return env as AnyEnvelope
}
