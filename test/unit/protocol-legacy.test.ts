import { X509Certificate, createDecipheriv, createECDH, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadPkcs12 } from '../../client-lib/pkcs12.js';
import {
  LEGACY_MAX_DATAGRAM,
  LEGACY_MIN_DATAGRAM,
  addressMatchesSource,
  buildLegacyKnock,
  createServerContext,
  isLegacy,
  isV2,
  legacyDatagramLength,
  openKnock,
  openLegacyKnock,
  verifyKnockSignature,
  type LegacyKnockInput,
} from '../../client-lib/protocol/index.js';
import { describeWithUpstreamFixtures, upstreamFixture } from '../helpers/fixtures.js';
import { LEGACY_VECTOR_FILE, certificateShaped, hex, legacyInputOf, legacyKeysOf, loadVector, sealLegacy, sha256 } from '../vectors/vectors.js';

const loaded = loadVector(LEGACY_VECTOR_FILE);
const { vector, datagram, context, serverCertificateDer, clientCertificateDer, clientPublicKey } = loaded;
const ipv4 = Buffer.of(198, 18, 0, 2);
const NOW = Date.parse('2026-01-01T00:00:00Z');

/** Matches a thrown SknockError with this code. */
const sknockError = (code: string) => expect.objectContaining({ name: 'SknockError', code });

function freshInput(overrides: Partial<LegacyKnockInput> = {}): LegacyKnockInput {
  return {
    serverCertificateDer,
    port: { protocol: 'tcp', port: 2000 },
    clientAddress: ipv4,
    timestampMs: NOW,
    certificateDer: clientCertificateDer,
    signer: loaded.clientKey,
    ...overrides,
  };
}

function openOk(packet: Buffer) {
  const opened = openLegacyKnock(packet, context);
  if (!opened.ok) throw new Error(`expected an opened knock, got ${opened.reason} ${opened.detail ?? ''}`);
  return opened.value;
}

describe('legacy committed vector', () => {
  it('encoding its inputs reproduces the committed bytes', () => {
    expect(buildLegacyKnock(legacyInputOf(loaded)).toString('hex')).toBe(vector.datagramHex);
  });

  it('opens to its inputs, and the signature verifies', () => {
    const opened = openOk(datagram);
    expect(opened).toMatchObject({
      format: 'legacy',
      ports: [{ protocol: 'tcp', port: 2000 }],
      timestampMs: vector.input.timestampMs,
      requestedDurationSeconds: 0,
      nonce: null,
      serverBinding: null,
      intermediateCertificateDer: null,
    });
    expect(opened.clientAddress).toEqual(ipv4);
    expect(opened.certificateDer).toEqual(clientCertificateDer);
    expect(opened.signature.toString('hex')).toBe(vector.input.signatureHex);
    expect(opened.replayKey).toEqual(sha256(opened.signedMessage));
    expect(opened.replayKey.toString('hex')).toBe(vector.derived.replayKeyHex);
    expect(verifyKnockSignature(opened, clientPublicKey)).toBe(true);
  });

  it('has the 1.0.0 layout, checked without the codec', () => {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(hex(vector.input.ephemeralPrivateKeyHex));
    expect(datagram.length).toBe(legacyDatagramLength(clientCertificateDer.length));
    expect(datagram[0]).toBe(0x61); // 'a'
    expect(datagram.subarray(1, 4).toString('hex')).toBe('010000'); // version 1.0.0
    const point = datagram.subarray(datagram.length - 65);
    expect(point).toEqual(ecdh.getPublicKey()); // ephemeral point, last 65 bytes

    const serverPoint = new X509Certificate(serverCertificateDer).publicKey.export({ format: 'der', type: 'spki' }).subarray(-65);
    const { key, iv } = legacyKeysOf(ecdh.computeSecret(serverPoint)); // HKDF "knock" / "iv0AES128CBC"
    const decipher = createDecipheriv('aes-128-cbc', key, iv);
    const plaintext = Buffer.concat([decipher.update(datagram.subarray(4, datagram.length - 65)), decipher.final()]); // ciphertext, PKCS#7
    expect(plaintext.toString('hex')).toBe(vector.derived.plaintextHex);

    expect(plaintext[0]).toBe(0x00); // must be zero
    expect(plaintext[1]).toBe(0x01); // TCP
    expect(plaintext.readUInt16BE(2)).toBe(2000); // port
    expect(plaintext.subarray(4, 20)).toEqual(Buffer.concat([ipv4, Buffer.alloc(12)])); // IPv4 + 12 zero bytes
    expect(plaintext.readUInt32BE(20)).toBe(vector.input.timestampMs / 1000); // seconds
    const certificateEnd = plaintext.length - 73;
    expect(plaintext.subarray(24, certificateEnd)).toEqual(clientCertificateDer); // client certificate
    const signatureLength = plaintext[certificateEnd]!; // sigLen
    expect(plaintext.subarray(certificateEnd + 1, plaintext.length - signatureLength).every((byte) => byte === 0)).toBe(true); // zero fill
    const signature = plaintext.subarray(plaintext.length - signatureLength); // signature, right-aligned
    expect(verify('sha256', plaintext.subarray(0, certificateEnd), clientPublicKey, signature)).toBe(true); // over request || certificate
  });
});

