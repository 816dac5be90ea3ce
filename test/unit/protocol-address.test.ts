import { BlockList, isIPv4, isIPv6, SocketAddress } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalAddress, formatIPv4, formatIPv6, parseAddress, parseIPv4, parseIPv6 } from '../../client-lib/protocol/address.js';

const SEED = 20260101;

function bytesOf(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

describe('formatIPv6 (RFC 5952)', () => {
  it.each([
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'], // 4.2.3: the first of two equal runs
    ['20010db8000000000000000100000001', '2001:db8::1:0:1'], // 4.2.3: the longest run
    ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'], // 4.2.2: one zero group is not shortened
    ['20010DB8000000000000000000000001'.toLowerCase(), '2001:db8::1'], // 4.3: lowercase
    ['00000000000000000000ffffc6120002', '::ffff:198.18.0.2'], // 5: IPv4-mapped
    ['00000000000000000000000001020304', '::102:304'], // IPv4-compatible is deprecated: plain hex
    ['00000000000000000000000000000000', '::'],
    ['00000000000000000000000000000001', '::1'],
    ['00010000000000000000000000000000', '1::'],
    ['fd000018000000000000000000000001', 'fd00:18::1'],
  ])('%s → %s', (hex, text) => {
    expect(formatIPv6(bytesOf(hex))).toBe(text);
  });

  it('matches node:net (libuv inet_ntop) except where libuv writes IPv4-compatible addresses dotted', () => {
    fc.assert(
      fc.property(sparseIPv6Bytes(), (bytes) => {
        const ours = formatIPv6(bytes);
        const node = new SocketAddress({ address: ours, family: 'ipv6' }).address;
        const ipv4Compatible = bytes.subarray(0, 12).every((byte) => byte === 0) && (bytes[12] !== 0 || bytes[13] !== 0);
        expect(isIPv6(ours)).toBe(true);
        if (!ipv4Compatible) expect(ours).toBe(node);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('rejects a wrong length as a programming error', () => {
    expect(() => formatIPv6(new Uint8Array(4))).toThrow(RangeError);
    expect(() => formatIPv4(new Uint8Array(16))).toThrow(RangeError);
  });
});

/** 16 bytes with many zero groups, so that "::" placement is exercised. */
function sparseIPv6Bytes(): fc.Arbitrary<Uint8Array> {
  return fc
    .array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
    .map((groups) => Uint8Array.from(groups.flatMap((group) => [group >> 8, group & 0xff])));
}

/** A valid but non-canonical way to write the address: uppercase, leading zeros, some zero run compressed or not. */
function anyIPv6Text(bytes: Uint8Array, style: { upper: boolean; pad: boolean; compressAt: number }): string {
  const groups = Array.from({ length: 8 }, (_, index) => ((bytes[2 * index] ?? 0) << 8) | (bytes[2 * index + 1] ?? 0));
  const write = (group: number): string => {
    const hex = style.pad ? group.toString(16).padStart(4, '0') : group.toString(16);
    return style.upper ? hex.toUpperCase() : hex;
  };
  let end = style.compressAt;
  while (end < 8 && groups[end] === 0) end += 1;
  if (end === style.compressAt) return groups.map(write).join(':');
  return `${groups.slice(0, style.compressAt).map(write).join(':')}::${groups.slice(end).map(write).join(':')}`;
}

describe('parseIPv6 / canonicalAddress', () => {
  it('gives every spelling of an address the one canonical text', () => {
    fc.assert(
      fc.property(sparseIPv6Bytes(), fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 7 }), (bytes, upper, pad, compressAt) => {
        const text = anyIPv6Text(bytes, { upper, pad, compressAt });
        expect(Buffer.from(parseIPv6(text) ?? [])).toEqual(Buffer.from(bytes));
        expect(canonicalAddress(text)).toBe(formatIPv6(bytes));
        // An independent reader of the same text (node's inet_pton) agrees on the address.
        const blockList = new BlockList();
        blockList.addAddress(text, 'ipv6');
        expect(blockList.check(formatIPv6(bytes), 'ipv6')).toBe(true);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it.each([
    ['::FFFF:198.18.0.2', '::ffff:198.18.0.2'],
    ['0:0:0:0:0:ffff:c612:2', '::ffff:198.18.0.2'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['::', '::'],
    ['198.18.0.1', '198.18.0.1'],
    ['0.0.0.0', '0.0.0.0'],
  ])('%s → %s', (text, canonical) => {
    expect(canonicalAddress(text)).toBe(canonical);
  });

  it.each([
    '', ':', ':::', '1:::2', '1::2::3', ':1::', '1::2:', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', '::1:2:3:4:5:6:7:8',
    '12345::', 'g::', '::1.2.3', '::1.2.3.4:5', '1.2.3.4::', 'fe80::1%eth0', ' ::1',
    '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-4', '1.2.3.4 ', '0x1.2.3.4',
  ])('rejects %j', (text) => {
    expect(parseAddress(text)).toBeUndefined();
    expect(canonicalAddress(text)).toBeUndefined();
  });

  it('agrees with node:net on which texts are addresses', () => {
    const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF:.'.split(''));
    const randomText = fc.array(alphabet, { maxLength: 45 }).map((chars) => chars.join(''));
    // Valid spellings with one character inserted, removed or replaced: near misses.
    const nearMiss = fc
      .tuple(sparseIPv6Bytes(), fc.boolean(), fc.integer({ min: 0, max: 7 }), fc.nat(), fc.nat(2), alphabet)
      .map(([bytes, pad, compressAt, position, edit, char]) => {
        const text = anyIPv6Text(bytes, { upper: false, pad, compressAt });
        const at = position % (text.length + 1);
        return text.slice(0, at) + (edit === 0 ? '' : char) + text.slice(edit === 2 ? at + 1 : at);
      });
    fc.assert(
      fc.property(fc.oneof(randomText, nearMiss), (text) => {
        expect(parseIPv6(text) !== undefined).toBe(isIPv6(text));
      }),
      { seed: SEED, numRuns: 5000 },
    );
  });

  it('parses IPv4 text to its bytes', () => {
    expect(Array.from(parseIPv4('198.18.0.255') ?? [])).toEqual([198, 18, 0, 255]);
  });

  it('agrees with node:net on which texts are IPv4 addresses, and reads their bytes', () => {
    const part = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('', '0', '00', '01', '255', '256', '1000', '+1', ' 1', 'a'));
    const dotted = fc.array(part, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.'));
    const randomText = fc.array(fc.constantFrom(...'0123456789.'.split('')), { maxLength: 18 }).map((chars) => chars.join(''));
    fc.assert(
      fc.property(fc.oneof(dotted, randomText), (text) => {
        const bytes = parseIPv4(text);
        expect(bytes !== undefined).toBe(isIPv4(text));
        if (bytes !== undefined) expect(Array.from(bytes).join('.')).toBe(text);
      }),
      { seed: SEED, numRuns: 5000 },
    );
  });
});
