import { describe, expect, it } from 'vitest';
import { decodeFrame, LinkType, type DecodedFrame, type UdpDatagram } from '../../server/capture/frames.js';

// Golden frames, written byte by byte. Checksums are zero: the decoder ignores them.

const PAYLOAD = [0x61, 0x01, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef]; // 'a', version 1.0.0, 4 bytes of "ciphertext"

/** 198.18.0.2:54321 → 198.18.0.1:40000, 8-byte payload: 36 bytes. */
const IPV4_UDP = [
  0x45, 0x00, 0x00, 0x24, // version 4, IHL 5, DSCP/ECN 0, total length 36
  0x12, 0x34, 0x40, 0x00, // identification, flags DF, fragment offset 0
  0x40, 0x11, 0x00, 0x00, // TTL 64, protocol 17 (UDP), header checksum
  198, 18, 0, 2, // source
  198, 18, 0, 1, // destination
  0xd4, 0x31, 0x9c, 0x40, // source port 54321, destination port 40000
  0x00, 0x10, 0x00, 0x00, // UDP length 16, checksum
  ...PAYLOAD,
];

/** The same datagram with a 4-byte option (router alert): IHL 6, 40 bytes. */
const IPV4_UDP_WITH_OPTIONS = [
  0x46, 0x00, 0x00, 0x28, // version 4, IHL 6, total length 40
  0x12, 0x34, 0x40, 0x00, // identification, DF
  0x40, 0x11, 0x00, 0x00, // TTL 64, UDP, checksum
  198, 18, 0, 2, // source
  198, 18, 0, 1, // destination
  0x94, 0x04, 0x00, 0x00, // option: router alert (type 148, length 4, value 0)
  0xd4, 0x31, 0x9c, 0x40, // ports 54321 → 40000
  0x00, 0x10, 0x00, 0x00, // UDP length 16, checksum
  ...PAYLOAD,
];

const FD00_18_2 = [0xfd, 0x00, 0x00, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02];
const FD00_18_1 = [0xfd, 0x00, 0x00, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];

/** [fd00:18::2]:54321 → [fd00:18::1]:40000, no extension headers: 56 bytes. */
const IPV6_UDP = [
  0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
  0x00, 0x10, 0x11, 0x40, // payload length 16, next header 17 (UDP), hop limit 64
  ...FD00_18_2, // source
  ...FD00_18_1, // destination
  0xd4, 0x31, 0x9c, 0x40, // ports 54321 → 40000
  0x00, 0x10, 0x00, 0x00, // UDP length 16, checksum
  ...PAYLOAD,
];

/** The same datagram behind hop-by-hop (8 bytes) and destination options (16 bytes): 80 bytes. */
const IPV6_UDP_WITH_EXTENSIONS = [
  0x60, 0x00, 0x00, 0x00, // version 6
  0x00, 0x28, 0x00, 0x40, // payload length 40, next header 0 (hop-by-hop), hop limit 64
  ...FD00_18_2,
  ...FD00_18_1,
  0x3c, 0x00, 0x01, 0x04, // hop-by-hop: next 60 (destination options), length 0 (8 bytes); PadN, 4 bytes
  0x00, 0x00, 0x00, 0x00, //   PadN data
  0x11, 0x01, 0x01, 0x0c, // destination options: next 17 (UDP), length 1 (16 bytes); PadN, 12 bytes
  0x00, 0x00, 0x00, 0x00, //   PadN data
  0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00,
  0xd4, 0x31, 0x9c, 0x40, // ports 54321 → 40000
  0x00, 0x10, 0x00, 0x00, // UDP length 16, checksum
  ...PAYLOAD,
];

/** A datagram behind a routing header (type 4, segments left 0): 64 bytes. */
const IPV6_UDP_WITH_ROUTING = [
  0x60, 0x00, 0x00, 0x00,
  0x00, 0x18, 0x2b, 0x40, // payload length 24, next header 43 (routing)
  ...FD00_18_2,
  ...FD00_18_1,
  0x11, 0x00, 0x04, 0x00, // routing: next 17 (UDP), length 0, type 4, segments left 0
  0x00, 0x00, 0x00, 0x00, //   last entry, flags, tag
  0xd4, 0x31, 0x9c, 0x40,
  0x00, 0x10, 0x00, 0x00,
  ...PAYLOAD,
];

