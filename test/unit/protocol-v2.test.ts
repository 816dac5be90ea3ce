import { X509Certificate, createDecipheriv, createECDH, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MIN_DATAGRAM,
  V2_MAX_DATAGRAM,
  V2_MAX_DURATION_SECONDS,
  V2_MIN_DATAGRAM,
  V2_OVERHEAD,
  addressMatchesSource,
  buildV2Knock,
  createServerContext,
  isLegacy,
  isV2,
  openKnock,
  openV2Knock,
  verifyKnockSignature,
  type V2KnockInput,
} from '../../client-lib/protocol/index.js';
import type { PortRequest } from '../../client-lib/protocol/ports.js';
import { repoRoot } from '../helpers/fixtures.js';
import {
  V2_VECTOR_FILES,
  certificateShaped,
  hex,
  loadVector,
  sealV2,
  sha256,
  v2InputOf,
  v2KeysOf,
  v2Mac1Of,
  type LoadedVector,
} from '../vectors/vectors.js';

const basic = loadVector('v2-ipv4-one-port.json');
const roaming = loadVector('v2-nat-intermediate.json');
const ipv4 = Buffer.of(198, 18, 0, 2);
const ipv6 = hex('fd000018000000000000000000000002');
const NOW = Date.parse('2026-01-01T00:00:00Z');

/** Matches a thrown SknockError with this code. */
const sknockError = (code: string) => expect.objectContaining({ name: 'SknockError', code });

/** A fresh knock from the vectors' client to the vectors' server, signed for real. */
function freshInput(overrides: Partial<V2KnockInput> = {}): V2KnockInput {
  return {
    serverCertificateDer: basic.serverCertificateDer,
    ports: [{ protocol: 'tcp', port: 22 }],
    clientAddress: ipv4,
    timestampMs: NOW,
    certificateDer: basic.clientCertificateDer,
    signer: basic.clientKey,
    ...overrides,
  };
}

function openOk(packet: Buffer, loaded: LoadedVector = basic) {
  const opened = openV2Knock(packet, loaded.context);
  if (!opened.ok) throw new Error(`expected an opened knock, got ${opened.reason} ${opened.detail ?? ''}`);
  return opened.value;
}

