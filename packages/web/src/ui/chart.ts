/** Small SVG charts (no library): bars for rates, a line for latencies. */
import { s } from './dom.ts'

/** Options of {@link barChart} and {@link lineChart}. */
export interface ChartOptions {
  width?: number
  height?: number
  /** Accessible label. */
  label: string
  /** Unit shown with the maximum. */
  unit: string
  /** Label of the left end of the time axis. @default '−60 s' */
  since?: string
}

function frame(options: ChartOptions, max: number, ...children: SVGElement[]): SVGElement {
  const width = options.width ?? 360
  const height = options.height ?? 90
  return s(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${width} ${height + 14}`,
      role: 'img',
      'aria-label': options.label,
      preserveAspectRatio: 'none',
    },
    s('line', { x1: 0, y1: height, x2: width, y2: height, class: 'axis' }),
    ...children,
    s('text', { x: 2, y: height + 12, class: 'tick' }, options.since ?? '−60 s'),
    s('text', { x: width - 2, y: height + 12, class: 'tick', 'text-anchor': 'end' }, 'now'),
    s('text', { x: 2, y: 10, class: 'tick' }, `max ${Math.round(max * 10) / 10} ${options.unit}`),
  )
}

/** Stacked bars, one per value pair (e.g. received, published per second). */
export function barChart(
  series: ReadonlyArray<readonly [number, number]>,
  options: ChartOptions,
): SVGElement {
  const width = options.width ?? 360
  const height = options.height ?? 90
  const max = Math.max(1, ...series.map(([a, b]) => a + b))
  const step = width / Math.max(1, series.length)
  const bars: SVGElement[] = []
  series.forEach(([a, b], index) => {
    const ha = (a / max) * (height - 14)
    const hb = (b / max) * (height - 14)
    const x = index * step + 1
    if (a > 0) bars.push(s('rect', { x, y: height - ha, width: step - 2, height: ha, class: 'bar-a' }))
    if (b > 0) bars.push(s('rect', { x, y: height - ha - hb, width: step - 2, height: hb, class: 'bar-b' }))
  })
  return frame(options, max, ...bars)
}

/** Lines over time; `undefined` points are gaps. */
export function lineChart(
  lines: ReadonlyArray<{ values: ReadonlyArray<number | undefined>; class: string }>,
  options: ChartOptions,
): SVGElement {
  const width = options.width ?? 360
  const height = options.height ?? 90
  const all = lines.flatMap((line) => line.values.filter((v): v is number => v !== undefined))
  const max = Math.max(1, ...all)
  const paths = lines.map((line) => {
    const step = width / Math.max(1, line.values.length - 1)
    let d = ''
    let pen = false
    line.values.forEach((value, index) => {
      if (value === undefined) {
        pen = false
        return
      }
      const x = index * step
      const y = height - (value / max) * (height - 14)
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`
      pen = true
    })
    return s('path', { d, class: line.class })
  })
  const dots = lines.flatMap((line) => {
    const step = width / Math.max(1, line.values.length - 1)
    return line.values.flatMap((value, index) =>
      value === undefined
        ? []
        : [
            s('circle', {
              cx: index * step,
              cy: height - (value / max) * (height - 14),
              r: 1.6,
              class: line.class,
            }),
          ],
    )
  })
  return frame(options, max, ...paths, ...dots)
}
