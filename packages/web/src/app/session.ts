/**
 * The tab's peer: identity from IndexedDB; the network from the anchor that served the page (its
 * signed genesis, verified in the tab with `fetchNetwork`: network id, anchors, parameters) and
 * the pool the anchor decides under (`/api/status`, polled: a newer pool epoch becomes the agent's
 * view); a browser libp2p node (WebSockets to the anchor, circuit relay reservation on it, direct
 * WebRTC to other tabs), the gossip bus (envelopes of another network refused) and an agent with
 * the roles the person chose. Credits come from the network's faucet (a signed grant, asked once
 * when the person first needs more than they hold) and are read from the anchor's ledger.
 * Everything it sees is kept in IndexedDB, scoped by network, and folded again on reload; after a
 * reload or an outage it catches up through plan sync (each thread's Automerge document, kept in
 * IndexedDB too, synced with the anchor and other tabs) and from the anchor's log, verifying every
 * signature in the tab. Uses only the public API of `@can-swarm/peer`.
 */

import {
  type AccountView,
  type Agent,
  type AgentRoles,
  type AnyEnvelope,
  CanSwarmError,
  chainPrice,
  checkNeedRequest,
  createIdentity,
  createPeer,
  encodeEnvelope,
  envelopeFromJson,
  fetchNetwork,
  GENESIS_EPOCH,
  type Genesis,
  genesisFromJson,
  genesisToJson,
  type LocalIdentity,
  type NetworkParams,
  type Peer,
  PolicyDeniedError,
  type PoolEntry,
  type PoolSnapshot,
  paramsFromGenesis,
  poolSnapshotOf,
  requestCredits,
  signManifest,
  verifyEnvelopes,
  verifyGenesis,
  verifyGrant,
  withPool,
} from '@can-swarm/peer'
import { isEligibleVerifier } from '@can-swarm/peer/core'
import { createBus, createNetwork, didFromPeerId, type GossipBus, type Network } from '@can-swarm/peer/net'
import type { PlanSyncWasmSource } from '@can-swarm/peer/plan-sync'
import { multiaddr } from '@multiformats/multiaddr'
import { IDBDatastore } from 'datastore-idb'
import { AnchorArtifactStore } from './artifacts.ts'
import { TrafficSeries } from './metrics.ts'
import {
  explainPolicyDenial,
  loadTabPolicy,
  type PolicyBundleSource,
  preflightDenial,
  type TabPolicy,
} from './policy.ts'
import { readStoredEnvelopes, type StoredEnvelope, type TabStorage } from './storage.ts'
import { TabArtifacts } from './tab-artifacts.ts'

/** The IndexedDB database of the tab's plan documents. */
const PLAN_DATABASE = 'can-swarm-plans'
/** IndexedDB database of the tab's libp2p datastore (its peer store). */
const LIBP2P_DATABASE = 'can-swarm-libp2p'
/** The IndexedDB database of the tab's artifact blocks (`<name>/blocks`). */
const ARTIFACT_DATABASE = 'can-swarm-artifacts'

/** What `/api/status` of an anchor says (the parts the tab uses). */
export interface AnchorStatus {
  did: string
  peerId: string
  multiaddrs: string[]
  /** The network id (its genesis id). */
  network: string
  /** The pool the anchor decides under now. */
  pool: PoolSnapshot
}

/** The network this tab follows, as kept in its settings (`network`): the signed genesis and the latest pool. */
interface SavedNetwork {
  genesis: string
  pool: PoolSnapshot
}

/**
 * What the network's faucet said to this identity (A7: credits are minted only by the genesis
 * and the faucet). `none`: not asked yet; `granted`: a grant signed by an anchor and checked in
 * the tab; `had`: the faucet says this account had its grant already; `refused`: another answer
 * (the network's faucet exhausted for now, the anchor unreachable, a grant that does not verify),
 * so the tab may ask again later.
 */
export type FaucetState =
  | { state: 'none' }
  | { state: 'asking' }
  | { state: 'granted'; amount: number; atMs: number }
  | { state: 'had'; error: string }
  | { state: 'refused'; status: number; error: string }

/** The faucet's answer in words, for the person. */
export function faucetWords(faucet: FaucetState): string {
  switch (faucet.state) {
    case 'none':
      return 'Not asked the faucet yet.'
    case 'asking':
      return "Asking the network's faucet for credits…"
    case 'granted':
      return `Granted ${faucet.amount} credits by the network's faucet.`
    case 'had':
      return `The network's faucet gives one identity its credits once, and this one has had them (${faucet.error}).`
    case 'refused':
      return `The network's faucet refused: ${faucet.error.replace(/^the faucet refuses: /, '').replace(/\.$/, '')}.`
  }
}

/** Whether the tab reaches the swarm through its anchor. */
export type Connectivity = 'starting' | 'online' | 'offline'

