/** The app's views, rebuilt from the session on every change (forms are kept, see app.ts). */
import {
  type AnyEnvelope,
  compareEnvelopes,
  type Envelope,
  replayTrace,
  verifyEnvelopes,
  writeTrace,
} from '@can-swarm/peer'
import { isOpenPool } from '@can-swarm/peer/core'
import { allShardTopics, capabilityTopic } from '@can-swarm/peer/net'
import { quantile } from '../app/metrics.ts'
import type { SwarmSession } from '../app/session.ts'
import { barChart, lineChart } from './chart.ts'
import { planDag } from './dag.ts'
import { clock, h, shortDid, shortId } from './dom.ts'
import { finalOutputs, isFinal, STAGE_WORDS, STAGES, stageOf, taskLabel } from './model.ts'

/** Results of slow checks (audit verification, artifact fetches), cached between renders. */
export class AsyncCache {
  #values = new Map<string, unknown>()
  #pending = new Set<string>()
  readonly #onReady: () => void

  constructor(onReady: () => void) {
    this.#onReady = onReady
  }

  /** The value for `key`, starting `compute` once; undefined until it is ready. */
  get<T>(key: string, compute: () => Promise<T>): T | undefined {
    if (this.#values.has(key)) return this.#values.get(key) as T
    if (!this.#pending.has(key)) {
      this.#pending.add(key)
      compute().then(
        (value) => {
          this.#values.set(key, value)
          this.#pending.delete(key)
          this.#onReady()
        },
        (error: unknown) => {
          this.#values.set(key, { error: error instanceof Error ? error.message : String(error) })
          this.#pending.delete(key)
          this.#onReady()
        },
      )
    }
    return undefined
  }
}

// ------------------------------------------------------------------ swarm

/** Peers with transports, topics, traffic charts. */
export function swarmView(session: SwarmSession): HTMLElement {
  const peers = session.peers()
  const now = Date.now()
  const series = session.traffic.series(now)
  const pubsub = session.network.pubsub
  const shardCount = session.network.config.shardCount
  const capabilities = session.agent?.capabilities.names() ?? []
  const topics = [...allShardTopics(shardCount), ...capabilities.map(capabilityTopic)]
  const stats = session.bus.stats()
  const rejected = Object.entries(stats.rejected).filter(([, count]) => count > 0)
  const lastMinute = series.reduce((sum, sample) => sum + sample.received + sample.published, 0)
  return h(
    'section',
    { class: 'view', 'data-view': 'swarm' },
    h('h2', {}, 'Live swarm'),
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h3', {}, 'Message rate'),
        h(
          'p',
          { class: 'muted' },
          `${lastMinute} envelopes in the last minute · `,
          h('span', { class: 'key-a' }, 'received'),
          ' ',
          h('span', { class: 'key-b' }, 'published'),
        ),
        barChart(
          series.map((sample) => [sample.received, sample.published] as const),
          { label: 'envelopes per second, last minute', unit: 'env/s' },
        ),
      ),
      h(
        'div',
        { class: 'card' },
        h('h3', {}, 'Gossip latency'),
        h(
          'p',
          { class: 'muted' },
          'receive time − sender timestamp, per second: ',
          h('span', { class: 'key-a' }, 'p50'),
          ' ',
          h('span', { class: 'key-b' }, 'p95'),
        ),
        lineChart(
          [
            { values: series.map((sample) => quantile(sample.latenciesMs, 0.5)), class: 'line-a' },
            { values: series.map((sample) => quantile(sample.latenciesMs, 0.95)), class: 'line-b' },
          ],
          { label: 'gossip latency p50 and p95, last minute', unit: 'ms' },
        ),
      ),
    ),
    h(
      'div',
      { class: 'card' },
      h('h3', {}, `Connected peers (${peers.length})`),
      reachability(session.relayAddresses()),
      peers.length === 0
        ? h('p', { class: 'muted' }, 'No peer connected yet.')
        : h(
            'table',
            { 'data-testid': 'peers' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, 'peer'),
                h('th', {}, 'role'),
                h('th', {}, 'transports'),
                h('th', {}, 'ping'),
              ),
            ),
            h(
              'tbody',
              {},
              peers.map((peer) =>
                h(
                  'tr',
                  {
                    'data-peer-did': peer.did ?? '',
                    'data-transports': peer.connections.map((c) => c.transport).join(' '),
                  },
                  h(
                    'td',
                    { title: peer.did ?? peer.peerId },
                    h('code', {}, shortDid(peer.did) || shortId(peer.peerId)),
                  ),
                  h(
                    'td',
                    {},
                    peer.isAnchor
                      ? 'anchor'
                      : peer.did && session.params?.verifiers.includes(peer.did)
                        ? 'verifier'
                        : 'peer',
                  ),
                  h(
                    'td',
                    {},
                    peer.connections.map((c) =>
                      h(
                        'span',
                        { class: `pill transport-${c.transport}`, title: `${c.direction} ${c.remoteAddr}` },
                        c.transport === 'webrtc' ? 'WebRTC direct' : c.transport,
                      ),
                    ),
                  ),
                  h('td', {}, peer.rttMs === undefined ? '…' : `${Math.round(peer.rttMs)} ms`),
                ),
              ),
            ),
          ),
    ),
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h3', {}, 'Topics'),
        h(
          'table',
          {},
          h('thead', {}, h('tr', {}, h('th', {}, 'topic'), h('th', {}, 'peers subscribed'))),
          h(
            'tbody',
            {},
            topics.map((topic) =>
              h(
                'tr',
                {},
                h('td', {}, h('code', {}, topic)),
                h('td', {}, pubsub.getSubscribers(topic).length),
              ),
            ),
          ),
        ),
      ),
      h(
        'div',
        { class: 'card' },
        h('h3', {}, 'Bus'),
        h(
          'dl',
          {},
          h('dt', {}, 'delivered'),
          h('dd', {}, stats.delivered),
          h('dt', {}, 'published'),
          h('dd', {}, stats.published),
          h('dt', {}, 'duplicates'),
          h('dd', {}, stats.duplicates),
          h('dt', {}, 'rejected'),
          h(
            'dd',
            {},
            rejected.length === 0
              ? 'none'
              : rejected.map(([reason, count]) => `${reason}: ${count}`).join(', '),
          ),
        ),
        stats.recentRejections.length > 0 &&
          h(
            'ul',
            { class: 'errors' },
            stats.recentRejections
              .slice(-5)
              .map((r) => h('li', {}, `${r.reason} from ${shortId(r.from)}: ${r.detail}`)),
          ),
      ),
    ),
    artifactsCard(session),
  )
}

