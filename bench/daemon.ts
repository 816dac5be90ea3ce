/**
 * The real sknock-server (dist/) in the benchmark's server namespace, with
 * JSON logs read as they come, and its CPU time and RSS read from /proc.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { BenchNetwork } from './netns.js';
import { repoRoot, type BenchPki } from './pki.js';
import { SERVER_NODE_FLAGS } from '../server/node-flags.js';

export const KNOCK_PORT = 10_000;
export const GRANT_SECONDS = 60;
const CLOCK_TICKS_PER_SECOND = 100;

export interface DaemonOptions {
  readonly workers: number;
  readonly stateDir: string;
}

export class BenchDaemon {
  granted = 0;
  readonly events = new Map<string, number>();
  /** The last verify-stats line: the pool's counters (drops and rejections by reason). */
  lastVerifyStats: Record<string, unknown> | undefined;
  private verifyStatsLines = 0;
  private readonly waiters = new Set<() => void>();
  private lastLines: string[] = [];

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stderr! }).on('line', (text) => {
      this.lastLines = [...this.lastLines.slice(-20), text];
      try {
        const line = JSON.parse(text) as { event?: string; verdict?: string; reason?: string };
        const event = line.reason === undefined ? (line.event ?? 'unknown') : `${line.event}:${line.reason}`;
        this.events.set(event, (this.events.get(event) ?? 0) + 1);
        if (line.verdict === 'granted') this.granted += 1;
        if (line.event === 'verify-stats') {
          this.lastVerifyStats = line;
          this.verifyStatsLines += 1;
        }
      } catch {
        this.events.set('unparsed', (this.events.get('unparsed') ?? 0) + 1);
      }
      for (const wake of this.waiters) wake();
    });
    child.stdout?.resume();
  }

  static async start(network: BenchNetwork, pki: BenchPki, options: DaemonOptions): Promise<BenchDaemon> {
    const configFile = path.join(options.stateDir, `config-${options.workers}.ini`);
    const settings: Record<string, string | number> = {
      serverPFXFile: pki.serverPfxFile,
      PFXPasswd: pki.password,
      crlFile: pki.crlFile,
      crlPolicy: 'require',
      interfaces: network.link,
      knockPorts: `${KNOCK_PORT}-${KNOCK_PORT}`,
      KNOCKPACKET_MIN_LENGTH: 800,
      PORT_OPEN_DURATION_IN_SECONDS: GRANT_SECONDS,
      firewallPolicy: 'reject',
      firewallBackend: 'nftables',
      emergencySshPort: 'off',
      replayCacheFile: path.join(options.stateDir, `replay-${options.workers}`),
      workers: options.workers,
      logFormat: 'json',
      logLevel: 'info',
    };
    writeFileSync(configFile, `[DEFAULT]\n${Object.entries(settings).map(([key, value]) => `${key} = ${value}`).join('\n')}\n`);
    const child = network.spawn(network.server, process.execPath, [...SERVER_NODE_FLAGS, path.join(repoRoot, 'dist', 'server', 'sknock-server.js'), 'run', '-c', configFile]);
    const daemon = new BenchDaemon(child);
    await daemon.waitFor(() => daemon.events.has('ready'), 20_000, 'the daemon to be ready');
    return daemon;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Waits (bounded) until `condition` holds, re-checked on every log line and every 50 ms. */
  async waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline || this.child.exitCode !== null) {
        if (this.child.exitCode !== null) throw new Error(`the daemon exited (${this.child.exitCode}) waiting for ${what}:\n${this.lastLines.join('\n')}`);
        return false;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, 50);
        this.waiters.add(wake);
      });
    }
    return true;
  }

  /** The daemon's counters now (SIGUSR2 makes it log its verify-stats line), or undefined when none came within 5 s. */
  async stats(): Promise<Record<string, unknown> | undefined> {
    const before = this.verifyStatsLines;
    this.child.kill('SIGUSR2');
    return (await this.waitFor(() => this.verifyStatsLines > before, 5_000, 'verify-stats')) ? this.lastVerifyStats : undefined;
  }

  /** CPU seconds used so far (user + system, all threads). */
  cpuSeconds(): number {
    const fields = readFileSync(`/proc/${this.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  }

  rssMb(): number {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Samples RSS every `intervalMs` until stopped; returns the largest seen. */
export function sampleRss(daemon: BenchDaemon, intervalMs = 100): { stop(): number } {
  let largest = daemon.rssMb();
  const timer = setInterval(() => (largest = Math.max(largest, daemon.rssMb())), intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(largest, daemon.rssMb());
    },
  };
}
