/**
 * The benchmark suite. Each benchmark returns metrics; throughput is measured over a fixed amount
 * of work (not a fixed time) so that runs compare.
 */

import {
  type AnyEnvelope,
  artifactCid,
  BUILTIN_POLICY_HASH,
  createIdentity,
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  type Identity,
  networkParams,
  PROTOCOL_VERSION,
  poolSnapshotOf,
  replayTrace,
  runSimulation,
  signEnvelope,
  signingBytes,
  type TaskSpec,
  ThreadReplica,
  threadIdOf,
  verifyEnvelopes,
  verifySignature,
  writeTrace,
} from '@can-swarm/peer'
import { runBusBenchmark } from './bus.ts'
import { runCasBenchmark } from './cas.ts'
import { runDecideBenchmark } from './decide.ts'
import { runDecideE2eBenchmark } from './decide-e2e.ts'
import { runEvictBenchmark } from './evict.ts'
import { runFuzzBenchmark } from './fuzz.ts'
import { runGrowthBenchmark } from './growth.ts'
import { runLateJoinBenchmark } from './late-join.ts'
import { runLedgerBenchmark } from './ledger.ts'
import { runPolicyBenchmark } from './policy.ts'
import { runSoakBenchmark } from './soak.ts'
import { runSyncHealBenchmark } from './sync-heal.ts'
import { runWebBenchmark } from './web.ts'

export interface Metric {
  value: number
  unit: string
}
export interface Benchmark {
  description: string
  run(progress: (line: string) => void): Promise<Record<string, Metric>>
}

const round = (value: number, digits = 1) => Number(value.toFixed(digits))

async function identity(tag: number): Promise<Identity> {
  const seed = new Uint8Array(32).fill(tag)
  return createIdentity({ seed })
}

/** The network the benchmark envelopes belong to (no genesis is needed to fold them). */
const BENCH_NET = artifactCid(new TextEncoder().encode('can-swarm benchmark network'))

let lamport = 0
async function envelope(
  signer: Identity,
  kind: AnyEnvelope['kind'],
  thread: string,
  payload: unknown,
  extra: { fence?: string } = {},
): Promise<AnyEnvelope> {
  lamport += 1
  return (await signEnvelope(
    {
      v: PROTOCOL_VERSION,
      net: BENCH_NET,
      kind,
      thread,
      sender: signer.did,
      lamport,
      ts: 0,
      payload: payload as never,
      refs: [],
      policy: BUILTIN_POLICY_HASH,
      epoch: 1,
      ...(extra.fence === undefined ? {} : { fence: extra.fence }),
    },
    signer,
  )) as AnyEnvelope
}

async function sampleEnvelopes(count: number): Promise<AnyEnvelope[]> {
  const signer = await identity(1)
  const result: AnyEnvelope[] = []
  for (let i = 0; i < count; i += 1) {
    result.push(
      await envelope(signer, 'HEARTBEAT', 'need-bench', {
        task: `p/task-${i % 50}`,
        claim: artifactCid(new Uint8Array([i & 255, i >> 8])),
        progress: i % 1000,
      }),
    )
  }
  return result
}

/**
 * A 10 000-envelope thread: 250 independent tasks, each claimed, granted by the anchor, heartbeated,
 * committed, attested and finalized by the anchor.
 */
