/**
 * What the pool and a verify worker say to each other. A batch of knocks
 * travels as one transferred ArrayBuffer of datagrams plus small arrays, so
 * sending it costs one copy, not one structured clone per packet.
 */
import type { TrustOptions } from '../trust/index.js';
import type { TimedKnock } from './examiner.js';
import type { Examination } from './pipeline.js';

export interface PackedKnocks {
  /** Every datagram, back to back. */
  readonly bytes: ArrayBuffer;
  /** End offset of each datagram in `bytes`. */
  readonly ends: readonly number[];
  readonly sources: readonly string[];
  readonly frameLengths: readonly number[];
  readonly receivedAtMs: readonly number[];
}

export type ToWorker =
  | { readonly kind: 'examine'; readonly batchId: number; readonly knocks: PackedKnocks }
  | { readonly kind: 'trust'; readonly requestId: number; readonly trust: TrustOptions };

export type FromWorker =
  | { readonly kind: 'examined'; readonly batchId: number; readonly examinations: readonly Examination[] }
  | { readonly kind: 'trust-applied'; readonly requestId: number }
  | { readonly kind: 'trust-failed'; readonly requestId: number; readonly message: string };

export function packKnocks(knocks: readonly TimedKnock[]): PackedKnocks {
  let total = 0;
  for (const knock of knocks) total += knock.datagram.length;
  const bytes = new Uint8Array(total);
  const ends: number[] = [];
  let offset = 0;
  for (const knock of knocks) {
    bytes.set(knock.datagram, offset);
    offset += knock.datagram.length;
    ends.push(offset);
  }
  return {
    bytes: bytes.buffer,
    ends,
    sources: knocks.map((knock) => knock.source),
    frameLengths: knocks.map((knock) => knock.frameLength),
    receivedAtMs: knocks.map((knock) => knock.receivedAtMs),
  };
}

export function unpackKnocks(packed: PackedKnocks): TimedKnock[] {
  let start = 0;
  return packed.ends.map((end, index) => {
    const knock = {
      datagram: Buffer.from(packed.bytes, start, end - start),
      source: packed.sources[index]!,
      frameLength: packed.frameLengths[index]!,
      receivedAtMs: packed.receivedAtMs[index]!,
    };
    start = end;
    return knock;
  });
}
