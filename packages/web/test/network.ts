/** A test network: a genesis signed by its anchors, and the parameters every replica folds with. */
import {
  type Genesis,
  type GenesisParams,
  genesisBody,
  type LocalIdentity,
  type NetworkParams,
  paramsFromGenesis,
  signGenesis,
} from '@can-swarm/peer'

/** Creates a bootstrap network whose anchors are `anchors` and whose genesis pool is `verifiers`. */
export async function testNetwork(options: {
  anchors: readonly LocalIdentity[]
  verifiers?: readonly string[]
  params?: Partial<GenesisParams>
}): Promise<{ genesis: Genesis; params: NetworkParams }> {
  const body = genesisBody({
    createdMs: Date.now(),
    anchors: options.anchors.map((anchor) => anchor.did),
    ...(options.params ? { params: options.params } : {}),
    pool: { bootstrap: true, verifiers: [...(options.verifiers ?? [])] },
  })
  const genesis = await signGenesis(body, options.anchors)
  return { genesis, params: paramsFromGenesis(genesis) }
}
