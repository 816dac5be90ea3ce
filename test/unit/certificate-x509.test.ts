/**
 * parseCertificate, isIssuedBy and isSignedBy without node's X509Certificate:
 * the same facts and decisions as node (OpenSSL) gives on real certificates,
 * and the structure, issuer and algorithm checks that replace OpenSSL's.
 */
import { X509Certificate, constants, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { isIssuedBy, isSignedBy, parseCertificate, type ParsedCertificate } from '../../client-lib/certificate/x509.js';
import { createAuthority, createCertificateZoo, issueCertificate, type CertificateZoo } from '../helpers/cert-zoo.js';
import { describeWithUpstreamFixtures, upstreamFixture } from '../helpers/fixtures.js';
import { algorithms, buildCertificate, cn, derElement, extensionDer, generalizedTime, oidElement, utcTime } from './certificate-builder.js';

const now = new Date('2026-01-01T00:00:00Z');
const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

function parsed(der: Buffer): ParsedCertificate {
  const result = parseCertificate(der);
  if (!result.ok) throw new Error(`${result.reason}: ${result.detail}`);
  return result.value;
}

/** What node says about a certificate, in our terms. */
function expectSameFactsAsNode(der: Buffer): void {
  const node = new X509Certificate(der);
  const ours = parsed(der);
  expect(ours.notBeforeMs).toBe(Date.parse(node.validFrom));
  expect(ours.notAfterMs).toBe(Date.parse(node.validTo));
  expect(ours.serial).toBe(BigInt(`0x${node.serialNumber}`) - (/^[89A-F]/i.test(node.serialNumber) ? 1n << BigInt(node.serialNumber.length * 4) : 0n));
  expect(ours.publicKey.equals(node.publicKey)).toBe(true);
}

function expectSameDecisionsAsNode(certificates: readonly Buffer[]): void {
  for (const subjectDer of certificates) {
    for (const issuerDer of certificates) {
      const [subject, issuer] = [parsed(subjectDer), parsed(issuerDer)];
      const [nodeSubject, nodeIssuer] = [new X509Certificate(subjectDer), new X509Certificate(issuerDer)];
      // OpenSSL also wants keyCertSign of the issuer; authorities.ts enforces that once per CA, not isIssuedBy.
      const mayIssue = issuer.keyUsage === undefined || issuer.keyUsage.has('keyCertSign');
      if (mayIssue) expect(isIssuedBy(subject, issuer), `${subject.subject} issued by ${issuer.subject}`).toBe(nodeSubject.checkIssued(nodeIssuer));
      expect(isSignedBy(subject, issuer.publicKey), `${subject.subject} signed by ${issuer.subject}`).toBe(nodeSubject.verify(nodeIssuer.publicKey));
    }
  }
}

describe('parseCertificate, isIssuedBy, isSignedBy agree with node', () => {
  let zoo: CertificateZoo;
  beforeAll(async () => {
    zoo = await createCertificateZoo(now);
  });

  it('on the facts of every zoo certificate', () => {
    for (const { der } of [zoo.ca, zoo.otherCa, zoo.intermediate, ...Object.values(zoo.clients)]) expectSameFactsAsNode(der);
  });

  it('on which zoo certificate issued and signed which', () => {
    const { valid, ofOtherCa, selfSigned, rsa, badSignature, viaIntermediate, expired } = zoo.clients;
    expectSameDecisionsAsNode([zoo.ca, zoo.otherCa, zoo.intermediate, valid, ofOtherCa, selfSigned, rsa, badSignature, viaIntermediate, expired].map(({ der }) => der));
  });

  it('on a re-keyed CA of the same name: the key identifiers tell them apart', async () => {
    const first = await createAuthority({ now, name: 'CN=Same Name CA' });
    const second = await createAuthority({ now, name: 'CN=Same Name CA' });
    const client = await issueCertificate(first, { now });
    expect(isIssuedBy(parsed(client.der), parsed(first.der))).toBe(true);
    expect(isIssuedBy(parsed(client.der), parsed(second.der))).toBe(false);
    expectSameDecisionsAsNode([first.der, second.der, client.der]);
  });

  it('on RSASSA-PSS, which is checked by node itself', () => {
    const ca = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const signOptions = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    const der = buildCertificate({ subjectKey: ec().publicKey, signingKey: ca.privateKey, algorithm: algorithms.rsaPssSha256, signOptions });
    expect(isSignedBy(parsed(der), ca.publicKey)).toBe(true);
    expect(new X509Certificate(der).verify(ca.publicKey)).toBe(true);
    const tampered = Buffer.from(der);
    tampered[tampered.length - 1]! ^= 1;
    expect(isSignedBy(parsed(tampered), ca.publicKey)).toBe(false);
  });
});

describeWithUpstreamFixtures('parseCertificate agrees with node on the original sKnock PKIs', () => {
  it('on facts and on issuer decisions', () => {
    const ders = ['old-dev-pki/devca.cer', 'old-dev-pki/devclient1.cer', 'old-dev-pki/devserver.cer', 'test-pki/devserver.cer'].map((file) =>
      readFileSync(upstreamFixture(...file.split('/'))),
    );
    for (const der of ders) expectSameFactsAsNode(der);
    expectSameDecisionsAsNode(ders);
  });
});

describe('isSignedBy refuses what it should', () => {
  const ca = ec();
  const client = ec().publicKey;

  it('accepts ECDSA, RSA PKCS#1 v1.5 and Ed25519 signatures it can check itself', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ed = generateKeyPairSync('ed25519');
    const cases = [
      { signer: ca, algorithm: algorithms.ecdsaSha256 },
      { signer: rsa, algorithm: algorithms.rsaSha256 },
      { signer: ed, algorithm: algorithms.ed25519 },
    ];
    for (const { signer, algorithm } of cases) {
      expect(isSignedBy(parsed(buildCertificate({ subjectKey: client, signingKey: signer.privateKey, algorithm })), signer.publicKey)).toBe(true);
    }
  });

  it('refuses SHA-1 signatures, as for CRLs (OpenSSL would accept this one)', () => {
    const der = buildCertificate({ subjectKey: client, signingKey: ca.privateKey, algorithm: algorithms.ecdsaSha1, digest: 'sha1' });
    expect(new X509Certificate(der).verify(ca.publicKey)).toBe(true);
    expect(isSignedBy(parsed(der), ca.publicKey)).toBe(false);
  });

  it('refuses a signature made with a key of another type than the algorithm names', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const der = buildCertificate({ subjectKey: client, signingKey: rsa.privateKey, algorithm: algorithms.ecdsaSha256 });
    expect(isSignedBy(parsed(der), rsa.publicKey)).toBe(false);
  });
});

