/**
 * The small decoders behind parseCertificate: UTCTime / GeneralizedTime,
 * OBJECT IDENTIFIERs and the SubjectPublicKeyInfo import.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { derTag, objectIdentifierText, readWhole, timeValue } from '../../client-lib/certificate/der.js';
import { decodeSubjectPublicKey, publicKeyOid } from '../../client-lib/certificate/subject-public-key.js';
import { derElement, oidContent } from './certificate-builder.js';

const seed = 20260101;
const time = (tag: number, text: string) => timeValue(tag, Buffer.from(text, 'latin1'));

describe('timeValue', () => {
  it.each([
    ['260101000000Z', '2026-01-01T00:00:00Z'],
    ['491231235959Z', '2049-12-31T23:59:59Z'],
    ['500101000000Z', '1950-01-01T00:00:00Z'],
    ['990615123456Z', '1999-06-15T12:34:56Z'],
    ['000229000000Z', '2000-02-29T00:00:00Z'],
  ])('reads UTCTime %s (years 50–99 are 19xx)', (text, iso) => {
    expect(time(derTag.utcTime, text)).toBe(Date.parse(iso));
  });

  it.each([
    ['20500101000000Z', Date.parse('2050-01-01T00:00:00Z')],
    ['99991231235959Z', Date.parse('9999-12-31T23:59:59Z')],
    ['20240229120000Z', Date.parse('2024-02-29T12:00:00Z')],
    ['00010101000000Z', Date.parse('0001-01-01T00:00:00Z')],
    ['00990101000000Z', Date.parse('0099-01-01T00:00:00Z')],
  ])('reads GeneralizedTime %s, years below 100 included', (text, ms) => {
    expect(time(derTag.generalizedTime, text)).toBe(ms);
  });

  it.each([
    ['fractional seconds', derTag.generalizedTime, '20260101000000.5Z'],
    ['an offset', derTag.utcTime, '260101000000+0100'],
    ['no Z', derTag.generalizedTime, '20260101000000'],
    ['no seconds', derTag.utcTime, '2601010000Z'],
    ['a lower-case z', derTag.utcTime, '260101000000z'],
    ['month 13', derTag.utcTime, '261301000000Z'],
    ['month 0', derTag.utcTime, '260001000000Z'],
    ['day 0', derTag.utcTime, '260100000000Z'],
    ['April 31', derTag.utcTime, '260431000000Z'],
    ['February 29 of 2023', derTag.utcTime, '230229000000Z'],
    ['February 29 of 2100', derTag.generalizedTime, '21000229000000Z'],
    ['hour 24', derTag.utcTime, '260101240000Z'],
    ['minute 60', derTag.utcTime, '260101006000Z'],
    ['second 60', derTag.utcTime, '260101000060Z'],
    ['a space', derTag.utcTime, ' 60101000000Z'],
    ['a sign', derTag.utcTime, '2601010000-0Z'],
    ['four-digit years in a UTCTime', derTag.utcTime, '20260101000000Z'],
    ['two-digit years in a GeneralizedTime', derTag.generalizedTime, '260101000000Z'],
    ['another tag', derTag.octetString, '260101000000Z'],
  ])('refuses %s', (_name, tag, text) => {
    expect(time(tag, text)).toBeUndefined();
  });

  it('round-trips every second-resolution instant of the RFC 5280 ranges', () => {
    const pad = (value: number, width: number) => String(value).padStart(width, '0');
    const format = (date: Date, yearDigits: 2 | 4) =>
      `${pad(date.getUTCFullYear() % 10 ** yearDigits, yearDigits)}${pad(date.getUTCMonth() + 1, 2)}${pad(date.getUTCDate(), 2)}` +
      `${pad(date.getUTCHours(), 2)}${pad(date.getUTCMinutes(), 2)}${pad(date.getUTCSeconds(), 2)}Z`;
    const seconds = (fromIso: string, toIso: string) => fc.integer({ min: Date.parse(fromIso) / 1000, max: Date.parse(toIso) / 1000 }).map((s) => new Date(s * 1000));
    fc.assert(
      fc.property(seconds('1950-01-01T00:00:00Z', '2049-12-31T23:59:59Z'), (date) => {
        expect(time(derTag.utcTime, format(date, 2))).toBe(date.getTime());
      }),
      { seed, numRuns: 500 },
    );
    fc.assert(
      fc.property(seconds('0100-01-01T00:00:00Z', '9999-12-31T23:59:59Z'), (date) => {
        expect(time(derTag.generalizedTime, format(date, 4))).toBe(date.getTime());
      }),
      { seed, numRuns: 500 },
    );
  });
});

describe('objectIdentifierText', () => {
  it('reads arcs past 2^53 (2.25 UUID OIDs) exactly', () => {
    const uuid = '329800735698586629295641978511506172918';
    expect(objectIdentifierText(oidContent(`2.25.${uuid}`))).toBe(`2.25.${uuid}`);
    expect(objectIdentifierText(oidContent('2.999.9007199254740993'))).toBe('2.999.9007199254740993');
  });

  it('refuses arcs padded with 0x80 (non-minimal), as OpenSSL does', () => {
    expect(objectIdentifierText(Buffer.from([0x55, 0x80, 0x04]))).toBeUndefined();
    expect(objectIdentifierText(Buffer.from([0x80, 0x55]))).toBeUndefined();
  });

  it('round-trips random OIDs', () => {
    const arc = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.bigInt({ min: 0n, max: (1n << 130n) - 1n }));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), fc.array(arc, { maxLength: 8 }), (root, second, rest) => {
        const dotted = [root, second, ...rest].join('.');
        const content = oidContent(dotted);
        if (content.length <= 64) expect(objectIdentifierText(content)).toBe(dotted);
      }),
      { seed, numRuns: 500 },
    );
  });
});

function spkiOf(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' });
}

const p256Algorithm = Buffer.from('301306072a8648ce3d020106082a8648ce3d030107', 'hex');
const p256Spki = (point: Buffer, unusedBits = 0) => derElement(0x30, p256Algorithm, derElement(0x03, Buffer.from([unusedBits]), point));

function decodeSpki(spki: Buffer) {
  return decodeSubjectPublicKey(spki, readWhole(spki)!);
}

describe('decodeSubjectPublicKey', () => {
  it('imports P-256 keys (the JWK path) as the same key node imports from DER', () => {
    for (let index = 0; index < 5; index += 1) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const decoded = decodeSpki(spkiOf(publicKey));
      expect(decoded?.algorithm).toEqual({ algorithm: publicKeyOid.ecPublicKey, curve: publicKeyOid.prime256v1 });
      expect(decoded?.key.equals(publicKey)).toBe(true);
    }
  });

  it('imports other keys through DER: P-384, RSA, Ed25519, a compressed P-256 point', () => {
    const others = [
      generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey,
      generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey,
      generateKeyPairSync('ed25519').publicKey,
    ];
    for (const key of others) expect(decodeSpki(spkiOf(key))?.key.equals(key)).toBe(true);
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const point = spkiOf(p256).subarray(-65);
    const compressed = Buffer.concat([Buffer.from([0x02 | (point[64]! & 1)]), point.subarray(1, 33)]);
    expect(decodeSpki(p256Spki(compressed))?.key.equals(p256)).toBe(true);
  });

  it('refuses a P-256 point off the curve, a short point, unused bits and junk after the key', () => {
    const point = spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey).subarray(-65);
    expect(decodeSpki(p256Spki(point))).toBeDefined();
    const offCurve = Buffer.from(point);
    offCurve[64]! ^= 0x01;
    expect(decodeSpki(p256Spki(offCurve))).toBeUndefined();
    expect(decodeSpki(p256Spki(point.subarray(0, 64)))).toBeUndefined();
    expect(decodeSpki(p256Spki(point, 1))).toBeUndefined();
    const trailing = derElement(0x30, p256Algorithm, derElement(0x03, Buffer.from([0]), point), derElement(0x05));
    expect(decodeSpki(trailing)).toBeUndefined();
  });
});
