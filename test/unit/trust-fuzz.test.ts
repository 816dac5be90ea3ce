import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkClientCertificate, createTrustState, parseCrl, type TrustState } from '../../server/trust/index.js';
import { parseCertificate } from '../../client-lib/certificate/x509.js';
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