/** An error shown to the person, in words. */
export interface ShownError {
  atMs: number
  message: string
}

/** Options of {@link SwarmSession.start}. */
export interface SessionOptions {
  storage: TabStorage
  /** Base URL of the anchor's HTTP endpoint. @default '' (the origin that served the page) */
  anchorUrl?: string
  /** How often the anchor is checked (and redialled when lost), in ms. @default 2000 */
  checkEveryMs?: number
  /** Roles of a tab that has never chosen any. @default { verifier: true } */
  defaultRoles?: AgentRoles
  /**
   * Automerge's binary WASM (the app serves it as an asset): compiled while it streams in.
   * @default the peer package's base64 copy, loaded as a chunk of its own
   */
  automergeWasm?: PlanSyncWasmSource
  /**
   * How long reading an artifact asks connected peers by bitswap before the anchor's HTTP gateway
   * is tried, in ms. @default 5 000
   */
  bitswapWaitMs?: number
  /**
   * The network's policy bundle (the app serves `packages/peer/policy-bundle/base.wasm` and `base.json` as
   * assets): checked, then run at the agent's preflight, ingress and commit gates. While it is
   * configured but not loaded, posting is refused. @default none: no policy gates
   */
  policy?: PolicyBundleSource
}

/** Connection details of one connected peer, for the swarm view. */
export interface PeerView {
  peerId: string
  did: string | undefined
  isAnchor: boolean
  connections: Array<{ transport: string; direct: boolean; remoteAddr: string; direction: string }>
  rttMs: number | undefined
}

const MAX_SHOWN_ERRORS = 20
const PERSIST_EVERY_MS = 250

