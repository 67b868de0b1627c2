/**
 * `npm run test:e2e`: the browser end-to-end tests (vitest project `e2e`). As root, where
 * `unshare` exists, they run inside a private network namespace holding only `lo` (DESIGN.md:
 * browser↔browser WebRTC is reliable there and no stray traffic can leave); otherwise on the host's
 * loopback, with a notice.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const ROOT = join(import.meta.dirname, '..')
const vitest = [
  process.execPath,
  join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'),
  'run',
  '--project',
  'e2e',
  '--outputFile.json=test-results/vitest-e2e.json',
  ...process.argv.slice(2),
]
const env = { ...process.env, CAN_SWARM_E2E: '1' }

function hasNamespaceTools(): boolean {
  if (process.getuid?.() !== 0) return false
  const probe = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up'], { stdio: 'ignore' })
  return probe.status === 0
}

let result: ReturnType<typeof spawnSync>
if (process.env.CAN_SWARM_E2E_NETNS !== '0' && hasNamespaceTools()) {
  console.log('[e2e] running inside a private network namespace (unshare -n, only lo)')
  const quoted = vitest.map((arg) => `'${arg.replaceAll("'", `'\\''`)}'`).join(' ')
  result = spawnSync('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec ${quoted}`], {
    cwd: ROOT,
    env,
    stdio: 'inherit',
  })
} else {
  console.log(
    '[e2e] NOTICE: no private network namespace (needs root, unshare and ip): running on the host loopback',
  )
  result = spawnSync(vitest[0]!, vitest.slice(1), { cwd: ROOT, env, stdio: 'inherit' })
}
process.exit(result.status ?? 1)
