/**
 * Grant scaling through the nftables backend itself, in the benchmark's
 * server namespace: the time to add one grant and the TCP connect latency
 * with 1 … 100k grants open, and how late grants actually close.
 */
import { NftablesBackend, prefixedRunner, type Grant } from '../server/firewall/index.js';
import { nftGrantCommands } from '../server/firewall/nftables.js';
import { runOrThrow } from '../server/firewall/runner.js';
import { CLIENT_IPV4, ipv4Text, poolAddress, type BenchNetwork } from './netns.js';
import { BENCH_SERVICE_PORT } from './pki.js';

/** Filler grants: 198.19.0.0/16 × a few ports, never used for traffic. */
const FILLER_FIRST = 0xc6130000;
const FILLER_PORT = 3000;
const FILL_BATCH = 5000;

export function fillerGrant(index: number, seconds: number): Grant {
  return { address: ipv4Text(FILLER_FIRST + (index % 0x10000)), protocol: 'tcp', port: FILLER_PORT + Math.floor(index / 0x10000), seconds };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

export interface ScalePoint {
  readonly open: number;
  readonly add_ms: number;
  readonly connect_ms: number;
}

type Connects = (count: number) => Promise<number>;

/**
 * Adds grants up to each level and measures there: the median time of
 * `samples` single grants (each awaited, as the daemon's batcher does when
 * idle) and the median connect latency from a granted client.
 */
export async function grantScaling(network: BenchNetwork, levels: readonly number[], samples: number, medianConnectMs: Connects): Promise<ScalePoint[]> {
  const backend = new NftablesBackend({ runner: prefixedRunner(['ip', 'netns', 'exec', network.server]) });
  await backend.start({ mode: 'reject', emergencySshPort: null, publicPorts: [] });
  try {
    await backend.grant([{ address: CLIENT_IPV4, protocol: 'tcp', port: BENCH_SERVICE_PORT, seconds: 3600 }]);
    let open = 1;
    let nextFiller = 0;
    const points: ScalePoint[] = [];
    for (const level of levels) {
      while (open < level) {
        const batch = Array.from({ length: Math.min(FILL_BATCH, level - open) }, () => fillerGrant(nextFiller++, 3600));
        await backend.grant(batch);
        open += batch.length;
      }
      const addMs: number[] = [];
      for (let sample = 0; sample < samples; sample += 1) {
        // Re-granting an open element costs what a new one does (add, delete, add): the level stays put.
        const grant = fillerGrant(sample % Math.max(1, nextFiller), 3600);
        const start = process.hrtime.bigint();
        await backend.grant([grant]);
        addMs.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      points.push({ open, add_ms: median(addMs), connect_ms: await medianConnectMs(samples * 5) });
    }
    return points;
  } finally {
    await backend.stop();
  }
}

export interface ExpiryResult {
  readonly grants: number;
  readonly seconds: number;
  readonly probed: number;
  readonly late_ms_max: number;
  readonly late_ms_median: number;
  readonly never_closed: number;
}

/**
 * Opens `count` grants of `seconds` in one batch, then probes the last
 * `probes` of them from the client until each is refused: how late the
 * kernel's set timeouts close them.
 */
export async function expiryAccuracy(
  network: BenchNetwork,
  count: number,
  seconds: number,
  probes: number,
  probe: (sources: readonly string[], untilMs: number) => Promise<Record<string, number | null>>,
): Promise<ExpiryResult> {
  const backend = new NftablesBackend({ runner: prefixedRunner(['ip', 'netns', 'exec', network.server]) });
  await backend.start({ mode: 'reject', emergencySshPort: null, publicPorts: [] });
  try {
    const sources = Array.from({ length: probes }, (_, index) => poolAddress(20_000 + index));
    const grants = [
      ...Array.from({ length: count - probes }, (_, index) => fillerGrant(index, seconds)),
      ...sources.map((address) => ({ address, protocol: 'tcp' as const, port: BENCH_SERVICE_PORT, seconds })),
    ];
    const requestedAtMs = Date.now();
    await backend.grant(grants);
    const closedAt = await probe(sources, requestedAtMs + seconds * 1000 + 5000);
    const lateness = Object.values(closedAt)
      .filter((value): value is number => value !== null)
      .map((closedAtMs) => closedAtMs - (requestedAtMs + seconds * 1000));
    return {
      grants: count,
      seconds,
      probed: probes,
      late_ms_max: Math.max(...lateness),
      late_ms_median: median(lateness),
      never_closed: probes - lateness.length,
    };
  } finally {
    await backend.stop();
  }
}

/** Puts `count` filler grants straight into the daemon's set (as if that many knocks had been granted). */
export async function fillDaemonSet(network: BenchNetwork, count: number, seconds: number): Promise<void> {
  const runner = prefixedRunner(['ip', 'netns', 'exec', network.server]);
  for (let first = 0; first < count; first += FILL_BATCH) {
    const batch = Array.from({ length: Math.min(FILL_BATCH, count - first) }, (_, index) => fillerGrant(first + index, seconds));
    await runOrThrow(runner, 'nft', ['-f', '-'], `${nftGrantCommands(batch).join('\n')}\n`);
  }
}
