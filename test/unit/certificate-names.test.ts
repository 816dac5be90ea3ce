/**
 * Subject and issuer display strings: ours must read exactly as node's
 * X509Certificate (OpenSSL) prints them, lines joined by ", ", on real
 * certificates and on names built to hit every string type and escape.
 */
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPkcs12File } from '../../client-lib/pkcs12.js';
import { parseCertificate } from '../../client-lib/certificate/x509.js';
import { createCertificateZoo, type CertificateZoo } from '../helpers/cert-zoo.js';
import { describeWithUpstreamFixtures, repoRoot, upstreamFixture } from '../helpers/fixtures.js';
import { buildCertificate, nameDer, type AttributeSpec } from './certificate-builder.js';

const tags = { utf8: 0x0c, numeric: 0x12, printable: 0x13, teletex: 0x14, ia5: 0x16, visible: 0x1a, universal: 0x1c, bmp: 0x1e } as const;
const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function nodeNames(der: Buffer): { subject: string | undefined; issuer: string | undefined } {
  const certificate = new X509Certificate(der);
  const oneLine = (text: string | undefined) => text?.split('\n').join(', ');
  return { subject: oneLine(certificate.subject), issuer: oneLine(certificate.issuer) };
}

function ourNames(der: Buffer): { subject: string; issuer: string } {
  const parsed = parseCertificate(der);
  if (!parsed.ok) throw new Error(`${parsed.reason}: ${parsed.detail}`);
  return { subject: parsed.value.subject, issuer: parsed.value.issuer };
}

const withSubject = (relativeNames: readonly (readonly AttributeSpec[])[]) =>
  buildCertificate({ subjectKey: keys.publicKey, signingKey: keys.privateKey, subject: nameDer(relativeNames) });
const single = (type: string, tag: number, value: Buffer | string) => withSubject([[{ type, tag, value }]]);
const utf16be = (text: string) => Buffer.from(text, 'utf16le').swap16();
function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}
const ucs4be = (text: string) => Buffer.concat([...text].map((character) => uint32(character.codePointAt(0)!)));

describe('names read as node prints them', () => {
  let zoo: CertificateZoo;
  beforeAll(async () => {
    zoo = await createCertificateZoo(new Date('2026-01-01T00:00:00Z'));
  });

  it('for every zoo certificate', () => {
    const all = [zoo.ca, zoo.otherCa, zoo.intermediate, ...Object.values(zoo.clients)];
    for (const { der } of all) expect(ourNames(der)).toEqual(nodeNames(der));
  });

  it('for the development PKI', () => {
    const dev = path.join(repoRoot, 'certificates', 'dev');
    const ders: Buffer[] = [readFileSync(path.join(dev, 'ca.cer')), readFileSync(path.join(dev, 'server', 'devserver.cer'))];
    for (const client of ['alice', 'bob', 'mallory']) ders.push(loadPkcs12File(path.join(dev, 'client', `${client}.pfx`), 'portknocking').certificateDer);
    for (const der of ders) expect(ourNames(der)).toEqual(nodeNames(der));
  });

  it('for every attribute type in the table', () => {
    const types = [
      '2.5.4.3', '2.5.4.4', '2.5.4.5', '2.5.4.6', '2.5.4.7', '2.5.4.8', '2.5.4.9', '2.5.4.10', '2.5.4.11', '2.5.4.12', '2.5.4.13',
      '2.5.4.15', '2.5.4.17', '2.5.4.41', '2.5.4.42', '2.5.4.43', '2.5.4.44', '2.5.4.46', '2.5.4.65', '2.5.4.97',
      '1.2.840.113549.1.9.1', '0.9.2342.19200300.100.1.1', '0.9.2342.19200300.100.1.25',
      '1.3.6.1.4.1.311.60.2.1.1', '1.3.6.1.4.1.311.60.2.1.2', '1.3.6.1.4.1.311.60.2.1.3',
    ];
    const der = withSubject(types.map((type, index) => [{ type, tag: tags.utf8, value: `value ${index}` }]));
    expect(ourNames(der)).toEqual(nodeNames(der));
  });

  it.each([
    ['UTF8String, non-ASCII', tags.utf8, 'Grüße ✓ 中文'],
    ['PrintableString', tags.printable, 'Example Org (Ltd.)'],
    ['NumericString', tags.numeric, '0123 456'],
    ['IA5String', tags.ia5, 'alice@example.org'],
    ['TeletexString as Latin-1', tags.teletex, Buffer.from('caf\u00e9 \u00a9', 'latin1')],
    ['IA5String with high bytes', tags.ia5, Buffer.from([0x61, 0xe9, 0x80])],
    ['BMPString', tags.bmp, utf16be('Zoë 中 \u0001')],
    ['UniversalString', tags.universal, ucs4be('a😀ß')],
    ['an empty value', tags.utf8, ''],
    ['RFC 2253 specials', tags.utf8, 'a"b+c,d;e<f>g\\h=i'],
    ['a leading #', tags.utf8, '#x'],
    ['a # elsewhere', tags.utf8, 'x#'],
    ['a lone #', tags.utf8, '#'],
    ['leading and trailing spaces', tags.utf8, ' x  y '],
    ['a lone space', tags.utf8, ' '],
    ['control characters', tags.utf8, 'a\u0000b\u0001c\u001fd\u007fe\nf'],
    ['C1 controls in Latin-1', tags.teletex, Buffer.from([0x61, 0x85, 0x9f])],
  ])('for %s', (_name, tag, value) => {
    const der = single('2.5.4.3', tag, value);
    expect(ourNames(der)).toEqual(nodeNames(der));
  });

  it('for multi-valued RDNs and several RDNs', () => {
    const der = withSubject([
      [{ type: '0.9.2342.19200300.100.1.25', tag: tags.ia5, value: 'org' }],
      [
        { type: '2.5.4.3', tag: tags.utf8, value: 'alice' },
        { type: '0.9.2342.19200300.100.1.1', tag: tags.utf8, value: 'a1' },
      ],
      [{ type: '2.5.4.10', tag: tags.printable, value: 'Example' }],
    ]);
    expect(ourNames(der)).toEqual(nodeNames(der));
    expect(ourNames(der).subject).toBe('DC=org, CN=alice + UID=a1, O=Example');
  });
});

