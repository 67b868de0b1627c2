/**
 * The `fuzz` benchmark: every fuzz target (fuzz/targets.ts) with 1 000 000 inputs each (set
 * `FUZZ_BENCH_RUNS` for fewer or more, `FUZZ_SEED` for another run seed). Reports `fuzz_inputs`,
 * `fuzz_crashes` (must be 0) and `fuzz_inputs_per_s`, overall and per target; each crash is printed
 * with what reproduces it.
 */
import { fuzzMetrics, type Metric } from '../fuzz/engine.ts'
import { fuzzTargets, TARGET_NAMES } from '../fuzz/targets.ts'

export async function runFuzzBenchmark(progress: (line: string) => void): Promise<Record<string, Metric>> {
  const runs = Number(process.env.FUZZ_BENCH_RUNS ?? 1_000_000)
  const seed = Number(process.env.FUZZ_SEED ?? 1)
  const reports = await fuzzTargets(TARGET_NAMES, { runs, seed, progress, progressEveryMs: 30_000 })
  for (const report of reports) {
    progress(
      `${report.target}: ${report.inputs} inputs, ${report.crashes.length} crashes, ${Math.round(report.inputsPerS)}/s`,
    )
    for (const crash of report.crashes)
      progress(
        `  CRASH ${crash.reason}: ${crash.detail} — npm run fuzz -- --target ${crash.target} --seed ${crash.seed} --index ${crash.index}`,
      )
  }
  return fuzzMetrics(reports)
}
