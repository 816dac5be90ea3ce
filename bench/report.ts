/**
 * The benchmark's outputs besides the JSON: a Markdown summary with the
 * issue's targets, and two SVG charts (flood and scale curves) drawn here,
 * no plotting package needed.
 */

export interface FloodRun {
  readonly kind: 'blind' | 'informed';
  readonly junk: string;
  readonly pps: number;
  readonly sent_pps: number;
  readonly spoofed: boolean;
  readonly legit_sent: number;
  readonly legit_success_rate: number;
  readonly legit_p50_ms: number;
  readonly server_cpu_pct: number;
  readonly rss_mb_max: number;
  /** Packets the capture ring took, and dropped because it was full, during this flood. */
  readonly ring_packets: number;
  readonly ring_dropped: number;
}

export interface BenchResults {
  readonly mode: 'quick' | 'full';
  readonly machine: Record<string, unknown>;
  readonly verify: Record<string, number>;
  readonly latency_ms: {
    readonly n: number;
    readonly p50: number;
    readonly p95: number;
    readonly p99: number;
    readonly failed: number;
    /** The knocks just after the daemon started, before the measured ones. */
    readonly cold: {
      readonly n: number;
      /** The first of them that opened the port (the very first knock unless it failed). */
      readonly first: number;
      readonly p50: number;
      readonly p99: number;
      readonly failed: number;
    };
  };
  readonly flood: readonly FloodRun[];
  readonly grants: Record<string, unknown> & {
    readonly scale: readonly { readonly open: number; readonly add_ms: number; readonly connect_ms: number }[];
    readonly sustained: readonly { readonly rate: number; readonly sent: number; readonly granted: number; readonly lost: number; readonly ring_dropped: number; readonly sent_per_s: number }[];
  };
  readonly rss_mb: { readonly idle: number; readonly flood: number; readonly flood_named_in_targets: number; readonly grants_100k: number; readonly after_floods_and_sustained: number };
  readonly [more: string]: unknown;
}

interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * magnitude).find((candidate) => candidate >= value)!;
}