describe('legacy round trip', () => {
  it('port, protocol, address and time come back as they went in (seeded)', () => {
    const knockArbitrary = fc.record({
      protocol: fc.constantFrom<'tcp' | 'udp'>('tcp', 'udp'),
      port: fc.oneof(fc.constantFrom(1, 65535), fc.integer({ min: 1, max: 65535 })),
      address: fc.oneof(
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        // IPv6 addresses whose last 12 bytes are not all zero (those read as IPv4: see below).
        fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((bytes) => bytes.subarray(4).some((byte) => byte !== 0)),
      ),
      timestampMs: fc.oneof(fc.constantFrom(0, 0xffffffff * 1000 + 999), fc.integer({ min: 0, max: 0xffffffff * 1000 })),
    });
    fc.assert(
      fc.property(knockArbitrary, (knock) => {
        const clientAddress = Buffer.from(knock.address);
        const opened = openOk(buildLegacyKnock(freshInput({ port: { protocol: knock.protocol, port: knock.port }, clientAddress, timestampMs: knock.timestampMs })));
        expect(opened.ports).toEqual([{ protocol: knock.protocol, port: knock.port }]);
        expect(opened.clientAddress).toEqual(clientAddress);
        expect(opened.timestampMs).toBe(Math.floor(knock.timestampMs / 1000) * 1000);
        expect(addressMatchesSource(opened, clientAddress)).toBe(true);
        expect(verifyKnockSignature(opened, clientPublicKey)).toBe(true);
      }),
      { seed: 20260101, numRuns: 60 },
    );
  });

  it('an IPv6 address ending in 12 zero bytes still matches its IPv6 source, and not the IPv4 it resembles', () => {
    const ambiguous = hex('fd000018000000000000000000000000');
    const opened = openOk(buildLegacyKnock(freshInput({ clientAddress: ambiguous })));
    expect(addressMatchesSource(opened, ambiguous)).toBe(true);
    expect(addressMatchesSource(opened, hex('fd000018000000000000000000000001'))).toBe(false);
    expect(addressMatchesSource(opened, hex('fd000018'))).toBe(true); // 1.0.0 cannot tell these apart
    expect(addressMatchesSource(openOk(buildLegacyKnock(freshInput())), Buffer.of(198, 18, 0, 3))).toBe(false);
  });

  it('is told apart from v2 by its first byte and opened through openKnock', () => {
    expect(isLegacy(datagram)).toBe(true);
    expect(isV2(datagram)).toBe(false);
    expect(openKnock(datagram, context).ok).toBe(true);
  });

  it('pads nothing: the length follows the certificate, 16 bytes at a time', () => {
    for (const certificateLength of [200, 300, 591, 592, 693]) {
      const packet = buildLegacyKnock(freshInput({ certificateDer: certificateShaped(certificateLength) }));
      expect(packet.length).toBe(legacyDatagramLength(certificateLength));
      expect(openOk(packet).certificateDer.length).toBe(certificateLength);
    }
    // The original's frame check (>= 800 bytes with Ethernet, IPv4 and UDP headers) needs a 591-byte certificate.
    expect(legacyDatagramLength(590) + 14 + 20 + 8).toBeLessThan(800);
    expect(legacyDatagramLength(591) + 14 + 20 + 8).toBeGreaterThanOrEqual(800);
  });

  it('refuses a certificate too large for one unfragmented datagram', () => {
    const largest = [...Array(2000).keys()].filter((length) => length >= 200 && legacyDatagramLength(length) <= LEGACY_MAX_DATAGRAM).at(-1)!;
    expect(buildLegacyKnock(freshInput({ certificateDer: certificateShaped(largest) })).length).toBeLessThanOrEqual(LEGACY_MAX_DATAGRAM);
    const tooLarge = freshInput({ certificateDer: certificateShaped(largest + 1) });
    expect(() => buildLegacyKnock(tooLarge)).toThrow(sknockError('SKNOCK_KNOCK_TOO_LARGE'));
  });

  it.each<[string, Partial<LegacyKnockInput>]>([
    ['port 0', { port: { protocol: 'tcp', port: 0 } }],
    ['an unknown protocol', { port: { protocol: 'icmp' as 'tcp', port: 1 } }],
    ['a 6-byte address', { clientAddress: Buffer.alloc(6) }],
    ['a timestamp past 2106', { timestampMs: 2 ** 32 * 1000 }],
    ['a negative timestamp', { timestampMs: -1000 }],
    ['a certificate that is not DER', { certificateDer: Buffer.alloc(400, 7) }],
    ['a signature over 72 bytes', { signer: () => Buffer.alloc(73, 0x30) }],
  ])('refuses %s with SKNOCK_BAD_KNOCK_INPUT', (_name, override) => {
    expect(() => buildLegacyKnock(freshInput(override))).toThrow(sknockError('SKNOCK_BAD_KNOCK_INPUT'));
  });
});

