import { describe, expect, it } from 'vitest';
import { integerValue, objectIdentifierText, readChildren, readElement, readWhole } from '../../client-lib/certificate/der.js';

const hex = (text: string) => Buffer.from(text.replace(/\s/g, ''), 'hex');

describe('readElement', () => {
  it('reads short and long definite lengths', () => {
    expect(readElement(hex('04 02 aa bb'), 0)).toEqual({ tag: 0x04, headerStart: 0, contentStart: 2, end: 4 });
    const long = Buffer.concat([hex('04 81 80'), Buffer.alloc(0x80)]);
    expect(readElement(long, 0)).toEqual({ tag: 0x04, headerStart: 0, contentStart: 3, end: 0x83 });
    const longer = Buffer.concat([hex('30 82 01 00'), Buffer.alloc(0x100)]);
    expect(readElement(longer, 0)?.end).toBe(0x104);
  });

  it.each([
    ['empty input', ''],
    ['a lone tag', '30'],
    ['content past the end', '04 03 aa bb'],
    ['indefinite length (BER)', '30 80 00 00'],
    ['a five-octet length', '04 85 00 00 00 00 01 aa'],
    ['length octets past the end', '04 82 01'],
    ['a multi-byte tag number', '1f 81 01 00'],
  ])('returns undefined for %s', (_name, bytes) => {
    expect(readElement(hex(bytes), 0)).toBeUndefined();
  });

  it('respects the limit of the enclosing element', () => {
    expect(readElement(hex('04 02 aa bb'), 0, 3)).toBeUndefined();
  });
});

describe('readWhole and readChildren', () => {
  it('refuses trailing bytes', () => {
    expect(readWhole(hex('05 00'))).toBeDefined();
    expect(readWhole(hex('05 00 00'))).toBeUndefined();
  });

  it('lists the children of a constructed element and refuses primitive ones', () => {
    const bytes = hex('30 06 02 01 05 01 01 ff');
    const children = readChildren(bytes, readWhole(bytes)!);
    expect(children?.map((child) => child.tag)).toEqual([0x02, 0x01]);
    expect(readChildren(hex('04 00'), readWhole(hex('04 00'))!)).toBeUndefined();
    const broken = hex('30 03 02 05 05');
    expect(readChildren(broken, readWhole(broken)!)).toBeUndefined();
  });
});

describe('integerValue (two\'s complement)', () => {
  it.each([
    ['00', 0n],
    ['05', 5n],
    ['000005', 5n],
    ['0080', 128n],
    ['80', -128n],
    ['ff', -1n],
    ['ff7f', -129n],
    ['24000000035982711679ce15c1000000000003', 0x24000000035982711679ce15c1000000000003n],
  ])('%s is %s', (bytes, value) => {
    expect(integerValue(hex(bytes))).toBe(value);
  });

  it('has no value for empty content', () => {
    expect(integerValue(Buffer.alloc(0))).toBeUndefined();
  });
});

describe('objectIdentifierText', () => {
  it.each([
    ['55 1d 0f', '2.5.29.15'],
    ['2b 06 01 04 01 81 98 3e', '1.3.6.1.4.1.19518'],
    ['2a 86 48 ce 3d 04 03 02', '1.2.840.10045.4.3.2'],
    ['88 37', '2.999'],
  ])('%s is %s', (bytes, text) => {
    expect(objectIdentifierText(hex(bytes))).toBe(text);
  });

  it('has no value for empty or unterminated content', () => {
    expect(objectIdentifierText(Buffer.alloc(0))).toBeUndefined();
    expect(objectIdentifierText(hex('2b 86'))).toBeUndefined();
  });
});
