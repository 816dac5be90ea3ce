/**
 * The BPF filter that does the cheap work in the kernel, so that junk never
 * wakes JavaScript: UDP, unfragmented, to a knock port, at least
 * the knock size.
 */
import { SknockError } from '../../client-lib/errors.js';
import { ETHERNET_HEADER_LENGTH } from './frames.js';

export interface KnockPortRange {
  readonly from: number;
  readonly to: number;
}

export interface CaptureFilterOptions {
  readonly knockPorts: KnockPortRange;
  /** KNOCKPACKET_MIN_LENGTH: IP packet length + 14 (see UdpDatagram.originalFrameLength). */
  readonly minFrameLength: number;
}

const IPV6_HEADER_LENGTH = 40;
/** Largest IP packet length plus the Ethernet header it is measured with. */
const MAX_FRAME_LENGTH = 0xffff + ETHERNET_HEADER_LENGTH;

/**
 * The size threshold is written against the IP length fields, not `greater`
 * (which measures the captured frame and so shifts with the link header: 14
 * on Ethernet, 16 on `any`). `ip[2:2]` is the IPv4 total length; `ip6[4:2]`
 * is the IPv6 payload length, 40 bytes short of the packet length.
 * `ip[6:2] & 0x3fff = 0` drops IPv4 fragments in the kernel. libpcap's `udp`
 * and `dst portrange` read only the fixed IPv6 header, so IPv6 datagrams
 * behind extension headers stay out, as in the original sKnock.
 *
 * No `inbound`: on Ethernet it compiles to a Linux-only ancillary load that
 * libpcap's userland interpreter fails, and libpcap filters the first frame
 * after setfilter in userland, so the first knock was lost (measured). The
 * host's own outgoing datagrams are dropped by decodeFrame on `any` instead.
 */
export function buildCaptureFilter(options: CaptureFilterOptions): string {
  const { knockPorts, minFrameLength } = options;
  const { from, to } = knockPorts;
  if (!isPort(from) || !isPort(to) || from > to) {
    throw new SknockError('SKNOCK_CAPTURE_FILTER', `knock ports ${from}-${to}: need whole numbers 1-65535 with from ≤ to`);
  }
  if (!Number.isInteger(minFrameLength) || minFrameLength < 0 || minFrameLength > MAX_FRAME_LENGTH) {
    throw new SknockError('SKNOCK_CAPTURE_FILTER', `minimum knock frame length ${minFrameLength}: need a whole number 0-${MAX_FRAME_LENGTH}`);
  }
  const minIPv4TotalLength = Math.max(0, minFrameLength - ETHERNET_HEADER_LENGTH);
  const minIPv6PayloadLength = Math.max(0, minFrameLength - ETHERNET_HEADER_LENGTH - IPV6_HEADER_LENGTH);
  const ports = from === to ? `dst port ${from}` : `dst portrange ${from}-${to}`;
  return (
    `udp and ${ports} and (` +
    `(ip and ip[6:2] & 0x3fff = 0 and ip[2:2] >= ${minIPv4TotalLength}) or ` +
    `(ip6 and ip6[4:2] >= ${minIPv6PayloadLength}))`
  );
}

function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 65535;
}