describe('legacy decoder reasons', () => {
  const ephemeral = hex(vector.input.ephemeralPrivateKeyHex);
  const validPlaintext = hex(vector.derived.plaintextHex);
  const certificateEnd = validPlaintext.length - 73;
  const edited = (edit: (plaintext: Buffer) => Buffer | void) => {
    const plaintext = Buffer.from(validPlaintext);
    return openLegacyKnock(sealLegacy(edit(plaintext) ?? plaintext, serverCertificateDer, ephemeral), context);
  };

  it('the independent sealing of the vector plaintext is the vector itself', () => {
    expect(sealLegacy(validPlaintext, serverCertificateDer, ephemeral)).toEqual(datagram);
  });

  it.each<[string, Buffer, string]>([
    ['shorter than the smallest knock', datagram.subarray(0, LEGACY_MIN_DATAGRAM - 1), 'too-short'],
    ['longer than one unfragmented datagram', Buffer.concat([datagram, Buffer.alloc(LEGACY_MAX_DATAGRAM)]).subarray(0, LEGACY_MAX_DATAGRAM + 1), 'too-long'],
    ['another knock id', Buffer.concat([Buffer.from('b'), datagram.subarray(1)]), 'bad-magic'],
    ['version 0.0.1', sealLegacy(validPlaintext, serverCertificateDer, ephemeral, Buffer.of(0, 0, 1)), 'unsupported-version'],
    ['version 1.0.1', sealLegacy(validPlaintext, serverCertificateDer, ephemeral, Buffer.of(1, 0, 1)), 'unsupported-version'],
    ['a ciphertext that is not whole blocks', Buffer.concat([datagram.subarray(0, 20), datagram.subarray(21)]), 'bad-ciphertext-length'],
    ['a compressed point prefix', Buffer.concat([datagram.subarray(0, datagram.length - 65), Buffer.of(3), datagram.subarray(datagram.length - 64)]), 'bad-ephemeral-key'],
    ['a point off the curve', Buffer.concat([datagram.subarray(0, datagram.length - 1), Buffer.of(datagram.at(-1)! ^ 1)]), 'bad-ephemeral-key'],
  ])('rejects %s', (_name, packet, reason) => {
    expect(openLegacyKnock(packet, context)).toMatchObject({ ok: false, reason });
  });

  it('rejects a wrong key as decrypt-failed or, when PKCS#7 passes by chance, as a malformed plaintext', () => {
    const other = createServerContext(loaded.clientKey, clientCertificateDer);
    const result = openLegacyKnock(datagram, other);
    expect(result.ok).toBe(false);
  });

  it.each<[string, (plaintext: Buffer) => Buffer | void, string]>([
    ['a non-zero must-be-zero byte', (p) => void (p[0] = 1), 'malformed-plaintext'],
    ['protocol 2', (p) => void (p[1] = 2), 'bad-protocol'],
    ['port 0', (p) => void p.writeUInt16BE(0, 2), 'bad-port'],
    ['signature length 7', (p) => void (p[certificateEnd] = 7), 'bad-signature-length'],
    ['signature length 73', (p) => void (p[certificateEnd] = 73), 'bad-signature-length'],
    ['a non-zero fill byte', (p) => void (p[certificateEnd] = p[certificateEnd]! - 1), 'malformed-plaintext'], // the signature's first byte becomes fill
    ['a certificate one byte short', (p) => Buffer.concat([p.subarray(0, certificateEnd - 1), p.subarray(certificateEnd)]), 'bad-certificate-length'],
    ['a certificate too short to be one', (p) => Buffer.concat([p.subarray(0, 24 + 127), p.subarray(certificateEnd)]), 'bad-certificate-length'], // the shortest datagram holds 127..142 bytes
  ])('rejects a well-encrypted plaintext with %s', (_name, edit, reason) => {
    expect(edited(edit)).toMatchObject({ ok: false, reason });
  });
});

