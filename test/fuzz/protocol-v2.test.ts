import { createECDH, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KNOCK_REJECT_REASONS,
  V2_MAX_DATAGRAM,
  openKnock,
  openV2Knock,
  verifyKnockSignature,
  type KnockRejectReason,
} from '../../client-lib/protocol/index.js';
import type { Decoded } from '../../client-lib/protocol/result.js';
import { V2_VECTOR_FILES, damagedPacket, editedBytes, forEveryBitFlip, hex, loadVector, sealV2, v2Mac1Of } from '../vectors/vectors.js';

const SEED = 0x5eed2026;
const vectors = V2_VECTOR_FILES.map(loadVector);
const basic = vectors[0]!;
const { context, serverCertificateDer } = basic;
const knownReasons = new Set<string>(KNOCK_REJECT_REASONS);
const header = Buffer.from('734b0201', 'hex');

function expectTypedRejection(result: Decoded<unknown, KnockRejectReason>, allowed?: readonly KnockRejectReason[]): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(knownReasons.has(result.reason), `unknown reason ${result.reason}`).toBe(true);
  if (allowed) expect(allowed).toContain(result.reason);
}

function withMac1(sealed: Buffer): Buffer {
  return Buffer.concat([sealed, v2Mac1Of(serverCertificateDer, sealed)]);
}

describe('v2 decoder against random input (seeded)', () => {
  it('random bytes of any length are a typed rejection', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1400 }), (bytes) => expectTypedRejection(openKnock(Buffer.from(bytes), context))),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('random bytes behind a valid v2 header are a typed rejection', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: V2_MAX_DATAGRAM + 20 }), (bytes) =>
        expectTypedRejection(openV2Knock(Buffer.concat([header, bytes]), context)),
      ),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('random points and ciphertexts behind a valid mac1 fail at ECDH or at GCM', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 65, maxLength: 65 }), fc.uint8Array({ minLength: 300, maxLength: 1100 }), (point, rest) => {
        const packet = withMac1(Buffer.concat([header, point, rest]));
        expectTypedRejection(openV2Knock(packet, context), ['bad-ephemeral-key', 'decrypt-failed']);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('valid points with random ciphertexts behind a valid mac1 fail at GCM', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 300, maxLength: 1100 }), (rest) => {
        const ecdh = createECDH('prime256v1');
        ecdh.generateKeys();
        const packet = withMac1(Buffer.concat([header, ecdh.getPublicKey(), rest]));
        expectTypedRejection(openV2Knock(packet, context), ['decrypt-failed']);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('random plaintexts, properly encrypted and authenticated, are a typed rejection', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 200, maxLength: 1100 }), (plaintext) =>
        expectTypedRejection(openV2Knock(sealV2(Buffer.from(plaintext), serverCertificateDer, randomBytes(32)), context)),
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('mutated plaintexts, re-encrypted properly, never throw and never carry a valid signature', () => {
    const ephemeral = hex(basic.vector.input.ephemeralPrivateKeyHex);
    fc.assert(
      fc.property(editedBytes(hex(basic.vector.derived.plaintextHex)), (mutated) => {
        const result = openV2Knock(sealV2(mutated, serverCertificateDer, ephemeral), context);
        if (result.ok) expect(verifyKnockSignature(result.value, basic.clientPublicKey)).toBe(false);
        else expectTypedRejection(result);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

});

describe('v2 decoder against damaged knocks', () => {
  it.each(vectors.map((loaded) => [loaded.vector.datagramLength, loaded] as const))(
    'every single bit flip of a %i-byte knock is rejected (exhaustive)',
    (_length, loaded) => {
      const packet = Buffer.from(loaded.datagram);
      forEveryBitFlip(packet, (flipped) => expectTypedRejection(openKnock(flipped, loaded.context)));
      expect(openV2Knock(packet, loaded.context).ok).toBe(true); // restored
    },
  );


  it('every truncation of a knock is rejected (exhaustive)', () => {
    for (let length = 0; length < basic.datagram.length; length++) {
      expectTypedRejection(openKnock(basic.datagram.subarray(0, length), context));
    }
  });

  it.each(vectors.map((loaded) => [loaded.vector.datagramLength, loaded] as const))(
    'random byte changes, insertions and extensions of a %i-byte knock never open (seeded)',
    (_length, loaded) => {
      fc.assert(
        fc.property(damagedPacket(loaded.datagram, 16), (packet) => expectTypedRejection(openKnock(packet, loaded.context))),
        { seed: SEED, numRuns: 1000 },
      );
    },
  );

});