/** Whether other tabs can reach this one: through a relay reservation, then directly over WebRTC. */
function reachability(relayAddresses: readonly string[]): HTMLElement {
  return h(
    'p',
    {
      class: 'muted',
      'data-testid': 'reachability',
      'data-relayed': relayAddresses.length > 0 ? 'yes' : 'no',
      title: relayAddresses.join('\n'),
    },
    relayAddresses.length > 0
      ? 'Other tabs can reach this one through the anchor’s relay, then go direct over WebRTC.'
      : 'Other tabs cannot reach this one yet: it holds no relay reservation (it asks again by itself).',
  )
}

function artifactsCard(session: SwarmSession): HTMLElement {
  const stats = session.artifacts.stats()
  return h(
    'div',
    { class: 'card', 'data-testid': 'artifact-stats', 'data-gateway-reads': stats.gateway },
    h('h3', {}, 'Artifacts'),
    h(
      'p',
      { class: 'muted' },
      'Helia (IPFS) on this tab’s libp2p node, blocks in IndexedDB: what you post stays in this browser and peers fetch it by bitswap; the anchor pins it. The anchor’s HTTP gateway is read only when bitswap finds nothing within a few seconds.',
    ),
    h(
      'dl',
      {},
      h('dt', {}, 'put here'),
      h('dd', {}, stats.put),
      h('dt', {}, 'read from this browser'),
      h('dd', {}, stats.local),
      h('dt', {}, 'fetched by bitswap'),
      h('dd', { 'data-testid': 'bitswap-reads' }, stats.bitswap),
      h('dt', {}, 'from the anchor gateway'),
      h('dd', {}, stats.gateway),
      h('dt', {}, 'not found'),
      h('dd', {}, stats.missing),
    ),
  )
}