describeWithUpstreamFixtures('legacy knock with the original sKnock test PKI', () => {
  const password = 'portknocking';
  const client = loadPkcs12(readFileSync(upstreamFixture('test-pki', 'devclient.pfx')), password);
  const server = loadPkcs12(readFileSync(upstreamFixture('test-pki', 'devserver.pfx')), password);
  const serverCertificate = readFileSync(upstreamFixture('test-pki', 'devserver.cer'));
  const clock = Date.parse('2026-01-01T00:00:00Z');

  it('a knock for tcp/2000 from devclient opens with devserver key, and the signature verifies', () => {
    const packet = buildLegacyKnock({
      serverCertificateDer: serverCertificate,
      port: { protocol: 'tcp', port: 2000 },
      clientAddress: ipv4,
      timestampMs: clock,
      certificateDer: client.certificateDer,
      signer: client.privateKey,
    });
    // devclient's 693-byte certificate makes an 869-byte knock: past the original 800-byte frame check.
    expect(packet.length).toBe(869);
    const opened = openLegacyKnock(packet, createServerContext(server.privateKey, server.certificateDer));
    if (!opened.ok) throw new Error(`not opened: ${opened.reason}`);
    expect(opened.value.ports).toEqual([{ protocol: 'tcp', port: 2000 }]);
    expect(opened.value.clientAddress).toEqual(ipv4);
    expect(opened.value.timestampMs).toBe(clock);
    expect(opened.value.certificateDer).toEqual(client.certificateDer);
    expect(verifyKnockSignature(opened.value, client.certificate.publicKey)).toBe(true);
    expect(verifyKnockSignature(opened.value, server.certificate.publicKey)).toBe(false);
    expect(server.certificateDer).toEqual(serverCertificate);
  });
});