describe('v2 committed vectors', () => {
  it.each(V2_VECTOR_FILES)('%s: encoding its inputs reproduces the committed bytes', (file) => {
    const loaded = loadVector(file);
    const built = buildV2Knock(v2InputOf(loaded));
    expect(built.toString('hex')).toBe(loaded.vector.datagramHex);
    expect(built.length).toBe(loaded.vector.datagramLength);
  });

  it.each(V2_VECTOR_FILES)('%s: opens to its inputs, and the signature verifies', (file) => {
    const loaded = loadVector(file);
    const { input, derived } = loaded.vector;
    const opened = openOk(loaded.datagram, loaded);
    expect(opened.format).toBe('v2');
    expect(opened.ports.map((p) => `${p.protocol}/${p.port}`).join(',')).toBe(input.ports);
    expect(opened.clientAddress?.toString('hex') ?? null).toBe(input.clientAddressHex);
    expect(opened.timestampMs).toBe(input.timestampMs);
    expect(opened.requestedDurationSeconds).toBe(input.requestedDurationSeconds);
    expect(opened.nonce?.toString('hex')).toBe(input.nonceHex);
    expect(opened.replayKey.toString('hex')).toBe(derived.replayKeyHex);
    expect(opened.serverBinding).toEqual(sha256(loaded.serverCertificateDer));
    expect(opened.certificateDer).toEqual(loaded.clientCertificateDer);
    expect(opened.intermediateCertificateDer).toEqual(loaded.intermediateCertificateDer);
    expect(opened.signature.toString('hex')).toBe(input.signatureHex);
    expect(opened.signedMessage.toString('hex')).toBe(derived.signedMessageHex);
    expect(verifyKnockSignature(opened, loaded.clientPublicKey)).toBe(true);
  });

  it('v2-ipv4-one-port.json has the specified layout, checked without the codec', () => {
    const { vector, datagram, serverCertificateDer, clientCertificateDer, clientPublicKey } = basic;
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(hex(vector.input.ephemeralPrivateKeyHex));
    expect(datagram.length).toBe(800); // padded to DEFAULT_MIN_DATAGRAM
    expect(datagram.subarray(0, 2).toString('ascii')).toBe('sK'); // magic
    expect(datagram[2]).toBe(0x02); // version
    expect(datagram[3]).toBe(0x01); // suite: P-256, HKDF-SHA256, AES-256-GCM, ECDSA-P256-SHA256
    expect(datagram.subarray(4, 69)).toEqual(ecdh.getPublicKey()); // ephemeral point, uncompressed
    expect(datagram.subarray(784)).toEqual(v2Mac1Of(serverCertificateDer, datagram.subarray(0, 784))); // mac1

    const serverPoint = new X509Certificate(serverCertificateDer).publicKey.export({ format: 'der', type: 'spki' }).subarray(-65);
    const shared = ecdh.computeSecret(serverPoint); // ECDH x-coordinate
    expect(shared.toString('hex')).toBe(vector.derived.sharedSecretHex);
    const { key, iv } = v2KeysOf(shared, serverCertificateDer, datagram.subarray(4, 69));
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(datagram.subarray(0, 69)); // AAD = header and ephemeral point
    decipher.setAuthTag(datagram.subarray(768, 784)); // GCM tag
    const plaintext = Buffer.concat([decipher.update(datagram.subarray(69, 768)), decipher.final()]); // ciphertext
    expect(plaintext.toString('hex')).toBe(vector.derived.plaintextHex);

    expect(plaintext[0]).toBe(0x00); // flags: a signed address, not NAT mode
    expect(plaintext.readBigUInt64BE(1)).toBe(BigInt(vector.input.timestampMs)); // timestamp, ms
    expect(plaintext.subarray(9, 25).toString('hex')).toBe(vector.input.nonceHex); // nonce
    expect(plaintext.subarray(25, 57)).toEqual(sha256(serverCertificateDer)); // server binding
    expect(plaintext[57]).toBe(4); // address family IPv4
    expect(plaintext.subarray(58, 62)).toEqual(ipv4); // 198.18.0.2
    expect(plaintext.readUInt32BE(62)).toBe(0); // requested duration: server default
    expect(plaintext[66]).toBe(1); // one port
    expect(plaintext.subarray(67, 70).toString('hex')).toBe('060016'); // TCP (6), port 22
    expect(plaintext.readUInt16BE(70)).toBe(clientCertificateDer.length); // certificate length
    const certificateEnd = 72 + clientCertificateDer.length;
    expect(plaintext.subarray(72, certificateEnd)).toEqual(clientCertificateDer); // client certificate
    expect(plaintext.readUInt16BE(certificateEnd)).toBe(0); // no intermediate
    const signatureLength = plaintext[certificateEnd + 2]!;
    const signature = plaintext.subarray(certificateEnd + 3, certificateEnd + 3 + signatureLength); // signature
    expect(signature.toString('hex')).toBe(vector.input.signatureHex);
    expect(plaintext.subarray(certificateEnd + 3 + signatureLength).every((byte) => byte === 0)).toBe(true); // padding

    const signed = Buffer.concat([Buffer.from('sKnock v2 knock\0'), datagram.subarray(0, 69), plaintext.subarray(0, certificateEnd + 2)]);
    expect(verify('sha256', signed, clientPublicKey, signature)).toBe(true);
  });
});

describe('docs/PROTOCOL.md worked example', () => {
  it('shows the committed vector byte for byte', () => {
    const document = readFileSync(path.join(repoRoot, 'docs', 'PROTOCOL.md'), 'utf8');
    for (const [name, bytes] of [['plaintext', hex(basic.vector.derived.plaintextHex)], ['datagram', basic.datagram]] as const) {
      for (let offset = 0; offset < bytes.length; offset += 32) {
        const line = `${String(offset).padStart(4, '0')}  ${bytes.subarray(offset, offset + 32).toString('hex')}`;
        expect(document.includes(line), `${name} line ${line}`).toBe(true);
      }
    }
    for (const value of [basic.vector.input.ephemeralPrivateKeyHex, basic.vector.input.nonceHex!, basic.vector.derived.aesKeyHex, basic.vector.derived.ivHex]) {
      expect(document).toContain(value);
    }
  });
});