/** A first fragment: fragment header (next 17, offset 0, M=1) then UDP. */
const IPV6_FRAGMENT = [
  0x60, 0x00, 0x00, 0x00,
  0x00, 0x18, 0x2c, 0x40, // payload length 24, next header 44 (fragment)
  ...FD00_18_2,
  ...FD00_18_1,
  0x11, 0x00, 0x00, 0x01, // fragment: next 17, reserved, offset 0, M = 1
  0x00, 0x00, 0x12, 0x34, //   identification
  0xd4, 0x31, 0x9c, 0x40,
  0x00, 0x10, 0x00, 0x00,
  ...PAYLOAD,
];

const SERVER_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const CLIENT_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

function ethernet(ethertype: readonly number[], packet: readonly number[]): Uint8Array {
  return Uint8Array.from([...SERVER_MAC, ...CLIENT_MAC, ...ethertype, ...packet]);
}

const ETHERTYPE_IPV4 = [0x08, 0x00];
const ETHERTYPE_IPV6 = [0x86, 0xdd];

/** Linux cooked header: packet type, ARPHRD type, address length, 8 address bytes, protocol. */
function sll(protocol: readonly number[], packet: readonly number[]): Uint8Array {
  return Uint8Array.from([
    0x00, 0x00, // packet type 0: addressed to this host
    0x00, 0x01, // ARPHRD_ETHER
    0x00, 0x06, // link-layer address length 6
    ...CLIENT_MAC, 0x00, 0x00, // address, padded to 8
    ...protocol,
    ...packet,
  ]);
}

/** Linux cooked v2 header: protocol, reserved, interface index, ARPHRD type, packet type, address length, address. */
function sll2(protocol: readonly number[], packet: readonly number[]): Uint8Array {
  return Uint8Array.from([
    ...protocol,
    0x00, 0x00, // reserved
    0x00, 0x00, 0x00, 0x02, // interface index 2
    0x00, 0x01, // ARPHRD_ETHER
    0x00, // packet type: to this host
    0x06, // address length
    ...CLIENT_MAC, 0x00, 0x00,
    ...packet,
  ]);
}

const IPV4_EXPECTED: UdpDatagram = {
  family: 4,
  source: '198.18.0.2',
  destination: '198.18.0.1',
  sourcePort: 54321,
  destinationPort: 40000,
  payload: Uint8Array.from(PAYLOAD),
  originalFrameLength: 36 + 14,
};

const IPV6_EXPECTED: UdpDatagram = {
  family: 6,
  source: 'fd00:18::2',
  destination: 'fd00:18::1',
  sourcePort: 54321,
  destinationPort: 40000,
  payload: Uint8Array.from(PAYLOAD),
  originalFrameLength: 56 + 14,
};

function decoded(result: DecodedFrame): UdpDatagram {
  if (!result.ok) throw new Error(`expected a datagram, got ${result.reason} (${result.detail ?? ''})`);
  return { ...result.value, payload: Uint8Array.from(result.value.payload) };
}

function reason(result: DecodedFrame): string {
  return result.ok ? 'ok' : result.reason;
}

