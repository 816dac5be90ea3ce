import { spawn } from 'node:child_process';
import { SknockError } from '../../client-lib/errors.js';
import { describe, expect, it } from 'vitest';
import { CommandHooksBackend, expandCommand, parseCommandTemplate } from '../../server/firewall/command-hooks.js';
import {
  IptablesBackend,
  iptablesChainScript,
  iptablesGrantScript,
  ipsetCreateArgs,
  ipsetGrantScript,
  parseIpsetGrants,
} from '../../server/firewall/iptables.js';
import { NetlinkTransportError, type GrantWriter } from '../../server/firewall/nft-netlink.js';
import { NftSession } from '../../server/firewall/nft-session.js';
import {
  NftablesBackend,
  nftGrantCommands,
  nftStartScript,
  nftStopScript,
  parseNftDuration,
  parseNftGrants,
} from '../../server/firewall/nftables.js';
import type { Clock, CommandResult, CommandRunner, FirewallPolicy, Grant } from '../../server/firewall/types.js';

interface Call {
  readonly command: string;
  readonly args: readonly string[];
  readonly stdin?: string;
}

/** Records every command instead of running it; `answer` fakes exit codes and output. */
class RecordingRunner implements CommandRunner {
  readonly calls: Call[] = [];

  constructor(private readonly answer: (call: Call) => Partial<CommandResult> = () => ({})) {}

  async run(command: string, args: readonly string[], stdin?: string): Promise<CommandResult> {
    const call = stdin === undefined ? { command, args: [...args] } : { command, args: [...args], stdin };
    this.calls.push(call);
    return { code: 0, stdout: '', stderr: '', ...this.answer(call) };
  }

  spawn(): never {
    throw new Error('no long-running processes here');
  }

  commandLines(): string[] {
    return this.calls.map((call) => [call.command, ...call.args].join(' '));
  }
}

/** Time that moves only when the test says so. */
class ManualClock implements Clock {
  private time = 0;
  private nextHandle = 0;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, delayMs: number): unknown {
    this.timers.set(++this.nextHandle, { at: this.time + delayMs, callback });
    return this.nextHandle;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  advance(ms: number): void {
    this.time += ms;
    for (const [handle, timer] of [...this.timers].sort(([, a], [, b]) => a.at - b.at)) {
      if (timer.at > this.time) continue;
      this.timers.delete(handle);
      timer.callback();
    }
  }
}

const policy: FirewallPolicy = {
  mode: 'reject',
  emergencySshPort: 22,
  publicPorts: [
    { protocol: 'tcp', port: 80 },
    { protocol: 'tcp', port: 443 },
    { protocol: 'udp', port: 53 },
  ],
};
const v4: Grant = { address: '198.18.0.2', protocol: 'tcp', port: 22, seconds: 15 };
const v6: Grant = { address: 'fd00:18::2', protocol: 'udp', port: 53, seconds: 60 };
const injected = { ...v4, address: '1.2.3.4; rm -rf /' };

