/**
 * The stored form of a decision: one JSON object with a fixed field order, read back with every
 * field checked so that a damaged or foreign value is reported instead of trusted.
 */
import {
  bucketOf,
  CanSwarmError,
  checkDecideRequest,
  type DecideRecord,
  StoreCorruptError,
} from '@can-swarm/peer'

/** The record a request becomes once decided. */
export function recordOf(request: DecideRecord | Omit<DecideRecord, 'bucket'>): DecideRecord {
  return {
    need: request.need,
    proposal: request.proposal,
    epoch: request.epoch,
    lamport: request.lamport,
    kPlan: request.kPlan,
    decider: request.decider,
    bucket: bucketOf(request.need),
  }
}

/** Encodes a record as JSON with a fixed field order. */
export function encodeRecord(record: DecideRecord): string {
  return JSON.stringify(recordOf(record))
}

/**
 * Decodes and checks a stored record. `where` names the key or file in the error.
 * @throws StoreCorruptError when the value is not a valid record for `need` (when given).
 */
export function decodeRecord(text: string, where: string, need?: string): DecideRecord {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new StoreCorruptError(where, 'a stored decision is not JSON', { cause: error })
  }
  return checkRecord(value, where, need)
}

/** Checks a record read from storage (see {@link decodeRecord}). */
export function checkRecord(value: unknown, where: string, need?: string): DecideRecord {
  if (typeof value !== 'object' || value === null) {
    throw new StoreCorruptError(where, 'a stored decision is not an object')
  }
  const record = value as DecideRecord
  try {
    checkDecideRequest(record)
  } catch (error) {
    if (error instanceof CanSwarmError) {
      throw new StoreCorruptError(where, `a stored decision has a bad ${error.field}`, { cause: error })
    }
    throw error
  }
  if (record.bucket !== bucketOf(record.need)) {
    throw new StoreCorruptError(where, `decision for ${record.need} has the wrong bucket ${record.bucket}`)
  }
  if (need !== undefined && record.need !== need) {
    throw new StoreCorruptError(where, `decision stored under ${need} is for ${record.need}`)
  }
  return recordOf(record)
}

/** Orders records by NEED (the order of `records()`). */
export function byNeed(a: DecideRecord, b: DecideRecord): number {
  return a.need < b.need ? -1 : a.need > b.need ? 1 : 0
}