// ------------------------------------------------------------------ threads

function stepper(stage: number): HTMLElement {
  return h(
    'ol',
    { class: 'stepper', 'data-stage': STAGES[stage] },
    STAGES.map((label, index) =>
      h(
        'li',
        { class: index < stage ? 'done' : index === stage ? 'current' : 'todo', title: STAGE_WORDS[label] },
        label,
      ),
    ),
  )
}

/** The list of threads. */
export function threadsView(session: SwarmSession): HTMLElement {
  const threads = session.threads()
  return h(
    'section',
    { class: 'view', 'data-view': 'threads' },
    h('h2', {}, 'Threads'),
    threads.length === 0
      ? h(
          'p',
          { class: 'muted card' },
          'No thread yet. Post a NEED on the Overview page, or wait for the swarm.',
        )
      : h(
          'table',
          { class: 'card', 'data-testid': 'threads' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', {}, 'thread'),
              h('th', {}, 'requester'),
              h('th', {}, 'chain'),
              h('th', {}, 'budget'),
              h('th', {}, 'position'),
              h('th', { title: 'NEED sent → last FINALIZE signed (senders’ clocks)' }, 'NEED → FINAL'),
            ),
          ),
          h(
            'tbody',
            {},
            threads.map((thread) => {
              const state = session.agent?.replica(thread)?.state
              const stage = state ? stageOf(state) : 0
              return h(
                'tr',
                { 'data-thread': thread, 'data-stage': STAGES[stage] },
                h('td', {}, h('a', { href: `#/threads/${encodeURIComponent(thread)}` }, shortId(thread, 14))),
                h(
                  'td',
                  {},
                  state?.need?.requester === session.did ? 'you' : shortDid(state?.need?.requester),
                ),
                h('td', {}, state?.need?.requires.join(' → ') ?? '…'),
                h('td', {}, state?.need?.budget ?? '…'),
                h('td', {}, h('span', { class: `pill stage-${stage}` }, STAGES[stage])),
                h('td', {}, state && isFinal(state) ? tookText(session, thread) : ''),
              )
            }),
          ),
        ),
  )
}

/** NEED timestamp → last FINALIZE timestamp of a thread, as text (signed `ts`, senders' clocks). */
function tookText(session: SwarmSession, thread: string): string {
  const envelopes = session.threadEnvelopes(thread)
  const need = envelopes.find((env) => env.kind === 'NEED')
  const finals = envelopes.filter((env) => env.kind === 'FINALIZE').map((env) => env.ts)
  if (!need || finals.length === 0) return ''
  return `${((Math.max(...finals) - need.ts) / 1000).toFixed(1)} s`
}

interface AuditResult {
  total: number
  bad: Array<{ id: string; error: string }>
  replay?: { stateHash: string; envelopes: number }
  replayError?: string
  trace?: string
}

async function audit(
  session: SwarmSession,
  envelopes: readonly AnyEnvelope[],
  thread: string,
): Promise<AuditResult> {
  const results = await verifyEnvelopes(envelopes as Envelope[])
  const bad = envelopes.flatMap((env, index) => {
    const error = results[index]
    return error ? [{ id: env.id, error: error.message }] : []
  })
  const result: AuditResult = { total: envelopes.length, bad }
  if (session.params) {
    try {
      const trace = await writeTrace({
        recorder: session.identity,
        params: session.params,
        thread,
        entries: envelopes.map((env) => ({ atMs: session.seenAt.get(env.id) ?? env.ts, env })),
      })
      const replay = await replayTrace(trace)
      result.replay = { stateHash: replay.stateHash, envelopes: replay.envelopes }
      result.trace = trace
    } catch (error) {
      result.replayError = error instanceof Error ? error.message : String(error)
    }
  }
  return result
}

