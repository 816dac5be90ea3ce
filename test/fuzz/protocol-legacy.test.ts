import { createECDH, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  LEGACY_MAX_DATAGRAM,
  LEGACY_REJECT_REASONS,
  openLegacyKnock,
  verifyKnockSignature,
  type LegacyRejectReason,
  type OpenedKnock,
} from '../../client-lib/protocol/index.js';
import type { Decoded } from '../../client-lib/protocol/result.js';
import { LEGACY_VECTOR_FILE, damagedPacket, editedBytes, forEveryBitFlip, hex, loadVector, sealLegacy } from '../vectors/vectors.js';

const SEED = 0x1e6ac7;
const loaded = loadVector(LEGACY_VECTOR_FILE);
const { context, datagram, serverCertificateDer, clientPublicKey } = loaded;
const knownReasons = new Set<string>(LEGACY_REJECT_REASONS);
const header = Buffer.from('61010000', 'hex');

function expectTypedRejection(result: Decoded<OpenedKnock, LegacyRejectReason>): void {
  expect(result.ok).toBe(false);
  if (!result.ok) expect(knownReasons.has(result.reason), `unknown reason ${result.reason}`).toBe(true);
}

/** 1.0.0 has no MAC: a damaged knock may still parse, but must never carry a valid signature. */
function expectNoValidKnock(result: Decoded<OpenedKnock, LegacyRejectReason>): void {
  if (result.ok) expect(verifyKnockSignature(result.value, clientPublicKey)).toBe(false);
  else expect(knownReasons.has(result.reason), `unknown reason ${result.reason}`).toBe(true);
}

describe('legacy decoder against random input (seeded)', () => {
  it('random bytes behind the 1.0.0 header are a typed rejection', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: LEGACY_MAX_DATAGRAM + 20 }), (bytes) =>
        expectTypedRejection(openLegacyKnock(Buffer.concat([header, bytes]), context)),
      ),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('random whole-block ciphertexts with a valid point are a typed rejection', () => {
    fc.assert(
      fc.property(fc.integer({ min: 15, max: 87 }), (blocks) => {
        const ecdh = createECDH('prime256v1');
        ecdh.generateKeys();
        expectTypedRejection(openLegacyKnock(Buffer.concat([header, randomBytes(blocks * 16), ecdh.getPublicKey()]), context));
      }),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('random plaintexts, properly encrypted, are a typed rejection', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 230, maxLength: 1300 }), (plaintext) =>
        expectTypedRejection(openLegacyKnock(sealLegacy(Buffer.from(plaintext), serverCertificateDer, randomBytes(32)), context)),
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('mutated plaintexts, re-encrypted properly, never throw and never carry a valid signature', () => {
    const ephemeral = hex(loaded.vector.input.ephemeralPrivateKeyHex);
    fc.assert(
      fc.property(editedBytes(hex(loaded.vector.derived.plaintextHex)), (mutated) =>
        expectNoValidKnock(openLegacyKnock(sealLegacy(mutated, serverCertificateDer, ephemeral), context)),
      ),
      { seed: SEED, numRuns: 500 },
    );
  });

});

describe('legacy decoder against damaged knocks', () => {
  it('no single bit flip yields a knock with a valid signature (exhaustive)', () => {
    const packet = Buffer.from(datagram);
    forEveryBitFlip(packet, (flipped) => expectNoValidKnock(openLegacyKnock(flipped, context)));
    expect(openLegacyKnock(packet, context).ok).toBe(true); // restored
  });


  it('every truncation is a typed rejection (exhaustive)', () => {
    for (let length = 0; length < datagram.length; length++) expectTypedRejection(openLegacyKnock(datagram.subarray(0, length), context));
  });

  it('random byte changes, insertions and extensions never throw and never yield a valid signature (seeded)', () => {
    fc.assert(
      fc.property(damagedPacket(datagram, 32), (packet) => expectNoValidKnock(openLegacyKnock(packet, context))),
      { seed: SEED, numRuns: 2000 },
    );
  });

});
