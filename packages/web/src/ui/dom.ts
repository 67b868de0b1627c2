/** A tiny DOM builder: `h('div', { class: 'x', onclick }, 'text', child)`. No framework needed. */

/** Attributes and event handlers of {@link h}; `on…` functions become listeners. */
export type Attrs = Record<string, string | number | boolean | undefined | ((event: Event) => void)>
/** What {@link h} takes as children; false/undefined/null are skipped. */
export type Child = Node | string | number | false | undefined | null | Child[]

/** Creates an element with attributes and children. */
export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag)
  setAttrs(element, attrs)
  append(element, children)
  return element
}

const SVG_NS = 'http://www.w3.org/2000/svg'

/** Creates an SVG element. */
export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const element = document.createElementNS(SVG_NS, tag)
  setAttrs(element, attrs)
  append(element, children)
  return element
}

function setAttrs(element: Element, attrs: Attrs): void {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue
    if (typeof value === 'function') element.addEventListener(key.slice(2), value)
    else element.setAttribute(key, value === true ? '' : String(value))
  }
}

function append(parent: Element, children: Child[]): void {
  for (const child of children) {
    if (child === false || child === undefined || child === null) continue
    if (Array.isArray(child)) append(parent, child)
    else parent.append(typeof child === 'number' ? String(child) : child)
  }
}

/** A did:key shortened for display: `did:key:z6Mk…abcd`. */
export function shortDid(did: string | undefined): string {
  if (!did) return '—'
  return did.length > 24 ? `${did.slice(0, 14)}…${did.slice(-6)}` : did
}

/** A long id shortened for display. */
export function shortId(id: string, keep = 8): string {
  return id.length > keep * 2 + 1 ? `${id.slice(0, keep)}…${id.slice(-keep)}` : id
}

/** Time of day of a timestamp, `HH:MM:SS`. */
export function clock(atMs: number): string {
  return new Date(atMs).toLocaleTimeString([], { hour12: false })
}
