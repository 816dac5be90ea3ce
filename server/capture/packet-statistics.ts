/**
 * How many captured packets the kernel dropped because a capture ring was
 * full (native/packet_stats.c: PACKET_STATISTICS on libpcap's own sockets,
 * which cap does not expose). Optional like the P-256 addon: without it the
 * server runs and says that it cannot count these drops.
 */
import { loadNativeAddon } from '../../client-lib/native-addon.js';

interface PacketStatisticsAddon {
  /** The process's AF_PACKET socket descriptors. */
  listPacketSockets(): number[];
  /** Counts since the previous read: the kernel resets them on every read. */
  readPacketStatistics(descriptor: number): { packets: number; drops: number };
}

export interface RingStatistics {
  /** Packets that passed the capture filter, dropped ones included. */
  readonly packets: number;
  /** Packets the kernel dropped because the ring was full. */
  readonly dropped: number;
}

// From server/capture/ (sources under vitest) or dist/server/capture/ (the build).
const addonCandidates = ['../../native/build/Release/sknock_packet_stats.node', '../../../native/build/Release/sknock_packet_stats.node'];

function loadAddon(): PacketStatisticsAddon | undefined {
  const load = loadNativeAddon<PacketStatisticsAddon>(import.meta.url, addonCandidates);
  if (!load.loaded) return undefined;
  const { addon } = load;
  return typeof addon.listPacketSockets === 'function' && typeof addon.readPacketStatistics === 'function' ? (addon as PacketStatisticsAddon) : undefined;
}

const addon = loadAddon();

/** The packet sockets open now; empty when drops cannot be counted (no addon). */
export function openPacketSockets(): ReadonlySet<number> {
  return new Set(addon?.listPacketSockets() ?? []);
}

/** Adds up the kernel's counters of some packet sockets (one per capture handle). */
export class RingCounter {
  private packets = 0;
  private dropped = 0;
  private failed = false;

  constructor(private readonly descriptors: readonly number[]) {}

  /**
   * Totals since the capture opened, or undefined when drops cannot be
   * counted. A socket that cannot be read any more (it should not happen
   * while the capture is open) ends the counting instead of throwing into
   * the caller's timer.
   */
  read(): RingStatistics | undefined {
    if (addon === undefined || this.descriptors.length === 0 || this.failed) return undefined;
    try {
      for (const descriptor of this.descriptors) {
        const since = addon.readPacketStatistics(descriptor);
        this.packets += since.packets;
        this.dropped += since.drops;
      }
    } catch {
      this.failed = true;
      return undefined;
    }
    return { packets: this.packets, dropped: this.dropped };
  }
}
