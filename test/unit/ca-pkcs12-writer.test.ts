import { createHash } from 'node:crypto';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCaCertificate, buildLeafCertificate, generateP256KeyPair, importSigningKey, type KeyPair } from '../../certificates/ca/issue.js';
import { writePkcs12, type Pkcs12Contents } from '../../certificates/ca/pkcs12-writer.js';
import { x509 } from '../../certificates/ca/x509-setup.js';
import { loadPkcs12 } from '../../client-lib/pkcs12.js';
import { testNow } from './ca-harness.js';

const validity = { notBefore: testNow, notAfter: new Date(testNow.getTime() + 86_400_000) };

/** A counter instead of randomness: equal inputs must give equal bytes. */
function countingRandom(start: number): (size: number) => Buffer {
  let next = start;
  return (size) => Buffer.from(Array.from({ length: size }, () => next++ & 0xff));
}

describe('PKCS#12 writer', () => {
  let caKeys: KeyPair;
  let caDer: Buffer;
  let clientKeys: KeyPair;
  let clientDer: Buffer;
  let contents: Pkcs12Contents;

  beforeAll(async () => {
    caKeys = await generateP256KeyPair();
    caDer = await buildCaCertificate({ commonName: 'Writer CA', keys: caKeys, serialNumber: '0a', validity });
    clientKeys = await generateP256KeyPair();
    const ca = {
      certificate: new x509.X509Certificate(caDer),
      privateKey: caKeys.privateKey,
      signingKey: await importSigningKey(caKeys.privateKey),
    };
    clientDer = await buildLeafCertificate({
      commonName: 'writer-client',
      profile: { kind: 'client', permittedPorts: [{ protocol: 'tcp', port: 22 }] },
      publicKey: clientKeys.publicKey,
      ca,
      serialNumber: '0b',
      validity,
    });
    contents = {
      privateKey: clientKeys.privateKey,
      certificate: clientDer,
      otherCertificates: [caDer],
      friendlyName: 'writer-client',
      password: 'correct horse',
      iterations: 1000,
    };
  });

  it('round-trips through loadPkcs12: the same key, certificate and CA', () => {
    const loaded = loadPkcs12(writePkcs12(contents), 'correct horse');
    expect(loaded.certificateDer.equals(clientDer)).toBe(true);
    expect(loaded.otherCertificates.map((certificate) => certificate.raw.equals(caDer))).toEqual([true]);
    expect(loaded.privateKey.export({ format: 'jwk' })).toEqual(clientKeys.privateKey.export({ format: 'jwk' }));
  });

  it('refuses a wrong password through the MAC', () => {
    const bytes = writePkcs12(contents);
    expect(() => loadPkcs12(bytes, 'wrong horse')).toThrow(
      expect.objectContaining({ name: 'SknockError', code: 'SKNOCK_PFX_BAD_PASSWORD' }),
    );
  });

  it('labels the key and its certificate with the same friendlyName and localKeyId, and the CA with neither', () => {
    const pfx = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(writePkcs12(contents).toString('binary')), false, 'correct horse');
    const keyBags = pfx.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag! })[forge.pki.oids.pkcs8ShroudedKeyBag!]!;
    const certificateBags = pfx.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!]!;
    expect(keyBags).toHaveLength(1);
    expect(certificateBags).toHaveLength(2);
    const expectedKeyId = createHash('sha256').update(clientDer).digest().toString('binary');
    for (const bag of [keyBags[0]!, certificateBags[0]!]) {
      expect(bag.attributes.friendlyName).toEqual(['writer-client']);
      expect(bag.attributes.localKeyId).toEqual([expectedKeyId]);
    }
    expect(certificateBags[1]!.attributes).toEqual({});
  });

  it('is deterministic given its random source, and salts differ with it', () => {
    const first = writePkcs12({ ...contents, randomBytes: countingRandom(1) });
    const again = writePkcs12({ ...contents, randomBytes: countingRandom(1) });
    const other = writePkcs12({ ...contents, randomBytes: countingRandom(100) });
    expect(first.equals(again)).toBe(true);
    expect(first.equals(other)).toBe(false);
    expect(loadPkcs12(other, 'correct horse').certificateDer.equals(clientDer)).toBe(true);
  });
});
