/**
 * Grant scaling in the benchmark's server namespace: the time to add one
 * grant through the root firewall helper, as the daemon adds it (nftables,
 * grants over the helper's netlink socket), and the TCP connect latency with
 * 1 … 100k grants open; and how late grants actually close.
 */
import path from 'node:path';
import { FirewallHelperClient, formatHelperArguments, prefixedRunner, type FirewallPolicy, type Grant } from '../server/firewall/index.js';
import { nftGrantCommands } from '../server/firewall/nftables.js';
import { runOrThrow } from '../server/firewall/runner.js';
import { CLIENT_IPV4, ipv4Text, poolAddress, type BenchNetwork } from './netns.js';
import { BENCH_SERVICE_PORT, repoRoot } from './pki.js';

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
  /** The median of (this add ÷ the reference set's add right after it): the machine's drift cancels out. */
  readonly add_vs_reference: number;
  readonly connect_ms: number;
}

/** The reference set's size: the 1k of the "100k vs 1k". */
export const REFERENCE_GRANTS = 1_000;

type Connects = (count: number) => Promise<number>;

const BENCH_POLICY: FirewallPolicy = { mode: 'reject', emergencySshPort: null, publicPorts: [] };

/** The daemon's root firewall helper (dist/), in `namespace`, with the benchmark's policy installed. */
async function startHelper(namespace: string): Promise<FirewallHelperClient> {
  const helperScript = path.join(repoRoot, 'dist', 'server', 'firewall', 'privileged-helper.js');
  const helper = FirewallHelperClient.spawn(['ip', 'netns', 'exec', namespace, process.execPath, helperScript, ...formatHelperArguments({ backend: { kind: 'nftables' }, policy: BENCH_POLICY })]);
  await helper.start();
  return helper;
}

/** A helper in `namespace` whose set is filled to `open` grants, and the time of one more (re-)grant. */
class MeasuredSet {
  open = 0;
  private nextFiller = 0;

  private constructor(readonly backend: FirewallHelperClient) {}

  static async start(namespace: string): Promise<MeasuredSet> {
    return new MeasuredSet(await startHelper(namespace));
  }

  async fillTo(level: number): Promise<void> {
    while (this.open < level) {
      const batch = Array.from({ length: Math.min(FILL_BATCH, level - this.open) }, () => fillerGrant(this.nextFiller++, 3600));
      await this.backend.grant(batch);
      this.open += batch.length;
    }
  }

  /** Re-granting an open element costs what a new one does (add, delete, add): the level stays put. */
  async timeOneGrant(sample: number): Promise<number> {
    const grant = fillerGrant(sample % Math.max(1, this.nextFiller), 3600);
    const start = process.hrtime.bigint();
    await this.backend.grant([grant]);
    return Number(process.hrtime.bigint() - start) / 1e6;
  }
}

/**
 * Adds grants up to each level and measures there: the median time of
 * `samples` single grants (each awaited, as the daemon's batcher does when
 * idle), each paired with one on a reference set of REFERENCE_GRANTS in
 * another namespace at the same moment, and the median connect latency from
 * a granted client.
 */
export async function grantScaling(
  network: BenchNetwork,
  referenceNamespace: string,
  levels: readonly number[],
  samples: number,
  medianConnectMs: Connects,
): Promise<ScalePoint[]> {
  const measured = await MeasuredSet.start(network.server);
  const reference = await MeasuredSet.start(referenceNamespace);
  try {
    await measured.backend.grant([{ address: CLIENT_IPV4, protocol: 'tcp', port: BENCH_SERVICE_PORT, seconds: 3600 }]);
    measured.open = 1;
    await reference.fillTo(REFERENCE_GRANTS);
    const points: ScalePoint[] = [];
    for (const level of levels) {
      await measured.fillTo(level);
      const addMs: number[] = [];
      const ratios: number[] = [];
      for (let sample = 0; sample < samples; sample += 1) {
        const add = await measured.timeOneGrant(sample);
        addMs.push(add);
        ratios.push(add / (await reference.timeOneGrant(sample)));
      }
      points.push({ open: measured.open, add_ms: median(addMs), add_vs_reference: median(ratios), connect_ms: await medianConnectMs(samples * 5) });
    }
    return points;
  } finally {
    await Promise.all([measured.backend.stop(), reference.backend.stop()]);
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
  const backend = await startHelper(network.server);
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