describe('v2 round trip', () => {
  const portArbitrary = fc.record({ protocol: fc.constantFrom<'tcp' | 'udp'>('tcp', 'udp'), port: fc.integer({ min: 1, max: 65535 }) });
  const knockArbitrary = fc.record({
    ports: fc.uniqueArray(portArbitrary, { minLength: 1, maxLength: 32, selector: (p) => `${p.protocol}/${p.port}` }),
    clientAddress: fc.oneof(fc.constant(null), fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })),
    timestampMs: fc.oneof(fc.constantFrom(0, Number.MAX_SAFE_INTEGER), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    requestedDurationSeconds: fc.oneof(fc.constantFrom(0, V2_MAX_DURATION_SECONDS), fc.integer({ min: 0, max: V2_MAX_DURATION_SECONDS })),
    withIntermediate: fc.boolean(),
    minDatagramLength: fc.oneof(fc.constantFrom(0, DEFAULT_MIN_DATAGRAM, V2_MAX_DATAGRAM), fc.integer({ min: 0, max: V2_MAX_DATAGRAM })),
    nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  });

  it('every field comes back as it went in, over its whole range (seeded)', () => {
    fc.assert(
      fc.property(knockArbitrary, (knock) => {
        const clientAddress = knock.clientAddress === null ? null : Buffer.from(knock.clientAddress);
        const packet = buildV2Knock(
          freshInput({
            ...knock,
            clientAddress,
            nonce: Buffer.from(knock.nonce),
            intermediateCertificateDer: knock.withIntermediate ? roaming.intermediateCertificateDer : null,
          }),
        );
        expect(packet.length).toBeGreaterThanOrEqual(Math.max(knock.minDatagramLength, V2_MIN_DATAGRAM));
        expect(packet.length).toBeLessThanOrEqual(V2_MAX_DATAGRAM);
        const opened = openOk(packet);
        expect(opened.ports).toEqual(knock.ports);
        expect(opened.clientAddress).toEqual(clientAddress);
        expect(opened.timestampMs).toBe(knock.timestampMs);
        expect(opened.requestedDurationSeconds).toBe(knock.requestedDurationSeconds);
        expect(opened.nonce).toEqual(Buffer.from(knock.nonce));
        expect(opened.replayKey).toEqual(Buffer.from(knock.nonce));
        expect(opened.intermediateCertificateDer).toEqual(knock.withIntermediate ? roaming.intermediateCertificateDer : null);
        expect(verifyKnockSignature(opened, basic.clientPublicKey)).toBe(true);
      }),
      { seed: 20260101, numRuns: 120 },
    );
  });

  it('carries 32 ports, both protocols and the port extremes', () => {
    const ports: PortRequest[] = Array.from({ length: 32 }, (_, index) => ({
      protocol: index % 2 === 0 ? 'tcp' : 'udp',
      port: index === 0 ? 1 : index === 31 ? 65535 : 1000 + index,
    }));
    expect(openOk(buildV2Knock(freshInput({ ports }))).ports).toEqual(ports);
  });

  it('NAT mode carries no address and matches any source', () => {
    const opened = openOk(buildV2Knock(freshInput({ clientAddress: null })));
    expect(opened.clientAddress).toBeNull();
    expect(addressMatchesSource(opened, ipv4)).toBe(true);
    expect(addressMatchesSource(opened, ipv6)).toBe(true);
  });

  it('a signed address matches only that source', () => {
    const opened = openOk(buildV2Knock(freshInput({ clientAddress: ipv6 })));
    expect(opened.clientAddress).toEqual(ipv6);
    expect(addressMatchesSource(opened, ipv6)).toBe(true);
    expect(addressMatchesSource(opened, ipv4)).toBe(false);
    expect(addressMatchesSource(opened, hex('fd000018000000000000000000000003'))).toBe(false);
  });

  it('pads to the requested length exactly, and never pads a knock that is already longer', () => {
    expect(buildV2Knock(freshInput()).length).toBe(DEFAULT_MIN_DATAGRAM);
    expect(buildV2Knock(freshInput({ minDatagramLength: 1000 })).length).toBe(1000);
    expect(buildV2Knock(freshInput({ minDatagramLength: V2_MAX_DATAGRAM })).length).toBe(V2_MAX_DATAGRAM);
    const unpadded = buildV2Knock(freshInput({ minDatagramLength: 0 }));
    expect(unpadded.length).toBeLessThan(DEFAULT_MIN_DATAGRAM);
    expect(openOk(unpadded).ports).toEqual([{ protocol: 'tcp', port: 22 }]);
  });

  it('generates a fresh nonce and ephemeral key for every knock', () => {
    const first = openOk(buildV2Knock(freshInput()));
    const second = buildV2Knock(freshInput());
    expect(openOk(second).nonce).not.toEqual(first.nonce);
    expect(second.subarray(4, 69)).not.toEqual(buildV2Knock(freshInput()).subarray(4, 69));
  });

  it('is told apart from legacy by its first byte', () => {
    const packet = buildV2Knock(freshInput());
    expect(isV2(packet)).toBe(true);
    expect(isLegacy(packet)).toBe(false);
    expect(openKnock(packet, basic.context).ok).toBe(true);
    expect(openKnock(Buffer.from('xx'), basic.context)).toEqual({ ok: false, reason: 'bad-magic' });
  });

  it('opened knocks never share memory with the packet', () => {
    const packet = buildV2Knock(freshInput());
    const opened = openOk(packet);
    const snapshot = Buffer.from(opened.signedMessage);
    packet.fill(0);
    expect(opened.signedMessage).toEqual(snapshot);
  });
});

