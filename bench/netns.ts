/**
 * The benchmark's network: a server and a client namespace joined by a veth
 * pair, nothing in the root namespace. The client may also send from any
 * address of CLIENT_POOL (an "AnyIP" local route), which the server routes
 * back through the veth: thousands of distinct legitimate sources without
 * adding thousands of addresses. Spoofed junk comes from SPOOF_RANGE, which
 * nothing routes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { run as runCommand, TestNetwork } from '../scripts/netns.js';

export const SERVER_IPV4 = TestNetwork.serverIPv4;
export const CLIENT_IPV4 = TestNetwork.clientIPv4;
/** Client-side sources for legitimate knocks: 198.18.128.0 – 198.18.255.255. */
export const CLIENT_POOL = { prefix: '198.18.128.0/17', first: 0xc6128000, size: 0x8000 } as const;
/** Spoofed flood sources: 198.19.0.0/16 (inside 198.18.0.0/15, routed nowhere). */
export const SPOOF_RANGE = { first: 0xc6130000, size: 0x10000 } as const;

export function ipv4Text(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
}

/** The n-th address of the client pool (n below CLIENT_POOL.size). */
export function poolAddress(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= CLIENT_POOL.size) throw new RangeError(`pool address ${index} out of range`);
  return ipv4Text(CLIENT_POOL.first + index);
}

/** Runs a program and returns its standard output; rejects when it fails. */
export async function run(command: string, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const result = await runCommand(command, args, timeoutMs);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.code}): ${result.stderr.trim().slice(-2000)}`);
  return result.stdout;
}

/** The shared two-namespace lab network, plus the client pool's routes. */
export class BenchNetwork {
  readonly link = TestNetwork.linkName;

  private constructor(private readonly network: TestNetwork) {}

  get server(): string {
    return this.network.server;
  }

  get client(): string {
    return this.network.client;
  }

  static async create(label: string): Promise<BenchNetwork> {
    const bench = new BenchNetwork(await TestNetwork.create(label));
    try {
      await run('ip', ['-n', bench.client, 'route', 'add', 'local', CLIENT_POOL.prefix, 'dev', 'lo']);
      await run('ip', ['-n', bench.server, 'route', 'add', CLIENT_POOL.prefix, 'via', CLIENT_IPV4]);
    } catch (error) {
      await bench.destroy();
      throw error;
    }
    return bench;
  }

  /** Runs a program in a namespace and returns its standard output; rejects on failure. */
  exec(namespace: string, command: string, args: readonly string[], timeoutMs?: number): Promise<string> {
    return run('ip', ['netns', 'exec', namespace, command, ...args], timeoutMs);
  }

  /** Starts a program in a namespace (`ip netns exec` execs it in place: the pid is the program's). */
  spawn(namespace: string, command: string, args: readonly string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', namespace, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  async macAddress(namespace: string): Promise<string> {
    const [link] = JSON.parse(await run('ip', ['-n', namespace, '-j', 'link', 'show', this.link])) as Array<{ address: string }>;
    if (!link) throw new Error(`no ${this.link} in ${namespace}`);
    return link.address;
  }

  destroy(): Promise<void> {
    return this.network.destroy();
  }
}

/** Collects a child's standard output and resolves with it when it exits 0. */
export function outputOf(child: ChildProcess, what: string): Promise<string> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${what} exited ${code}: ${stderr.trim().slice(-2000)}`))));
  });
}
