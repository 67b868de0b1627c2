/**
 * A child process for manifests.test.ts: opens a ManifestStore in `argv[2]` and puts manifests of
 * 16 verifiers with rising seq, several at once, for ever; prints `<did> <seq>` once each put is
 * acknowledged (resolved without a refusal). The test kills it with SIGKILL mid-stream.
 */
import { signManifest } from '@can-swarm/peer'
import { makeIdentities, TEST_NET } from '../../../../test-support/envelopes.ts'
import { ManifestStore } from '../../src/anchor/manifests.ts'

const store = await ManifestStore.open(process.argv[2]!, TEST_NET)
const verifiers = await makeIdentities(16, 93)
for (let seq = 1; ; seq += 1) {
  await Promise.all(
    verifiers.map(async (identity, index) => {
      const manifest = await signManifest(identity, {
        net: TEST_NET,
        org: `org${index}`,
        asn: 'AS64500',
        region: 'eu',
        stake: seq,
        seq,
      })
      const refusal = await store.put(identity.did, manifest)
      if (refusal) throw new Error(refusal.error)
      process.stdout.write(`${identity.did} ${seq}\n`)
    }),
  )
}