describe('v2 encoder input checks', () => {
  /** Space left for the client certificate when everything else is minimal and 72 bytes are kept for the signature. */
  const largestCertificate = V2_MAX_DATAGRAM - V2_OVERHEAD - (58 + 4 + 1 + 3 + 2 + 2) - 1 - 72;

  it('accepts the largest knock that fits 1232 bytes and refuses one byte more', () => {
    const fits = certificateShaped(largestCertificate);
    const packet = buildV2Knock(freshInput({ clientAddress: null, certificateDer: fits }));
    expect(packet.length).toBeLessThanOrEqual(V2_MAX_DATAGRAM);
    expect(openOk(packet).certificateDer).toEqual(fits);
    const tooLarge = freshInput({ clientAddress: null, certificateDer: certificateShaped(largestCertificate + 1) });
    expect(() => buildV2Knock(tooLarge)).toThrow(sknockError('SKNOCK_KNOCK_TOO_LARGE'));
  });

  it('refuses 32 ports with a certificate and an intermediate too large together', () => {
    const ports = Array.from({ length: 32 }, (_, index): PortRequest => ({ protocol: 'tcp', port: index + 1 }));
    const input = freshInput({ ports, clientAddress: ipv6, certificateDer: certificateShaped(600), intermediateCertificateDer: certificateShaped(400) });
    expect(() => buildV2Knock(input)).toThrow(sknockError('SKNOCK_KNOCK_TOO_LARGE'));
  });

  it.each<[string, Partial<V2KnockInput>]>([
    ['no ports', { ports: [] }],
    ['33 ports', { ports: Array.from({ length: 33 }, (_, index) => ({ protocol: 'tcp' as const, port: index + 1 })) }],
    ['a repeated port', { ports: [{ protocol: 'udp', port: 53 }, { protocol: 'udp', port: 53 }] }],
    ['port 0', { ports: [{ protocol: 'tcp', port: 0 }] }],
    ['port 65536', { ports: [{ protocol: 'tcp', port: 65536 }] }],
    ['an unknown protocol', { ports: [{ protocol: 'sctp' as 'tcp', port: 22 }] }],
    ['a 5-byte address', { clientAddress: Buffer.alloc(5) }],
    ['a negative timestamp', { timestampMs: -1 }],
    ['a fractional timestamp', { timestampMs: 1.5 }],
    ['a timestamp beyond 2^53', { timestampMs: 2 ** 53 }],
    ['a negative duration', { requestedDurationSeconds: -1 }],
    ['a duration beyond uint32', { requestedDurationSeconds: 2 ** 32 }],
    ['a 15-byte nonce', { nonce: Buffer.alloc(15) }],
    ['a minimum length over 1232', { minDatagramLength: 1233 }],
    ['a client certificate that is not DER', { certificateDer: Buffer.alloc(300, 1) }],
    ['an intermediate that is not DER', { intermediateCertificateDer: Buffer.alloc(300, 1) }],
    ['a server certificate that is not X.509', { serverCertificateDer: certificateShaped(300) }],
    ['a signature over 72 bytes', { signer: () => Buffer.alloc(73, 0x30) }],
    ['a signature under 8 bytes', { signer: () => Buffer.alloc(7, 0x30) }],
    ['a signer that is not a private key', { signer: basic.clientPublicKey }],
    ['a 31-byte ephemeral key', { ephemeralPrivateKey: Buffer.alloc(31, 1) }],
    ['a zero ephemeral scalar', { ephemeralPrivateKey: Buffer.alloc(32) }],
    ['an ephemeral key off P-256', { ephemeralPrivateKey: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey }],
  ])('refuses %s with SKNOCK_BAD_KNOCK_INPUT', (_name, override) => {
    expect(() => buildV2Knock(freshInput(override))).toThrow(sknockError('SKNOCK_BAD_KNOCK_INPUT'));
  });

  it('accepts an injected ephemeral KeyObject like the raw scalar', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const packet = buildV2Knock(freshInput({ ephemeralPrivateKey: privateKey }));
    const raw = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url');
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(raw);
    expect(packet.subarray(4, 69)).toEqual(ecdh.getPublicKey());
  });
});

