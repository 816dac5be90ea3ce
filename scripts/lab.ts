/**
 * Drives the real programs from outside: sknock-server (from dist/) inside
 * one namespace, knock-client, TCP probes and raw datagrams from the other.
 * Used by the demo, the benchmarks and the integration tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../server/node-flags.js';
import { TestNetwork, type CommandResult } from './netns.js';

/** The repository root, from dist/scripts/ or scripts/. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

export const devPki = path.join(repoRoot, 'certificates', 'dev');
export const dist = (...parts: string[]) => path.join(repoRoot, 'dist', ...parts);

export interface LogLine {
  readonly level: string;
  readonly event: string;
  readonly [field: string]: unknown;
}

export interface ServerOptions {
  readonly namespace: string;
  /** Defaults to the repository's config.ini (the development PKI). */
  readonly configFile?: string;
  /** Config keys; interfaces, replayCacheFile and the log format are set unless given. */
  readonly settings?: Readonly<Record<string, string | number>>;
  /** Reuse a replay journal across restarts. */
  readonly stateDir?: string;
}

export class ServerProcess {
  readonly lines: LogLine[] = [];
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<number | null>;

  private constructor(
    private readonly child: ChildProcess,
    readonly stateDir: string,
    private readonly ownsStateDir: boolean,
  ) {
    createInterface({ input: child.stderr! }).on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { level: 'raw', event: 'raw', text };
      }
      this.lines.push(line);
      for (const wake of this.waiters) wake();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** The daemon's own pid: `ip netns exec` execs it in place. */
  get pid(): number {
    return this.child.pid!;
  }

  static async start(options: ServerOptions): Promise<ServerProcess> {
    const ownsStateDir = options.stateDir === undefined;
    const stateDir = options.stateDir ?? mkdtempSync(path.join(tmpdir(), 'sknock-server-'));
    const settings: Record<string, string | number> = {
      interfaces: TestNetwork.linkName,
      replayCacheFile: path.join(stateDir, 'replay.journal'),
      logFormat: 'json',
      logLevel: 'debug',
      ...options.settings,
    };
    const args = ['netns', 'exec', options.namespace, process.execPath, ...SERVER_NODE_FLAGS, dist('server', 'sknock-server.js'), '--config', options.configFile ?? path.join(repoRoot, 'config.ini')];
    for (const [key, value] of Object.entries(settings)) args.push('--set', `${key}=${value}`);
    const server = new ServerProcess(spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] }), stateDir, ownsStateDir);
    await server.waitFor((line) => line.event === 'ready', 20_000);
    return server;
  }

  /** The first log line (already seen or still to come) that matches. */
  waitFor(match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      let exited = false;
      const check = () => {
        const found = this.lines.find(match);
        if (found) {
          finish();
          resolve(found);
        } else if (exited) {
          finish();
          reject(new Error(`sknock-server exited before the expected log line:\n${this.logText()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for a log line; log so far:\n${this.logText()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      void this.exited.then(() => {
        exited = true;
        check();
      });
      this.waiters.add(check);
      check();
    });
  }

  /** Knock decisions (event `knock`) logged so far. */
  decisions(): LogLine[] {
    return this.lines.filter((line) => line.event === 'knock');
  }

  /** Waits for the `count`-th decision and returns it. */
  async decision(count: number, timeoutMs = 10_000): Promise<LogLine> {
    await this.waitFor(() => this.decisions().length >= count, timeoutMs);
    return this.decisions()[count - 1]!;
  }

  logText(): string {
    return this.lines.map((line) => JSON.stringify(line)).join('\n');
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const code = await this.exited;
    if (this.ownsStateDir && signal !== 'SIGKILL') rmSync(this.stateDir, { recursive: true, force: true });
    return code;
  }
}

export interface KnockResult {
  readonly status: number;
  readonly report: Record<string, unknown>;
  readonly stderr: string;
}

export const alice = ['--pfx', path.join(devPki, 'client', 'alice.pfx'), '--server-cert', path.join(devPki, 'server', 'devserver.cer')];
export const bob = ['--pfx', path.join(devPki, 'client', 'bob.pfx'), '--server-cert', path.join(devPki, 'server', 'devserver.cer')];
export const mallory = ['--pfx', path.join(devPki, 'client', 'mallory.pfx'), '--server-cert', path.join(devPki, 'server', 'devserver.cer')];

/** Runs knock-client in the client namespace with --json (password portknocking unless given). */
export async function knockFromClient(net: TestNetwork, args: readonly string[]): Promise<KnockResult> {
  const withPassword = args.includes('--password') ? args : [...args, '--password', 'portknocking'];
  const result = await net.exec(net.client, process.execPath, [dist('client-lib', 'knock-client.js'), '--json', ...withPassword], 60_000);
  let report: Record<string, unknown> = {};
  try {
    report = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  } catch {
    report = { unparsed: result.stdout };
  }
  return { status: result.code, report, stderr: result.stderr };
}

export type ProbeOutcome = 'open' | 'refused' | 'timeout' | 'error';

const probeScript = `
const [host, port, timeout] = process.argv.slice(1);
const socket = require('net').connect({ host, port: Number(port) });
const done = (outcome) => { console.log(outcome); process.exit(0); };
socket.setTimeout(Number(timeout), () => done('timeout'));
socket.on('connect', () => done('open'));
socket.on('error', (error) => done(error.code === 'ECONNREFUSED' ? 'refused' : 'error'));
`;

/** One TCP connect from the client namespace. */
export async function probeFromClient(net: TestNetwork, host: string, port: number, timeoutMs = 600): Promise<ProbeOutcome> {
  const result: CommandResult = await net.exec(net.client, process.execPath, ['-e', probeScript, host, String(port), String(timeoutMs)], timeoutMs + 10_000);
  return (result.stdout.trim() || 'error') as ProbeOutcome;
}

/** Polls until the port is no longer open (the grant expired), up to `withinMs`. */
export async function waitUntilClosed(net: TestNetwork, host: string, port: number, withinMs: number): Promise<ProbeOutcome> {
  const deadline = Date.now() + withinMs;
  let outcome: ProbeOutcome = 'open';
  while (Date.now() < deadline) {
    outcome = await probeFromClient(net, host, port, 300);
    if (outcome !== 'open') return outcome;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return outcome;
}

/** A TCP service in the server namespace (a tiny node server) on every address. */
export async function startTcpService(net: TestNetwork, port: number): Promise<{ stop(): Promise<void> }> {
  // Probes reset their connections: a socket error must not end the service.
  const script = `require('net').createServer((s) => { s.on('error', () => {}); s.end('hello\\n'); }).listen(${port}, '::', () => console.log('listening'))`;
  const child = spawn('ip', ['netns', 'exec', net.server, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`TCP service exited (${code})`)));
  });
  return {
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const sendScript = `
const [host, port, hex] = process.argv.slice(1);
const socket = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
socket.send(Buffer.from(hex, 'hex'), Number(port), host, (error) => { if (error) { console.error(error.message); process.exit(1); } socket.close(); });
`;

/** Sends raw bytes as one UDP datagram from the client namespace (crafted knocks, replays, junk). */
export async function sendFromClient(net: TestNetwork, host: string, port: number, datagram: Buffer): Promise<void> {
  const result = await net.exec(net.client, process.execPath, ['-e', sendScript, host, String(port), datagram.toString('hex')]);
  if (result.code !== 0) throw new Error(`sending from the client namespace failed: ${result.stderr}`);
}