/** One line chart: linear or log x axis, linear y axis from 0, a legend, axis labels. */
export function lineChart(options: { title: string; xLabel: string; yLabel: string; series: readonly Series[]; logX?: boolean; yMax?: number }): string {
  const width = 640;
  const height = 360;
  const margin = { left: 64, right: 170, top: 36, bottom: 48 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const xs = options.series.flatMap((series) => series.points.map(([x]) => x));
  const ys = options.series.flatMap((series) => series.points.map(([, y]) => y)).filter(Number.isFinite);
  const transform = (x: number) => (options.logX ? Math.log10(Math.max(x, 1)) : x);
  const xMin = Math.min(...xs.map(transform));
  const xMax = Math.max(...xs.map(transform));
  const yMax = options.yMax ?? niceMax(Math.max(...ys, 0));
  const px = (x: number) => margin.left + (xMax === xMin ? plotWidth / 2 : ((transform(x) - xMin) / (xMax - xMin)) * plotWidth);
  const py = (y: number) => margin.top + plotHeight - (Math.min(y, yMax) / yMax) * plotHeight;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2 - margin.right / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(options.title)}</text>`,
    `<line x1="${margin.left}" y1="${margin.top + plotHeight}" x2="${margin.left + plotWidth}" y2="${margin.top + plotHeight}" stroke="black"/>`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotHeight}" stroke="black"/>`,
  ];
  for (let tick = 0; tick <= 4; tick += 1) {
    const value = (yMax * tick) / 4;
    parts.push(
      `<line x1="${margin.left}" y1="${py(value)}" x2="${margin.left + plotWidth}" y2="${py(value)}" stroke="#ddd"/>`,
      `<text x="${margin.left - 6}" y="${py(value) + 4}" text-anchor="end">${Number(value.toPrecision(3))}</text>`,
    );
  }
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    parts.push(`<text x="${px(x)}" y="${margin.top + plotHeight + 16}" text-anchor="middle">${x >= 1000 ? `${x / 1000}k` : x}</text>`);
  }
  parts.push(
    `<text x="${margin.left + plotWidth / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text x="16" y="${margin.top + plotHeight / 2}" text-anchor="middle" transform="rotate(-90 16 ${margin.top + plotHeight / 2})">${escapeXml(options.yLabel)}</text>`,
  );
  options.series.forEach((series, index) => {
    const color = COLORS[index % COLORS.length]!;
    const finite = series.points.filter(([, y]) => Number.isFinite(y));
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${finite.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of finite) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`);
    const legendY = margin.top + 10 + index * 18;
    parts.push(
      `<line x1="${width - margin.right + 12}" y1="${legendY}" x2="${width - margin.right + 32}" y2="${legendY}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${width - margin.right + 38}" y="${legendY + 4}">${escapeXml(series.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function floodSeries(flood: readonly FloodRun[], value: (run: FloodRun) => number): Series[] {
  const groups = new Map<string, Array<[number, number]>>();
  for (const run of flood) {
    const name = `${run.junk}${run.spoofed ? ', spoofed' : ', one source'}`;
    groups.set(name, [...(groups.get(name) ?? []), [run.pps, value(run)]]);
  }
  return [...groups].map(([name, points]) => ({ name, points: points.sort((a, b) => a[0] - b[0]) }));
}

export function floodCharts(results: BenchResults): { success: string; cpu: string } {
  return {
    success: lineChart({
      title: 'Legitimate knocks opened within 1 s during junk floods',
      xLabel: 'junk packets/s (log)',
      yLabel: 'legitimate knocks opened (%)',
      series: floodSeries(results.flood, (run) => run.legit_success_rate * 100),
      logX: true,
      yMax: 100,
    }),
    cpu: lineChart({
      title: 'Server CPU during junk floods (100 % = one core)',
      xLabel: 'junk packets/s (log)',
      yLabel: 'server CPU (%)',
      series: floodSeries(results.flood, (run) => run.server_cpu_pct),
      logX: true,
    }),
  };
}

export function scaleChart(results: BenchResults): string {
  return lineChart({
    title: 'Cost of a grant and connect latency vs grants open',
    xLabel: 'grants already open (log)',
    yLabel: 'milliseconds',
    series: [
      { name: 'add one grant (ms)', points: results.grants.scale.map((point) => [point.open, point.add_ms] as const) },
      { name: 'TCP connect (ms)', points: results.grants.scale.map((point) => [point.open, point.connect_ms] as const) },
    ],
    logX: true,
  });
}

const fixed = (value: unknown, digits = 1) => (typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : String(value));

function verdictOf(pass: boolean | undefined): string {
  return pass === undefined ? 'n/a' : pass ? 'met' : 'NOT met';
}

/**
 * A throughput target, judged as the issue defines it: one worker's knocks
 * per second of the clock over the bound. Beside it the same per CPU-second
 * of the whole process (see RoundRate in verify-throughput.ts), which also
 * charges the main thread's and V8's work and none of the host's other load.
 */
function perCoreRow(figure: string, target: number, wallRatio: number, perSecond: number, cpuRatio: number, bound: number): [string, string, string] {
  const judged = `${fixed(wallRatio * 100)} % (${fixed(perSecond, 0)} of ${fixed(bound, 0)}/s)`;
  return [figure, `≥ ${fixed(target * 100, 0)} %`, `${judged} — ${verdictOf(wallRatio >= target)}; per CPU-second of the process ${fixed(cpuRatio * 100)} %`];
}

/** The summary: every target of issue 6 beside the figure measured for it. */
export function markdownSummary(results: BenchResults, chartFiles: { floodSuccess: string; floodCpu: string; scale: string }): string {
  const { verify, latency_ms: latency, grants, rss_mb: rss } = results;
  const floodAt = (kind: string, pps: number, spoofed: boolean) => results.flood.find((run) => run.kind === kind && run.pps === pps && run.spoofed === spoofed && run.junk !== 'blind-random');
  const blind20k = floodAt('blind', 20_000, true);
  const informed5kOne = floodAt('informed', 5_000, false);
  const informed5kSpoofed = floodAt('informed', 5_000, true);
  const rows: Array<[string, string, string]> = [
    perCoreRow('new-client knocks per core vs OpenSSL bound', 0.5, verify.ratio_single!, verify.single_knocks_per_s!, verify.ratio_single_cpu!, verify.openssl_bound_new_per_s!),
    perCoreRow('repeat-client knocks per core vs bound', 0.6, verify.repeat_ratio_single!, verify.repeat_knocks_per_s!, verify.repeat_ratio_single_cpu!, verify.openssl_bound_repeat_per_s!),
    [`${verify.workers} workers vs 1`, '≥ 1.7× with 2', `${fixed(verify.scaling, 2)}× — ${verdictOf(verify.workers === 2 ? verify.scaling! >= 1.7 : undefined)}`],
    ['knock → open p50 / p99', '≤ 2 ms / ≤ 10 ms', `${fixed(latency.p50, 2)} / ${fixed(latency.p99, 2)} ms (n = ${latency.n}) — ${verdictOf(latency.p50 <= 2 && latency.p99 <= 10)}; the ${latency.cold.n} knocks after start before them: ${fixed(latency.cold.p50, 2)} / ${fixed(latency.cold.p99, 2)} ms, the first ${fixed(latency.cold.first, 1)} ms`],
    ['blind junk 20k/s spoofed', '≥ 99 % within 1 s', blind20k ? `${fixed(blind20k.legit_success_rate * 100)} % — ${verdictOf(blind20k.legit_success_rate >= 0.99)}` : 'not run'],
    ['informed junk 5k/s one source', '≥ 99 % within 1 s', informed5kOne ? `${fixed(informed5kOne.legit_success_rate * 100)} % — ${verdictOf(informed5kOne.legit_success_rate >= 0.99)}` : 'not run'],
    ['informed junk 5k/s spoofed', '≥ 90 % within 1 s', informed5kSpoofed ? `${fixed(informed5kSpoofed.legit_success_rate * 100)} % — ${verdictOf(informed5kSpoofed.legit_success_rate >= 0.9)}` : 'not run'],
    ['add a grant at 100k vs 1k open', '≤ 1.1×', `${fixed(grants.ratio_100k_vs_1k, 2)}×, each add paired with one on a 1k set (medians ${fixed(grants.add_ms_1k, 3)} → ${fixed(grants.add_ms_100k, 3)} ms) — ${verdictOf((grants.ratio_100k_vs_1k as number) <= 1.1)}`],
    ['connect latency 10 vs 100k grants', 'unchanged within noise', `${fixed(grants.connect_ms_10, 3)} → ${fixed(grants.connect_ms_100k, 3)} ms`],
    ['sustained grants/s with none lost', '≥ 1,000', `${fixed(grants.sustained_grants_per_s, 0)}/s; lost at 1k/s: ${grants.lost_at_1k_per_s} — ${verdictOf((grants.sustained_grants_per_s as number) >= 1000 && grants.lost_at_1k_per_s === 0)}`],
    ['latest grant close', '≤ 1 s late', `${fixed(grants.expiry_late_ms_max, 0)} ms — ${verdictOf((grants.expiry_late_ms_max as number) <= 1000)}`],
    // The floods the targets name: blind 20k/s spoofed, informed 5k/s from one source and spoofed (and the lower rates before them).
    ['RSS under the flood / with 100k grants', '≤ 120 MB', `${fixed(rss.flood_named_in_targets)} / ${fixed(rss.grants_100k)} MB (idle ${fixed(rss.idle)}; ${fixed(rss.flood)} over every flood, the stress levels of 50k/s blind and 20k/s informed included; ${fixed(rss.after_floods_and_sustained)} after every flood and the sustained runs) — ${verdictOf(rss.flood_named_in_targets <= 120 && rss.grants_100k <= 120)}`],
  ];
  const floodRows = results.flood.map(
    (run) =>
      `| ${run.junk} | ${run.spoofed ? 'spoofed' : 'one source'} | ${run.pps} | ${fixed(run.sent_pps, 0)} | ${run.legit_sent} | ${fixed(run.legit_success_rate * 100)} % | ${fixed(run.legit_p50_ms, 2)} | ${fixed(run.server_cpu_pct, 0)} % | ${fixed(run.rss_mb_max)} | ${run.ring_dropped} of ${run.ring_packets} |`,
  );
  return [
    `# sKnock benchmark (${results.mode})`,
    '',
    `Machine: ${Object.entries(results.machine).map(([key, value]) => `${key} ${value}`).join(', ')}`,
    '',
    '| figure | target | measured |',
    '| --- | --- | --- |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    '',
    '## Flood runs',
    '',
    '| junk | sources | target pps | sent pps | legit knocks | opened ≤ 1 s | p50 ms | server CPU | RSS MB | ring dropped |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...floodRows,
    '',
    `![flood: legitimate knocks](${chartFiles.floodSuccess})`,
    `![flood: server CPU](${chartFiles.floodCpu})`,
    `![grant scaling](${chartFiles.scale})`,
    '',
  ].join('\n');
}