describe('v2 server context', () => {
  it('refuses a key that is not P-256, a certificate that does not parse, and a key of another certificate', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey;
    const ed25519 = generateKeyPairSync('ed25519').privateKey;
    expect(() => createServerContext(p384, basic.serverCertificateDer)).toThrow(sknockError('SKNOCK_SERVER_KEY_NOT_P256'));
    expect(() => createServerContext(ed25519, basic.serverCertificateDer)).toThrow(sknockError('SKNOCK_SERVER_KEY_NOT_P256'));
    expect(() => createServerContext(basic.clientPublicKey, basic.serverCertificateDer)).toThrow(sknockError('SKNOCK_SERVER_KEY_NOT_P256'));
    expect(() => createServerContext(basic.serverKey, certificateShaped(300))).toThrow(sknockError('SKNOCK_SERVER_CERT_MALFORMED'));
    expect(() => createServerContext(basic.clientKey, basic.serverCertificateDer)).toThrow(sknockError('SKNOCK_SERVER_KEY_MISMATCH'));
  });

  it('a server with another certificate cannot open the knock: mac1 fails first', () => {
    const other = createServerContext(basic.clientKey, basic.clientCertificateDer);
    expect(openV2Knock(basic.datagram, other)).toMatchObject({ ok: false, reason: 'bad-mac1' });
  });
});

