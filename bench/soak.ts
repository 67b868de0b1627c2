/**
 * The `soak` benchmark: `npm run soak` for `SOAK_MINUTES` minutes (default 10) with
 * `SOAK_ATTACKERS` hostile processes (default 3); see soak/soak.ts. Its metrics are the soak's:
 * `soak_canary_decide_p95_ms` (bar < 2 000), `soak_canary_final_p95_ms`, `soak_canary_finalized`,
 * `soak_rss_max_mb`, `soak_disk_max_mb`, `soak_eventloop_p99_ms`, `soak_ok` (the verdict) and what
 * each attack sent and got.
 */
import { runSoak } from '../soak/soak.ts'
import type { Metric } from './report.ts'

export async function runSoakBenchmark(progress: (line: string) => void): Promise<Record<string, Metric>> {
  const report = await runSoak({
    minutes: Number(process.env.SOAK_MINUTES ?? 10),
    attackers: Number(process.env.SOAK_ATTACKERS ?? 3),
    progress,
  })
  progress(report.ok ? 'verdict: pass' : `verdict: FAIL — ${report.failures.join('; ')}`)
  return report.metrics
}
