import { describe, expect, it } from 'vitest'
import { makeIdentities, testParams } from '../../../test-support/envelopes.ts'
import { Agent } from '../src/agent/agent.ts'
import {
  builtinCapabilities,
  CapabilityRegistry,
  chainPrice,
  checkNeedRequest,
  sha256Capability,
  sortDedupeCapability,
  wordFrequencyCapability,
} from '../src/agent/capabilities.ts'
import { SeededRandom } from '../src/agent/ports.ts'
import { artifactCid, MemoryArtifactStore } from '../src/core/artifacts.ts'
import { InvalidArgumentError } from '../src/core/errors.ts'

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

describe('checking a NEED before it is posted', () => {
  const registry = builtinCapabilities()
  const price = chainPrice(registry, ['word-frequency', 'sha256'])!

  it('passes known capabilities with a budget that covers their listed prices', () => {
    expect(price).toBe(
      registry.get('word-frequency')!.manifest.price + registry.get('sha256')!.manifest.price,
    )
    expect(() =>
      checkNeedRequest({ requires: ['word-frequency', 'sha256'], budget: price }, registry),
    ).not.toThrow()
    expect(chainPrice(registry, ['word-frequency', 'nope'])).toBeUndefined()
  })

  it('refuses unknown capabilities, a budget below the price and a budget that is no positive integer, naming the field', () => {
    const refused = (requires: string[], budget: number) => {
      try {
        checkNeedRequest({ requires, budget }, registry)
      } catch (error) {
        return [(error as InvalidArgumentError).field, (error as Error).message]
      }
      return undefined
    }
    const [field, message] = refused(['word-frequncy', 'sha256'], 100)!
    expect(field).toBe('requires')
    expect(message).toContain('unknown capability word-frequncy')
    expect(message).toContain('sha256, sort-dedupe, word-frequency')
    expect(refused(['word-frequency', 'sha256'], price - 1)).toEqual([
      'budget',
      expect.stringContaining('insufficient budget'),
    ])
    for (const budget of [0, -1, 1.5, Number.NaN]) expect(refused(['sha256'], budget)?.[0]).toBe('budget')
  })

  it('is what Agent.post does first: nothing is stored or published for a refused NEED, unless unlisted', async () => {
    const published: unknown[] = []
    const artifacts = new MemoryArtifactStore()
    const [identity] = await makeIdentities(1, 0x51)
    const agent = new Agent({
      identity: identity!,
      params: testParams({ bootstrap: true }),
      bus: { publish: (env) => published.push(env) },
      clock: { now: () => 0, setTimer: () => () => undefined },
      random: new SeededRandom(1),
      artifacts,
    })
    const input = new TextEncoder().encode('a b')
    await expect(agent.post({ requires: ['shout'], inputs: [input], budget: 10 })).rejects.toThrow(
      InvalidArgumentError,
    )
    await expect(agent.post({ requires: ['sha256'], inputs: [input], budget: 0 })).rejects.toThrow(/budget/)
    expect(published).toEqual([])
    expect(artifacts.size).toBe(0)
    await agent.post({ requires: ['shout'], inputs: [input], budget: 10, unlisted: true })
    expect(published).toHaveLength(1)
    agent.stop()
  })
})