describeWithUpstreamFixtures('names of the original sKnock PKIs read as node prints them', () => {
  it('for the test PKI and the old dev PKI', () => {
    const ders: Buffer[] = [
      readFileSync(upstreamFixture('test-pki', 'devserver.cer')),
      readFileSync(upstreamFixture('old-dev-pki', 'devca.cer')),
      readFileSync(upstreamFixture('old-dev-pki', 'devclient1.cer')),
      readFileSync(upstreamFixture('old-dev-pki', 'devserver.cer')),
    ];
    for (const bundle of ['test-pki/devclient.pfx', 'test-pki/devserver.pfx', 'old-dev-pki/devclient2.pfx']) {
      const loaded = loadPkcs12File(upstreamFixture(...bundle.split('/')), 'portknocking');
      ders.push(loaded.certificateDer, ...loaded.otherCertificates.map((certificate) => certificate.raw));
    }
    for (const der of ders) expect(ourNames(der)).toEqual(nodeNames(der));
    expect(ourNames(readFileSync(upstreamFixture('test-pki', 'devserver.cer'))).issuer).toBe(
      'C=DE, ST=Bayern, O=TUM i8, OU=SafeCloud Project, CN=sKnock Test CA',
    );
  });
});

describe('names where we differ from node on purpose', () => {
  it('writes attribute types outside the table as dotted OID=#hex of the DER value', () => {
    expect(ourNames(single('1.2.3.4', tags.utf8, 'x')).subject).toBe('1.2.3.4=#0c0178');
  });

  it('writes a known type with a value of another type as #hex (OpenSSL refuses VisibleString, prints others raw)', () => {
    expect(ourNames(single('2.5.4.3', tags.visible, 'ab')).subject).toBe('CN=#1a026162');
  });

  it('reads an empty name as an empty string (node gives undefined)', () => {
    expect(ourNames(withSubject([])).subject).toBe('');
  });

  it('refuses, as OpenSSL does, invalid UTF-8, surrogates, code points past U+10FFFF, wrong lengths; and empty RDNs', () => {
    expect(() => new X509Certificate(single('2.5.4.3', tags.utf8, Buffer.from([0x61, 0xc3, 0x28])))).toThrow();
    expect(parseCertificate(single('2.5.4.3', tags.utf8, Buffer.from([0x61, 0xc3, 0x28]))).ok).toBe(false);
    expect(parseCertificate(single('2.5.4.3', tags.utf8, Buffer.from([0xed, 0xa0, 0x80]))).ok).toBe(false);
    expect(parseCertificate(single('2.5.4.3', tags.bmp, Buffer.from([0x00, 0x61, 0x00]))).ok).toBe(false);
    expect(parseCertificate(single('2.5.4.3', tags.universal, Buffer.from([0, 0, 0x61]))).ok).toBe(false);
    expect(parseCertificate(single('2.5.4.3', tags.bmp, Buffer.from([0x00, 0x61, 0xd8, 0x00]))).ok).toBe(false);
    expect(parseCertificate(single('2.5.4.3', tags.universal, uint32(0x110000))).ok).toBe(false);
    expect(parseCertificate(withSubject([[]])).ok).toBe(false);
  });
});