describe('v2 decoder reasons', () => {
  const { vector, serverCertificateDer, context } = basic;
  const ephemeral = hex(vector.input.ephemeralPrivateKeyHex);
  const validPlaintext = hex(vector.derived.plaintextHex);
  const certificateEnd = 72 + basic.clientCertificateDer.length;
  const reseal = (plaintext: Buffer) => openV2Knock(sealV2(plaintext, serverCertificateDer, ephemeral), context);
  const edited = (edit: (plaintext: Buffer) => void) => {
    const plaintext = Buffer.from(validPlaintext);
    edit(plaintext);
    return reseal(plaintext);
  };
  const withMac1 = (packet: Buffer) => {
    const sealed = packet.subarray(0, packet.length - 16);
    return Buffer.concat([sealed, v2Mac1Of(serverCertificateDer, sealed)]);
  };

  it('the independent sealing of the vector plaintext is the vector itself', () => {
    expect(sealV2(validPlaintext, serverCertificateDer, ephemeral)).toEqual(basic.datagram);
  });

  it.each<[string, Buffer, string]>([
    ['shorter than the fixed parts', basic.datagram.subarray(0, V2_MIN_DATAGRAM - 1), 'too-short'],
    ['longer than 1232 bytes', Buffer.concat([basic.datagram, Buffer.alloc(V2_MAX_DATAGRAM - 799)]), 'too-long'],
    ['another magic', Buffer.concat([Buffer.from('sk'), basic.datagram.subarray(2)]), 'bad-magic'],
    ['version 3', Buffer.concat([Buffer.from('sK'), Buffer.of(3), basic.datagram.subarray(3)]), 'unsupported-version'],
    ['suite 2', Buffer.concat([Buffer.from('sK'), Buffer.of(2, 2), basic.datagram.subarray(4)]), 'unsupported-suite'],
    ['a wrong mac1', Buffer.concat([basic.datagram.subarray(0, 784), Buffer.alloc(16)]), 'bad-mac1'],
    ['a compressed point prefix', withMac1(Buffer.concat([basic.datagram.subarray(0, 4), Buffer.of(2), basic.datagram.subarray(5)])), 'bad-ephemeral-key'],
    ['a point off the curve', withMac1(Buffer.concat([basic.datagram.subarray(0, 68), Buffer.of(basic.datagram[68]! ^ 1), basic.datagram.subarray(69)])), 'bad-ephemeral-key'],
    ['a changed ciphertext byte', withMac1(Buffer.concat([basic.datagram.subarray(0, 100), Buffer.of(basic.datagram[100]! ^ 1), basic.datagram.subarray(101)])), 'decrypt-failed'],
    ['a changed tag', withMac1(Buffer.concat([basic.datagram.subarray(0, 770), Buffer.of(basic.datagram[770]! ^ 0x80), basic.datagram.subarray(771)])), 'decrypt-failed'],
  ])('rejects %s', (_name, packet, reason) => {
    expect(openV2Knock(packet, context)).toMatchObject({ ok: false, reason });
  });

  it.each<[string, (plaintext: Buffer) => void, string]>([
    ['an unknown flag', (p) => (p[0] = 0x02), 'bad-flags'],
    ['NAT mode with an address', (p) => (p[0] = 0x01), 'bad-address-family'],
    ['address family 5', (p) => (p[57] = 5), 'bad-address-family'],
    ['a timestamp beyond 2^53', (p) => p.writeBigUInt64BE(2n ** 53n, 1), 'malformed-plaintext'],
    ['zero ports', (p) => (p[66] = 0), 'bad-port-count'],
    ['33 ports', (p) => (p[66] = 33), 'bad-port-count'],
    ['protocol 1', (p) => (p[67] = 1), 'bad-protocol'],
    ['port 0', (p) => p.writeUInt16BE(0, 68), 'bad-port'],
    ['a certificate length past the end', (p) => p.writeUInt16BE(2000, 70), 'bad-certificate-length'],
    ['a certificate length one short', (p) => p.writeUInt16BE(basic.clientCertificateDer.length - 1, 70), 'bad-certificate-length'],
    ['an intermediate that is not DER', (p) => p.writeUInt16BE(200, certificateEnd), 'bad-certificate-length'],
    ['signature length 7', (p) => (p[certificateEnd + 2] = 7), 'bad-signature-length'],
    ['signature length 73', (p) => (p[certificateEnd + 2] = 73), 'bad-signature-length'],
    ['a non-zero padding byte', (p) => (p[p.length - 1] = 1), 'bad-padding'],
  ])('rejects a well-encrypted plaintext with %s', (_name, edit, reason) => {
    expect(edited(edit)).toMatchObject({ ok: false, reason });
  });

  it('rejects a duplicated port', () => {
    const body = validPlaintext.subarray(0, 70);
    const twice = Buffer.concat([body.subarray(0, 66), Buffer.of(2), body.subarray(67, 70), body.subarray(67, 70), validPlaintext.subarray(70)]);
    expect(reseal(twice)).toMatchObject({ ok: false, reason: 'duplicate-port' });
  });

  it('rejects the plaintext cut at any point between its minimum length and the end of its signature', () => {
    const signatureEnd = certificateEnd + 3 + hex(vector.input.signatureHex).length;
    for (let cut = V2_MIN_DATAGRAM - V2_OVERHEAD; cut < signatureEnd; cut++) {
      expect(reseal(validPlaintext.subarray(0, cut)).ok, `cut at ${cut}`).toBe(false);
    }
    expect(reseal(validPlaintext.subarray(0, signatureEnd)).ok).toBe(true); // the padding is optional
  });

  it('a knock with a random key that only knows the server certificate still needs the right ECDH key', () => {
    const packet = sealV2(validPlaintext, serverCertificateDer, randomBytes(32));
    const opened = openOk(packet);
    // Decrypts fine (anyone may encrypt to the server), but the signature covered the original ephemeral key.
    expect(verifyKnockSignature(opened, basic.clientPublicKey)).toBe(false);
  });
});
