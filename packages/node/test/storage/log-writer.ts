/**
 * A child process for the crash tests: appends numbered records to a segment log in bursts and
 * prints `acked <n>` once record n is fsync'd (the acknowledgement), until killed or out of space.
 * Usage: node log-writer.ts <dir> <records> [maxSegmentBytes]
 */
import { SegmentLog } from '../../src/storage/segment-log.ts'

const [dir, total, segment] = process.argv.slice(2)
const { log } = SegmentLog.open(
  { dir: dir!, ...(segment ? { maxSegmentBytes: Number(segment) } : {}) },
  () => undefined,
)
const count = Number(total)
let n = 0
try {
  while (n < count) {
    const burst = 1 + Math.floor(Math.random() * 40)
    for (let i = 0; i < burst && n < count; i += 1) {
      n += 1
      // Records of varied sizes, each naming its number.
      log.append(new TextEncoder().encode(`record ${n} ${'x'.repeat(Math.floor(Math.random() * 2000))}`))
    }
    await log.flush()
    process.stdout.write(`acked ${n}\n`)
  }
  log.close()
  process.stdout.write('done\n')
} catch (error) {
  process.stdout.write(`failed ${(error as { code?: string }).code} ${(error as { errno?: string }).errno}\n`)
  process.exitCode = 3
}