describe('nftables ruleset', () => {
  it('replaces the table atomically and holds the policy (reject: tcp reset, icmpx)', () => {
    expect(nftStartScript(policy)).toBe(`table inet sknock {}
delete table inet sknock
table inet sknock {
  set grants_v4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
  set grants_v6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
  chain input {
    type filter hook input priority filter; policy accept;
    iif lo accept
    ct state established,related accept
    ct state invalid drop
    icmp type { echo-reply, destination-unreachable, echo-request, time-exceeded, parameter-problem } accept
    icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, echo-reply, mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept
    tcp dport 22 accept
    tcp dport { 80, 443 } accept
    udp dport { 53 } accept
    ip saddr . meta l4proto . th dport @grants_v4 accept
    ip6 saddr . meta l4proto . th dport @grants_v6 accept
    meta l4proto tcp reject with tcp reset
    reject with icmpx port-unreachable
  }
}
`);
  });

  it('ends drop mode with drop and none mode with no verdict; emergency port off and no public ports', () => {
    const tail = (mode: FirewallPolicy['mode']): string[] =>
      nftStartScript({ mode, emergencySshPort: null, publicPorts: [] }).trimEnd().split('\n').slice(-6, -2).map((line) => line.trim());
    expect(tail('drop')).toEqual(['icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, echo-reply, mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept', 'ip saddr . meta l4proto . th dport @grants_v4 accept', 'ip6 saddr . meta l4proto . th dport @grants_v6 accept', 'drop']);
    expect(tail('none')).toEqual(['icmp type { echo-reply, destination-unreachable, echo-request, time-exceeded, parameter-problem } accept', 'icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, echo-request, echo-reply, mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept', 'ip saddr . meta l4proto . th dport @grants_v4 accept', 'ip6 saddr . meta l4proto . th dport @grants_v6 accept']);
  });

  it('stops by deleting its own table only, safely when it is absent', () => {
    expect(nftStopScript()).toBe('table inet sknock {}\ndelete table inet sknock\n');
  });

  it('puts a batch in one transaction that adds, deletes and re-adds each element (an open grant is extended)', () => {
    expect(nftGrantCommands([v4, v6, { ...v4, address: '198.18.0.3', protocol: 'udp', port: 1194, seconds: 1 }])).toEqual([
      'add element inet sknock grants_v4 { 198.18.0.2 . tcp . 22 timeout 15s, 198.18.0.3 . udp . 1194 timeout 1s }',
      'delete element inet sknock grants_v4 { 198.18.0.2 . tcp . 22, 198.18.0.3 . udp . 1194 }',
      'add element inet sknock grants_v4 { 198.18.0.2 . tcp . 22 timeout 15s, 198.18.0.3 . udp . 1194 timeout 1s }',
      'add element inet sknock grants_v6 { fd00:18::2 . udp . 53 timeout 60s }',
      'delete element inet sknock grants_v6 { fd00:18::2 . udp . 53 }',
      'add element inet sknock grants_v6 { fd00:18::2 . udp . 53 timeout 60s }',
    ]);
  });

  it('reads open grants and their remaining time from nft list output', () => {
    expect(parseNftDuration('1h1m59s992ms')).toBe(3_719_992);
    expect(parseNftDuration('984ms')).toBe(984);
    expect(parseNftDuration('2d')).toBe(172_800_000);
    const listing = `table inet sknock {
	set grants_v4 {
		type ipv4_addr . inet_proto . inet_service
		flags timeout
		elements = { 198.18.0.2 . tcp . 22 timeout 30s expires 29s948ms,
			     198.18.0.3 . udp . 53 timeout 20s expires 19s984ms }
	}
	set grants_v6 {
		type ipv6_addr . inet_proto . inet_service
		flags timeout
		elements = { fd00:18::2 . udp . 53 timeout 1h2m expires 1h1m59s992ms }
	}
	chain input {
		ip saddr . meta l4proto . th dport @grants_v4 accept
	}
}`;
    expect(parseNftGrants(listing)).toEqual([
      { address: '198.18.0.2', protocol: 'tcp', port: 22, expiresInMs: 29_948 },
      { address: '198.18.0.3', protocol: 'udp', port: 53, expiresInMs: 19_984 },
      { address: 'fd00:18::2', protocol: 'udp', port: 53, expiresInMs: 3_719_992 },
    ]);
  });
});

describe('NftablesBackend (spawned nft, recorded)', () => {
  it('starts, grants, lists and stops through nft -f - and nft list', async () => {
    const runner = new RecordingRunner((call) => (call.args[0] === 'list' ? { stdout: 'elements = { 198.18.0.2 . tcp . 22 timeout 15s expires 14s1ms }' } : {}));
    const backend = new NftablesBackend({ runner, interactive: false });
    await backend.start(policy);
    await backend.grant([v4]);
    expect(await backend.list()).toEqual([{ address: '198.18.0.2', protocol: 'tcp', port: 22, expiresInMs: 14_001 }]);
    await backend.stop();
    expect(runner.calls).toEqual([
      { command: 'nft', args: ['-f', '-'], stdin: nftStartScript(policy) },
      { command: 'nft', args: ['-f', '-'], stdin: `${nftGrantCommands([v4]).join('\n')}\n` },
      { command: 'nft', args: ['list', 'table', 'inet', 'sknock'] },
      { command: 'nft', args: ['-f', '-'], stdin: nftStopScript() },
    ]);
  });

  it('refuses bad grants and policies before any command runs', async () => {
    const runner = new RecordingRunner();
    const backend = new NftablesBackend({ runner, interactive: false });
    await expect(backend.grant([v4, injected])).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_INVALID_GRANT' });
    await expect(backend.grant([{ ...v4, protocol: 'tcp } accept; drop' as 'tcp' }])).rejects.toThrow(/protocol/);
    await expect(backend.start({ ...policy, mode: 'accept' as 'drop' })).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_INVALID_POLICY' });
    expect(runner.calls).toEqual([]);
  });

  it('reports a failing nft with its stderr and a stable code', async () => {
    const backend = new NftablesBackend({ runner: new RecordingRunner(() => ({ code: 1, stderr: 'Error: Could not process rule: No such file or directory' })), interactive: false });
    await expect(backend.grant([v4])).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_COMMAND_FAILED', message: expect.stringContaining('No such file') });
  });
});

