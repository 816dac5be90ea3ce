import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkClientCertificate, createTrustState, parseCrl, type TrustState } from '../../server/trust/index.js';
import { parseCertificate } from '../../client-lib/certificate/x509.js';
import { derTag, readElement, timeValue } from '../../client-lib/certificate/der.js';
import { nameText } from '../../client-lib/certificate/names.js';
import { decodeSubjectPublicKey } from '../../client-lib/certificate/subject-public-key.js';
import { buildCertificate, nameDer } from './certificate-builder.js';
import { createCertificateZoo, issueCertificate, x509, type CertificateZoo } from '../helpers/cert-zoo.js';

const now = new Date('2026-01-01T00:00:00Z');
const seed = 20260101;
let zoo: CertificateZoo;
let trust: TrustState;

beforeAll(async () => {
  zoo = await createCertificateZoo(now);
  trust = createTrustState({ caCertificates: [zoo.ca.der], intermediates: [zoo.intermediate.der], crlPolicy: 'warn' });
});

type Mutation = { kind: 'set' | 'insert' | 'delete' | 'truncate'; at: number; byte: number };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('set', 'insert', 'delete', 'truncate'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
});

function mutate(original: Buffer, mutations: readonly Mutation[]): Buffer {
  let bytes = Buffer.from(original);
  for (const { kind, at, byte } of mutations) {
    const index = at % Math.max(bytes.length, 1);
    if (kind === 'set') bytes[index] = byte;
    if (kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, index), Buffer.from([byte]), bytes.subarray(index)]);
    if (kind === 'delete') bytes = Buffer.concat([bytes.subarray(0, index), bytes.subarray(index + 1)]);
    if (kind === 'truncate') bytes = bytes.subarray(0, index);
  }
  return bytes;
}

const bytes = fc.uint8Array({ maxLength: 1500 }).map((array) => Buffer.from(array));

describe('trust decoders never throw on hostile input', () => {
  it('refuses random bytes as certificate and as intermediate', () => {
    fc.assert(
      fc.property(bytes, fc.option(bytes, { nil: undefined }), (certificate, intermediate) => {
        expect(checkClientCertificate(trust, certificate, intermediate, now.getTime()).ok).toBe(false);
      }),
      { seed, numRuns: 400 },
    );
  });

  it('refuses mutated valid certificates unless the mutation changed nothing', () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), (mutations, viaIntermediate) => {
        const original = viaIntermediate ? zoo.clients.viaIntermediate.der : zoo.clients.valid.der;
        const mutated = mutate(original, mutations);
        const verdict = checkClientCertificate(trust, mutated, undefined, now.getTime());
        if (verdict.ok) expect(mutated.equals(original)).toBe(true);
      }),
      { seed, numRuns: 400 },
    );
  });

  it('refuses mutated intermediates unless the mutation changed nothing', () => {
    const knockTrust = createTrustState({ caCertificates: [zoo.ca.der], crlPolicy: 'warn' });
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        const mutated = mutate(zoo.intermediate.der, mutations);
        const verdict = checkClientCertificate(knockTrust, zoo.clients.viaIntermediate.der, mutated, now.getTime());
        if (verdict.ok) expect(mutated.equals(zoo.intermediate.der)).toBe(true);
      }),
      { seed, numRuns: 300 },
    );
  });

  it('refuses random bytes and mutated CRLs unless the mutation changed nothing', () => {
    fc.assert(
      fc.property(bytes, (random) => {
        expect(parseCrl(random, trust).ok).toBe(false);
      }),
      { seed, numRuns: 400 },
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        const mutated = mutate(zoo.crls.current, mutations);
        if (parseCrl(mutated, trust).ok) expect(mutated.equals(zoo.crls.current)).toBe(true);
      }),
      { seed, numRuns: 400 },
    );
  });

  it('survives arbitrary values in the extensions it decodes itself', async () => {
    const decodedHere = ['2.5.29.15', '2.5.29.19', '2.5.29.37', '2.5.29.17'];
    // Short DER-ish values: a plausible tag and length in front of random content.
    const value = fc.oneof(
      bytes.map((random) => random.subarray(0, 40)),
      fc.tuple(fc.constantFrom(0x03, 0x30, 0xa0, 0x06, 0x01, 0x02, 0x0c), fc.uint8Array({ maxLength: 30 })).map(([tag, content]) =>
        Buffer.concat([Buffer.from([tag, content.length]), content]),
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...decodedHere), value, fc.boolean(), async (extensionOid, extensionValue, critical) => {
        const client = await issueCertificate(zoo.ca, {
          now,
          keyUsage: null,
          extendedKeyUsage: null,
          basicConstraints: null,
          authorization: null,
          key: zoo.clients.valid.keys,
          extraExtensions: [new x509.Extension(extensionOid, critical, extensionValue)],
        });
        parseCertificate(client.der);
        expect(checkClientCertificate(trust, client.der, undefined, now.getTime()).ok).toBe(false);
      }),
      { seed, numRuns: 150 },
    );
  });

  it('refuses PEM-looking junk', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (body) => {
        expect(parseCrl(Buffer.from(`-----BEGIN X509 CRL-----\n${body}\n-----END X509 CRL-----\n`), trust).ok).toBe(false);
      }),
      { seed, numRuns: 200 },
    );
  });
});

