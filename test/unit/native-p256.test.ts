/**
 * The native P-256 path against node:crypto, the reference it replaces on the
 * packet path: the same secrets, the same signature decisions (including
 * damaged and non-canonical DER), the same points refused. It must be built:
 * a missing addon fails here rather than silently testing the fallback only.
 */
import { createCipheriv, createECDH, createHmac, createPrivateKey, createPublicKey, hkdfSync, randomBytes, sign, verify } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { P256Key } from '../../client-lib/certificate/p256-key.js';
import { engineOf, p256Engine, type NativeP256 } from '../../client-lib/native-p256.js';

const SEED = 0x9256;
const ORDER = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex');
const FIELD_PRIME = Buffer.from('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff', 'hex');

function nativeP256(): NativeP256 {
  expect(p256Engine.description).toMatch(/^native P-256 on node's OpenSSL 3/);
  return p256Engine.native!;
}

/**
 * A P-256 signing key and its point, made with createECDH and imported as JWK:
 * no generateKeyPairSync and no KeyObject export, whose mix under GC can
 * deadlock Node 20 (a KeyGenJob finalized while ExportJWK holds its lock).
 */
function p256Signer() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const point = ecdh.getPublicKey();
  const jwk = { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') };
  const privateKey = createPrivateKey({ key: { ...jwk, d: ecdh.getPrivateKey().toString('base64url') }, format: 'jwk' });
  const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
  const spki = Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), point]);
  return { privateKey, publicKey, point, spki };
}

const orderValue = BigInt(`0x${ORDER.toString('hex')}`);

function compressed(point: Buffer): Buffer {
  return Buffer.concat([Buffer.of(2 + (point[64]! & 1)), point.subarray(1, 33)]);
}

/** DER INTEGER content of a non-negative value: minimal, with a 0x00 before a high bit. */
function integerBytes(value: bigint): Buffer {
  const hex = value.toString(16);
  const bytes = Buffer.from(hex.length % 2 === 1 ? `0${hex}` : hex, 'hex');
  return bytes[0]! >= 0x80 ? Buffer.concat([Buffer.of(0), bytes]) : bytes;
}

/** ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }, short-form lengths (a P-256 signature fits). */
function derSignature(r: bigint, s: bigint): Buffer {
  const parts = [r, s].map((value) => {
    const content = integerBytes(value);
    return Buffer.concat([Buffer.of(0x02, content.length), content]);
  });
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.of(0x30, body.length), body]);
}

function signatureNumbers(signature: Buffer): { r: bigint; s: bigint } {
  const rLength = signature[3]!;
  const r = signature.subarray(4, 4 + rLength);
  const s = signature.subarray(6 + rLength, 6 + rLength + signature[5 + rLength]!);
  return { r: BigInt(`0x${r.toString('hex')}`), s: BigInt(`0x${s.toString('hex')}`) };
}