function describe(error: unknown): string {
  if (error instanceof PolicyDeniedError) return explainPolicyDenial(error.gate, error.reasons)
  if (error instanceof CanSwarmError) return `${error.code}: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}

/** Classifies a libp2p remote address for people: websocket, relayed, webrtc (direct), tcp. */
export function transportOf(remoteAddr: string, limited: boolean): { transport: string; direct: boolean } {
  if (remoteAddr.includes('/webrtc') && !limited) return { transport: 'webrtc', direct: true }
  if (remoteAddr.includes('/p2p-circuit')) return { transport: 'relayed', direct: false }
  if (remoteAddr.includes('/ws')) return { transport: 'websocket', direct: true }
  if (remoteAddr.includes('/tcp')) return { transport: 'tcp', direct: true }
  return { transport: 'other', direct: !limited }
}

/** One account as the anchor's ledger derives it (`GET /api/ledger/<did>`), with the time it describes. */
export type Credits = AccountView & { atMs: number }

/** How many credit samples the tab keeps for its chart. */
export const CREDIT_SAMPLES = 120

/** A draft-sized CID (for the policy preview of a NEED before its inputs are stored). */
const PLACEHOLDER_CID = `bafkrei${'a'.repeat(52)}`

/** The tab's peer session. Emits `change` whenever something shown may have changed. */
export class SwarmSession extends EventTarget {
  readonly identity: LocalIdentity
  readonly storage: TabStorage
  readonly anchorUrl: string
  /** Helia over this tab's libp2p node, blocks in IndexedDB; the anchor's gateway as a fallback read path. */
  readonly artifacts: TabArtifacts
  readonly traffic = new TrafficSeries(60)
  readonly network: Network
  readonly bus: GossipBus
  /** Every envelope this tab holds, by id. */
  readonly envelopes = new Map<string, AnyEnvelope>()
  /** When this tab first saw each envelope (ms since epoch). */
  readonly seenAt = new Map<string, number>()
  connectivity: Connectivity = 'starting'
  anchor: AnchorStatus | undefined
  /** The network this tab follows: its signed genesis, verified in the tab. */
  genesis: Genesis | undefined
  /** What the network's faucet said to this identity. */
  faucet: FaucetState = { state: 'none' }
  roles: AgentRoles
  agent: Agent | undefined
  errors: ShownError[] = []
  /** Why the anchor is unreachable, while it is. */
  offlineReason: string | undefined
  /** This tab's account in the anchor's live ledger, once the anchor has answered. */
  credits: Credits | undefined
  /** This tab's entry in the anchor's staked verifier pool (`GET /api/pool`), when it has one. */
  poolEntry: PoolEntry | undefined
  /** Balance and pending payouts over time (one sample per anchor check, last {@link CREDIT_SAMPLES}). */
  readonly creditHistory: Credits[] = []
  /** The network's policy and its gates, once loaded and checked. */
  policy: TabPolicy | undefined
  /** Why the policy is not loaded, while it is not. */
  policyProblem: string | undefined
  /** ms from navigation start to the first valid envelope received over gossip. */
  joinMs: number | undefined
  readonly rtts = new Map<string, number>()
  readonly #options: SessionOptions
  /** The tab's peer on the network it follows (rebuilt when the network's parameters change). */
  #peer: Peer | undefined
  #unsaved: StoredEnvelope[] = []
  /** The network's parameters from its genesis, and the pool view to start an agent with. */
  #genesisParams: NetworkParams | undefined
  #view: NetworkParams | undefined
  #asking: Promise<FaucetState> | undefined
  #manifestSeq = 0
  #timers: Array<ReturnType<typeof setInterval>> = []
  #checking = false
  #rebuilding: Promise<void> = Promise.resolve()
  #policyLoading: Promise<TabPolicy | undefined> | undefined

  private constructor(
    options: SessionOptions,
    identity: LocalIdentity,
    network: Network,
    roles: AgentRoles,
    anchorUrl: string,
  ) {
    super()
    this.#options = options
    this.storage = options.storage
    this.identity = identity
    this.network = network
    this.roles = roles
    this.anchorUrl = anchorUrl
    this.artifacts = new TabArtifacts({
      // Loaded on demand: Helia and bitswap are a chunk of their own, off the page's first load.
      open: async () => {
        const { createHeliaArtifacts, openArtifactStorage } = await import('@can-swarm/peer/artifacts')
        return createHeliaArtifacts({
          libp2p: network.libp2p,
          storage: await openArtifactStorage(ARTIFACT_DATABASE),
          fetchTimeoutMs: options.bitswapWaitMs ?? 5_000,
        })
      },
      gateway: new AnchorArtifactStore({
        anchorUrl,
        cache: { get: async () => undefined, set: async () => {} },
      }),
    })
    // Gossip of another network is neither taken in nor forwarded: its signatures mean nothing here.
    this.bus = createBus(network, {
      // The network's anchors speak for everyone (DECIDEs, grants, finalizations): never throttled.
      quotas: { exempt: (did) => this.genesis?.body.anchors.includes(did) ?? false },
      ingress: (env) =>
        env.net === this.genesis?.id
          ? { allowed: true }
          : {
              allowed: false,
              reason: this.genesis
                ? `envelope of network ${env.net}, not ${this.genesis.id}`
                : 'this tab has not learned its network yet',
            },
    })
    this.bus.onEnvelope((env) => {
      if (this.joinMs === undefined) this.joinMs = Math.round(performance.now())
      this.#record(env, 'received')
    })
  }

  /** Opens the tab's peer: identity, history, network; then joins through the anchor. */
  static async start(options: SessionOptions): Promise<SwarmSession> {
    const storage = options.storage
    let seed = await storage.seed()
    const identity = await createIdentity(seed ? { seed } : {})
    if (!seed) {
      seed = identity.seed
      await storage.saveSeed(seed)
    }
    const roles = (await storage.setting<AgentRoles>('roles')) ?? options.defaultRoles ?? { verifier: true }
    // The peers this tab met outlive a reload (libp2p's peer store, in IndexedDB).
    const datastore = new IDBDatastore(LIBP2P_DATABASE)
    await datastore.open()
    const network = await createNetwork({
      identity,
      datastore,
      // A relay reservation on the anchor makes this tab reachable; WebRTC then goes direct.
      listen: ['/p2p-circuit', '/webrtc'],
      // The anchor and other tabs are on loopback or a LAN: an explicit choice of this app.
      allowPrivateDial: true,
    })
    const session = new SwarmSession(options, identity, network, roles, options.anchorUrl ?? '')
    // Helia starts at once: it serves the blocks this tab kept (e.g. a NEED's input) to peers asking.
    session.artifacts
      .start()
      .catch((error: unknown) =>
        session.error(new Error(`the artifact store (IndexedDB) could not be opened: ${describe(error)}`)),
      )
    void session.#loadPolicy()
    // The network it followed last: history and agent at once, even while the anchor is away.
    const saved = await storage.setting<SavedNetwork>('network')
    if (saved) {
      try {
        const genesis = await verifyGenesis(genesisFromJson(saved.genesis))
        await session.#join(genesis, withPool(paramsFromGenesis(genesis), saved.pool))
      } catch (error) {
        session.error(
          new Error(
            `the network kept in this browser could not be read (${describe(error)}); the anchor's is used`,
          ),
        )
      }
    }
    session.#watch()
    await session.check()
    return session
  }

  get did(): string {
    return this.identity.did
  }

  /** The network's parameters with the newest pool this tab knows (the agent's view once it runs). */
  get params(): NetworkParams | undefined {
    const running = this.agent?.params
    return running && running.network === this.#view?.network ? running : this.#view
  }

  /** True when this tab may verify: its did is in the pool, or the pool is open (bootstrap, nobody listed). */
  get inVerifierPool(): boolean {
    return this.params ? isEligibleVerifier(this.params, this.did) : false
  }

  #changed(): void {
    this.dispatchEvent(new Event('change'))
  }

  /** Records an error to show. */
  error(error: unknown): void {
    this.errors.unshift({ atMs: Date.now(), message: describe(error) })
    if (this.errors.length > MAX_SHOWN_ERRORS) this.errors.length = MAX_SHOWN_ERRORS
    this.#changed()
  }

  // ------------------------------------------------------------------ history

  /** Reads back the stored envelopes of `network` (only), verifying each. */
  async #loadHistory(network: string): Promise<void> {
    const history = readStoredEnvelopes(await this.storage.envelopes(), network)
    if (history.unreadable.length > 0) {
      // Records of an earlier envelope format (before `net`) can never be read again.
      await this.storage
        .deleteEnvelopes(history.unreadable.map((item) => item.id))
        .catch((error: unknown) => this.error(error))
      this.error(
        new Error(
          `${history.unreadable.length} stored envelope(s) could not be read (an earlier envelope format, e.g. ${describe(history.unreadable[0]!.error)}) and were removed from this browser`,
        ),
      )
    }
    const decoded = history.envelopes.map((item) => item.env)
    const results = await verifyEnvelopes(decoded)
    for (const [index, { env, atMs }] of history.envelopes.entries()) {
      if (results[index] !== undefined) continue
      this.envelopes.set(env.id, env)
      this.seenAt.set(env.id, atMs)
    }
  }

  #record(env: AnyEnvelope, how: 'received' | 'published' | 'caught-up'): boolean {
    // Only envelopes of the network this tab follows are kept (plan documents and the anchor's
    // log are read through here too).
    if (this.envelopes.has(env.id) || env.net !== this.genesis?.id) return false
    const now = Date.now()
    this.envelopes.set(env.id, env)
    this.seenAt.set(env.id, now)
    if (how === 'published') this.traffic.published(now)
    else if (how === 'received') this.traffic.received(now, now - env.ts)
    this.#unsaved.push({
      id: env.id,
      net: env.net,
      thread: env.thread,
      bytes: encodeEnvelope(env),
      atMs: now,
    })
    this.#changed()
    return true
  }

  async #persist(): Promise<void> {
    if (this.#unsaved.length === 0) return
    const batch = this.#unsaved
    this.#unsaved = []
    await this.storage.saveEnvelopes(batch).catch((error: unknown) => this.error(error))
  }

  /** The envelopes of one thread, in arrival order. */
  threadEnvelopes(thread: string): AnyEnvelope[] {
    return [...this.envelopes.values()].filter((env) => env.thread === thread)
  }

  /** Every thread this tab holds, newest activity first. */
  threads(): string[] {
    const last = new Map<string, number>()
    for (const env of this.envelopes.values()) {
      last.set(env.thread, Math.max(last.get(env.thread) ?? 0, this.seenAt.get(env.id) ?? 0))
    }
    return [...last.entries()].sort((a, b) => b[1] - a[1]).map(([thread]) => thread)
  }

  // ------------------------------------------------------------------ agent

  /** Loads and checks the policy bundle once (again after a failure); undefined when it fails or none is configured. */
  #loadPolicy(): Promise<TabPolicy | undefined> {
    const source = this.#options.policy
    if (!source || this.policy) return Promise.resolve(this.policy)
    this.#policyLoading ??= loadTabPolicy(source).then(
      (policy) => {
        this.policy = policy
        this.policyProblem = undefined
        this.#changed()
        return policy
      },
      (error: unknown) => {
        this.#policyLoading = undefined
        this.policyProblem = describe(error)
        this.error(new Error(`The network's policy could not be loaded: ${this.policyProblem}`))
        return undefined
      },
    )
    return this.#policyLoading
  }

  /**
   * Follows the network of `genesis` (verified) with the pool view `params`: the first time, or
   * when the anchor serves another network than the one this tab followed (its data directory was
   * reset). The old network's agent stops and its envelopes are no longer read; the new network's
   * history (if any) is folded into a new agent.
   */
  async #join(genesis: Genesis, params: NetworkParams): Promise<void> {
    const previous = this.genesis
    if (previous?.id === genesis.id) return
    this.genesis = genesis
    this.#genesisParams = paramsFromGenesis(genesis)
    this.#view = params
    if (previous) {
      await this.#peer?.stop().catch((error: unknown) => this.error(error))
      this.#peer = undefined
      this.agent = undefined
      await this.#persist()
      this.envelopes.clear()
      this.seenAt.clear()
      this.credits = undefined
      this.creditHistory.length = 0
      this.poolEntry = undefined
      this.#manifestSeq = 0
      this.error(
        new Error(
          `The anchor now serves network ${genesis.id}, not ${previous.id} (its data was reset, or it is another network): this tab follows the new network; what it kept of the old one stays in this browser, unused.`,
        ),
      )
    }
    this.faucet = (await this.storage.setting<FaucetState>(`faucet:${genesis.id}`)) ?? { state: 'none' }
    await this.#saveNetwork()
    await this.#loadHistory(genesis.id)
    await this.#rebuild()
  }

  async #saveNetwork(): Promise<void> {
    const genesis = this.genesis
    const params = this.params
    if (!genesis || !params) return
    const saved: SavedNetwork = { genesis: genesisToJson(genesis), pool: poolSnapshotOf(params) }
    await this.storage.saveSetting('network', saved).catch((error: unknown) => this.error(error))
  }

  /** Adopts a newer pool the anchor decides under (a verifier staked or left). */
  async #adoptPool(pool: PoolSnapshot): Promise<void> {
    const base = this.#genesisParams
    if (!base || pool.epoch <= (this.params?.poolEpoch ?? 0)) return
    this.#view = withPool(base, pool)
    this.agent?.setParams(this.#view)
    await this.#saveNetwork()
    this.#changed()
  }

  /** Rebuilds the agent (roles or parameters changed) and folds the history into it again. */
  #rebuild(): Promise<void> {
    this.#rebuilding = this.#rebuilding.then(async () => {
      // The newest pool view: the running agent may have learned one from a DECIDE.
      const params = this.params
      if (!params) return
      this.#view = params
      await this.#peer?.stop().catch((error: unknown) => this.error(error))
      this.#peer = undefined
      this.agent = undefined
      const policy = await this.#loadPolicy()
      // Loaded on demand: Automerge and its WASM are a separate chunk, fetched once the agent runs.
      await (await import('@can-swarm/peer/plan-sync')).initPlanSyncWasm(this.#options.automergeWasm)
      const history = [...this.envelopes.values()]
      // The tab's peer is a createPeer call on the node and bus the tab keeps across networks:
      // its history is restored before the agent hears the network, and what it says is recorded.
      const peer = await createPeer({
        identity: this.identity,
        params,
        network: this.network,
        bus: this.bus,
        artifacts: this.artifacts,
        roles: this.roles,
        tuning: { leaseTtlMs: 5000 },
        ...(policy ? { policy: policy.gates } : {}),
        hooks: { onPublish: (env) => this.#record(env, 'published') },
        services: {
          history: ({ agent }) => ({
            start: async () => {
              this.agent = agent
              await agent.restore(history)
              this.#changed()
            },
          }),
        },
        envelopeSync: false,
        planSync: {
          storage: PLAN_DATABASE,
          onEnvelope: (env) => this.#record(env, 'caught-up'),
        },
        onError: (error) => this.error(error),
      })
      this.#peer = peer
      this.agent = peer.agent
    })
    return this.#rebuilding
  }

  /**
   * Switches roles on or off (kept across reloads). The running agent changes roles in place: what
   * it holds stays, nothing is folded again (only a change of network parameters rebuilds it).
   */
  async setRoles(roles: AgentRoles): Promise<void> {
    this.roles = { ...roles }
    await this.storage.saveSetting('roles', this.roles)
    await this.#rebuilding
    if (this.agent) {
      await this.agent.setRoles(this.roles)
      this.#changed()
    } else await this.#rebuild()
  }

  /**
   * Posts a NEED. Resolves to its thread id, with the faucet's answer in words when the tab asked
   * it for credits to fund the budget; errors are thrown in words.
   */
  async post(request: {
    requires: string[]
    input: Uint8Array
    budget: number
    bidWindowMs?: number
  }): Promise<{ thread: string; faucet?: string }> {
    await this.#rebuilding
    const agent = this.agent
    if (!agent) {
      throw new Error(
        'not joined yet: the anchor has not told this tab its network (its signed genesis); is it reachable?',
      )
    }
    if (this.#options.policy && !this.policy) {
      throw new Error(
        `the network's policy is not loaded (${this.policyProblem ?? 'still loading'}): posting is refused until it is; reload the page to try again`,
      )
    }
    // The SDK's own check (unknown capabilities, a budget below the chain's listed price).
    checkNeedRequest(request, agent.capabilities)
    const need = {
      requires: request.requires,
      inputs: [request.input],
      budget: request.budget,
      bidWindowMs: request.bidWindowMs ?? 500,
      produces: 'text/plain',
    }
    // A NEED the network's policy forbids is refused for that (by the agent's preflight below,
    // before anything is published); only a NEED it allows is checked against the person's credits.
    const forbidden =
      this.policy &&
      preflightDenial(this.policy, {
        kind: 'NEED',
        refs: [],
        payload: {
          ...need,
          need: '',
          epoch: GENESIS_EPOCH,
          inputs: [PLACEHOLDER_CID],
          deadlineMs: Date.now() + 60_000,
        },
      })
    // A7: an anchor decides a NEED only if its requester can fund the budget.
    const faucet = forbidden ? undefined : await this.#fund(request.budget, 'the budget')
    try {
      const thread = await agent.post(need)
      return faucet ? { thread, faucet } : { thread }
    } catch (error) {
      if (!(error instanceof PolicyDeniedError)) throw error
      // The NEED was never published: say which rule denied which field, with the value asked for.
      throw new Error(explainPolicyDenial(error.gate, error.reasons, { payload: need }), { cause: error })
    }
  }

  /** Price of a capability chain at the built-in prices (unknown capabilities count 0). */
  priceOf(requires: readonly string[]): number {
    const registry = this.agent?.capabilities
    return registry ? (chainPrice(registry, requires) ?? 0) : 0
  }

  // ------------------------------------------------------------------ credits

  /**
   * Asks the network's faucet for this identity's credits (`POST /api/faucet/<did>`), once: a
   * grant is checked in the tab (signed by an anchor of the network, for this did) and kept; an
   * answer that the account had its grant is kept too; any other refusal may be asked again.
   * Resolves to the faucet's answer (see {@link faucetWords}).
   */
  askFaucet(): Promise<FaucetState> {
    const genesis = this.genesis
    if (!genesis) {
      return Promise.reject(new Error('not joined yet: the anchor has not told this tab its network'))
    }
    if (this.faucet.state === 'granted' || this.faucet.state === 'had') return Promise.resolve(this.faucet)
    this.#asking ??= (async () => {
      this.faucet = { state: 'asking' }
      this.#changed()
      let answer: FaucetState
      try {
        const reply = await requestCredits(this.anchorUrl, this.did, { signal: AbortSignal.timeout(10_000) })
        if (reply.granted) {
          const grant = await verifyGrant(reply.grant, { network: genesis.id, anchors: genesis.body.anchors })
          if (grant.to !== this.did) throw new Error(`the grant is for ${grant.to}, not for this tab`)
          answer = { state: 'granted', amount: grant.amount, atMs: grant.atMs }
        } else if (reply.status === 409) {
          answer = { state: 'had', error: reply.error }
        } else {
          answer = { state: 'refused', status: reply.status, error: reply.error }
        }
      } catch (error) {
        answer = { state: 'refused', status: 0, error: describe(error) }
      }
      if (this.genesis?.id !== genesis.id) return answer // the network changed meanwhile
      this.faucet = answer
      if (answer.state !== 'refused') {
        await this.storage
          .saveSetting(`faucet:${genesis.id}`, answer)
          .catch((error: unknown) => this.error(error))
      }
      await this.#refreshCredits()
      this.#changed()
      return answer
    })().finally(() => {
      this.#asking = undefined
    })
    return this.#asking
  }

  /**
   * Makes sure this identity can spend `amount` now: when its balance falls short and the faucet
   * has not granted it its credits yet (and they would cover it), asks the faucet first. Resolves
   * to the faucet's answer in words when it was asked; throws, in words, when the credits are not
   * there.
   */
  async #fund(amount: number, what: string): Promise<string | undefined> {
    await this.#refreshCredits()
    let balance = this.credits?.balance ?? 0
    if (amount <= balance) return undefined
    const rule = this.genesis?.body.economy.faucet
    const open = this.faucet.state === 'none' || this.faucet.state === 'refused'
    let asked: string | undefined
    if (open && rule && balance + rule.grantCredits >= amount) {
      asked = faucetWords(await this.askFaucet())
      balance = this.credits?.balance ?? 0
      if (amount <= balance) return asked
    }
    const pending = this.credits?.pending ?? 0
    const why =
      asked ??
      (this.faucet.state === 'granted'
        ? `the network's faucet granted this identity its ${this.faucet.amount} credits already`
        : this.faucet.state === 'had'
          ? faucetWords(this.faucet)
          : rule
            ? `the network's faucet grants one identity at most ${rule.grantCredits} credits`
            : undefined)
    throw new Error(
      `insufficient credits: you hold ${balance} spendable credits, ${what} is ${amount}` +
        (pending > 0 ? `; ${pending} more are owed to you once challenge windows close` : '') +
        (why ? `. ${why.replace(/\.$/, '')}.` : ''),
    )
  }

  // ------------------------------------------------------------------ anchor

  #watch(): void {
    const every = this.#options.checkEveryMs ?? 2000
    this.#timers.push(setInterval(() => void this.check(), every))
    this.#timers.push(setInterval(() => void this.#persist(), PERSIST_EVERY_MS))
    this.#timers.push(setInterval(() => this.#pingPeers(), 5000))
    this.#timers.push(setInterval(() => this.#changed(), 1000))
    const onConnection = () => {
      void this.check()
      this.#changed()
    }
    this.network.libp2p.addEventListener('peer:disconnect', onConnection)
    this.network.libp2p.addEventListener('peer:connect', () => this.#changed())
  }

  #goOffline(reason: string): void {
    const was = this.connectivity
    this.connectivity = 'offline'
    this.offlineReason = reason
    if (was !== 'offline') this.#changed()
  }

  /** Checks the anchor, redials it when lost, and catches up after an outage. */
  async check(): Promise<void> {
    if (this.#checking) return
    this.#checking = true
    try {
      let status: AnchorStatus
      try {
        const response = await fetch(`${this.anchorUrl}/api/status`, { signal: AbortSignal.timeout(3000) })
        if (!response.ok) throw new Error(`HTTP ${response.status}`)
        status = (await response.json()) as AnchorStatus
      } catch (error) {
        this.#goOffline(
          `The anchor at ${this.anchorUrl || location.origin} is unreachable (${describe(error)}). Retrying every ${(this.#options.checkEveryMs ?? 2000) / 1000} s; your identity and history are kept in this browser.`,
        )
        return
      }
      this.anchor = status
      if (status.network !== this.genesis?.id) {
        // A new tab, or an anchor that serves another network now: its signed genesis, verified here.
        let joined: Awaited<ReturnType<typeof fetchNetwork>>
        try {
          joined = await fetchNetwork(this.anchorUrl, { signal: AbortSignal.timeout(5000) })
        } catch (error) {
          this.#goOffline(`The anchor's network could not be joined: ${describe(error)}`)
          return
        }
        await this.#join(joined.genesis, joined.params)
      }
      if (status.pool) await this.#adoptPool(status.pool)
      const libp2p = this.network.libp2p
      const anchorPeer = libp2p.getPeers().find((peer) => peer.toString() === status.peerId)
      if (!anchorPeer || libp2p.getConnections(anchorPeer).length === 0) {
        const ws = status.multiaddrs.find((address) => /\/ws(\/|$)/.test(address))
        if (!ws) {
          this.#goOffline('The anchor publishes no WebSocket address: browsers cannot join it.')
          return
        }
        try {
          await libp2p.dial(multiaddr(ws), { signal: AbortSignal.timeout(5000) })
        } catch (error) {
          this.#goOffline(`The anchor's WebSocket ${ws} refused the connection (${describe(error)}).`)
          return
        }
      }
      await this.#refreshCredits()
      if (this.connectivity !== 'online') {
        this.connectivity = 'online'
        this.offlineReason = undefined
        this.#changed()
        await this.catchUp()
      }
    } finally {
      this.#checking = false
    }
  }

  /**
   * Joins the anchor's staked verifier pool, changes the declaration, or leaves it (`stake: 0`):
   * signs a manifest with this tab's key and sends it (`PUT /api/pool/<did>`). The anchor's ledger
   * bonds the stake from this identity's credits. Errors are thrown in words.
   */
  async declareStake(fields: {
    org: string
    asn: string
    region: string
    stake: number
  }): Promise<{ faucet?: string }> {
    const net = this.genesis?.id
    if (!net) throw new Error('not joined yet: the anchor has not told this tab its network')
    const seq = Math.max(Date.now(), this.#manifestSeq + 1)
    let manifest: Awaited<ReturnType<typeof signManifest>>
    try {
      manifest = await signManifest(this.identity, { ...fields, net, seq })
    } catch (error) {
      throw new Error(
        `the declaration is not valid: ${error instanceof Error ? error.message : String(error)}`,
      )
    }
    // A manifest mints nothing: the stake must be this identity's credits already.
    const more = fields.stake - (this.credits?.staked ?? 0)
    const faucet = more > 0 ? await this.#fund(more, 'the stake to bond') : undefined
    let response: Response
    try {
      response = await fetch(`${this.anchorUrl}/api/pool/${encodeURIComponent(this.did)}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(manifest),
        signal: AbortSignal.timeout(5000),
      })
    } catch (error) {
      throw new Error(`the anchor is unreachable (${describe(error)}); nothing was staked`)
    }
    if (!response.ok) {
      const body = (await response.json().catch(() => ({}))) as { error?: string }
      throw new Error(`the anchor refused the manifest: ${body.error ?? `HTTP ${response.status}`}`)
    }
    this.#manifestSeq = seq
    await this.#refreshCredits()
    if (fields.stake > 0 && this.poolEntry?.stake !== fields.stake) {
      throw new Error(
        `the manifest was accepted but ${fields.stake} credits could not be bonded: you hold ${this.credits?.balance ?? 0} spendable credits`,
      )
    }
    return faucet ? { faucet } : {}
  }

  /** Reads this tab's account from the anchor's ledger; keeps the last answer when it fails. */
  async #refreshCredits(): Promise<void> {
    try {
      const response = await fetch(`${this.anchorUrl}/api/ledger/${encodeURIComponent(this.did)}`, {
        signal: AbortSignal.timeout(3000),
      })
      if (!response.ok) return
      const credits = (await response.json()) as Credits
      const pool = await fetch(`${this.anchorUrl}/api/pool/${encodeURIComponent(this.did)}`, {
        signal: AbortSignal.timeout(3000),
      })
      if (pool.ok || pool.status === 404) {
        const entry = pool.ok ? ((await pool.json()) as { entry: PoolEntry }).entry : undefined
        if (entry?.stake !== this.poolEntry?.stake) {
          this.poolEntry = entry
          this.#changed()
        }
      }
      const last = this.credits
      this.credits = credits
      this.creditHistory.push(credits)
      if (this.creditHistory.length > CREDIT_SAMPLES) this.creditHistory.shift()
      if (
        !last ||
        last.balance !== credits.balance ||
        last.pending !== credits.pending ||
        last.escrowed !== credits.escrowed
      ) {
        this.#changed()
      }
    } catch {
      // The anchor's status check reports outages; credits keep their last known value.
    }
  }

  /**
   * Fetches the anchor's log of every unfinished thread this tab follows and takes in what it
   * missed (every envelope's id and signature verified here first); then republishes what the
   * anchor lacks (envelopes made or heard while it was down; receivers drop those older than the
   * bus's maximum envelope age). Resolves to the numbers of envelopes taken in and republished.
   */
  async catchUp(): Promise<{ added: number; republished: number }> {
    let added = 0
    let republished = 0
    for (const thread of this.threads()) {
      const state = this.agent?.replica(thread)?.state
      const tasks = state ? [...state.tasks.values()] : []
      if (state?.winner && tasks.length > 0 && tasks.every((task) => task.state === 'FINAL')) continue
      let texts: unknown[]
      try {
        const response = await fetch(`${this.anchorUrl}/api/threads/${encodeURIComponent(thread)}`, {
          signal: AbortSignal.timeout(5000),
        })
        if (response.status === 404) texts = []
        else if (!response.ok) continue
        else texts = (await response.json()) as unknown[]
      } catch {
        continue
      }
      const envs = texts.map((value) => envelopeFromJson(JSON.stringify(value)))
      const anchorHas = new Set(envs.map((env) => env.id))
      const results = await verifyEnvelopes(envs)
      for (const [index, env] of envs.entries()) {
        if (results[index] !== undefined || this.envelopes.has(env.id)) continue
        this.#record(env, 'caught-up')
        await this.agent?.deliver(env)
        added += 1
      }
      for (const env of this.threadEnvelopes(thread)) {
        if (anchorHas.has(env.id)) continue
        this.bus.publish(env)
        republished += 1
      }
    }
    return { added, republished }
  }

  #pingPeers(): void {
    const libp2p = this.network.libp2p
    for (const peer of libp2p.getPeers()) {
      libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(4000) }).then(
        (rttMs) => this.rtts.set(peer.toString(), rttMs),
        // A failed ping (e.g. while the network's own reputation ping holds the one ping stream)
        // keeps the last known round trip.
        () => undefined,
      )
    }
  }

  /**
   * This tab's addresses through a relay (its reservations): other tabs reach it, and go direct over
   * WebRTC, only through one of them. Empty while it holds none.
   */
  relayAddresses(): string[] {
    return this.network.libp2p
      .getMultiaddrs()
      .map(String)
      .filter((address) => address.includes('/p2p-circuit'))
  }

  /** The peers this tab is connected to, with their transports. */
  peers(): PeerView[] {
    const libp2p = this.network.libp2p
    const views = new Map<string, PeerView>()
    for (const connection of libp2p.getConnections()) {
      const peerId = connection.remotePeer.toString()
      let view = views.get(peerId)
      if (!view) {
        view = {
          peerId,
          did: didOf(connection.remotePeer),
          isAnchor: peerId === this.anchor?.peerId,
          connections: [],
          rttMs: this.rtts.get(peerId),
        }
        views.set(peerId, view)
      }
      const remoteAddr = connection.remoteAddr.toString()
      const limited = connection.limits !== undefined && connection.limits !== null
      view.connections.push({
        ...transportOf(remoteAddr, limited),
        remoteAddr,
        direction: connection.direction,
      })
    }
    return [...views.values()].sort((a, b) => Number(b.isAnchor) - Number(a.isAnchor))
  }

  /** Stops timers, the agent and the network. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer)
    await this.#rebuilding.catch(() => undefined)
    await this.#peer?.stop().catch(() => undefined)
    await this.#persist()
    this.bus.close()
    await this.artifacts.stop().catch(() => undefined)
    await this.network.stop()
  }
}

function didOf(peer: Parameters<typeof didFromPeerId>[0]): string | undefined {
  try {
    return didFromPeerId(peer)
  } catch {
    return undefined
  }
}
