/** Test helpers: deterministic identities, a test network, and a terse way to sign envelopes. */
import {
  type AnyEnvelope,
  BUILTIN_POLICY_HASH,
  type Cid,
  createIdentity,
  type Envelope,
  type Identity,
  type Kind,
  type NeedPayload,
  type NetworkParams,
  networkParams,
  type PayloadByKind,
  PROTOCOL_VERSION,
  signEnvelope,
  threadIdOf,
} from '@can-swarm/peer'

/**
 * The network id hand-signed test envelopes carry (any CID will do where no genesis is needed; the
 * parameters from {@link testParams} name it).
 */
export const TEST_NET = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

/** Network parameters of the test network: `anchors` may decide, grant and finalize. */
export function testParams(overrides: Partial<NetworkParams> = {}): NetworkParams {
  return networkParams({ network: TEST_NET, ...overrides })
}

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

/** Extra header fields of {@link sign}. */
export interface SignExtra {
  lamport?: number
  epoch?: number
  fence?: string
  refs?: Cid[]
  ts?: number
  net?: string
}

/** Signs an envelope; lamport defaults to a global increasing counter (so call order = total order). */
export async function sign<K extends Kind>(
  identity: Identity,
  kind: K,
  thread: string,
  payload: PayloadByKind[K],
  extra: SignExtra = {},
): Promise<AnyEnvelope> {
  lamportCounter += 1
  const env = await signEnvelope(
    {
      v: PROTOCOL_VERSION,
      net: extra.net ?? TEST_NET,
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

/**
 * Signs a NEED under its own thread id (A1): the id is computed from the NEED's fields, then filled
 * in. `lamport` defaults to 1 (a thread starts its own Lamport time).
 */
export async function signNeed(
  identity: Identity,
  payload: Omit<NeedPayload, 'need'>,
  extra: SignExtra = {},
): Promise<Envelope<'NEED'>> {
  const unsigned = {
    v: PROTOCOL_VERSION,
    net: extra.net ?? TEST_NET,
    kind: 'NEED' as const,
    thread: '',
    sender: identity.did,
    lamport: extra.lamport ?? 1,
    ts: extra.ts ?? 0,
    payload: { ...payload, need: '' },
    refs: extra.refs ?? [],
    policy: BUILTIN_POLICY_HASH,
    epoch: extra.epoch ?? 1,
  }
  const thread = threadIdOf(unsigned)
  return signEnvelope({ ...unsigned, thread, payload: { ...payload, need: thread } }, identity)
}