async function bigThread(progress: (line: string) => void): Promise<{ text: string; count: number }> {
  const requester = await identity(2)
  const planner = await identity(3)
  const decider = await identity(4)
  const worker = await identity(5)
  const verifiers = await Promise.all([10, 11, 12, 13, 14, 15, 16, 17, 18, 19].map(identity))
  const params = networkParams({
    network: BENCH_NET,
    anchors: [decider.did],
    verifiers: verifiers.map((v) => v.did),
    bootstrap: false,
    tChallengeMs: 10,
  })
  const input = artifactCid(new TextEncoder().encode('input'))
  const taskCount = 250
  const log: AnyEnvelope[] = []
  // The NEED opens the thread's own Lamport time (1) under its own id (A1).
  const needPayload = {
    need: '',
    epoch: 1,
    requires: ['sha256'],
    inputs: [input],
    produces: 'text/plain',
    budget: 1_000_000,
    deadlineMs: 0,
    bidWindowMs: 10,
  }
  lamport = 1
  const draft = {
    v: PROTOCOL_VERSION,
    net: BENCH_NET,
    kind: 'NEED' as const,
    thread: '',
    sender: requester.did,
    lamport,
    ts: 0,
    payload: needPayload,
    refs: [],
    policy: BUILTIN_POLICY_HASH,
    epoch: 1,
  }
  const thread = threadIdOf(draft)
  log.push(
    (await signEnvelope(
      { ...draft, thread, payload: { ...needPayload, need: thread } },
      requester,
    )) as AnyEnvelope,
  )
  const patch: TaskSpec[] = []
  for (let i = 0; i < taskCount; i += 1)
    patch.push({ name: `t${i}`, capability: 'sha256', inputs: [input], produces: 'text/plain' })
  const propose = await envelope(planner, 'PROPOSE', thread, {
    need: thread,
    patch,
    ballot: 1,
    price: taskCount,
    etaMs: 1,
    shardDependencies: [],
  })
  log.push(propose)
  const attestations: AnyEnvelope[] = []
  for (const verifier of verifiers.slice(0, 3)) {
    attestations.push(
      await envelope(verifier, 'ATTEST_PLAN', thread, {
        need: thread,
        proposal: propose.id,
        verdict: 'accept',
      }),
    )
  }
  log.push(...attestations)
  log.push(
    await envelope(decider, 'DECIDE', thread, {
      need: thread,
      proposal: propose.id,
      epoch: 1,
      lamport: lamport + 1,
      kPlan: 3,
      decider: decider.did,
      attestations: attestations as Envelope[],
      pool: poolSnapshotOf(params),
    }),
  )
  const replica = new ThreadReplica(thread, params)
  replica.receiveAll(log, 0)
  const heartbeats = Math.floor((10_000 - log.length) / taskCount) - 7
  for (let i = 0; i < taskCount; i += 1) {
    const task = `${propose.id}/t${i}`
    const claim = await envelope(worker, 'CLAIM', thread, { task, leaseTtlMs: 1000, cost: 1, etaMs: 1 })
    const grant = await envelope(decider, 'GRANT', thread, { task, claim: claim.id, leaseTtlMs: 1000 })
    log.push(claim, grant)
    for (let h = 0; h < heartbeats; h += 1) {
      log.push(
        await envelope(
          worker,
          'HEARTBEAT',
          thread,
          { task, claim: claim.id, progress: h },
          { fence: claim.id },
        ),
      )
    }
    const output = artifactCid(new TextEncoder().encode(`out ${i}`))
    const commit = await envelope(
      worker,
      'COMMIT',
      thread,
      {
        task,
        claim: claim.id,
        outputs: [output],
        telemetry: { cpuMs: 1, wallMs: 1, memoryBytes: 0, inputBytes: 1, outputBytes: 1 },
        verifyBounty: 0,
      },
      { fence: claim.id },
    )
    log.push(commit)
    replica.receive(claim, 0)
    replica.receive(grant, 0)
    replica.receive(commit, 0)
    const committee = replica.state.tasks.get(task)!.commit!.committee
    const passes: AnyEnvelope[] = []
    for (const did of committee.slice(0, 3)) {
      const verifier = verifiers.find((v) => v.did === did)!
      passes.push(
        await envelope(verifier, 'ATTEST', thread, {
          task,
          commit: commit.id,
          verdict: 'pass',
          evalDigest: 'x',
        }),
      )
    }
    log.push(...passes)
    log.push(
      await envelope(decider, 'FINALIZE', thread, {
        task,
        commit: commit.id,
        attestations: passes as Envelope[],
      }),
    )
    if (i % 50 === 49) progress(`built ${i + 1}/${taskCount} tasks`)
  }
  while (log.length < 10_000) {
    log.push(
      await envelope(decider, 'CHECKPOINT', thread, {
        epoch: 1,
        merkleRoot: `${log.length}`.padStart(64, '0'),
        signers: [decider.did],
      }),
    )
  }
  const text = await writeTrace({
    recorder: requester,
    params,
    thread,
    entries: log.map((env, index) => ({ atMs: index, env })),
  })
  return { text, count: log.length }
}

