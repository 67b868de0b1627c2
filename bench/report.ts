/**
 * How benchmark-like runs (`npm run bench`, `npm run soak`) print and save their metrics: a table
 * on stdout, and `{"metrics":{…},…,"environment":{…}}` as JSON in a file.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

export interface Metric {
  value: number
  unit: string
}

/** Prints `metrics` as a table (name, value, unit) on stdout. */
export function printMetrics(metrics: Record<string, Metric>): void {
  const rows = Object.entries(metrics).map(([name, metric]) => [name, String(metric.value), metric.unit])
  const width = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column]!.length), 6))
  console.log(`${'metric'.padEnd(width[0]!)}  ${'value'.padStart(width[1]!)}  unit`)
  for (const row of rows)
    console.log(`${row[0]!.padEnd(width[0]!)}  ${row[1]!.padStart(width[1]!)}  ${row[2]}`)
}

/** Writes `{ metrics, …extra, environment }` to `file` (its directory made as needed). */
export async function writeMetrics(
  file: string,
  metrics: Record<string, Metric>,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const report = {
    metrics,
    ...extra,
    environment: {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      at: new Date().toISOString(),
    },
  }
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`)
}
