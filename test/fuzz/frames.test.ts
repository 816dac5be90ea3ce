import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalAddress, parseAddress } from '../../client-lib/protocol/address.js';
import { decodeFrame, LinkType, type DecodedFrame, type FrameReason } from '../../server/capture/frames.js';

const SEED = 20260101;
const RUNS = 3000;

const REASONS = {
  truncated: true,
  'unknown-link-type': true,
  'not-ip': true,
  'bad-ip-header': true,
  fragment: true,
  'not-udp': true,
  'bad-udp-header': true,
  outgoing: true,
} satisfies Record<FrameReason, true>;

const LINK_TYPES = Object.values(LinkType);

/** What a frame says, independent of how the decoder reads it. */
interface FrameSpec {
  readonly linkType: number;
  readonly vlanTags: number;
  readonly family: 4 | 6;
  readonly source: Uint8Array;
  readonly destination: Uint8Array;
  readonly ipv4OptionWords: number;
  readonly ipv6Extensions: ReadonlyArray<{ readonly type: 0 | 43 | 60; readonly units: number }>;
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly payload: Uint8Array;
  readonly trailer: number;
}

const u16 = (value: number): number[] => [value >> 8, value & 0xff];

/** An independent encoder: link header, optional VLAN tags, IPv4 (options) or IPv6 (extension headers), UDP. */
function encode(spec: FrameSpec): { frame: Uint8Array; ipLength: number } {
  const udp = [...u16(spec.sourcePort), ...u16(spec.destinationPort), ...u16(8 + spec.payload.length), 0, 0, ...spec.payload];
  let ip: number[];
  if (spec.family === 4) {
    const headerLength = 20 + 4 * spec.ipv4OptionWords;
    ip = [0x40 | (headerLength / 4), 0, ...u16(headerLength + udp.length), 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip.push(...spec.source, ...spec.destination, ...new Array<number>(4 * spec.ipv4OptionWords).fill(1), ...udp); // NOP options
  } else {
    const extensions: number[] = [];
    spec.ipv6Extensions.forEach(({ units }, index) => {
      const next = spec.ipv6Extensions[index + 1]?.type ?? 17;
      extensions.push(next, units, ...new Array<number>(6 + 8 * units).fill(0)); // Pad1 options / zero routing data
    });
    const first = spec.ipv6Extensions[0]?.type ?? 17;
    ip = [0x60, 0, 0, 0, ...u16(extensions.length + udp.length), first, 64, ...spec.source, ...spec.destination, ...extensions, ...udp];
  }
  const ethertype = spec.family === 4 ? [0x08, 0x00] : [0x86, 0xdd];
  // The link header's type field and what follows it: a (TPID, TCI) pair per VLAN tag, then the IP ethertype.
  const typeChain: number[] = [];
  for (let tag = 0; tag < spec.vlanTags; tag += 1) typeChain.push(0x81, 0x00, 0x00, tag + 1);
  typeChain.push(...ethertype);
  let link: number[];
  switch (spec.linkType) {
    case LinkType.ETHERNET:
      link = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, ...typeChain];
      break;
    case LinkType.LINUX_SLL:
      link = [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, ...typeChain];
      break;
    case LinkType.LINUX_SLL2:
      link = [...typeChain.slice(0, 2), 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, ...typeChain.slice(2)];
      break;
    case LinkType.NULL:
      link = spec.family === 4 ? [2, 0, 0, 0] : [10, 0, 0, 0];
      break;
    case LinkType.LOOP:
      link = spec.family === 4 ? [0, 0, 0, 2] : [0, 0, 0, 24];
      break;
    default:
      link = [];
  }
  return { frame: Uint8Array.from([...link, ...ip, ...new Array<number>(spec.trailer).fill(0)]), ipLength: ip.length };
}