/** A grant writer that records batches, or fails as the test says. */
class FakeWriter implements GrantWriter {
  readonly batches: Grant[][] = [];
  closed = false;

  constructor(private readonly failure?: () => Error) {}

  write(grants: readonly Grant[]): void {
    if (this.failure) throw this.failure();
    this.batches.push([...grants]);
  }

  close(): void {
    this.closed = true;
  }
}

describe('NftablesBackend with a netlink grant writer', () => {
  const started = { command: 'nft', args: ['-f', '-'], stdin: nftStartScript(policy) };

  it('writes grants through the writer and runs nft only to start and stop', async () => {
    const runner = new RecordingRunner();
    const writer = new FakeWriter();
    const backend = new NftablesBackend({ runner, interactive: false, netlink: () => writer });
    await backend.start(policy);
    await backend.grant([v4]);
    expect(writer.batches).toEqual([[v4]]);
    await backend.stop();
    expect(writer.closed).toBe(true);
    expect(runner.calls).toEqual([started, { command: 'nft', args: ['-f', '-'], stdin: nftStopScript() }]);
  });

  it('falls back to nft, and says so, when the writer cannot be opened or its socket fails', async () => {
    const warnings: string[] = [];
    const unavailable = new RecordingRunner();
    const withoutWriter = new NftablesBackend({ runner: unavailable, interactive: false, netlink: () => ({ unavailable: 'native/ addon not built' }), warn: (message) => warnings.push(message) });
    await withoutWriter.start(policy);
    await withoutWriter.grant([v4]);
    expect(unavailable.calls).toEqual([started, { command: 'nft', args: ['-f', '-'], stdin: `${nftGrantCommands([v4]).join('\n')}\n` }]);

    const broken = new RecordingRunner();
    const failing = new FakeWriter(() => new NetlinkTransportError('netlink send: No buffer space available'));
    const withBrokenWriter = new NftablesBackend({ runner: broken, interactive: false, netlink: () => failing, warn: (message) => warnings.push(message) });
    await withBrokenWriter.start(policy);
    await withBrokenWriter.grant([v4]);
    await withBrokenWriter.grant([v4]);
    expect(broken.calls.slice(1).map((call) => call.stdin)).toEqual([1, 2].map(() => `${nftGrantCommands([v4]).join('\n')}\n`));
    expect(warnings).toEqual([expect.stringContaining('native/ addon not built'), expect.stringContaining('No buffer space available')]);
  });

  it('reports the kernel refusing a transaction as a failed grant, without falling back', async () => {
    const runner = new RecordingRunner();
    const refusing = new FakeWriter(() => new SknockError('SKNOCK_FIREWALL_COMMAND_FAILED', 'nf_tables refused the grant transaction: ENOENT'));
    const backend = new NftablesBackend({ runner, interactive: false, netlink: () => refusing });
    await backend.start(policy);
    await expect(backend.grant([v4])).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_COMMAND_FAILED', message: expect.stringContaining('ENOENT') });
    expect(runner.calls).toEqual([started]);
  });
});

/** A stand-in for `nft -i`: answers the marker, reports lines containing "bad" on stderr, exits on "die". */
const FAKE_NFT = `
const lines = require('node:readline').createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === 'die') process.exit(1);
  if (line.includes('bad')) process.stderr.write('Error: syntax error\\n' + line + '\\n');
  if (line === 'describe tcp dport') process.stdout.write('payload expression, datatype inet_service (internet network service) (basetype integer), 16 bits\\n');
});`;

describe('NftSession', () => {
  const runner: CommandRunner = { run: () => Promise.reject(new Error('unused')), spawn: () => spawn(process.execPath, ['-e', FAKE_NFT]) };

  it('tells a committed line from a failed one and survives the failure', async () => {
    const session = new NftSession(runner);
    try {
      await expect(session.execute('add element ok')).resolves.toBe('done');
      await expect(session.execute('add element bad')).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_COMMAND_FAILED', message: expect.stringContaining('syntax error') });
      await expect(session.execute('add element ok again')).resolves.toBe('done');
    } finally {
      session.close();
    }
  });

  it('reports a lost session when nft dies or hangs, and starts a new one next time', async () => {
    const session = new NftSession(runner, 300);
    try {
      await expect(session.execute('die')).resolves.toBe('session-lost');
      await expect(session.execute('add element ok')).resolves.toBe('done');
      expect(() => session.execute('no marker follows this\ndescribe tcp dport')).toThrow(/one line/);
    } finally {
      session.close();
    }
    const silent = new NftSession({ ...runner, spawn: () => spawn(process.execPath, ['-e', 'process.stdin.resume()']) }, 300);
    await expect(silent.execute('add element ok')).resolves.toBe('session-lost');
    silent.close();
  });
});

