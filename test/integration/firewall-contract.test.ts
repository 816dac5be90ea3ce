import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FirewallHelperClient } from '../../server/firewall/helper-client.js';
import { formatHelperArguments } from '../../server/firewall/helper-protocol.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { prefixedRunner } from '../../server/firewall/runner.js';
import type { ActiveGrant, FirewallBackend, FirewallMode, FirewallPolicy, Grant } from '../../server/firewall/types.js';
import { repoRoot } from '../helpers/fixtures.js';
import { describeWithNamespaces, run, TestNetwork } from '../helpers/netns.js';

const SERVICE_PORT = 8022;
const families = [
  { name: 'IPv4', server: TestNetwork.serverIPv4, client: TestNetwork.clientIPv4, stranger: '198.18.0.99' },
  { name: 'IPv6', server: TestNetwork.serverIPv6, client: TestNetwork.clientIPv6, stranger: 'fd00:18::99' },
] as const;

type Reachability = 'open' | 'refused' | 'timeout';

/** A TCP service on both families in the server namespace. */
const SERVICE = `
const server = require('node:net').createServer((socket) => {
  socket.on('error', () => undefined); // probes hang up at once
  socket.end('sknock test service\\n');
});
server.listen({ port: Number(process.argv[1]), host: '::', ipv6Only: false }, () => console.log('ready'));`;

/** Connects to each [host, port] with a 500 ms limit and prints what happened, as JSON. */
const PROBE = `
const net = require('node:net');
Promise.all(JSON.parse(process.argv[1]).map(([host, port]) => new Promise((resolve) => {
  const socket = net.connect({ host, port, timeout: 500 });
  socket.once('connect', () => { socket.destroy(); resolve('open'); });
  socket.once('timeout', () => { socket.destroy(); resolve('timeout'); });
  socket.once('error', (error) => resolve(error.code === 'ECONNREFUSED' ? 'refused' : String(error.code)));
}))).then((results) => console.log(JSON.stringify(results)));`;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function policyOf(mode: FirewallMode): FirewallPolicy {
  return { mode, emergencySshPort: 22, publicPorts: [{ protocol: 'udp', port: 53 }] };
}

function grantsFor(seconds: number, address: (family: (typeof families)[number]) => string = (family) => family.client): Grant[] {
  return families.map((family) => ({ address: address(family), protocol: 'tcp', port: SERVICE_PORT, seconds }));
}