describe('parseCertificate refuses malformed structure', () => {
  const ca = ec();
  const base = { subjectKey: ec().publicKey, signingKey: ca.privateKey };
  const malformed = (der: Buffer) => expect(parseCertificate(der)).toMatchObject({ ok: false, reason: 'certificate-malformed' });

  it('accepts the builder certificate as it is', () => {
    const certificate = parsed(buildCertificate({ ...base, notAfter: generalizedTime('20500101000000Z') }));
    expect(certificate.notAfterMs).toBe(Date.parse('2050-01-01T00:00:00Z'));
    expect(isSignedBy(certificate, ca.publicKey)).toBe(true);
  });

  it('when the outer signature algorithm differs from the signed one (RFC 5280 §4.1.1.2)', () => {
    const outerAlgorithm = derElement(0x30, oidElement('1.2.840.10045.4.3.3'));
    malformed(buildCertificate({ ...base, outerAlgorithm }));
  });

  it('when the signed algorithm has other parameters than the outer one', () => {
    malformed(buildCertificate({ ...base, outerAlgorithm: derElement(0x30, oidElement('1.2.840.10045.4.3.2'), derElement(0x05)) }));
  });

  it('for version 4, fields out of order, unknown fields and two extension blocks', () => {
    malformed(buildCertificate({ ...base, version: derElement(0xa0, derElement(0x02, Buffer.from([3]))) }));
    const extensions = derElement(0xa3, derElement(0x30, extensionDer('2.5.29.14', derElement(0x04, Buffer.from([1, 2])))));
    const uniqueId = derElement(0x81, Buffer.from([0, 1]));
    expect(parseCertificate(buildCertificate({ ...base, trailingFields: [uniqueId, extensions] })).ok).toBe(true);
    malformed(buildCertificate({ ...base, trailingFields: [extensions, uniqueId] }));
    malformed(buildCertificate({ ...base, trailingFields: [extensions, extensions] }));
    malformed(buildCertificate({ ...base, trailingFields: [derElement(0xa4, derElement(0x05))] }));
  });

  it('for times outside RFC 5280 and a validity of the wrong shape', () => {
    malformed(buildCertificate({ ...base, notBefore: utcTime('250101000000+0000') }));
    malformed(buildCertificate({ ...base, notAfter: generalizedTime('20500101000000.0Z') }));
    malformed(buildCertificate({ ...base, notAfter: derElement(0x04, Buffer.from('270101000000Z')) }));
  });

  it('for a subject key off the curve', () => {
    const der = buildCertificate(base);
    const spki = base.subjectKey.export({ format: 'der', type: 'spki' });
    const at = der.indexOf(spki) + spki.length - 1;
    const broken = Buffer.from(der);
    broken[at]! ^= 1;
    malformed(broken);
  });

  it('for a malformed authorityKeyIdentifier, and checks its serial and issuer name', () => {
    malformed(buildCertificate({ ...base, extensions: [extensionDer('2.5.29.35', derElement(0x30, derElement(0x82, Buffer.from([1])), derElement(0x80, Buffer.from([1]))))] }));
    const issuerDer = buildCertificate({ subjectKey: ca.publicKey, signingKey: ca.privateKey, subject: cn('Builder CA'), serial: derElement(0x02, Buffer.from([7])) });
    const withAuthority = (fields: Buffer[]) => parsed(buildCertificate({ ...base, extensions: [extensionDer('2.5.29.35', derElement(0x30, ...fields))] }));
    const issuer = parsed(issuerDer);
    expect(isIssuedBy(withAuthority([derElement(0x82, Buffer.from([7]))]), issuer)).toBe(true);
    expect(isIssuedBy(withAuthority([derElement(0x82, Buffer.from([8]))]), issuer)).toBe(false);
    const directoryName = (name: Buffer) => derElement(0xa1, derElement(0xa4, name));
    expect(isIssuedBy(withAuthority([directoryName(cn('Builder CA'))]), issuer)).toBe(true);
    expect(isIssuedBy(withAuthority([directoryName(cn('Someone Else'))]), issuer)).toBe(false);
  });
});