describe('iptables ruleset', () => {
  it('fills its own chain in one iptables-restore commit (IPv6, ipset, reject)', () => {
    const icmpv6 = [1, 2, 3, 4, 128, 129, 130, 131, 132, 133, 134, 135, 136, 143].map((type) => `-A SKNOCK -p ipv6-icmp --icmpv6-type ${type} -j ACCEPT`);
    expect(iptablesChainScript(policy, 6, 'ipset')).toBe(
      [
        '*filter',
        ':SKNOCK - [0:0]',
        '-A SKNOCK -i lo -j ACCEPT',
        '-A SKNOCK -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-A SKNOCK -m conntrack --ctstate INVALID -j DROP',
        ...icmpv6,
        '-A SKNOCK -p tcp --dport 22 -j ACCEPT',
        '-A SKNOCK -p tcp --dport 80 -j ACCEPT',
        '-A SKNOCK -p tcp --dport 443 -j ACCEPT',
        '-A SKNOCK -p udp --dport 53 -j ACCEPT',
        '-A SKNOCK -m set --match-set sknock-v6 src,dst -j ACCEPT',
        '-A SKNOCK -p tcp -j REJECT --reject-with tcp-reset',
        '-A SKNOCK -j REJECT --reject-with icmp6-port-unreachable',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('uses a grant chain without ipset, and ends with DROP, IPv4 reject or nothing', () => {
    const script = (mode: FirewallPolicy['mode'], family: 4 | 6): string => iptablesChainScript({ mode, emergencySshPort: null, publicPorts: [] }, family, 'rules');
    expect(script('drop', 4)).toBe(
      [
        '*filter',
        ':SKNOCK - [0:0]',
        ':SKNOCK-GRANTS - [0:0]',
        '-A SKNOCK -i lo -j ACCEPT',
        '-A SKNOCK -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-A SKNOCK -m conntrack --ctstate INVALID -j DROP',
        ...[0, 3, 8, 11, 12].map((type) => `-A SKNOCK -p icmp --icmp-type ${type} -j ACCEPT`),
        '-A SKNOCK -j SKNOCK-GRANTS',
        '-A SKNOCK -j DROP',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(script('reject', 4)).toContain('-A SKNOCK -j SKNOCK-GRANTS\n-A SKNOCK -p tcp -j REJECT --reject-with tcp-reset\n-A SKNOCK -j REJECT --reject-with icmp-port-unreachable\nCOMMIT');
    expect(script('none', 6)).toContain('-A SKNOCK -j SKNOCK-GRANTS\nCOMMIT');
  });

  it('writes grants as ipset entries with timeouts, or as rules to add and delete', () => {
    expect(ipsetCreateArgs(4)).toEqual(['-exist', 'create', 'sknock-v4', 'hash:ip,port', 'family', 'inet', 'timeout', '1', 'maxelem', '1048576']);
    expect(ipsetCreateArgs(6)).toEqual(['-exist', 'create', 'sknock-v6', 'hash:ip,port', 'family', 'inet6', 'timeout', '1', 'maxelem', '1048576']);
    expect(ipsetGrantScript([v4, v6])).toBe('add sknock-v4 198.18.0.2,tcp:22 timeout 15\nadd sknock-v6 fd00:18::2,udp:53 timeout 60\n');
    expect(iptablesGrantScript('-D', [v4])).toBe('*filter\n-D SKNOCK-GRANTS -s 198.18.0.2 -p tcp --dport 22 -j ACCEPT\nCOMMIT\n');
  });

  it('reads open grants from ipset save, ignoring other sets', () => {
    const saved = [
      'create sknock-v4 hash:ip,port family inet hashsize 1024 maxelem 1048576 timeout 1 bucketsize 12 initval 0xa3ade9ab',
      'add sknock-v4 198.18.0.2,tcp:22 timeout 7',
      'add foreign 198.18.0.9,tcp:22 timeout 7',
      'add sknock-v6 fd00:18::2,udp:53 timeout 59',
    ].join('\n');
    expect(parseIpsetGrants(saved)).toEqual([
      { address: '198.18.0.2', protocol: 'tcp', port: 22, expiresInMs: 7000 },
      { address: 'fd00:18::2', protocol: 'udp', port: 53, expiresInMs: 59_000 },
    ]);
  });
});

describe('IptablesBackend (recorded)', () => {
  /** Nothing of ours exists yet: checks (-C, -S) fail, ipset lists no sets. */
  const freshHost = (call: Call): Partial<CommandResult> => (call.args.includes('-C') || call.args.includes('-S') ? { code: 1 } : {});

  it('creates sets, fills the chain, inserts the jump once, and grants through ipset -exist restore', async () => {
    const runner = new RecordingRunner(freshHost);
    const backend = new IptablesBackend({ runner, ipset: 'yes' });
    await backend.start(policy);
    await backend.grant([v4, v6]);
    expect(backend.grantStore).toBe('ipset');
    expect(runner.commandLines()).toEqual([
      'ipset -exist create sknock-v4 hash:ip,port family inet timeout 1 maxelem 1048576',
      'ipset flush sknock-v4',
      'iptables-restore -w --noflush',
      'iptables -w -C INPUT -j SKNOCK',
      'iptables -w -I INPUT 1 -j SKNOCK',
      'iptables -w -S SKNOCK-GRANTS',
      'ipset -exist create sknock-v6 hash:ip,port family inet6 timeout 1 maxelem 1048576',
      'ipset flush sknock-v6',
      'ip6tables-restore -w --noflush',
      'ip6tables -w -C INPUT -j SKNOCK',
      'ip6tables -w -I INPUT 1 -j SKNOCK',
      'ip6tables -w -S SKNOCK-GRANTS',
      'ipset -exist restore',
    ]);
    expect(runner.calls[2]!.stdin).toBe(iptablesChainScript(policy, 4, 'ipset'));
    expect(runner.calls.at(-1)!.stdin).toBe(ipsetGrantScript([v4, v6]));
  });

  it('does not insert the jump again when it is there', async () => {
    const runner = new RecordingRunner((call) => (call.args.includes('-S') ? { code: 1 } : {}));
    await new IptablesBackend({ runner, ipset: 'yes' }).start(policy);
    expect(runner.commandLines().filter((line) => line.includes('-I INPUT'))).toEqual([]);
  });

  it('chooses ipset automatically only when ipset works', async () => {
    const withIpset = new IptablesBackend({ runner: new RecordingRunner(freshHost), ipset: 'auto' });
    await withIpset.start(policy);
    expect(withIpset.grantStore).toBe('ipset');
    const without = new IptablesBackend({ runner: new RecordingRunner((call) => (call.command === 'ipset' ? { code: 127 } : freshHost(call))), ipset: 'auto' });
    await without.start(policy);
    expect(without.grantStore).toBe('rules');
  });

  it('without ipset adds a rule per new grant, only extends an open one, and deletes it when its time is up', async () => {
    const runner = new RecordingRunner(freshHost);
    const clock = new ManualClock();
    const backend = new IptablesBackend({ runner, ipset: 'no', clock });
    await backend.start(policy);
    runner.calls.length = 0;
    await backend.grant([{ ...v4, seconds: 2 }]);
    expect(runner.calls).toEqual([{ command: 'iptables-restore', args: ['-w', '--noflush'], stdin: iptablesGrantScript('-A', [v4]) }]);
    clock.advance(1_000);
    await backend.grant([{ ...v4, seconds: 2 }]);
    expect(runner.calls).toHaveLength(1);
    clock.advance(1_500);
    expect(await backend.list()).toEqual([{ address: v4.address, protocol: 'tcp', port: 22, expiresInMs: 500 }]);
    clock.advance(500);
    expect(await backend.list()).toEqual([]);
    expect(runner.calls.at(-1)).toEqual({ command: 'iptables-restore', args: ['-w', '--noflush'], stdin: iptablesGrantScript('-D', [v4]) });
  });

  it('stops by removing the jump, its chains and its sets, and nothing else', async () => {
    const runner = new RecordingRunner((call) =>
      call.command === 'ipset' ? { stdout: 'foreign-set\nsknock-v4\n' } : call.args.includes('SKNOCK-GRANTS') && call.args.includes('-S') ? { code: 1 } : {},
    );
    let jumps = 2;
    const backend = new IptablesBackend({
      runner: {
        ...runner,
        run: (command, args, stdin) => {
          // The jump is there (twice, for IPv4) until deleted.
          if (args.includes('-C')) return Promise.resolve({ code: command === 'iptables' && jumps-- > 0 ? 0 : 1, stdout: '', stderr: '' });
          return runner.run(command, args, stdin);
        },
        spawn: () => runner.spawn(),
      },
    });
    await backend.stop();
    expect(runner.commandLines()).toEqual([
      'iptables -w -D INPUT -j SKNOCK',
      'iptables -w -D INPUT -j SKNOCK',
      'iptables -w -S SKNOCK',
      'iptables -w -S SKNOCK-GRANTS',
      'iptables -w -F SKNOCK',
      'iptables -w -X SKNOCK',
      'ipset list -n',
      'ipset destroy sknock-v4',
      'ip6tables -w -S SKNOCK',
      'ip6tables -w -S SKNOCK-GRANTS',
      'ip6tables -w -F SKNOCK',
      'ip6tables -w -X SKNOCK',
      'ipset list -n',
    ]);
  });
});

describe('command hooks', () => {
  it('splits a template into words and substitutes placeholders inside words, never splitting them', () => {
    const words = parseCommandTemplate('  /usr/local/bin/ufw-open  {address} {protocol}/{port} --for={seconds}s ');
    expect(words).toEqual(['/usr/local/bin/ufw-open', '{address}', '{protocol}/{port}', '--for={seconds}s']);
    expect(expandCommand(words, v6)).toEqual(['/usr/local/bin/ufw-open', 'fd00:18::2', 'udp/53', '--for=60s']);
  });

  it.each([
    ['', /program/],
    ['{address} open', /first word/],
    ['/bin/open {addr}', /unknown placeholder \{addr\}/],
    ['/bin/open {address;rm}', /unknown placeholder/],
  ])('refuses the template %j', (text, message) => {
    expect(() => parseCommandTemplate(text, 'openCommand')).toThrowError(expect.objectContaining({ code: 'SKNOCK_FIREWALL_BAD_TEMPLATE', message: expect.stringMatching(message) }));
  });

  const hooks = (runner: CommandRunner, clock = new ManualClock()): CommandHooksBackend =>
    new CommandHooksBackend({ runner, clock, openCommand: ['/sbin/open', '{address}', '{protocol}', '{port}'], closeCommand: ['/sbin/close', '{address}', '{port}'] });

  it('opens once, extends by resetting the timer, closes when the time is up', async () => {
    const runner = new RecordingRunner();
    const clock = new ManualClock();
    const backend = hooks(runner, clock);
    await backend.start(policy);
    await backend.grant([{ ...v4, seconds: 2 }]);
    clock.advance(1_500);
    await backend.grant([{ ...v4, seconds: 2 }]);
    clock.advance(1_000);
    expect(await backend.list()).toEqual([{ address: v4.address, protocol: 'tcp', port: 22, expiresInMs: 1_000 }]);
    expect(runner.commandLines()).toEqual(['/sbin/open 198.18.0.2 tcp 22']);
    clock.advance(1_000);
    expect(await backend.list()).toEqual([]);
    expect(runner.commandLines()).toEqual(['/sbin/open 198.18.0.2 tcp 22', '/sbin/close 198.18.0.2 22']);
  });

  it('closes everything on stop', async () => {
    const runner = new RecordingRunner();
    const backend = hooks(runner);
    await backend.grant([v4, v6]);
    await backend.stop();
    expect(runner.commandLines()).toEqual(['/sbin/open 198.18.0.2 tcp 22', '/sbin/open fd00:18::2 udp 53', '/sbin/close 198.18.0.2 22', '/sbin/close fd00:18::2 53']);
    expect(await backend.list()).toEqual([]);
  });

  it('runs every hook of a batch, reports the failures together and records only what opened', async () => {
    const runner = new RecordingRunner((call) => (call.args[0] === v4.address ? { code: 3, stderr: 'ufw: not running' } : {}));
    const backend = hooks(runner);
    await expect(backend.grant([v4, v6])).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_COMMAND_FAILED', message: expect.stringContaining('1 of 2') });
    expect((await backend.list()).map((grant) => grant.address)).toEqual([v6.address]);
  });

  it('never passes an injected address to a hook', async () => {
    const runner = new RecordingRunner();
    await expect(hooks(runner).grant([injected])).rejects.toThrow(/refused grant/);
    expect(runner.calls).toEqual([]);
  });
});