/** What an envelope says, in a line (`byId` finds the envelopes it names). */
function describeEnvelope(env: AnyEnvelope, byId: ReadonlyMap<string, AnyEnvelope>): string {
  const p = env.payload as unknown as Record<string, unknown>
  const task = () => taskLabel(String(p.task))
  switch (env.kind) {
    case 'NEED':
      return `requires ${(p.requires as string[]).join(' → ')}, budget ${String(p.budget)}`
    case 'PROPOSE': {
      const patch = p.patch as Array<{ name: string }>
      return `plan ${shortId(env.id, 6)}: ${patch.map((spec) => spec.name).join(' → ')}, price ${String(p.price)}`
    }
    case 'ATTEST_PLAN':
      return `${String(p.verdict)} plan ${shortId(String(p.proposal), 6)}`
    case 'DECIDE': {
      const pool = p.pool as { epoch: number; verifiers: string[] }
      return `plan ${shortId(String(p.proposal), 6)}, epoch ${String(p.epoch)}, K_plan ${String(p.kPlan)}, pool epoch ${pool.epoch} (${pool.verifiers.length} verifier${pool.verifiers.length === 1 ? '' : 's'})`
    }
    case 'CLAIM':
      return `asks the lease of ${task()} for ${String(p.leaseTtlMs)} ms`
    case 'GRANT': {
      const claim = byId.get(String(p.claim))
      return `leases ${task()} for ${String(p.leaseTtlMs)} ms to ${claim ? shortDid(claim.sender) : `CLAIM ${shortId(String(p.claim), 6)}`}`
    }
    case 'HEARTBEAT':
      return `${task()}, progress ${Math.round(Number(p.progress) / 10)} %`
    case 'RELEASE':
      return `${task()} (${String(p.reason)})`
    case 'YIELD':
      return task()
    case 'COMMIT':
      return `${task()} → ${(p.outputs as string[]).map((cid) => shortId(cid, 6)).join(', ')}`
    case 'ATTEST':
      return `${String(p.verdict)} on ${task()}`
    case 'FINALIZE':
      return `${task()} with ${(p.attestations as unknown[]).length} attestation(s)`
    case 'CHALLENGE':
      return `${task()}, bond ${String(p.bond)}`
    case 'INVALIDATE':
      return `upholds the challenge of ${task()}`
    default:
      return ''
  }
}

