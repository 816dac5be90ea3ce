/**
 * Captured frame → UDP datagram. Pure and total: every input, however
 * malformed, yields a Decoded value; nothing here throws.
 *
 * Checksums are not verified: they authenticate nothing (the knock's own
 * cryptography does), and with checksum offload a captured UDP checksum is
 * often not filled in yet.
 */
import { accept, reject, type Decoded } from '../../client-lib/protocol/result.js';
import { formatIPv4, formatIPv6 } from '../../client-lib/protocol/address.js';

/** libpcap link-layer header types, as pcap_datalink() reports them. */
export const LinkType = {
  /** BSD loopback: a 4-byte address family in the capturing host's byte order. */
  NULL: 0,
  ETHERNET: 1,
  /** Raw IP: DLT_RAW on most systems, 14 on OpenBSD, 101 as the LINKTYPE_RAW file value. */
  RAW: 12,
  RAW_OPENBSD: 14,
  RAW_LINKTYPE: 101,
  /** OpenBSD loopback: like NULL, but the family is big-endian. */
  LOOP: 108,
  /** Linux "cooked" capture (the `any` device): a 16-byte pseudo-header. */
  LINUX_SLL: 113,
  /** Linux cooked capture v2: a 20-byte pseudo-header with the interface index. */
  LINUX_SLL2: 276,
} as const;

export type FrameReason =
  | 'truncated' // the capture holds fewer bytes than the headers announce
  | 'unknown-link-type'
  | 'not-ip'
  | 'bad-ip-header'
  | 'fragment'
  | 'not-udp'
  | 'bad-udp-header'
  | 'outgoing'; // this host's own transmission (cooked captures say so); never a knock to it

export interface UdpDatagram {
  readonly family: 4 | 6;
  /** Canonical address text (see address.ts). */
  readonly source: string;
  readonly destination: string;
  readonly sourcePort: number;
  readonly destinationPort: number;
  /** The UDP payload, a view into the frame (copy it to keep it past the frame's life). */
  readonly payload: Uint8Array;
  /**
   * The original sKnock's KNOCKPACKET_MIN_LENGTH measure: the length this IP
   * packet would have as an Ethernet frame, i.e. IP packet length + 14. It is
   * computed from the IP header, not the captured link header, so a size
   * threshold means the same on Ethernet, `any` (SLL/SLL2), loopback and raw
   * IP links, and the same as the kernel filter built in filter.ts.
   */
  readonly originalFrameLength: number;
}

export type DecodedFrame = Decoded<UdpDatagram, FrameReason>;

export const ETHERNET_HEADER_LENGTH = 14;
const SLL_HEADER_LENGTH = 16;
const SLL2_HEADER_LENGTH = 20;
const LOOPBACK_HEADER_LENGTH = 4;
const VLAN_TAG_LENGTH = 4;
/** 802.1Q / 802.1ad (QinQ) stacks are two tags deep in practice; more is not a knock. */
const MAX_VLAN_TAGS = 2;
const IPV4_MIN_HEADER_LENGTH = 20;
const IPV6_HEADER_LENGTH = 40;
/** Bounds the extension-header walk; each header is at least 8 bytes anyway. */
const MAX_IPV6_EXTENSION_HEADERS = 8;
const UDP_HEADER_LENGTH = 8;

/** Linux packet type of a frame this host sent (SLL offset 0, SLL2 offset 10). */
const PACKET_OUTGOING = 4;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = new Set([0x8100, 0x88a8, 0x9100]);

const IP_PROTOCOL_UDP = 17;
const IPV6_HOP_BY_HOP = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_DESTINATION_OPTIONS = 60;

/** AF_INET is 2 everywhere; AF_INET6 differs by system (Linux, OpenBSD/NetBSD, FreeBSD, macOS). */
const LOOPBACK_FAMILY_IPV4 = 2;
const LOOPBACK_FAMILIES_IPV6 = new Set([10, 24, 28, 30]);

/** Where the IP packet starts in a frame and which version the link header announced (if any). */
interface NetworkLayer {
  readonly offset: number;
  readonly family: 4 | 6 | undefined;
}

type Located = Decoded<NetworkLayer, FrameReason>;

export function decodeFrame(linkType: number, frame: Uint8Array): DecodedFrame {
  const located = locateNetworkLayer(linkType, frame);
  if (!located.ok) return located;
  return decodeIpPacket(frame.subarray(located.value.offset), located.value.family);
}