/** Every valid golden frame, with the link type it is decoded under and what it holds. */
const GOLDEN: ReadonlyArray<{ name: string; linkType: number; frame: Uint8Array; expected: UdpDatagram }> = [
  { name: 'Ethernet / IPv4', linkType: LinkType.ETHERNET, frame: ethernet(ETHERTYPE_IPV4, IPV4_UDP), expected: IPV4_EXPECTED },
  {
    name: 'Ethernet / IPv4 with options',
    linkType: LinkType.ETHERNET,
    frame: ethernet(ETHERTYPE_IPV4, IPV4_UDP_WITH_OPTIONS),
    expected: { ...IPV4_EXPECTED, originalFrameLength: 40 + 14 },
  },
  { name: 'Ethernet / IPv6', linkType: LinkType.ETHERNET, frame: ethernet(ETHERTYPE_IPV6, IPV6_UDP), expected: IPV6_EXPECTED },
  {
    name: 'Ethernet / 802.1Q VLAN 42 / IPv4',
    linkType: LinkType.ETHERNET,
    frame: ethernet([0x81, 0x00], [0x00, 0x2a, ...ETHERTYPE_IPV4, ...IPV4_UDP]), // TCI: priority 0, VLAN 42; inner ethertype
    expected: IPV4_EXPECTED,
  },
  {
    name: 'Ethernet / 802.1ad + 802.1Q (QinQ) / IPv6',
    linkType: LinkType.ETHERNET,
    frame: ethernet([0x88, 0xa8], [0x00, 0x64, 0x81, 0x00, 0x00, 0x2a, ...ETHERTYPE_IPV6, ...IPV6_UDP]), // outer VLAN 100, inner 42
    expected: IPV6_EXPECTED,
  },
  {
    name: 'Ethernet / IPv6 with hop-by-hop and destination options',
    linkType: LinkType.ETHERNET,
    frame: ethernet(ETHERTYPE_IPV6, IPV6_UDP_WITH_EXTENSIONS),
    expected: { ...IPV6_EXPECTED, originalFrameLength: 80 + 14 },
  },
  {
    name: 'Ethernet / IPv6 with a routing header',
    linkType: LinkType.ETHERNET,
    frame: ethernet(ETHERTYPE_IPV6, IPV6_UDP_WITH_ROUTING),
    expected: { ...IPV6_EXPECTED, originalFrameLength: 64 + 14 },
  },
  { name: 'Linux SLL / IPv4', linkType: LinkType.LINUX_SLL, frame: sll(ETHERTYPE_IPV4, IPV4_UDP), expected: IPV4_EXPECTED },
  { name: 'Linux SLL / IPv6', linkType: LinkType.LINUX_SLL, frame: sll(ETHERTYPE_IPV6, IPV6_UDP), expected: IPV6_EXPECTED },
  {
    name: 'Linux SLL / VLAN 42 / IPv4',
    linkType: LinkType.LINUX_SLL,
    frame: sll([0x81, 0x00], [0x00, 0x2a, ...ETHERTYPE_IPV4, ...IPV4_UDP]),
    expected: IPV4_EXPECTED,
  },
  { name: 'Linux SLL2 / IPv4', linkType: LinkType.LINUX_SLL2, frame: sll2(ETHERTYPE_IPV4, IPV4_UDP), expected: IPV4_EXPECTED },
  { name: 'Linux SLL2 / IPv6', linkType: LinkType.LINUX_SLL2, frame: sll2(ETHERTYPE_IPV6, IPV6_UDP), expected: IPV6_EXPECTED },
  {
    name: 'NULL, little-endian AF_INET (2)',
    linkType: LinkType.NULL,
    frame: Uint8Array.from([0x02, 0x00, 0x00, 0x00, ...IPV4_UDP]),
    expected: IPV4_EXPECTED,
  },
  {
    name: 'NULL, little-endian AF_INET6 (30, macOS)',
    linkType: LinkType.NULL,
    frame: Uint8Array.from([0x1e, 0x00, 0x00, 0x00, ...IPV6_UDP]),
    expected: IPV6_EXPECTED,
  },
  {
    name: 'NULL, big-endian AF_INET6 (28, FreeBSD)',
    linkType: LinkType.NULL,
    frame: Uint8Array.from([0x00, 0x00, 0x00, 0x1c, ...IPV6_UDP]),
    expected: IPV6_EXPECTED,
  },
  {
    name: 'LOOP, big-endian AF_INET6 (24, OpenBSD)',
    linkType: LinkType.LOOP,
    frame: Uint8Array.from([0x00, 0x00, 0x00, 0x18, ...IPV6_UDP]),
    expected: IPV6_EXPECTED,
  },
  { name: 'RAW (12) / IPv4', linkType: LinkType.RAW, frame: Uint8Array.from(IPV4_UDP), expected: IPV4_EXPECTED },
  { name: 'RAW (14) / IPv6', linkType: LinkType.RAW_OPENBSD, frame: Uint8Array.from(IPV6_UDP), expected: IPV6_EXPECTED },
  { name: 'RAW (101) / IPv4 with options', linkType: LinkType.RAW_LINKTYPE, frame: Uint8Array.from(IPV4_UDP_WITH_OPTIONS), expected: { ...IPV4_EXPECTED, originalFrameLength: 54 } },
];

