/** Packet capture: pure frame decoding and BPF filter text, plus the libpcap edge. */
export { decodeFrame, ETHERNET_HEADER_LENGTH, LinkType, type DecodedFrame, type FrameReason, type UdpDatagram } from './frames.js';
export { buildCaptureFilter, type CaptureFilterOptions, type KnockPortRange } from './filter.js';
export {
  capCanUseImmediateMode,
  DEFAULT_CAPTURE_BUFFER_SIZE,
  linkTypeFromCapName,
  openCapture,
  type Capture,
  type CaptureErrorCode,
  type CaptureOptions,
} from './pcap-capture.js';
export type { RingStatistics } from './packet-statistics.js';