function readUint16(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] ?? 0) << 8) | (bytes[offset + 1] ?? 0);
}

function locateNetworkLayer(linkType: number, frame: Uint8Array): Located {
  switch (linkType) {
    case LinkType.ETHERNET:
      if (frame.length < ETHERNET_HEADER_LENGTH) return reject('truncated', 'Ethernet header');
      return followEthertype(frame, readUint16(frame, 12), ETHERNET_HEADER_LENGTH);
    case LinkType.LINUX_SLL:
      if (frame.length < SLL_HEADER_LENGTH) return reject('truncated', 'SLL header');
      if (readUint16(frame, 0) === PACKET_OUTGOING) return reject('outgoing');
      return followEthertype(frame, readUint16(frame, 14), SLL_HEADER_LENGTH);
    case LinkType.LINUX_SLL2:
      if (frame.length < SLL2_HEADER_LENGTH) return reject('truncated', 'SLL2 header');
      if (frame[10] === PACKET_OUTGOING) return reject('outgoing');
      return followEthertype(frame, readUint16(frame, 0), SLL2_HEADER_LENGTH);
    case LinkType.NULL:
    case LinkType.LOOP:
      return locateAfterLoopbackHeader(linkType, frame);
    case LinkType.RAW:
    case LinkType.RAW_OPENBSD:
    case LinkType.RAW_LINKTYPE:
      return accept({ offset: 0, family: undefined });
    default:
      return reject('unknown-link-type', `link type ${linkType}`);
  }
}

/** Skips VLAN tags (libpcap re-inserts them into Ethernet and SLL frames) down to IPv4 or IPv6. */
function followEthertype(frame: Uint8Array, firstEthertype: number, headerEnd: number): Located {
  let ethertype = firstEthertype;
  let offset = headerEnd;
  for (let tags = 0; ETHERTYPE_VLAN.has(ethertype); tags += 1) {
    if (tags === MAX_VLAN_TAGS) return reject('not-ip', 'too many VLAN tags');
    if (frame.length < offset + VLAN_TAG_LENGTH) return reject('truncated', 'VLAN tag');
    ethertype = readUint16(frame, offset + 2);
    offset += VLAN_TAG_LENGTH;
  }
  if (ethertype === ETHERTYPE_IPV4) return accept({ offset, family: 4 });
  if (ethertype === ETHERTYPE_IPV6) return accept({ offset, family: 6 });
  return reject('not-ip', `ethertype 0x${ethertype.toString(16).padStart(4, '0')}`);
}

function locateAfterLoopbackHeader(linkType: number, frame: Uint8Array): Located {
  if (frame.length < LOOPBACK_HEADER_LENGTH) return reject('truncated', 'loopback header');
  const [b0 = 0, b1 = 0, b2 = 0, b3 = 0] = frame;
  // Families are small numbers: big-endian puts the value in the last byte, little-endian in the first.
  // DLT_NULL is in the capturing host's order (either); DLT_LOOP is always big-endian.
  const bigEndian = b0 === 0 && b1 === 0 && b2 === 0 ? b3 : undefined;
  const littleEndian = linkType === LinkType.NULL && b1 === 0 && b2 === 0 && b3 === 0 ? b0 : undefined;
  const family = bigEndian ?? littleEndian;
  if (family === LOOPBACK_FAMILY_IPV4) return accept({ offset: LOOPBACK_HEADER_LENGTH, family: 4 });
  if (family !== undefined && LOOPBACK_FAMILIES_IPV6.has(family)) return accept({ offset: LOOPBACK_HEADER_LENGTH, family: 6 });
  return reject('not-ip', 'loopback address family');
}

function decodeIpPacket(packet: Uint8Array, announced: 4 | 6 | undefined): DecodedFrame {
  if (packet.length < 1) return reject('truncated', 'IP header');
  const version = (packet[0] ?? 0) >> 4;
  if (announced === undefined && version !== 4 && version !== 6) return reject('not-ip', `IP version ${version}`);
  // A link header that says IPv4 over bytes that say IPv6 (or the reverse) is crafted.
  if (announced !== undefined && version !== announced) return reject('bad-ip-header', `version ${version} under an IPv${announced} link header`);
  return version === 4 ? decodeIPv4(packet) : decodeIPv6(packet);
}