describe('certificate decoders never throw on hostile input', () => {
  const richName = nameDer([
    [{ type: '2.5.4.6', tag: 0x13, value: 'DE' }],
    [
      { type: '2.5.4.3', tag: 0x0c, value: ' #a,b+c\u0001 ' },
      { type: '1.2.3.4', tag: 0x0c, value: 'x' },
    ],
    [{ type: '2.5.4.10', tag: 0x1e, value: Buffer.from('Zoë', 'utf16le').swap16() }],
    [{ type: '2.5.4.11', tag: 0x1c, value: Buffer.from([0, 0, 0, 0x61, 0, 1, 0xf6, 0]) }],
  ]);
  /** Escaped output never carries a raw control character (they are what log injection needs). */
  const rawControl = /[\u0000-\u001f\u007f]/;

  it('nameText: random and mutated names give undefined or text without raw control characters', () => {
    const check = (name: Buffer) => {
      const element = readElement(name, 0);
      const text = element && nameText(name, element);
      if (text !== undefined) expect(text).not.toMatch(rawControl);
    };
    fc.assert(fc.property(bytes, (random) => check(Buffer.concat([Buffer.from([0x30, Math.min(random.length, 127)]), random.subarray(0, 127)]))), { seed, numRuns: 400 });
    fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => check(mutate(richName, mutations))), { seed, numRuns: 600 });
  });

  it('timeValue: random content gives undefined or a whole second of years 0–9999', () => {
    fc.assert(
      fc.property(fc.constantFrom(derTag.utcTime, derTag.generalizedTime), fc.uint8Array({ maxLength: 17 }), fc.stringMatching(/^[0-9]{10,15}Z?$/), (tag, random, digits) => {
        for (const content of [Buffer.from(random), Buffer.from(digits, 'latin1')]) {
          const ms = timeValue(tag, content);
          if (ms !== undefined) {
            expect(ms % 1000).toBe(0);
            expect(ms).toBeGreaterThanOrEqual(Date.parse('0000-01-01T00:00:00Z'));
            expect(ms).toBeLessThan(Date.parse('+010000-01-01T00:00:00Z'));
          }
        }
      }),
      { seed, numRuns: 600 },
    );
  });

  it('decodeSubjectPublicKey: mutated SPKIs give undefined or a key', () => {
    const spkis = [
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
      generateKeyPairSync('ed25519').publicKey,
    ].map((key) => key.export({ format: 'der', type: 'spki' }));
    fc.assert(
      fc.property(fc.constantFrom(...spkis), fc.array(mutation, { minLength: 1, maxLength: 3 }), (spki, mutations) => {
        const mutated = mutate(spki, mutations);
        const element = readElement(mutated, 0);
        const decoded = element && decodeSubjectPublicKey(mutated, element);
        if (decoded) expect(decoded.key.type).toBe('public');
      }),
      { seed, numRuns: 400 },
    );
  });

  it('parseCertificate: mutated certificates with rich names decode or are refused, never throw', () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const original = buildCertificate({ subjectKey: keys.publicKey, signingKey: keys.privateKey, subject: richName, issuer: richName });
    expect(parseCertificate(original).ok).toBe(true);
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        const result = parseCertificate(mutate(original, mutations));
        if (result.ok) expect(result.value.subject).not.toMatch(rawControl);
        else expect(result.reason).toBe('certificate-malformed');
      }),
      { seed, numRuns: 600 },
    );
  });
});
