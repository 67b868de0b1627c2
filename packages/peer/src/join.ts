/**
 * Joining a network through one of its anchors' HTTP endpoint (what the web app and the CLIs do):
 * the signed genesis (`GET /api/genesis`, verified here: the network id is the hash of its body and
 * every anchor of the set signed it), the pool the anchor decides under now (`GET /api/status`),
 * and the faucet (`POST /api/faucet/<did>`), which grants a new account the credits the network's
 * genesis rule allows.
 *
 * @example
 * ```ts
 * const { params } = await fetchNetwork('http://127.0.0.1:7700')
 * const peer = await createPeer({ params, bootstrap: [anchorWs] })
 * await requestCredits('http://127.0.0.1:7700', peer.did)
 * ```
 */
import { InvalidArgumentError } from './core/errors.ts'
import { type Genesis, genesisFromJson, paramsFromGenesis } from './core/genesis.ts'
import { type NetworkParams, withPool } from './core/thread/params.ts'
import type { PoolSnapshot } from './core/types.ts'
import { verifyGenesis } from './crypto/genesis.ts'
import type { SignedGrant } from './crypto/grants.ts'

/** Options of {@link fetchNetwork} and {@link requestCredits}. */
export interface AnchorClientOptions {
  /** @default globalThis.fetch */
  fetch?: typeof fetch
  /** Cancels the request. @default none */
  signal?: AbortSignal
  /**
   * The network id the caller expects (from configuration): a genesis of another network is
   * refused. @default any network the anchor serves
   */
  network?: string
}

async function get(url: string, options: AnchorClientOptions, init: RequestInit = {}): Promise<Response> {
  const request = options.fetch ?? globalThis.fetch.bind(globalThis)
  let response: Response
  try {
    response = await request(url, { ...init, ...(options.signal ? { signal: options.signal } : {}) })
  } catch (error) {
    throw new InvalidArgumentError(
      `the anchor at ${url} is unreachable (${(error as Error).message})`,
      'anchorUrl',
    )
  }
  return response
}

/**
 * The network an anchor serves: its verified genesis, and parameters with the pool the anchor
 * decides under now (the genesis pool when the anchor does not say).
 * @throws {InvalidArgumentError} field `anchorUrl` when the anchor cannot be reached or serves no
 *   valid genesis, field `network` when it serves another network than `options.network`.
 */
export async function fetchNetwork(
  anchorUrl: string,
  options: AnchorClientOptions = {},
): Promise<{ genesis: Genesis; params: NetworkParams }> {
  const base = anchorUrl.replace(/\/+$/, '')
  const response = await get(`${base}/api/genesis`, options)
  if (!response.ok) {
    throw new InvalidArgumentError(
      `the anchor at ${base} serves no genesis (HTTP ${response.status})`,
      'anchorUrl',
    )
  }
  let genesis: Genesis
  try {
    genesis = await verifyGenesis(genesisFromJson(await response.text()))
  } catch (error) {
    throw new InvalidArgumentError(
      `the anchor at ${base} serves an invalid genesis: ${(error as Error).message}`,
      'anchorUrl',
    )
  }
  if (options.network !== undefined && genesis.id !== options.network) {
    throw new InvalidArgumentError(
      `the anchor at ${base} serves network ${genesis.id}, not ${options.network}`,
      'network',
    )
  }
  let params = paramsFromGenesis(genesis)
  const status = await get(`${base}/api/status`, options).catch(() => undefined)
  if (status?.ok) {
    const body = (await status.json().catch(() => undefined)) as
      | { network?: string; pool?: PoolSnapshot }
      | undefined
    if (body?.network === genesis.id && body.pool) params = withPool(params, body.pool)
  }
  return { genesis, params }
}

/** What the faucet answered: the grant, or why there is none (`status` as HTTP says it). */
export type CreditsAnswer =
  | { granted: true; grant: SignedGrant }
  | { granted: false; status: number; error: string }

/** Asks an anchor's faucet for the credits the network grants `did` (A7). */
export async function requestCredits(
  anchorUrl: string,
  did: string,
  options: AnchorClientOptions = {},
): Promise<CreditsAnswer> {
  const base = anchorUrl.replace(/\/+$/, '')
  const response = await get(`${base}/api/faucet/${encodeURIComponent(did)}`, options, { method: 'POST' })
  const body = (await response.json().catch(() => ({}))) as { error?: string }
  if (response.status === 201) return { granted: true, grant: body as SignedGrant }
  return { granted: false, status: response.status, error: body.error ?? `HTTP ${response.status}` }
}