describe('decodeFrame: golden frames', () => {
  for (const { name, linkType, frame, expected } of GOLDEN) {
    it(`decodes ${name}`, () => {
      expect(decoded(decodeFrame(linkType, frame))).toEqual(expected);
    });

    it(`rejects ${name} cut short at every length as truncated`, () => {
      for (let length = 0; length < frame.length; length += 1) {
        expect([length, reason(decodeFrame(linkType, frame.subarray(0, length)))]).toEqual([length, 'truncated']);
      }
    });
  }

  it('returns the payload as a view into the frame, not a copy', () => {
    const frame = ethernet(ETHERTYPE_IPV4, IPV4_UDP);
    const result = decodeFrame(LinkType.ETHERNET, frame);
    if (!result.ok) throw new Error(result.reason);
    expect(result.value.payload.buffer).toBe(frame.buffer);
    expect(result.value.payload.byteOffset).toBe(frame.length - PAYLOAD.length);
  });

  it('reads a frame that is a view at an offset into a larger buffer', () => {
    const backing = new Uint8Array(100 + IPV6_UDP.length + 14);
    backing.set(ethernet(ETHERTYPE_IPV6, IPV6_UDP), 100);
    expect(decoded(decodeFrame(LinkType.ETHERNET, backing.subarray(100)))).toEqual(IPV6_EXPECTED);
  });

  it('ignores Ethernet padding after the IP packet', () => {
    const padded = Uint8Array.from([...ethernet(ETHERTYPE_IPV4, IPV4_UDP), 0, 0, 0, 0, 0, 0]);
    expect(decoded(decodeFrame(LinkType.ETHERNET, padded))).toEqual(IPV4_EXPECTED);
  });

  it('measures originalFrameLength from the IP header, the same on every link type', () => {
    const lengths = GOLDEN.filter(({ frame }) => frame.length > 0).map(({ linkType, frame }) => {
      const result = decodeFrame(linkType, frame);
      return result.ok ? result.value.originalFrameLength - result.value.payload.length : -1;
    });
    // IP + UDP headers + 14: 42 for IPv4, 46 with the option, 62 for IPv6, more with extension headers.
    expect(new Set(lengths)).toEqual(new Set([42, 46, 62, 86, 70]));
  });
});

/** Replaces bytes of a copy of `bytes` from `offset`. */
function patched(bytes: readonly number[], offset: number, replacement: readonly number[]): number[] {
  const copy = [...bytes];
  copy.splice(offset, replacement.length, ...replacement);
  return copy;
}