function nodeAcceptsPoint(point: Buffer): boolean {
  const spkiPrefix = Buffer.from(point.length === 65 ? '3059301306072a8648ce3d020106082a8648ce3d030107034200' : '3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
  try {
    createPublicKey({ key: Buffer.concat([spkiPrefix, point]), format: 'der', type: 'spki' });
    return true;
  } catch {
    return false;
  }
}

function nodeSecret(ecdh: ReturnType<typeof createECDH>, point: Buffer): Buffer | null {
  try {
    return ecdh.computeSecret(point);
  } catch {
    return null;
  }
}

describe('native P-256 agrees with node:crypto', () => {
  const native = nativeP256();
  const server = createECDH('prime256v1');
  server.generateKeys();
  const agreement = native.createAgreement(server.getPrivateKey());

  it('derives the same secret as ECDH.computeSecret, for uncompressed and compressed points', () => {
    for (let index = 0; index < 64; index += 1) {
      const peer = createECDH('prime256v1');
      peer.generateKeys();
      const expected = server.computeSecret(peer.getPublicKey());
      expect(native.derive(agreement, peer.getPublicKey())).toEqual(expected);
      expect(native.derive(agreement, peer.getPublicKey(undefined, 'compressed'))).toEqual(expected);
    }
  });

  it('refuses what node refuses: off the curve, wrong prefix or length, coordinates ≥ p, the point at infinity', () => {
    const good = createECDH('prime256v1');
    good.generateKeys();
    const point = good.getPublicKey();
    const offCurve = Buffer.from(point);
    offCurve[64]! ^= 1;
    const bad = [
      offCurve,
      Buffer.concat([Buffer.of(5), point.subarray(1)]),
      point.subarray(0, 64),
      Buffer.concat([point, Buffer.of(0)]),
      Buffer.concat([Buffer.of(4), FIELD_PRIME, point.subarray(33)]),
      Buffer.of(0),
      Buffer.alloc(65),
      Buffer.alloc(0),
    ];
    for (const candidate of bad) {
      expect(native.derive(agreement, candidate), candidate.toString('hex')).toBeNull();
      expect(native.createVerifier(candidate)).toBeNull();
      expect(nodeSecret(server, candidate)).toBeNull();
    }
  });

  it('agrees on random bytes as points (seeded)', () => {
    fc.assert(
      fc.property(fc.constantFrom(4, 2, 3), fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 64 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 64, maxLength: 64 })), (prefix, body) => {
        const candidate = Buffer.concat([Buffer.of(prefix), body]);
        expect(native.derive(agreement, candidate)).toEqual(nodeSecret(server, candidate));
        // The SPKI wrapper below is exact only for the two lengths a point can have.
        if (candidate.length === 33 || candidate.length === 65) expect(native.createVerifier(candidate) !== null).toBe(nodeAcceptsPoint(candidate));
      }),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('refuses a private scalar of 0, n or more, or the wrong length', () => {
    for (const scalar of [Buffer.alloc(32), ORDER, Buffer.alloc(32, 0xff), Buffer.alloc(31, 1), Buffer.alloc(33, 1)]) {
      expect(() => native.createAgreement(scalar)).toThrow();
    }
    const nMinusOne = Buffer.from(ORDER);
    nMinusOne[31]! -= 1;
    expect(native.createAgreement(nMinusOne)).toBeTypeOf('object');
  });

  it('answers the same as verify() for good, damaged and foreign signatures (seeded)', () => {
    const signer = p256Signer();
    const other = p256Signer();
    const key = native.createVerifier(signer.point)!;
    const otherKey = native.createVerifier(other.point)!;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), fc.nat(), fc.nat(), (message, flipAt, byteValue) => {
        const signature = sign('sha256', message, signer.privateKey);
        expect(native.verify(key, message, signature)).toBe(true);
        const damaged = Buffer.from(signature);
        damaged[flipAt % damaged.length] = byteValue % 256;
        expect(native.verify(key, message, damaged)).toBe(verify('sha256', message, signer.publicKey, damaged));
        expect(native.verify(otherKey, message, signature)).toBe(false);
        if (message.length > 0) {
          const changed = Buffer.from(message);
          changed[flipAt % changed.length]! ^= 1;
          expect(native.verify(key, changed, signature)).toBe(false);
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('refuses non-canonical DER that encodes a valid signature, as OpenSSL does for node', () => {
    const signer = p256Signer();
    const message = randomBytes(100);
    const signature = sign('sha256', message, signer.privateKey);
    // The same SEQUENCE with a long-form length: BER, not DER.
    const longForm = Buffer.concat([Buffer.of(0x30, 0x81, signature[1]!), signature.subarray(2)]);
    expect(verify('sha256', message, signer.publicKey, longForm)).toBe(false);
    const key = native.createVerifier(signer.point)!;
    expect(native.verify(key, message, longForm)).toBe(false);
    expect(native.verify(key, message, Buffer.concat([signature, Buffer.of(0)]))).toBe(false);
  });

  it('verifies with an issuer table (a CA key) exactly as verify() does: good, damaged, foreign and high-S signatures (seeded)', () => {
    const signer = p256Signer();
    const other = p256Signer();
    const table = native.createIssuerVerifier(signer.point)!;
    const compressedTable = native.createIssuerVerifier(compressed(signer.point))!;
    const otherTable = native.createIssuerVerifier(other.point)!;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), fc.nat(), fc.nat(), (message, flipAt, byteValue) => {
        const signature = sign('sha256', message, signer.privateKey);
        const { r, s } = signatureNumbers(signature);
        // ECDSA does not insist on low S: (r, n − s) is the same signature to OpenSSL.
        const highS = derSignature(r, orderValue - s);
        const damaged = Buffer.from(signature);
        damaged[flipAt % damaged.length] = byteValue % 256;
        const changed = Buffer.from(message);
        if (changed.length > 0) changed[flipAt % changed.length]! ^= 1;
        for (const [bytes, candidate] of [[message, signature], [message, highS], [message, damaged], [changed, signature]] as const) {
          const reference = verify('sha256', bytes, signer.publicKey, candidate);
          expect(native.verify(table, bytes, candidate)).toBe(reference);
          expect(native.verify(compressedTable, bytes, candidate)).toBe(reference);
        }
        expect(native.verify(table, message, highS)).toBe(true);
        expect(native.verify(otherTable, message, signature)).toBe(false);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it.each(['createVerifier', 'createIssuerVerifier'] as const)('refuses with %s what ECDSA_verify refuses: r or s of 0, n or above, non-canonical DER, trailing bytes', (make) => {
    const signer = p256Signer();
    const verifier = native[make](signer.point)!;
    const message = randomBytes(300);
    const signature = sign('sha256', message, signer.privateKey);
    const { r, s } = signatureNumbers(signature);
    const longForm = Buffer.concat([Buffer.of(0x30, 0x81, signature[1]!), signature.subarray(2)]);
    const refused = [
      derSignature(0n, s),
      derSignature(r, 0n),
      derSignature(r + orderValue, s),
      derSignature(r, s + orderValue),
      derSignature(orderValue, s),
      longForm,
      Buffer.concat([signature, Buffer.of(0)]),
      Buffer.alloc(0),
      Buffer.alloc(80, 0x30),
    ];
    for (const candidate of refused) {
      expect(native.verify(verifier, message, candidate)).toBe(false);
      expect(verify('sha256', message, signer.publicKey, candidate)).toBe(false);
    }
    expect(native.verify(verifier, message, signature)).toBe(true);
  });

  it('builds an issuer table only for a point on P-256', () => {
    expect(native.createIssuerVerifier(Buffer.concat([Buffer.of(4), FIELD_PRIME, Buffer.alloc(32)]))).toBeNull();
    expect(native.createIssuerVerifier(Buffer.alloc(65))).toBeNull();
    expect(native.createIssuerVerifier(Buffer.concat([Buffer.of(2), FIELD_PRIME]))).toBeNull();
    expect(() => native.derive(native.createIssuerVerifier(p256Signer().point)!, Buffer.alloc(65))).toThrow(expect.objectContaining({ code: 'SKNOCK_NATIVE_ARGUMENT' }));
  });

  it('computes the same HMAC-SHA256 and HKDF-SHA256 as node:crypto (seeded)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 1300 }), fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 1, max: 300 }), (key, data, info, length) => {
        expect(native.hmacSha256(key, data)).toEqual(createHmac('sha256', key).update(data).digest());
        expect(native.hkdfSha256(data, key, info, length)).toEqual(Buffer.from(hkdfSync('sha256', data, key, info, length)));
      }),
      { seed: SEED, numRuns: 300 },
    );
    expect(() => native.hkdfSha256(Buffer.alloc(1), Buffer.alloc(0), Buffer.alloc(0), 0)).toThrow(TypeError);
    expect(() => native.hkdfSha256(Buffer.alloc(1), Buffer.alloc(0), Buffer.alloc(0), 255 * 32 + 1)).toThrow(TypeError);
  });

  it('checks a trailing HMAC-SHA256 tag as node:crypto computes it, and refuses any changed byte (seeded)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 1300 }), fc.integer({ min: 1, max: 32 }), fc.nat(), (key, data, tagLength, flipAt) => {
        const tag = createHmac('sha256', key).update(data).digest().subarray(0, tagLength);
        const bytes = Buffer.concat([data, tag]);
        expect(native.hmacSha256TagMatches(key, bytes, tagLength)).toBe(true);
        const changed = Buffer.from(bytes);
        changed[flipAt % changed.length]! ^= 1 << flipAt % 8;
        expect(native.hmacSha256TagMatches(key, changed, tagLength)).toBe(false);
      }),
      { seed: SEED, numRuns: 300 },
    );
    expect(() => native.hmacSha256TagMatches(Buffer.alloc(1), Buffer.alloc(40), 0)).toThrow(TypeError);
    expect(() => native.hmacSha256TagMatches(Buffer.alloc(1), Buffer.alloc(40), 33)).toThrow(TypeError);
    expect(() => native.hmacSha256TagMatches(Buffer.alloc(1), Buffer.alloc(8), 16)).toThrow(TypeError);
  });

  it('opens AES-256-GCM as node seals it, and refuses any change to key, IV, AAD, ciphertext or tag (seeded)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), fc.uint8Array({ maxLength: 80 }), fc.nat(), (plaintext, aad, at) => {
        const key = randomBytes(32);
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
        cipher.setAAD(aad);
        const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
        const tag = cipher.getAuthTag();
        expect(native.aes256GcmOpen(key, iv, aad, ciphertext, tag)).toEqual(Buffer.from(plaintext));
        const flipped = (bytes: Uint8Array) => {
          const copy = Buffer.from(bytes);
          if (copy.length > 0) copy[at % copy.length]! ^= 0x80;
          return copy;
        };
        expect(native.aes256GcmOpen(flipped(key), iv, aad, ciphertext, tag)).toBeNull();
        expect(native.aes256GcmOpen(key, flipped(iv), aad, ciphertext, tag)).toBeNull();
        expect(native.aes256GcmOpen(key, iv, aad, ciphertext, flipped(tag))).toBeNull();
        if (aad.length > 0) expect(native.aes256GcmOpen(key, iv, flipped(aad), ciphertext, tag)).toBeNull();
        if (ciphertext.length > 0) expect(native.aes256GcmOpen(key, iv, aad, flipped(ciphertext), tag)).toBeNull();
      }),
      { seed: SEED, numRuns: 300 },
    );
    expect(() => native.aes256GcmOpen(Buffer.alloc(16), Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(16))).toThrow(TypeError);
    expect(() => native.aes256GcmOpen(Buffer.alloc(32), Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(8))).toThrow(TypeError);
  });

  it('throws a TypeError with a stable code for arguments that are not bytes', () => {
    const key = native.createVerifier(p256Signer().point)!;
    expect(() => native.verify(key, '04' as unknown as Buffer, Buffer.alloc(1))).toThrow(expect.objectContaining({ code: 'SKNOCK_NATIVE_ARGUMENT' }));
    expect(() => native.derive(agreement, new Uint16Array(65) as unknown as Buffer)).toThrow(expect.objectContaining({ code: 'SKNOCK_NATIVE_ARGUMENT' }));
    expect(() => native.createVerifier(new Uint16Array(65) as unknown as Buffer)).toThrow(expect.objectContaining({ code: 'SKNOCK_NATIVE_ARGUMENT' }));
  });

  it('takes only its own handles: a verifier is no agreement, an agreement no verifier, a foreign object neither', () => {
    const key = native.createVerifier(p256Signer().point)!;
    const expected = expect.objectContaining({ code: 'SKNOCK_NATIVE_ARGUMENT' });
    expect(() => native.derive(key, Buffer.alloc(65))).toThrow(expected);
    expect(() => native.verify(agreement, Buffer.alloc(1), Buffer.alloc(8))).toThrow(expected);
    expect(() => native.derive({}, Buffer.alloc(65))).toThrow(expected);
    expect(() => native.verify({}, Buffer.alloc(1), Buffer.alloc(8))).toThrow(expected);
    expect(() => native.verify(undefined as unknown as object, Buffer.alloc(1), Buffer.alloc(8))).toThrow(expected);
    expect(() => native.verify(null as unknown as object, Buffer.alloc(1), Buffer.alloc(8))).toThrow(expected);
  });

  it('loads and works in a worker thread too (one instance per thread)', async () => {
    const addon = new URL('../../native/build/Release/sknock_p256.node', import.meta.url).pathname;
    const peer = createECDH('prime256v1');
    peer.generateKeys();
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const native = require(workerData.addon);
       const secret = native.derive(native.createAgreement(workerData.scalar), workerData.point);
       parentPort.postMessage(Buffer.from(secret).toString('hex'));`,
      { eval: true, workerData: { addon, scalar: server.getPrivateKey(), point: peer.getPublicKey() } },
    );
    const answer = await new Promise<string>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(answer).toBe(server.computeSecret(peer.getPublicKey()).toString('hex'));
  });
});

describe('P256Key takes only the SEC 1 forms both paths read', () => {
  it('refuses a 65-byte key whose first byte is not 0x04 (hybrid 0x06/0x07 included), on either path', () => {
    const { point } = p256Signer();
    expect(P256Key.decode(point)).toBeInstanceOf(P256Key);
    const yIsOdd = (point[64]! & 1) === 1;
    for (const prefix of [0x00, 0x05, yIsOdd ? 0x07 : 0x06, 0x02]) {
      expect(P256Key.decode(Buffer.concat([Buffer.of(prefix), point.subarray(1)])), `prefix ${prefix}`).toBeUndefined();
    }
  });
});

describe('P256Key keeps its own copy of the point', () => {
  it('does not see later changes to the bytes it was decoded from (a view would keep a whole datagram alive in the cache)', () => {
    const { point } = p256Signer();
    const datagram = Buffer.concat([Buffer.alloc(7), point, Buffer.alloc(9)]);
    const key = P256Key.decode(datagram.subarray(7, 7 + 65))!;
    datagram.fill(0);
    expect(key.point.equals(point)).toBe(true);
  });

  it('gives node:crypto the same key from the compressed form as from the uncompressed one', () => {
    const { point, publicKey } = p256Signer();
    const compressed = Buffer.concat([Buffer.of(0x02 | (point[64]! & 1)), point.subarray(1, 33)]);
    const key = P256Key.decode(compressed)!;
    expect(key.point.equals(compressed)).toBe(true);
    expect(key.nodeKey.equals(publicKey)).toBe(true);
  });
});

describe('the switch to node:crypto', () => {
  it('SKNOCK_NATIVE_P256=off gives the node:crypto path, and says so', async () => {
    vi.stubEnv('SKNOCK_NATIVE_P256', 'off');
    vi.resetModules();
    try {
      const { p256Engine: fallback } = await import('../../client-lib/native-p256.js');
      expect(fallback.native).toBeUndefined();
      expect(fallback.description).toBe('node:crypto (SKNOCK_NATIVE_P256=off)');
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });

  it('checks v2 mac1 the same way on both paths: a sealed knock passes, one changed byte fails', async () => {
    const key = randomBytes(32);
    const sealed = randomBytes(200);
    const packet = Buffer.concat([sealed, createHmac('sha256', key).update(sealed).digest().subarray(0, 16)]);
    const changed = Buffer.from(packet);
    changed[150]! ^= 0x20;
    const native = await import('../../client-lib/protocol/crypto.js');
    vi.stubEnv('SKNOCK_NATIVE_P256', 'off');
    vi.resetModules();
    try {
      const fallback = await import('../../client-lib/protocol/crypto.js');
      for (const path of [native, fallback]) {
        expect(path.v2Mac1Matches(key, packet)).toBe(true);
        expect(path.v2Mac1Matches(key, changed)).toBe(false);
        expect(path.v2Mac1Matches(randomBytes(32), packet)).toBe(false);
        expect(path.v2Mac1Matches(key, packet.subarray(0, 15))).toBe(false);
      }
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });

  it('an addon built from older sources (no createIssuerVerifier) falls back to node:crypto, and says what is missing', () => {
    const native = nativeP256();
    // The addon's functions are not enumerable: copy them by name, all but one.
    const names = ['createVerifier', 'createAgreement', 'derive', 'verify', 'hmacSha256', 'hmacSha256TagMatches', 'hkdfSha256', 'aes256GcmOpen', 'opensslVersion'] as const;
    const outdated = Object.fromEntries(names.map((name) => [name, native[name]])) as Partial<NativeP256>;
    const engine = engineOf(outdated);
    expect(engine.native).toBeUndefined();
    expect(engine.description).toBe('node:crypto (native addon outdated, lacks createIssuerVerifier: npm run build:native)');
    expect(engineOf(nativeP256()).native).toBeDefined();
  });
});