export const BENCHMARKS: Record<string, Benchmark> = {
  web: {
    description:
      'web app in Chromium on loopback: join (navigation → first valid envelope), NEED → FINALIZE shown, gzipped bundle',
    run: runWebBenchmark,
  },
  crypto: {
    description: 'Ed25519 sign and verify (WebCrypto and noble side by side), envelope encode/decode',
    async run(progress) {
      const envs = await sampleEnvelopes(4000)
      const signer = await identity(9)
      const message = signingBytes(envs[0]!)
      let started = performance.now()
      for (let i = 0; i < 2000; i += 1) await signer.sign(message)
      const signPerS = 2000 / ((performance.now() - started) / 1000)
      progress(`sign ${round(signPerS)}/s`)

      started = performance.now()
      const errors = await verifyEnvelopes(envs)
      if (errors.some((e) => e !== undefined)) throw new Error('benchmark envelopes failed to verify')
      const verifyPerS = envs.length / ((performance.now() - started) / 1000)
      progress(`verify (webcrypto, batched) ${round(verifyPerS)}/s`)

      const publicKey = (await identity(1)).publicKey
      const sample = envs.slice(0, 400)
      started = performance.now()
      for (const env of sample) {
        if (!(await verifySignature(publicKey, signingBytes(env), env.sig, 'noble')))
          throw new Error('noble verify failed')
      }
      const noblePerS = sample.length / ((performance.now() - started) / 1000)
      progress(`verify (noble) ${round(noblePerS)}/s`)

      started = performance.now()
      const encoded = envs.map((env) => encodeEnvelope(env))
      const encodePerS = envs.length / ((performance.now() - started) / 1000)
      started = performance.now()
      for (const bytes of encoded) decodeEnvelope(bytes)
      const decodePerS = envs.length / ((performance.now() - started) / 1000)
      return {
        sign_per_s: { value: round(signPerS), unit: 'signatures/s' },
        verify_per_s: { value: round(verifyPerS), unit: 'envelopes/s (WebCrypto, batched, id + signature)' },
        verify_per_s_noble: { value: round(noblePerS), unit: 'signatures/s (@noble/ed25519)' },
        verify_speedup_webcrypto_vs_noble: { value: round(verifyPerS / noblePerS, 2), unit: 'ratio' },
        encode_per_s: { value: round(encodePerS), unit: 'envelopes/s (DAG-CBOR)' },
        decode_per_s: { value: round(decodePerS), unit: 'envelopes/s (DAG-CBOR + schema + id)' },
      }
    },
  },
  sim: {
    description: 'finalized tasks per CPU second in the simulator, faults off',
    async run(progress) {
      let finalized = 0
      const started = process.cpuUsage()
      for (let seed = 1; seed <= 20; seed += 1) {
        const result = await runSimulation({ seed, faults: 'none', needs: 3 })
        if (result.violations.length > 0)
          throw new Error(`seed ${seed} violated ${result.violations[0]!.property}`)
        finalized += result.finalizedTasks
      }
      const cpu = process.cpuUsage(started)
      const seconds = (cpu.user + cpu.system) / 1e6
      progress(`${finalized} tasks in ${round(seconds, 2)} CPU s`)
      return {
        sim_tasks_per_s: { value: round(finalized / seconds), unit: 'finalized tasks per CPU second' },
      }
    },
  },
  replay: {
    description: 'verify and replay a 10 000-envelope signed trace',
    async run(progress) {
      const { text, count } = await bigThread(progress)
      const started = performance.now()
      const result = await replayTrace(text)
      const seconds = (performance.now() - started) / 1000
      if (result.envelopes !== count) throw new Error('replay lost envelopes')
      const final = [...result.replica.state.tasks.values()].filter((task) => task.state === 'FINAL').length
      progress(`${count} envelopes, ${final} tasks FINAL, state ${result.stateHash.slice(0, 16)}…`)
      return {
        replay_10k_s: { value: round(seconds, 3), unit: `seconds for ${count} envelopes (verify + fold)` },
      }
    },
  },
  decide: {
    description:
      'DECIDE stores (embedded node:sqlite, 3-member etcd): tryDecide latency and throughput, raw etcd put/txn floor',
    run: runDecideBenchmark,
  },
  'decide-e2e': {
    description:
      'DECIDE end to end through an anchor: quorum → signed DECIDE at 4 gossip listeners (p50/p95), throughput; embedded and etcd',
    run: runDecideE2eBenchmark,
  },
  growth: {
    description:
      'anchor memory as finalized threads accumulate (GROWTH_THREADS checkpoints, default 1 000 and 10 000): live heap and RSS per checkpoint, KB per thread',
    run: runGrowthBenchmark,
  },
  'late-join': {
    description:
      'a late joiner catching up with a 1 004-envelope thread (libp2p, loopback): Automerge plan sync alone vs envelope sync alone',
    run: runLateJoinBenchmark,
  },
  'sync-heal': {
    description:
      'two peers apart while SYNC_HEAL_ENVELOPES (default 100 000) signed envelopes accumulate on one side, then healed by envelope sync (libp2p, loopback): ms to verify and fold them all',
    run: runSyncHealBenchmark,
  },
  cas: {
    description: 'a 1 MiB artifact fetched by one peer from another through Helia/bitswap (libp2p, loopback)',
    run: runCasBenchmark,
  },
  evict: {
    description: 'CPU per NEED of a flood at the undecided-thread bound (each NEED evicts one) vs below it',
    run: runEvictBenchmark,
  },
  ledger: {
    description:
      'credit ledger operations sequenced through the embedded consensus store; simulator with the economy on vs off',
    run: runLedgerBenchmark,
  },
  policy: {
    description:
      'policy evaluation latency (compiled base policy, gas-metered) and ingress gate cost vs. verification',
    run: runPolicyBenchmark,
  },
  bus: {
    description:
      'gossip bus: publish → validated at 9 peers of a 10-process loopback mesh at 1 000 envelopes/s, nats-server baseline',
    run: runBusBenchmark,
  },
  fuzz: {
    description:
      'structure-aware fuzzing of every wire decoder and the HTTP router, 1 000 000 inputs per target (FUZZ_BENCH_RUNS): inputs, crashes (must be 0), inputs/s',
    run: runFuzzBenchmark,
  },
  soak: {
    description:
      'a real anchor under bounded hostile load from SOAK_ATTACKERS (3) processes for SOAK_MINUTES (10) while a canary posts NEEDs: canary DECIDE p95 (bar < 2 000 ms) and FINAL p95, anchor RSS, disk and event-loop p99, attack counters',
    run: runSoakBenchmark,
  },
}
