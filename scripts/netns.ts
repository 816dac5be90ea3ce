/**
 * Network namespaces for the demo, the benchmarks and the tests: two hosts
 * joined by a veth pair, nothing created in the root namespace, addresses
 * only from 198.18.0.0/15 and fd00::/8.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function run(command: string, args: readonly string[], timeoutMs = 30_000): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await execFileAsync(command, [...args], { timeout: timeoutMs, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof failure.code === 'number' ? failure.code : 1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? String(error) };
  }
}

async function mustRun(command: string, args: readonly string[]): Promise<string> {
  const result = await run(command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.code}): ${result.stderr.trim()}`);
  return result.stdout;
}

let nextNetworkId = 0;

/**
 * Two hosts joined by a veth pair, each in a namespace of its own:
 * server 198.18.0.1 / fd00:18::1 and client 198.18.0.2 / fd00:18::2.
 * Nothing is created in the root namespace.
 */
export class TestNetwork {
  static readonly serverIPv4 = '198.18.0.1';
  static readonly clientIPv4 = '198.18.0.2';
  static readonly serverIPv6 = 'fd00:18::1';
  static readonly clientIPv6 = 'fd00:18::2';
  static readonly linkName = 'kn0';

  private constructor(readonly server: string, readonly client: string) {}

  static async create(label = 'net'): Promise<TestNetwork> {
    const id = `${process.pid}-${nextNetworkId++}`;
    const network = new TestNetwork(`sk-${label}-${id}-srv`, `sk-${label}-${id}-cli`);
    try {
      await mustRun('ip', ['netns', 'add', network.server]);
      await mustRun('ip', ['netns', 'add', network.client]);
      const link = TestNetwork.linkName;
      await mustRun('ip', ['-n', network.server, 'link', 'add', link, 'type', 'veth', 'peer', 'name', link, 'netns', network.client]);
      for (const [ns, v4, v6] of [
        [network.server, TestNetwork.serverIPv4, TestNetwork.serverIPv6],
        [network.client, TestNetwork.clientIPv4, TestNetwork.clientIPv6],
      ] as const) {
        await mustRun('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        await mustRun('ip', ['-n', ns, 'addr', 'add', `${v4}/24`, 'dev', link]);
        await mustRun('ip', ['-n', ns, '-6', 'addr', 'add', `${v6}/64`, 'dev', link, 'nodad']);
        await mustRun('ip', ['-n', ns, 'link', 'set', link, 'up']);
      }
    } catch (error) {
      await network.destroy();
      throw error;
    }
    return network;
  }

  /** Runs a command inside one of the two namespaces. */
  exec(namespace: string, command: string, args: readonly string[], timeoutMs?: number): Promise<CommandResult> {
    return run('ip', ['netns', 'exec', namespace, command, ...args], timeoutMs);
  }

  async destroy(): Promise<void> {
    await run('ip', ['netns', 'del', this.server]);
    await run('ip', ['netns', 'del', this.client]);
  }
}