/** From the client namespace: can it reach the service over IPv4 and IPv6? */
async function probe(net: TestNetwork): Promise<Reachability[]> {
  const targets = families.map((family) => [family.server, SERVICE_PORT]);
  const result = await net.exec(net.client, process.execPath, ['-e', PROBE, JSON.stringify(targets)]);
  if (result.code !== 0) throw new Error(`probe failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Reachability[];
}

/** Polls (bounded) until both families are refused; returns the last observation. */
async function waitUntilRefused(net: TestNetwork, limitMs = 8_000): Promise<Reachability[]> {
  const deadline = Date.now() + limitMs;
  let seen = await probe(net);
  for (let round = 0; round < 100 && Date.now() < deadline && seen.some((state) => state !== 'refused'); round++) {
    await sleep(200);
    seen = await probe(net);
  }
  return seen;
}

async function mustExec(net: TestNetwork, command: string, args: readonly string[]): Promise<string> {
  const result = await net.exec(net.server, command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

async function startService(net: TestNetwork): Promise<ChildProcess> {
  const service = spawn('ip', ['netns', 'exec', net.server, process.execPath, '-e', SERVICE, String(SERVICE_PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('test service did not start')), 10_000);
    service.stdout!.on('data', (chunk: Buffer) => {
      if (!chunk.toString().includes('ready')) return;
      clearTimeout(timer);
      resolve();
    });
    service.once('exit', (code) => reject(new Error(`test service exited (${code})`)));
  });
  return service;
}

/** Someone else's objects of every kind, which stop() must leave alone. */
async function createForeignObjects(net: TestNetwork): Promise<void> {
  await mustExec(net, 'nft', ['add', 'table', 'inet', 'foreign']);
  await mustExec(net, 'nft', ['add', 'chain', 'inet', 'foreign', 'input', '{ type filter hook input priority 10; policy accept; }']);
  for (const tool of ['iptables', 'ip6tables']) {
    await mustExec(net, tool, ['-w', '-N', 'FOREIGN']);
    await mustExec(net, tool, ['-w', '-A', 'INPUT', '-j', 'FOREIGN']);
  }
  await mustExec(net, 'ipset', ['create', 'foreign-set', 'hash:ip']);
}

async function foreignObjects(net: TestNetwork): Promise<string[]> {
  const found: string[] = [];
  if ((await mustExec(net, 'nft', ['list', 'tables'])).includes('table inet foreign')) found.push('nft table');
  for (const tool of ['iptables', 'ip6tables']) {
    const rules = await mustExec(net, tool, ['-w', '-S']);
    if (rules.includes('-N FOREIGN') && rules.includes('-A INPUT -j FOREIGN')) found.push(`${tool} chain`);
  }
  if ((await mustExec(net, 'ipset', ['list', '-n'])).includes('foreign-set')) found.push('ipset');
  return found;
}

interface Variant {
  readonly name: string;
  readonly make: (net: TestNetwork) => FirewallBackend;
  /** Every object of the project's own in the server namespace, one line each. */
  readonly inventory: (net: TestNetwork) => Promise<string[]>;
  /** How many grant entries the kernel holds. */
  readonly kernelGrants: (net: TestNetwork) => Promise<number>;
}

const inNamespace = (net: TestNetwork): ReturnType<typeof prefixedRunner> => prefixedRunner(['ip', 'netns', 'exec', net.server]);

async function nftInventory(net: TestNetwork): Promise<string[]> {
  const objects: string[] = [];
  let table = '';
  for (const line of (await mustExec(net, 'nft', ['list', 'ruleset'])).split('\n')) {
    const tableMatch = /^table (\S+ \S+) \{/.exec(line);
    if (tableMatch) table = tableMatch[1]!;
    if (table !== 'inet sknock') continue;
    const member = /^\s*(set|chain) (\S+) \{/.exec(line);
    if (tableMatch || member) objects.push(member ? `${member[1]} ${member[2]}` : `table ${table}`);
  }
  return objects;
}

async function iptablesInventory(net: TestNetwork): Promise<string[]> {
  const objects: string[] = [];
  for (const tool of ['iptables', 'ip6tables']) {
    const rules = (await mustExec(net, tool, ['-w', '-S'])).split('\n');
    objects.push(...rules.filter((rule) => rule.includes('SKNOCK') && !rule.startsWith('-A SKNOCK-GRANTS')).map((rule) => `${tool} ${rule}`));
  }
  const sets = (await mustExec(net, 'ipset', ['list', '-n'])).split('\n');
  return [...objects, ...sets.filter((name) => name.startsWith('sknock')).map((name) => `ipset ${name}`)];
}

/**
 * The nftables backend as the daemon runs it: inside the root helper, in the
 * namespace it manages, where grants go over the helper's own netlink
 * socket. The helper's argv fixes the policy, so start() begins a new helper.
 */
class HelperBackend implements FirewallBackend {
  private client: FirewallHelperClient | undefined;

  constructor(private readonly net: TestNetwork) {}

  async start(policy: FirewallPolicy): Promise<void> {
    await this.client?.close();
    const argv = formatHelperArguments({ backend: { kind: 'nftables' }, policy });
    this.client = FirewallHelperClient.spawn(['ip', 'netns', 'exec', this.net.server, process.execPath, await builtHelper(), ...argv]);
    await this.client.start();
  }

  grant(grants: readonly Grant[]): Promise<void> {
    return this.started().grant(grants);
  }

  list(): Promise<ActiveGrant[]> {
    return this.started().list();
  }

  async stop(): Promise<void> {
    await this.started().stop();
    await this.client?.close();
    this.client = undefined;
  }

  private started(): FirewallHelperClient {
    if (!this.client) throw new Error('HelperBackend: start() first');
    return this.client;
  }
}

const nftKernelGrants = async (net: TestNetwork): Promise<number> => [...(await mustExec(net, 'nft', ['list', 'table', 'inet', 'sknock'])).matchAll(/ \. tcp \. \d+/g)].length;

const variants: readonly Variant[] = [
  {
    name: 'nftables',
    make: (net) => new NftablesBackend({ runner: inNamespace(net) }),
    inventory: nftInventory,
    kernelGrants: nftKernelGrants,
  },
  {
    name: 'nftables in the root helper (grants over netlink)',
    make: (net) => new HelperBackend(net),
    inventory: nftInventory,
    kernelGrants: nftKernelGrants,
  },
  {
    name: 'iptables + ipset',
    make: (net) => new IptablesBackend({ runner: inNamespace(net), ipset: 'yes' }),
    inventory: iptablesInventory,
    kernelGrants: async (net) => (await mustExec(net, 'ipset', ['save'])).split('\n').filter((line) => line.startsWith('add sknock-')).length,
  },
  {
    name: 'iptables without ipset',
    make: (net) => new IptablesBackend({ runner: inNamespace(net), ipset: 'no' }),
    inventory: iptablesInventory,
    kernelGrants: async (net) => {
      const rules = await Promise.all(['iptables', 'ip6tables'].map((tool) => mustExec(net, tool, ['-w', '-S', 'SKNOCK-GRANTS'])));
      return rules.join('\n').split('\n').filter((rule) => rule.startsWith('-A SKNOCK-GRANTS')).length;
    },
  },
];

describeWithNamespaces('firewall backends: one contract', () => {
  describe.each(variants)('$name', (variant) => {
    let net: TestNetwork;
    let service: ChildProcess | undefined;
    let backend: FirewallBackend;

    beforeAll(async () => {
      net = await TestNetwork.create('fw');
      service = await startService(net);
      backend = variant.make(net);
    });

    afterAll(async () => {
      await backend?.stop().catch(() => undefined);
      service?.kill();
      await net?.destroy();
    });

    it('is closed before any grant: drop times out, reject refuses, none lets through', async () => {
      const expected: Record<FirewallMode, Reachability> = { drop: 'timeout', reject: 'refused', none: 'open' };
      for (const mode of ['drop', 'reject', 'none'] as const) {
        await backend.start(policyOf(mode));
        expect(await probe(net), mode).toEqual([expected[mode], expected[mode]]);
      }
    });

    it('opens the port to the granted address only, until the grant expires', async () => {
      await backend.start(policyOf('reject'));
      await backend.grant(grantsFor(30, (family) => family.stranger));
      expect(await probe(net)).toEqual(['refused', 'refused']);

      await backend.grant(grantsFor(2));
      expect(await probe(net)).toEqual(['open', 'open']);
      const listed = await backend.list();
      for (const family of families) {
        const entry = listed.find((grant) => grant.address === family.client);
        expect(entry, family.name).toMatchObject({ protocol: 'tcp', port: SERVICE_PORT });
        expect(entry!.expiresInMs).toBeGreaterThan(0);
        expect(entry!.expiresInMs).toBeLessThanOrEqual(2_000);
      }
      expect(await waitUntilRefused(net)).toEqual(['refused', 'refused']);
    });

    it('extends an open grant instead of duplicating it', async () => {
      await backend.start(policyOf('reject'));
      const grantedAt = Date.now();
      await backend.grant(grantsFor(3));
      await sleep(1_500);
      await backend.grant(grantsFor(3));
      expect(await variant.kernelGrants(net)).toBe(2);
      // Past the first grant's end (3 s), well inside the extension's (4.5 s).
      await sleep(Math.max(0, grantedAt + 3_600 - Date.now()));
      expect(await probe(net)).toEqual(['open', 'open']);
      expect(await waitUntilRefused(net)).toEqual(['refused', 'refused']);
    });

    it('opens a large batch of grants in one call', async () => {
      await backend.start(policyOf('drop'));
      const batch = Array.from({ length: 200 }, (_, index): Grant => ({ address: `198.19.${index >> 8}.${index & 255}`, protocol: 'tcp', port: 443, seconds: 60 }));
      await backend.grant(batch);
      expect(await variant.kernelGrants(net)).toBe(200);
      expect(await backend.list()).toHaveLength(200);
    });

    it('leaves exactly one of each of its objects when started twice', async () => {
      await backend.start(policyOf('drop'));
      const once = await variant.inventory(net);
      await backend.grant(grantsFor(60));
      await backend.start(policyOf('drop'));
      const twice = await variant.inventory(net);
      expect(twice.length).toBeGreaterThan(0);
      expect(new Set(twice).size).toBe(twice.length);
      expect(twice).toEqual(once);
      // A restart replaces the old grants too.
      expect(await variant.kernelGrants(net)).toBe(0);
    });

    it('stops by removing its own objects only', async () => {
      await createForeignObjects(net);
      await backend.start(policyOf('drop'));
      await backend.stop();
      expect(await variant.inventory(net)).toEqual([]);
      expect(await foreignObjects(net)).toEqual(['nft table', 'iptables chain', 'ip6tables chain', 'ipset']);
      expect(await probe(net)).toEqual(['open', 'open']);
    });
  });
});

/** dist/ must hold the helper built from the current sources (npm test builds first; a bare vitest run may not). */
async function builtHelper(): Promise<string> {
  const sources = path.join(repoRoot, 'server/firewall');
  const built = path.join(repoRoot, 'dist/server/firewall');
  const stale = readdirSync(sources)
    .filter((file) => file.endsWith('.ts'))
    .some((file) => {
      const output = path.join(built, file.replace(/\.ts$/, '.js'));
      return !existsSync(output) || statSync(output).mtimeMs < statSync(path.join(sources, file)).mtimeMs;
    });
  if (stale) await run(path.join(repoRoot, 'node_modules/.bin/tsc'), ['-p', path.join(repoRoot, 'tsconfig.json')], 180_000);
  return path.join(built, 'privileged-helper.js');
}

describeWithNamespaces('firewall through the privileged helper', () => {
  let net: TestNetwork;
  let service: ChildProcess | undefined;
  let helper: FirewallHelperClient | undefined;

  beforeAll(async () => {
    const helperPath = await builtHelper();
    net = await TestNetwork.create('fwh');
    service = await startService(net);
    const argv = formatHelperArguments({ backend: { kind: 'nftables' }, policy: policyOf('reject') });
    helper = FirewallHelperClient.spawn(['ip', 'netns', 'exec', net.server, process.execPath, helperPath, ...argv]);
  });

  afterAll(async () => {
    await helper?.close();
    service?.kill();
    await net?.destroy();
  });

  it('drives nftables from a child process and refuses what it must not run', async () => {
    const client = helper!;
    await client.start();
    expect(await probe(net)).toEqual(['refused', 'refused']);
    await expect(client.start()).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_REFUSED', message: expect.stringContaining('already-started') });
    await client.grant(grantsFor(30));
    expect(await probe(net)).toEqual(['open', 'open']);
    expect((await client.list()).map((grant) => grant.address).sort()).toEqual([TestNetwork.clientIPv4, TestNetwork.clientIPv6].sort());
    const injected = { address: '198.18.0.2 . tcp . 22 }; flush ruleset; add element inet sknock grants_v4 {', protocol: 'tcp', port: 22, seconds: 5 } as const;
    await expect(client.grant([injected])).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_REFUSED' });
    expect(await variants[0]!.inventory(net)).toHaveLength(4);
    await client.stop();
    expect(await probe(net)).toEqual(['open', 'open']);
    await client.close();
    await expect(client.list()).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_DEAD' });
  });
});

/** The command lines of a process's children (from /proc: the helper's own, whatever namespace it is in). */
function childCommands(pid: number): string[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  return children.map((child) => readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '));
}

describeWithNamespaces('nftables grants over the root helper\'s netlink socket', () => {
  let net: TestNetwork;
  let service: ChildProcess | undefined;
  const helpers: FirewallHelperClient[] = [];

  const startHelper = async (environment: readonly string[]): Promise<FirewallHelperClient> => {
    const argv = formatHelperArguments({ backend: { kind: 'nftables' }, policy: policyOf('reject') });
    const helper = FirewallHelperClient.spawn(['ip', 'netns', 'exec', net.server, 'env', ...environment, process.execPath, await builtHelper(), ...argv]);
    helpers.push(helper);
    await helper.start();
    return helper;
  };

  beforeAll(async () => {
    net = await TestNetwork.create('fwn');
    service = await startService(net);
  });

  afterAll(async () => {
    await Promise.all(helpers.map((helper) => helper.close()));
    service?.kill();
    await net?.destroy();
  });

  it('opens grants with no nft process, and nft -i only when netlink is switched off', async () => {
    const netlink = await startHelper([]);
    await netlink.grant(grantsFor(30));
    expect(await probe(net)).toEqual(['open', 'open']);
    expect(childCommands(netlink.pid!)).toEqual([]);
    await netlink.close();

    const session = await startHelper(['SKNOCK_NFT_NETLINK=off']);
    expect(await probe(net)).toEqual(['refused', 'refused']);
    await session.grant(grantsFor(30));
    expect(await probe(net)).toEqual(['open', 'open']);
    expect(childCommands(session.pid!)).toEqual(['nft -i']);
    await session.close();
  });

  it('reports the kernel\'s refusal as a failed grant, and grants again once the table is back', async () => {
    const helper = await startHelper([]);
    await mustExec(net, 'nft', ['delete', 'table', 'inet', 'sknock']);
    await expect(helper.grant(grantsFor(30))).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_COMMAND_FAILED', message: expect.stringContaining('ENOENT') });
    expect(childCommands(helper.pid!)).toEqual([]);
    await helper.close();
    const restarted = await startHelper([]);
    await restarted.grant(grantsFor(30));
    expect(await probe(net)).toEqual(['open', 'open']);
    expect(await nftKernelGrants(net)).toBe(2);
  });
});