/** One thread: position, plan DAG, result, audit trail. */
export function threadView(session: SwarmSession, thread: string, cache: AsyncCache): HTMLElement {
  const replica = session.agent?.replica(thread)
  const state = replica?.state
  if (!replica || !state) {
    return h(
      'section',
      { class: 'view' },
      h('h2', {}, 'Thread'),
      h('p', { class: 'card' }, `This tab holds nothing of thread ${thread}.`),
    )
  }
  const envelopes = [...replica.envelopes()].sort(compareEnvelopes)
  const byId = new Map(envelopes.map((env) => [env.id, env]))
  const anchors = new Set(session.params?.anchors ?? [])
  const stage = stageOf(state)
  const final = isFinal(state)
  const outputs = finalOutputs(state)
  const dag = planDag(state)
  const auditResult = cache.get(`audit:${thread}:${envelopes.length}`, () =>
    audit(session, envelopes, thread),
  )
  const verified =
    auditResult !== undefined && auditResult.bad.length === 0 && auditResult.replay !== undefined
  const hint = waitingHint(session, thread)
  return h(
    'section',
    { class: 'view', 'data-view': 'thread', 'data-thread': thread },
    h('h2', {}, 'Thread ', h('code', {}, thread)),
    h(
      'div',
      { class: 'card' },
      h('h3', {}, 'Position'),
      stepper(stage),
      h(
        'p',
        { class: 'muted' },
        `requested by ${state.need?.requester === session.did ? 'you' : shortDid(state.need?.requester)} · chain ${state.need?.requires.join(' → ') ?? '…'} · budget ${state.need?.budget ?? '…'} · ${state.proposals.size} proposal(s)`,
        state.winner ? ` · decided by ${shortDid(state.winner.decider)} in epoch ${state.winner.epoch}` : '',
      ),
      hint && h('p', { class: 'hint' }, hint),
    ),
    h(
      'div',
      { class: 'card' },
      h('h3', {}, 'Plan'),
      dag ?? h('p', { class: 'muted' }, 'No plan proposed yet.'),
    ),
    final &&
      h(
        'div',
        { class: 'card', 'data-testid': 'result' },
        h('h3', {}, 'Result'),
        outputs.map((cid) => {
          // null: nobody reachable held it when asked.
          const bytes = cache.get(`artifact:${cid}`, async () => (await session.artifacts.get(cid)) ?? null)
          const text = bytes instanceof Uint8Array ? new TextDecoder().decode(bytes) : undefined
          const source = session.artifacts.sourceOf(cid)
          return h(
            'div',
            { class: 'artifact' },
            h(
              'p',
              {},
              'artifact ',
              h('code', { 'data-testid': 'result-cid' }, cid),
              source && [' · from ', h('span', { 'data-testid': 'result-source' }, source)],
            ),
            text === undefined
              ? h(
                  'p',
                  { class: 'muted' },
                  bytes === null
                    ? 'Not found: neither a connected peer nor the anchor holds it right now. Reload to ask again.'
                    : 'fetching…',
                )
              : h(
                  'pre',
                  { 'data-testid': 'result-text' },
                  text.length > 4000 ? `${text.slice(0, 4000)}…` : text,
                ),
          )
        }),
      ),
    h(
      'div',
      { class: 'card' },
      h('h3', {}, 'Audit trail'),
      auditResult === undefined
        ? h('p', { 'data-testid': 'audit-status', 'data-verified': 'pending' }, 'Checking signatures…')
        : h(
            'p',
            {
              'data-testid': 'audit-status',
              'data-verified': verified ? 'yes' : 'no',
              class: verified ? 'ok' : 'bad',
            },
            verified
              ? `✔ ${auditResult.total} envelopes: every id and Ed25519 signature checked in this tab; the signed trace replays to state ${shortId(auditResult.replay!.stateHash, 10)}.`
              : `✘ ${auditResult.bad.length} of ${auditResult.total} envelopes fail verification${auditResult.replayError ? `; replay: ${auditResult.replayError}` : ''}.`,
            auditResult.trace &&
              h(
                'a',
                {
                  class: 'button small',
                  download: `${thread}.trace.jsonl`,
                  href: URL.createObjectURL(new Blob([auditResult.trace], { type: 'application/jsonl' })),
                },
                'download signed trace',
              ),
          ),
      h(
        'table',
        { class: 'audit' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'lamport'),
            h('th', {}, 'verb'),
            h('th', {}, 'sender'),
            h('th', {}, 'what'),
            h('th', {}, 'signature'),
          ),
        ),
        h(
          'tbody',
          {},
          envelopes.map((env) => {
            const bad = auditResult?.bad.find((item) => item.id === env.id)
            return h(
              'tr',
              { 'data-kind': env.kind },
              h('td', {}, env.lamport),
              h('td', {}, h('span', { class: `verb verb-${env.kind.toLowerCase()}` }, env.kind)),
              h(
                'td',
                { title: env.sender },
                env.sender === session.did
                  ? 'you'
                  : anchors.has(env.sender)
                    ? `anchor ${shortDid(env.sender)}`
                    : shortDid(env.sender),
              ),
              h('td', {}, describeEnvelope(env, byId)),
              h('td', { title: env.id }, auditResult === undefined ? '…' : bad ? `✘ ${bad.error}` : '✔'),
            )
          }),
        ),
      ),
    ),
  )
}

