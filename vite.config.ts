import { playwright } from '@vitest/browser-playwright'
import { configDefaults, defineConfig, type TestProjectConfiguration } from 'vitest/config'
import { CHROMIUM, CHROMIUM_ARGS, CHROMIUM_PERMISSIONS } from './e2e/support/chromium-flags.ts'
import { need } from './test-support/prerequisites.ts'

/**
 * The test projects (the web app's build config is packages/web/vite.config.ts):
 * - `node`: every package's tests in Node 24, the fuzzer's (fuzz/), the soak's (soak/) and the tools';
 * - `api`: `peer-api.test.ts` in Node, with the small real swarm it joins (test-support/);
 * - `chromium`: the isomorphic peer tests again, in Debian's Chromium (real WebCrypto Ed25519,
 *   the same DAG-CBOR, schemas and core), so that "runs in browsers" is tested, not assumed.
 */

/** Peer tests that must pass in both runtimes (they import no `node:` module). */
const ISOMORPHIC_TESTS = [
  'packages/peer/test/{codec,schemas,crypto,consensus,thread,capabilities,plan,plan.property,sim,economy,economy-sim,economy-derive,policy-iso,proofs,merkle,peer-api,plan-doc,plan-storage,plan-wasm,pool}.test.ts',
  // The tab's IndexedDB storage (skipped in Node, which has no IndexedDB).
  'packages/web/test/storage.test.ts',
]

/** A real anchor and worker peer for `peer-api.test.ts`, which runs in both projects. */
const SWARM_SETUP = 'test-support/swarm.global.ts'
const PEER_API_TEST = 'packages/peer/test/peer-api.test.ts'

/**
 * Tests run the packages from their TypeScript sources: the `can-swarm-source` export condition
 * (packages/<name>/package.json) picks src/ over dist/ in Vite's resolver, and in Node for every
 * process a test starts (an anchor, a mesh peer), also when vitest is run without npm (.npmrc).
 */
const SOURCE_CONDITION = 'can-swarm-source'
if (!(process.env.NODE_OPTIONS ?? '').includes(`--conditions=${SOURCE_CONDITION}`)) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --conditions=${SOURCE_CONDITION}`.trim()
}
const FROM_SOURCES = {
  resolve: { conditions: [SOURCE_CONDITION, 'module', 'browser', 'development|production'] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION, 'module', 'node', 'development|production'] } },
}

const projects: TestProjectConfiguration[] = [
  {
    ...FROM_SOURCES,
    test: {
      name: 'node',
      include: [
        'packages/*/test/**/*.test.ts',
        'fuzz/**/*.test.ts',
        'soak/**/*.test.ts',
        'tools/**/*.test.ts',
      ],
      exclude: [...configDefaults.exclude, PEER_API_TEST],
      environment: 'node',
      testTimeout: 60_000,
    },
  },
  {
    // The one Node test that needs a running swarm: its own project, so that only it starts one.
    ...FROM_SOURCES,
    test: {
      name: 'api',
      include: [PEER_API_TEST],
      environment: 'node',
      testTimeout: 60_000,
      globalSetup: [SWARM_SETUP],
    },
  },
]

// The web app's end-to-end tests (e2e/*.e2e.ts: real anchor processes, two Chromium tabs). They
// run through `npm run test:e2e` (e2e/run.ts), which puts them in a private network namespace and
// sets CAN_SWARM_E2E=1; a plain `vitest run` leaves them out.
if (process.env.CAN_SWARM_E2E === '1') {
  projects.push({
    ...FROM_SOURCES,
    test: {
      name: 'e2e',
      include: ['e2e/**/*.e2e.ts'],
      environment: 'node',
      testTimeout: 420_000,
      hookTimeout: 180_000,
      fileParallelism: false,
    },
  })
}

if (need('chromium', 'the chromium test project')) {
  projects.push({
    ...FROM_SOURCES,
    // Pre-bundled up front: discovered mid-run, Vite reloads the page and a test file fails to load.
    optimizeDeps: {
      include: [
        '@libp2p/bootstrap',
        '@libp2p/circuit-relay-v2',
        '@libp2p/crypto/keys',
        '@libp2p/gossipsub',
        '@libp2p/gossipsub/score',
        '@libp2p/identify',
        '@libp2p/keychain',
        '@libp2p/noise',
        '@libp2p/kad-dht',
        '@libp2p/peer-id',
        '@libp2p/ping',
        '@libp2p/pubsub-peer-discovery',
        '@libp2p/utils',
        '@libp2p/webrtc',
        '@libp2p/websockets',
        '@libp2p/yamux',
        '@multiformats/multiaddr',
        'libp2p',
      ],
    },
    test: {
      name: 'chromium',
      include: ISOMORPHIC_TESTS,
      api: { host: '127.0.0.1' },
      testTimeout: 60_000,
      globalSetup: [SWARM_SETUP],
      browser: {
        enabled: true,
        headless: true,
        screenshotFailures: false,
        provider: playwright({
          launchOptions: {
            executablePath: CHROMIUM,
            args: [...CHROMIUM_ARGS],
          },
          contextOptions: { permissions: [...CHROMIUM_PERMISSIONS] },
        }),
        instances: [{ browser: 'chromium' }],
      },
    },
  })
}

export default defineConfig({
  test: {
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    projects,
  },
})