describe('decodeFrame: rejections', () => {
  const cases: ReadonlyArray<[string, number, Uint8Array, string]> = [
    ['an unknown link type (802.11 radiotap, 127)', 127, ethernet(ETHERTYPE_IPV4, IPV4_UDP), 'unknown-link-type'],
    ['ARP', LinkType.ETHERNET, ethernet([0x08, 0x06], IPV4_UDP), 'not-ip'],
    ['an 802.3 length field instead of an ethertype', LinkType.ETHERNET, ethernet([0x00, 0x2e], IPV4_UDP), 'not-ip'],
    ['three stacked VLAN tags', LinkType.ETHERNET, ethernet([0x81, 0x00], [0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00, 0, 3, ...ETHERTYPE_IPV4, ...IPV4_UDP]), 'not-ip'],
    ['SLL carrying ARP', LinkType.LINUX_SLL, sll([0x08, 0x06], IPV4_UDP), 'not-ip'],
    ['SLL packet type 4: this host sent it', LinkType.LINUX_SLL, Uint8Array.from(patched(Array.from(sll(ETHERTYPE_IPV4, IPV4_UDP)), 0, [0x00, 0x04])), 'outgoing'],
    ['SLL2 packet type 4: this host sent it', LinkType.LINUX_SLL2, Uint8Array.from(patched(Array.from(sll2(ETHERTYPE_IPV4, IPV4_UDP)), 10, [0x04])), 'outgoing'],
    ['NULL with an unknown family', LinkType.NULL, Uint8Array.from([0x07, 0x00, 0x00, 0x00, ...IPV4_UDP]), 'not-ip'],
    ['LOOP with a little-endian family', LinkType.LOOP, Uint8Array.from([0x02, 0x00, 0x00, 0x00, ...IPV4_UDP]), 'not-ip'],
    ['RAW with IP version 5', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 0, [0x55])), 'not-ip'],
    ['IPv6 bytes under an IPv4 ethertype', LinkType.ETHERNET, ethernet(ETHERTYPE_IPV4, IPV6_UDP), 'bad-ip-header'],
    ['IPv4 bytes under an IPv6 loopback family', LinkType.NULL, Uint8Array.from([0x0a, 0x00, 0x00, 0x00, ...IPV4_UDP]), 'bad-ip-header'],
    ['IPv4 IHL 4', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 0, [0x44])), 'bad-ip-header'],
    ['IPv4 total length shorter than its header', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 2, [0x00, 0x13])), 'bad-ip-header'],
    ['an IPv4 first fragment (MF set)', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 6, [0x20, 0x00])), 'fragment'],
    ['an IPv4 later fragment (offset 185)', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 6, [0x00, 0xb9])), 'fragment'],
    ['IPv4 TCP', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 9, [0x06])), 'not-udp'],
    ['an IPv6 fragment header', LinkType.ETHERNET, ethernet(ETHERTYPE_IPV6, IPV6_FRAGMENT), 'fragment'],
    ['IPv6 ICMPv6 (58)', LinkType.RAW, Uint8Array.from(patched(IPV6_UDP, 6, [0x3a])), 'not-udp'],
    ['IPv6 no next header (59)', LinkType.RAW, Uint8Array.from(patched(IPV6_UDP, 6, [0x3b])), 'not-udp'],
    ['hop-by-hop after destination options', LinkType.RAW, Uint8Array.from(patched(IPV6_UDP_WITH_EXTENSIONS, 6, [0x3c]).map((byte, index) => (index === 40 ? 0x00 : byte))), 'bad-ip-header'],
    ['an extension header longer than the IPv6 payload', LinkType.RAW, Uint8Array.from(patched(IPV6_UDP_WITH_EXTENSIONS, 49, [0x05])), 'bad-ip-header'],
    ['UDP length larger than the IP payload', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 24, [0x00, 0x11])), 'bad-udp-header'],
    ['UDP length smaller than the IP payload', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 24, [0x00, 0x0f])), 'bad-udp-header'],
    ['an IPv4 payload too short for a UDP header', LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 2, [0x00, 0x1b]).slice(0, 27)), 'bad-udp-header'],
    ['IPv6 UDP length field of 0 (jumbogram form)', LinkType.RAW, Uint8Array.from(patched(IPV6_UDP, 44, [0x00, 0x00])), 'bad-udp-header'],
  ];

  for (const [name, linkType, frame, expected] of cases) {
    it(`rejects ${name} as ${expected}`, () => {
      expect(reason(decodeFrame(linkType, frame))).toBe(expected);
    });
  }

  it('bounds the IPv6 extension-header walk', () => {
    const destinationOptions = [0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00]; // next 60, 8 bytes of PadN
    const chain = Array.from({ length: 9 }, () => destinationOptions).flat();
    const packet = [0x60, 0, 0, 0, 0x00, chain.length, 0x3c, 0x40, ...FD00_18_2, ...FD00_18_1, ...chain];
    const result = decodeFrame(LinkType.RAW, Uint8Array.from(packet));
    expect(result).toMatchObject({ ok: false, reason: 'bad-ip-header', detail: 'too many IPv6 extension headers' });
  });
});

describe('decodeFrame: address text is canonical', () => {
  function ipv6Source(source: readonly number[]): string {
    const result = decodeFrame(LinkType.RAW, Uint8Array.from(patched(IPV6_UDP, 8, source)));
    return result.ok ? result.value.source : result.reason;
  }

  it.each([
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1], '2001:db8::1:0:0:1'], // first of two equal zero runs
    [[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], '2001:db8:0:1:1:1:1:1'], // one zero group stays
    [[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0x5e, 0xff, 0xfe, 0x00, 0x53, 0x00], 'fe80::200:5eff:fe00:5300'], // lowercase, no leading zeros
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 2], '::ffff:198.18.0.2'], // IPv4-mapped
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], '::'],
    [[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'fd00::'],
  ])('%j → %s', (bytes, text) => {
    expect(ipv6Source(bytes)).toBe(text);
  });

  it('writes IPv4 without leading zeros', () => {
    const result = decodeFrame(LinkType.RAW, Uint8Array.from(patched(IPV4_UDP, 12, [10, 0, 0, 255])));
    expect(result.ok && result.value.source).toBe('10.0.0.255');
  });
});