/** Why a thread is not moving, when the tab can tell. */
function waitingHint(session: SwarmSession, thread: string): string | undefined {
  const state = session.agent?.replica(thread)?.state
  if (!state?.need || isFinal(state)) return undefined
  const params = session.params
  if (params && params.verifiers.length === 0 && !params.bootstrap) {
    return 'This network has no staked verifier, so nothing can be attested or decided. Verifiers join by staking (Overview → Stake as a verifier).'
  }
  const price = session.priceOf(state.need.requires)
  if (state.proposals.size === 0 && price > state.need.budget) {
    return `No planner will propose: the chain costs ${price} credits, the budget is ${state.need.budget}.`
  }
  if (state.proposals.size === 0) return 'Waiting for a planner with these capabilities to propose a plan.'
  if (!state.winner) {
    const credits = session.credits
    if (state.need.requester === session.did && credits && credits.balance < state.need.budget) {
      return `Not decided: an anchor decides a NEED only if its requester can fund the budget (${state.need.budget}), and you hold ${credits.balance} spendable credits.`
    }
    return 'Waiting for verifiers in the pool to attest a plan and for the anchor to DECIDE (it decides only NEEDs whose requester can fund the budget).'
  }
  const stage = stageOf(state)
  if (stage === 3)
    return 'Waiting for a worker with the capability to CLAIM the task and for the anchor to GRANT it the lease.'
  if (stage === 6)
    return `Result attested; an anchor signs FINALIZE once the challenge window (${Math.round((params?.tChallengeMs ?? 0) / 1000)} s) has passed.`
  return undefined
}

// ------------------------------------------------------------------ verifier

const VERIFIER_KINDS = new Set(['ATTEST_PLAN', 'ATTEST', 'CHALLENGE', 'INVALIDATE'])

function verdictOf(kind: string, payload: Record<string, unknown>): string {
  if (kind === 'CHALLENGE') return `challenge (bond ${String(payload.bond)})`
  if (kind === 'INVALIDATE') return 'upheld a challenge'
  return String(payload.verdict)
}

/** What this tab's verifier has attested. */
export function verifierView(session: SwarmSession): HTMLElement {
  const mine = [...session.envelopes.values()]
    .filter((env) => env.sender === session.did && VERIFIER_KINDS.has(env.kind))
    .sort((a, b) => (session.seenAt.get(b.id) ?? 0) - (session.seenAt.get(a.id) ?? 0))
  return h(
    'section',
    { class: 'view', 'data-view': 'verifier' },
    h('h2', {}, 'My verifier'),
    h(
      'p',
      { class: 'card' },
      session.roles.verifier
        ? 'The verifier role is on. '
        : 'The verifier role is off (switch it on in Overview). ',
      session.params && isOpenPool(session.params)
        ? 'The network’s verifier pool is open (nobody has staked yet, bootstrap): any peer’s attestations count, K = 1. Stake on the Overview page to be in the pool once it is not.'
        : session.inVerifierPool
          ? 'Your did is in the network’s staked verifier pool: you attest plans and re-execute committed work in this tab when a committee draws you.'
          : 'Your did is not in this network’s verifier pool, so your attestations would not count; stake on the Overview page (a manifest signed in this tab) and the anchor adopts the new pool within seconds.',
    ),
    mine.length === 0
      ? h('p', { class: 'muted card' }, 'Nothing attested yet.')
      : h(
          'table',
          { class: 'card', 'data-testid': 'attestations' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', {}, 'when'),
              h('th', {}, 'verb'),
              h('th', {}, 'thread'),
              h('th', {}, 'verdict'),
            ),
          ),
          h(
            'tbody',
            {},
            mine.map((env) => {
              const p = env.payload as unknown as Record<string, unknown>
              return h(
                'tr',
                { 'data-kind': env.kind },
                h('td', {}, clock(session.seenAt.get(env.id) ?? env.ts)),
                h('td', {}, h('span', { class: `verb verb-${env.kind.toLowerCase()}` }, env.kind)),
                h(
                  'td',
                  {},
                  h('a', { href: `#/threads/${encodeURIComponent(env.thread)}` }, shortId(env.thread, 14)),
                ),
                h('td', {}, verdictOf(env.kind, p)),
              )
            }),
          ),
        ),
  )
}