function frameSpec(): fc.Arbitrary<FrameSpec> {
  return fc
    .record({
      linkType: fc.constantFrom(...LINK_TYPES),
      vlanTags: fc.integer({ min: 0, max: 2 }),
      family: fc.constantFrom(4 as const, 6 as const),
      source16: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      destination16: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      ipv4OptionWords: fc.integer({ min: 0, max: 10 }),
      extensionTypes: fc.array(fc.constantFrom(43 as const, 60 as const), { maxLength: 4 }),
      hopByHop: fc.boolean(),
      extensionUnits: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 5, maxLength: 5 }),
      sourcePort: fc.integer({ min: 0, max: 65535 }),
      destinationPort: fc.integer({ min: 0, max: 65535 }),
      payload: fc.uint8Array({ maxLength: 300 }),
      trailer: fc.integer({ min: 0, max: 8 }),
    })
    .map((drawn) => {
      const types: Array<0 | 43 | 60> = drawn.hopByHop ? [0, ...drawn.extensionTypes] : [...drawn.extensionTypes];
      const ethernetLike = [LinkType.ETHERNET, LinkType.LINUX_SLL, LinkType.LINUX_SLL2].some((type) => type === drawn.linkType);
      return {
        linkType: drawn.linkType,
        vlanTags: ethernetLike ? drawn.vlanTags : 0,
        family: drawn.family,
        source: drawn.family === 4 ? drawn.source16.subarray(0, 4) : drawn.source16,
        destination: drawn.family === 4 ? drawn.destination16.subarray(0, 4) : drawn.destination16,
        ipv4OptionWords: drawn.ipv4OptionWords,
        ipv6Extensions: types.map((type, index) => ({ type, units: drawn.extensionUnits[index] ?? 0 })),
        sourcePort: drawn.sourcePort,
        destinationPort: drawn.destinationPort,
        payload: drawn.payload,
        trailer: drawn.trailer,
      };
    });
}

/** What must hold for any input: a typed result, and an accepted datagram that lies inside the frame. */
function expectWellFormed(frame: Uint8Array, result: DecodedFrame): void {
  if (!result.ok) {
    expect(Object.hasOwn(REASONS, result.reason)).toBe(true);
    return;
  }
  const { payload, family, source, destination, originalFrameLength, sourcePort, destinationPort } = result.value;
  expect(payload.buffer).toBe(frame.buffer);
  expect(payload.byteOffset).toBeGreaterThanOrEqual(frame.byteOffset);
  expect(payload.byteOffset + payload.length).toBeLessThanOrEqual(frame.byteOffset + frame.length);
  const ipLength = originalFrameLength - 14;
  expect(ipLength).toBeLessThanOrEqual(frame.length);
  expect(ipLength).toBeGreaterThanOrEqual(payload.length + 8 + (family === 4 ? 20 : 40));
  for (const address of [source, destination]) {
    expect(canonicalAddress(address)).toBe(address);
    expect(parseAddress(address)?.length).toBe(family === 4 ? 4 : 16);
  }
  for (const port of [sourcePort, destinationPort]) expect(port >= 0 && port <= 65535).toBe(true);
}

describe('decodeFrame fuzzing', () => {
  it('decodes every well-formed frame to exactly what was encoded', () => {
    fc.assert(
      fc.property(frameSpec(), (spec) => {
        const { frame, ipLength } = encode(spec);
        const result = decodeFrame(spec.linkType, frame);
        if (!result.ok) throw new Error(`${result.reason}: ${result.detail ?? ''}`);
        expect(Array.from(parseAddress(result.value.source) ?? [])).toEqual(Array.from(spec.source));
        expect(Array.from(parseAddress(result.value.destination) ?? [])).toEqual(Array.from(spec.destination));
        expect(result.value.family).toBe(spec.family);
        expect([result.value.sourcePort, result.value.destinationPort]).toEqual([spec.sourcePort, spec.destinationPort]);
        expect(Buffer.from(result.value.payload).equals(Buffer.from(spec.payload))).toBe(true);
        expect(result.value.originalFrameLength).toBe(ipLength + 14);
        expectWellFormed(frame, result);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('never throws on random bytes under any link type', () => {
    const linkType = fc.oneof(fc.constantFrom(...LINK_TYPES), fc.integer({ min: -1, max: 300 }));
    fc.assert(
      fc.property(linkType, fc.uint8Array({ maxLength: 200 }), (type, frame) => {
        expectWellFormed(frame, decodeFrame(type, frame));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('never throws on mutated well-formed frames, and accepts only what lies inside them', () => {
    const mutation = fc.record({
      writes: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      keep: fc.option(fc.nat()),
    });
    fc.assert(
      fc.property(frameSpec(), mutation, (spec, { writes, keep }) => {
        const { frame } = encode(spec);
        for (const [position, value] of writes) frame[position % frame.length] = value;
        const cut = keep === null ? frame : frame.subarray(0, keep % (frame.length + 1));
        expectWellFormed(cut, decodeFrame(spec.linkType, cut));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