function decodeIPv4(packet: Uint8Array): DecodedFrame {
  if (packet.length < IPV4_MIN_HEADER_LENGTH) return reject('truncated', 'IPv4 header');
  const headerLength = ((packet[0] ?? 0) & 0x0f) * 4;
  if (headerLength < IPV4_MIN_HEADER_LENGTH) return reject('bad-ip-header', `IHL ${headerLength / 4}`);
  const totalLength = readUint16(packet, 2);
  if (totalLength < headerLength) return reject('bad-ip-header', `total length ${totalLength} < header length ${headerLength}`);
  if (totalLength > packet.length) return reject('truncated', `IPv4 total length ${totalLength}, captured ${packet.length}`);
  // More-fragments flag or a fragment offset: a knock is one whole datagram, and
  // a non-first fragment carries no UDP header at all.
  if ((readUint16(packet, 6) & 0x3fff) !== 0) return reject('fragment', 'IPv4 fragment');
  if (packet[9] !== IP_PROTOCOL_UDP) return reject('not-udp', `IPv4 protocol ${packet[9]}`);
  return decodeUdp(packet.subarray(headerLength, totalLength), {
    family: 4,
    source: formatIPv4(packet.subarray(12, 16)),
    destination: formatIPv4(packet.subarray(16, 20)),
    ipPacketLength: totalLength,
  });
}

function decodeIPv6(packet: Uint8Array): DecodedFrame {
  if (packet.length < IPV6_HEADER_LENGTH) return reject('truncated', 'IPv6 header');
  const packetLength = IPV6_HEADER_LENGTH + readUint16(packet, 4);
  if (packetLength > packet.length) return reject('truncated', `IPv6 packet length ${packetLength}, captured ${packet.length}`);
  let nextHeader = packet[6] ?? 0;
  let offset = IPV6_HEADER_LENGTH;
  for (let index = 0; index < MAX_IPV6_EXTENSION_HEADERS; index += 1) {
    switch (nextHeader) {
      case IP_PROTOCOL_UDP:
        return decodeUdp(packet.subarray(offset, packetLength), {
          family: 6,
          source: formatIPv6(packet.subarray(8, 24)),
          destination: formatIPv6(packet.subarray(24, 40)),
          ipPacketLength: packetLength,
        });
      case IPV6_FRAGMENT:
        return reject('fragment', 'IPv6 fragment header');
      case IPV6_HOP_BY_HOP:
      case IPV6_ROUTING:
      case IPV6_DESTINATION_OPTIONS: {
        // RFC 8200 4.1: hop-by-hop options may only follow the fixed header.
        if (nextHeader === IPV6_HOP_BY_HOP && index !== 0) return reject('bad-ip-header', 'hop-by-hop header not first');
        if (offset + 2 > packetLength) return reject('bad-ip-header', `extension header ${nextHeader} past the payload`);
        const extensionLength = ((packet[offset + 1] ?? 0) + 1) * 8;
        if (offset + extensionLength > packetLength) return reject('bad-ip-header', `extension header ${nextHeader} past the payload`);
        nextHeader = packet[offset] ?? 0;
        offset += extensionLength;
        break;
      }
      default:
        return reject('not-udp', `IPv6 next header ${nextHeader}`);
    }
  }
  return reject('bad-ip-header', 'too many IPv6 extension headers');
}

interface IpContext {
  readonly family: 4 | 6;
  readonly source: string;
  readonly destination: string;
  readonly ipPacketLength: number;
}

function decodeUdp(segment: Uint8Array, ip: IpContext): DecodedFrame {
  if (segment.length < UDP_HEADER_LENGTH) return reject('bad-udp-header', `UDP segment of ${segment.length} bytes`);
  const udpLength = readUint16(segment, 4);
  // A knock comes from an ordinary UDP socket, whose length always fills the IP
  // payload exactly; any other length is crafted and gives two readings of the bytes.
  if (udpLength !== segment.length) return reject('bad-udp-header', `UDP length ${udpLength}, IP payload ${segment.length}`);
  return accept({
    family: ip.family,
    source: ip.source,
    destination: ip.destination,
    sourcePort: readUint16(segment, 0),
    destinationPort: readUint16(segment, 2),
    payload: segment.subarray(UDP_HEADER_LENGTH),
    originalFrameLength: ip.ipPacketLength + ETHERNET_HEADER_LENGTH,
  });
}
