import { describe, expect, it } from 'vitest'
import {
  builtinCapabilities,
  CapabilityRegistry,
  sha256Capability,
  sortDedupeCapability,
  wordFrequencyCapability,
} from '../src/agent/capabilities.ts'
import { artifactCid, MemoryArtifactStore } from '../src/core/artifacts.ts'

const text = (value: string) => new TextEncoder().encode(value)
const read = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

describe('built-in capabilities', () => {
  it('sha256 gives the standard digest per input', () => {
    expect(read(sha256Capability([text('abc')]))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n',
    )
    expect(read(sha256Capability([text(''), text('abc')])).split('\n')).toHaveLength(3)
  })

  it('word-frequency counts words, most frequent first, ties by word', () => {
    const out = JSON.parse(
      read(wordFrequencyCapability([text("The cat and the hat. THE end, cat's"), text('and')])),
    )
    expect(out).toEqual([
      ['the', 3],
      ['and', 2],
      ['cat', 1],
      ["cat's", 1],
      ['end', 1],
      ['hat', 1],
    ])
  })

  it('sort-dedupe merges JSON lists and line lists', () => {
    expect(JSON.parse(read(sortDedupeCapability([text('["b","a","b"]'), text('c\na\n')])))).toEqual([
      'a',
      'b',
      'c',
    ])
    expect(JSON.parse(read(sortDedupeCapability([text('[[1,2],[1,2],3]')])))).toEqual([3, [1, 2]])
  })

  it('is deterministic: the same inputs give the same output CID', async () => {
    const registry = builtinCapabilities()
    const input = [text('one two two three three three')]
    for (const name of registry.names()) {
      expect(artifactCid(await registry.run(name, input))).toBe(artifactCid(await registry.run(name, input)))
    }
    expect(registry.names()).toEqual(['sha256', 'sort-dedupe', 'word-frequency'])
  })
})

describe('CapabilityRegistry', () => {
  it('rejects bad names, duplicates and prices with the field named', () => {
    const registry = new CapabilityRegistry()
    const manifest = { version: '1', produces: 'text/plain', price: 1, description: 'x' }
    expect(() => registry.register('Bad Name', () => text(''), manifest)).toThrow(
      expect.objectContaining({ field: 'name' }),
    )
    registry.register('ok', () => text(''), manifest)
    expect(() => registry.register('ok', () => text(''), manifest)).toThrow(/already registered/)
    expect(() => registry.register('neg', () => text(''), { ...manifest, price: -1 })).toThrow(
      expect.objectContaining({ field: 'manifest.price' }),
    )
    return expect(registry.run('missing', [])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})

describe('artifacts', () => {
  it('are addressed by a raw-codec CIDv1 of their bytes', async () => {
    const store = new MemoryArtifactStore()
    const cid = await store.put(text('hello'))
    expect(cid).toMatch(/^bafkrei/)
    expect(cid).toBe(artifactCid(text('hello')))
    expect(read((await store.get(cid))!)).toBe('hello')
    expect(await store.get(artifactCid(text('other')))).toBeUndefined()
  })
})
