/**
 * The gossip topic scheme. A topic per envelope kind per thread would not scale (every peer would
 * hold thousands of meshes); one topic for everything would make every peer carry every thread.
 * So:
 *
 * - **Shard topics** `can-swarm/1/shard/<n>`: every envelope of a thread travels on the shard
 *   `n = bucketOf(thread) mod shardCount` (the same SHA-256 bucket the consensus store uses).
 *   A full peer (anchor, verifier) subscribes to every shard; a light peer only to the shards of
 *   the threads it follows. `shardCount` is a network constant (default 8): all peers of a swarm
 *   must agree on it.
 * - **Capability topics** `can-swarm/1/cap/<capability>`: a NEED is *also* announced on the topic
 *   of each capability it requires (as a one-envelope batch frame, so its gossip message id
 *   differs from the shard copy), so that a worker subscribed only to its capabilities hears of
 *   new work and can then follow the NEED's shard. Receivers deduplicate by envelope id.
 */
import { bucketOf } from '../core/consensus.ts'
import { InvalidArgumentError } from '../core/errors.ts'

/** Prefix of every CAN Swarm gossip topic (protocol major version 1). */
export const TOPIC_PREFIX = 'can-swarm/1'
/** Default number of shard topics. */
export const DEFAULT_SHARD_COUNT = 8
/** Most shard topics a swarm may use (the consensus key space has 256 buckets). */
export const MAX_SHARD_COUNT = 256

/** Checks a shard count: an integer in 1…256. */
export function checkShardCount(shardCount: number): void {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > MAX_SHARD_COUNT) {
    throw new InvalidArgumentError(
      `shardCount must be an integer from 1 to ${MAX_SHARD_COUNT}, got ${String(shardCount)}`,
      'shardCount',
    )
  }
}

/** The shard number of a thread. */
export function shardOf(thread: string, shardCount = DEFAULT_SHARD_COUNT): number {
  return bucketOf(thread) % shardCount
}

/** The shard topic with number `shard`. */
export function shardTopic(shard: number): string {
  return `${TOPIC_PREFIX}/shard/${shard}`
}

/** The shard topic that carries a thread's envelopes. */
export function threadTopic(thread: string, shardCount = DEFAULT_SHARD_COUNT): string {
  return shardTopic(shardOf(thread, shardCount))
}

/** Every shard topic of a swarm. */
export function allShardTopics(shardCount = DEFAULT_SHARD_COUNT): string[] {
  checkShardCount(shardCount)
  return Array.from({ length: shardCount }, (_, shard) => shardTopic(shard))
}

/** The capability topic on which NEEDs requiring `capability` are announced. */
export function capabilityTopic(capability: string): string {
  return `${TOPIC_PREFIX}/cap/${capability}`
}

/** True for topics of this scheme (shard or capability). */
export function isSwarmTopic(topic: string): boolean {
  return topic.startsWith(`${TOPIC_PREFIX}/shard/`) || topic.startsWith(`${TOPIC_PREFIX}/cap/`)
}
