/** The app shell: header, navigation, the Overview page (identity, credits, roles, post a NEED). */
import type { AgentRoles } from '@can-swarm/peer'
import { isOpenPool } from '@can-swarm/peer/core'
import { faucetWords, type SwarmSession } from '../app/session.ts'
import { lineChart } from './chart.ts'
import { clock, h, shortId } from './dom.ts'
import { AsyncCache, swarmView, threadsView, threadView, verifierView } from './views.ts'

const ROUTES = [
  ['overview', 'Overview'],
  ['swarm', 'Swarm'],
  ['threads', 'Threads'],
  ['verifier', 'My verifier'],
] as const

const MIN_RENDER_GAP_MS = 250

/** Mounts the app into `root` and keeps it in step with the session. */
export function mountApp(root: HTMLElement, session: SwarmSession): void {
  let scheduled = false
  let last = 0
  const cache = new AsyncCache(() => schedule())
  const forms = overviewForms(session)
  const schedule = (): void => {
    if (scheduled) return
    scheduled = true
    const wait = Math.max(0, last + MIN_RENDER_GAP_MS - performance.now())
    setTimeout(() => {
      scheduled = false
      last = performance.now()
      render()
    }, wait)
  }
  const render = (): void => {
    const route = location.hash.replace(/^#\/?/, '') || 'overview'
    const [page, ...rest] = route.split('/')
    let view: HTMLElement
    if (page === 'threads' && rest.length > 0)
      view = threadView(session, decodeURIComponent(rest.join('/')), cache)
    else if (page === 'swarm') view = swarmView(session)
    else if (page === 'threads') view = threadsView(session)
    else if (page === 'verifier') view = verifierView(session)
    else view = overview(session, forms)
    const scrollY = window.scrollY
    // The forms are kept across renders; moving them out and back in would drop the focus (and
    // the caret) of whatever the person is typing into, so both are put back.
    const focused = document.activeElement
    const caret =
      focused instanceof HTMLInputElement || focused instanceof HTMLTextAreaElement
        ? ([focused.selectionStart, focused.selectionEnd] as const)
        : undefined
    root.replaceChildren(
      header(session, page ?? 'overview'),
      banner(session),
      h('main', {}, view),
      footer(session),
    )
    if (focused instanceof HTMLElement && focused.isConnected && document.activeElement !== focused) {
      focused.focus({ preventScroll: true })
      if (caret?.[0] != null && caret[1] != null) {
        ;(focused as HTMLInputElement).setSelectionRange(caret[0], caret[1])
      }
    }
    window.scrollTo(0, scrollY)
  }
  session.addEventListener('change', schedule)
  window.addEventListener('hashchange', () => {
    render()
    window.scrollTo(0, 0)
  })
  render()
}

function header(session: SwarmSession, page: string): HTMLElement {
  const label = { starting: 'Connecting…', online: 'Online', offline: 'Offline' }[session.connectivity]
  return h(
    'header',
    {},
    h('div', { class: 'brand' }, h('span', { class: 'logo' }, '⬡'), ' CAN Swarm'),
    h(
      'nav',
      {},
      ROUTES.map(([id, text]) => h('a', { href: `#/${id}`, class: page === id ? 'active' : '' }, text)),
    ),
    h(
      'div',
      { class: 'status' },
      h(
        'span',
        {
          class: `pill conn-${session.connectivity}`,
          'data-testid': 'connectivity',
          'data-state': session.connectivity,
        },
        label,
      ),
      h('code', { title: session.did }, shortId(session.did.slice(8), 6)),
    ),
  )
}

function banner(session: SwarmSession): HTMLElement | string {
  if (session.connectivity !== 'offline') return ''
  return h(
    'div',
    { class: 'banner offline', 'data-testid': 'offline-banner', role: 'alert' },
    h('strong', {}, 'Offline. '),
    session.offlineReason ?? 'The anchor cannot be reached.',
    ' Direct WebRTC connections to other tabs stay up while they last.',
  )
}

function footer(session: SwarmSession): HTMLElement {
  return h(
    'footer',
    {},
    session.joinMs === undefined
      ? 'Waiting for the first envelope from the swarm…'
      : h(
          'span',
          { 'data-testid': 'join-ms', 'data-ms': session.joinMs },
          `First valid envelope ${session.joinMs} ms after navigation start.`,
        ),
    ' · ',
    `${session.envelopes.size} envelopes held in this browser`,
    ' · ',
    h('a', { href: './embed.html' }, 'embed a verifier in your own page'),
  )
}

interface Forms {
  roles: HTMLElement
  post: HTMLElement
  stake: HTMLElement
}

function overviewForms(session: SwarmSession): Forms {
  // Roles: rebuilt agent on change.
  const roleBoxes = (['verifier', 'worker', 'planner'] as const).map((role) => {
    const input = h('input', {
      type: 'checkbox',
      name: role,
      'data-testid': `role-${role}`,
      onchange: () => {
        const roles: AgentRoles = { ...session.roles, [role]: (input as HTMLInputElement).checked }
        session.setRoles(roles).catch((error: unknown) => session.error(error))
      },
    }) as HTMLInputElement
    input.checked = session.roles[role] === true
    return { role, input }
  })
  const describeRole: Record<string, string> = {
    verifier: 'attest plans, re-execute committed work, challenge wrong results',
    worker: 'claim and run tasks with the built-in capabilities',
    planner: 'propose plans for NEEDs the built-in capabilities can do',
  }
  const roles = h(
    'div',
    { class: 'card' },
    h('h3', {}, 'Roles in this tab'),
    roleBoxes.map(({ role, input }) =>
      h(
        'label',
        { class: 'role' },
        input,
        h('strong', {}, role),
        h('span', { class: 'muted' }, ` — ${describeRole[role]}`),
      ),
    ),
  )

  // Post a NEED.
  const capabilityNames = ['word-frequency', 'sha256', 'sort-dedupe']
  const requires = h('input', {
    name: 'requires',
    value: 'word-frequency',
    'data-testid': 'need-requires',
    list: 'capabilities',
    required: true,
  }) as HTMLInputElement
  const text = h('textarea', {
    name: 'input',
    rows: 4,
    'data-testid': 'need-input',
    placeholder: 'Text to work on…',
  }) as HTMLTextAreaElement
  text.value = 'the swarm checks the swarm'
  const file = h('input', { type: 'file', name: 'file', 'data-testid': 'need-file' }) as HTMLInputElement
  const budget = h('input', {
    type: 'number',
    name: 'budget',
    min: 0,
    value: 20,
    'data-testid': 'need-budget',
  }) as HTMLInputElement
  const result = h('p', { class: 'form-result', 'data-testid': 'post-result' })
  const submit = h(
    'button',
    { type: 'submit', 'data-testid': 'need-submit' },
    'Post NEED',
  ) as HTMLButtonElement
  const post = h(
    'form',
    {
      class: 'card',
      'data-testid': 'need-form',
      onsubmit: (event: Event) => {
        event.preventDefault()
        void (async () => {
          submit.disabled = true
          result.className = 'form-result'
          result.textContent = 'Uploading the input and posting…'
          try {
            const chosen = file.files?.[0]
            const input = chosen
              ? new Uint8Array(await chosen.arrayBuffer())
              : new TextEncoder().encode(text.value)
            if (input.length === 0) throw new Error('the input is empty: type a text or choose a file')
            const chain = requires.value.split(/[,→>\s]+/).filter((name) => name.length > 0)
            const started = performance.now()
            const posted = await session.post({ requires: chain, input, budget: Number(budget.value) })
            const need = posted.thread
            sessionStorage.setItem(`posted:${need}`, String(started))
            result.className = 'form-result ok'
            result.replaceChildren(
              posted.faucet ? `${posted.faucet} ` : '',
              'Posted ',
              h('a', { href: `#/threads/${encodeURIComponent(need)}`, 'data-testid': 'posted-need' }, need),
              '. Follow it live →',
            )
            location.hash = `#/threads/${encodeURIComponent(need)}`
          } catch (error) {
            result.className = 'form-result bad'
            result.textContent = error instanceof Error ? error.message : String(error)
            session.error(error)
          } finally {
            submit.disabled = false
          }
        })()
      },
    },
    h('h3', {}, 'Post a NEED'),
    h(
      'datalist',
      { id: 'capabilities' },
      capabilityNames.map((name) => h('option', { value: name })),
      h('option', { value: 'word-frequency, sha256' }),
    ),
    h('label', {}, 'Capability chain (in order, comma-separated)', requires),
    h(
      'p',
      { class: 'muted' },
      'Built-in: ',
      capabilityNames.map((name) => h('code', { class: 'chip' }, name)),
      ' — each takes the previous output.',
    ),
    h('label', {}, 'Input text', text),
    h('label', {}, '…or a file (sent as an artifact, by CID)', file),
    h('label', {}, 'Budget (credits)', budget),
    submit,
    result,
  )
  return { roles, post, stake: stakeForm(session) }
}

/** Join, change or leave the staked verifier pool with a manifest signed in this tab. */
function stakeForm(session: SwarmSession): HTMLElement {
  const field = (name: string, value: string, placeholder: string) =>
    h('input', {
      name,
      value,
      placeholder,
      required: true,
      'data-testid': `stake-${name}`,
    }) as HTMLInputElement
  const org = field('org', '', 'your organisation, e.g. acme')
  const asn = field('asn', '', 'AS64500')
  const region = field('region', '', 'eu-west')
  const amount = h('input', {
    type: 'number',
    name: 'stake',
    min: 1,
    value: 100,
    'data-testid': 'stake-amount',
  }) as HTMLInputElement
  const result = h('p', { class: 'form-result', 'data-testid': 'stake-result' })
  const send = (stake: number) => {
    result.className = 'form-result'
    result.textContent = stake > 0 ? 'Signing and sending your manifest…' : 'Leaving the pool…'
    session
      .declareStake({ org: org.value.trim(), asn: asn.value.trim(), region: region.value.trim(), stake })
      .then(({ faucet }) => {
        result.className = 'form-result ok'
        result.textContent =
          (faucet ? `${faucet} ` : '') +
          (stake > 0
            ? `In the pool with ${stake} credits staked; the anchor adopts the new pool at its next epoch boundary.`
            : 'Left the pool: your stake is unbonding.')
      })
      .catch((error: unknown) => {
        result.className = 'form-result bad'
        result.textContent = error instanceof Error ? error.message : String(error)
        session.error(error)
      })
  }
  return h(
    'form',
    {
      class: 'card',
      'data-testid': 'stake-form',
      onsubmit: (event: Event) => {
        event.preventDefault()
        send(Number(amount.value))
      },
    },
    h('h3', {}, 'Stake as a verifier'),
    h(
      'p',
      { class: 'muted' },
      'Committees are drawn from staked verifiers, weighted by √stake × reputation × recency, at most one per org. Your manifest is signed with this tab’s key for this network; it mints nothing: the stake is bonded from your credits (the faucet is asked first if you hold too few).',
    ),
    h('label', {}, 'Organisation', org),
    h('label', {}, 'Network (ASN)', asn),
    h('label', {}, 'Region', region),
    h('label', {}, 'Stake (credits)', amount),
    h('button', { type: 'submit', 'data-testid': 'stake-submit' }, 'Sign and stake'),
    ' ',
    h('button', { type: 'button', 'data-testid': 'stake-leave', onclick: () => send(0) }, 'Leave the pool'),
    result,
  )
}

function overview(session: SwarmSession, forms: Forms): HTMLElement {
  return h(
    'section',
    { class: 'view', 'data-view': 'overview' },
    h(
      'div',
      { class: 'grid two' },
      h(
        'div',
        { class: 'card' },
        h('h3', {}, 'Your identity'),
        h('p', {}, h('code', { class: 'did', 'data-testid': 'did' }, session.did)),
        h(
          'p',
          { class: 'muted' },
          'An Ed25519 key made in this browser and kept in IndexedDB; it signs every envelope you send. It never leaves this tab.',
        ),
        h('p', {}, 'Verifier pool: ', poolStatus(session)),
      ),
      creditsCard(session),
    ),
    h(
      'div',
      { class: 'grid two' },
      forms.post,
      h('div', {}, forms.roles, forms.stake, networkCard(session), policyCard(session), errorsCard(session)),
    ),
  )
}

/** Where this tab stands in the pool the anchor decides under. */
function poolStatus(session: SwarmSession): HTMLElement | string {
  const params = session.params
  if (params === undefined) return 'unknown until the anchor answers'
  const pill = (state: string, text: string, ok = false) =>
    h('span', { class: ok ? 'pill ok' : 'pill', 'data-testid': 'pool-status', 'data-in-pool': state }, text)
  const count = `${params.verifiers.length} verifier${params.verifiers.length === 1 ? '' : 's'}`
  if (isOpenPool(params))
    return pill('open', 'open: nobody has staked yet, so any peer may verify (bootstrap, K = 1)')
  if (params.verifiers.includes(session.did))
    return pill('yes', `you are in it (${count}, pool epoch ${params.poolEpoch ?? 0})`, true)
  if (session.poolEntry)
    return pill('pending', 'staked: the anchor adopts the new pool at its next epoch boundary')
  return pill('no', `not in it (${count})`)
}

/** What the network's faucet said to this identity, or what it offers, with a button to ask. */
function faucetNotice(session: SwarmSession): HTMLElement {
  const faucet = session.faucet
  const rule = session.genesis?.body.economy.faucet
  const ask = (label: string) =>
    h(
      'button',
      {
        type: 'button',
        class: 'button small',
        'data-testid': 'faucet-ask',
        onclick: () => void session.askFaucet().catch((error: unknown) => session.error(error)),
      },
      label,
    )
  const text =
    faucet.state === 'none'
      ? [
          `The network's faucet grants a new identity ${rule ? `${rule.grantCredits} credits` : 'its credits'}, once. This tab asks for them when you first post a NEED or stake beyond what you hold, or now: `,
          ask('Ask the faucet'),
        ]
      : faucet.state === 'granted'
        ? `${faucetWords(faucet).replace(/\.$/, '')} at ${clock(faucet.atMs)} (a grant signed by the anchor, checked in this tab).`
        : faucet.state === 'refused'
          ? [faucetWords(faucet), ' ', ask('Ask again')]
          : faucetWords(faucet)
  return h(
    'p',
    {
      class: faucet.state === 'refused' ? 'bad' : 'muted',
      'data-testid': 'faucet',
      'data-state': faucet.state,
    },
    text,
  )
}

function creditsCard(session: SwarmSession): HTMLElement {
  const credits = session.credits
  if (!credits) {
    return h(
      'div',
      { class: 'card' },
      h('h3', {}, 'Credits'),
      h('p', { class: 'big', 'data-testid': 'credits' }, '—'),
      h('p', { class: 'muted' }, 'Unknown until the anchor answers.'),
      session.genesis ? faucetNotice(session) : '',
    )
  }
  const history = session.creditHistory
  return h(
    'div',
    { class: 'card' },
    h('h3', {}, 'Credits'),
    h('p', { class: 'big', 'data-testid': 'credits', 'data-balance': credits.balance }, credits.balance),
    faucetNotice(session),
    h(
      'dl',
      {},
      h('dt', {}, 'staked'),
      h(
        'dd',
        { 'data-testid': 'staked' },
        credits.staked + (credits.unbonding ? ` (+${credits.unbonding} unbonding)` : ''),
      ),
      h('dt', {}, 'in escrow'),
      h(
        'dd',
        { 'data-testid': 'escrowed', title: 'budgets, verify bounties and challenge bonds you posted' },
        credits.escrowed,
      ),
      h('dt', {}, 'staked pool'),
      h(
        'dd',
        { 'data-testid': 'pool-entry', 'data-staked': session.poolEntry?.stake ?? 0 },
        session.poolEntry
          ? `in it: ${session.poolEntry.stake} staked, reputation ${session.poolEntry.reputationPerMille / 10} %, ${session.poolEntry.org} / ${session.poolEntry.asn} / ${session.poolEntry.region}`
          : 'not in it',
      ),
      h('dt', {}, 'pending payouts'),
      h(
        'dd',
        { 'data-testid': 'pending', title: 'owed to you once the challenge windows (2 × T_challenge) close' },
        credits.pending,
      ),
    ),
    history.length > 1
      ? [
          h(
            'p',
            { class: 'muted' },
            h('span', { class: 'key-a' }, 'balance'),
            ' ',
            h('span', { class: 'key-b' }, 'pending'),
          ),
          lineChart(
            [
              { values: history.map((sample) => sample.balance), class: 'line-a' },
              { values: history.map((sample) => sample.pending), class: 'line-b' },
            ],
            { label: 'credits over time', unit: 'credits', since: clock(history[0]!.atMs) },
          ),
        ]
      : '',
    h(
      'p',
      { class: 'muted' },
      "As the anchor's ledger derives them from signed records: minted only by the network's genesis and its faucet; an anchor decides a NEED only if its budget is funded; budgets and bounties are escrowed, paid after FINAL and the challenge period, slashed when a challenge is upheld.",
    ),
  )
}

function networkCard(session: SwarmSession): HTMLElement {
  const params = session.params
  return h(
    'div',
    { class: 'card' },
    h('h3', {}, 'Network'),
    h(
      'dl',
      {},
      h('dt', {}, 'network'),
      h(
        'dd',
        { 'data-testid': 'network-id', 'data-network': session.genesis?.id ?? '' },
        session.genesis
          ? h(
              'code',
              {
                title: `${session.genesis.id} (${session.genesis.body.name}): the hash of its signed genesis, verified in this tab`,
              },
              shortId(session.genesis.id, 8),
            )
          : '—',
      ),
      h('dt', {}, 'anchor'),
      h(
        'dd',
        {},
        session.anchor
          ? h('code', { title: session.anchor.did }, shortId(session.anchor.did.slice(8), 6))
          : '—',
      ),
      h('dt', {}, 'mode'),
      h('dd', {}, params ? (params.bootstrap ? 'bootstrap (K = 1)' : 'full') : '—'),
      h('dt', {}, 'verifier pool'),
      h(
        'dd',
        {},
        params
          ? `epoch ${params.poolEpoch ?? 0}, ${params.verifiers.length} staked verifier${params.verifiers.length === 1 ? '' : 's'}`
          : '—',
      ),
      h('dt', {}, 'challenge window'),
      h('dd', {}, params ? `${params.tChallengeMs / 1000} s` : '—'),
      h('dt', {}, 'peers connected'),
      h('dd', {}, session.network.libp2p.getPeers().length),
    ),
  )
}

function policyCard(session: SwarmSession): HTMLElement {
  const policy = session.policy
  if (!policy) {
    return h(
      'div',
      { class: 'card', 'data-testid': 'policy', 'data-state': session.policyProblem ? 'failed' : 'loading' },
      h('h3', {}, 'Policy'),
      h(
        'p',
        { class: session.policyProblem ? 'bad' : 'muted' },
        session.policyProblem
          ? `Not loaded: ${session.policyProblem} Posting is refused until it is.`
          : 'Loading the network’s policy…',
      ),
    )
  }
  const stats = policy.gates.stats()
  const denials = Object.entries(stats.denialsByRule)
  const gate = (name: 'preflight' | 'ingress' | 'commit') =>
    `${stats[name].evaluations} evaluated, ${stats[name].denials} denied`
  return h(
    'div',
    { class: 'card', 'data-testid': 'policy', 'data-state': 'loaded' },
    h('h3', {}, 'Policy'),
    h(
      'p',
      {},
      h('code', {}, policy.manifest.name),
      ' ',
      h('code', { title: policy.manifest.policyHash }, shortId(policy.manifest.policyHash, 8)),
      ` · ${policy.conformancePassed}/${policy.manifest.vectors.length} conformance vectors pass in this browser`,
    ),
    h(
      'dl',
      {},
      h('dt', {}, 'preflight'),
      h('dd', {}, gate('preflight')),
      h('dt', {}, 'ingress'),
      h('dd', {}, gate('ingress')),
      h('dt', {}, 'commit'),
      h('dd', {}, gate('commit')),
      h('dt', {}, 'denials by rule'),
      h(
        'dd',
        { 'data-testid': 'policy-denials' },
        denials.length === 0 ? 'none' : denials.map(([rule, count]) => `${rule}: ${count}`).join(', '),
      ),
    ),
    h(
      'p',
      { class: 'muted' },
      'Rego compiled to gas-metered WebAssembly, run in this tab before it publishes, on everything it receives, and on results it verifies.',
    ),
  )
}

function errorsCard(session: SwarmSession): HTMLElement | string {
  if (session.errors.length === 0) return ''
  return h(
    'div',
    { class: 'card' },
    h('h3', {}, 'Problems'),
    h(
      'ul',
      { class: 'errors', 'data-testid': 'errors' },
      session.errors
        .slice(0, 6)
        .map((error) => h('li', {}, h('span', { class: 'muted' }, clock(error.atMs)), ' ', error.message)),
    ),
  )
}
