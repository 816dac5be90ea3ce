import { ExpiryTimers, systemClock, warnOnStderr } from './expiry-timers.js';
import { ESSENTIAL_ICMP, ESSENTIAL_ICMPV6, type IcmpType } from './icmp.js';
import { OperationQueue } from './operation-queue.js';
import { localRunner, runOrThrow } from './runner.js';
import { canonicalAddress } from '../../client-lib/protocol/address.js';
import { addressFamily, requireGrants, requirePolicy } from './validation.js';
import type { ActiveGrant, Clock, CommandRunner, FirewallBackend, FirewallPolicy, Grant } from './types.js';

/** The project's own chain, jumped to from the top of INPUT. */
export const IPTABLES_CHAIN = 'SKNOCK';
/** Without ipset: one ACCEPT rule per open grant, jumped to from SKNOCK before its final verdict. */
export const IPTABLES_GRANT_CHAIN = 'SKNOCK-GRANTS';
/** ipset's default of 65,536 entries would refuse grants on a busy server. */
export const IPSET_MAX_ELEMENTS = 1_048_576;

type Family = 4 | 6;
const FAMILIES: readonly Family[] = [4, 6];

interface FamilyTools {
  readonly tables: string;
  readonly restore: string;
  readonly ipsetName: string;
  readonly ipsetFamily: string;
  readonly icmpMatch: readonly string[];
  readonly icmpTypes: readonly IcmpType[];
  readonly portUnreachable: string;
}

const TOOLS: Readonly<Record<Family, FamilyTools>> = {
  4: {
    tables: 'iptables',
    restore: 'iptables-restore',
    ipsetName: 'sknock-v4',
    ipsetFamily: 'inet',
    icmpMatch: ['-p', 'icmp', '--icmp-type'],
    icmpTypes: ESSENTIAL_ICMP,
    portUnreachable: 'icmp-port-unreachable',
  },
  6: {
    tables: 'ip6tables',
    restore: 'ip6tables-restore',
    ipsetName: 'sknock-v6',
    ipsetFamily: 'inet6',
    icmpMatch: ['-p', 'ipv6-icmp', '--icmpv6-type'],
    icmpTypes: ESSENTIAL_ICMPV6,
    portUnreachable: 'icmp6-port-unreachable',
  },
};

/** Where grants live: kernel-expiring ipset sets, or rules removed by timers. */
export type GrantStore = 'ipset' | 'rules';

function finalRules(policy: FirewallPolicy, family: Family): string[] {
  switch (policy.mode) {
    case 'none':
      return [];
    case 'drop':
      return ['-j DROP'];
    case 'reject':
      return ['-p tcp -j REJECT --reject-with tcp-reset', `-j REJECT --reject-with ${TOOLS[family].portUnreachable}`];
  }
}

/**
 * `iptables-restore --noflush` input that (re)creates the chain(s) and fills
 * them in one commit: declaring a chain flushes it, so a crashed run's rules
 * are replaced, never duplicated, and the policy is never absent meanwhile.
 */
export function iptablesChainScript(policy: FirewallPolicy, family: Family, store: GrantStore): string {
  const tools = TOOLS[family];
  const rules = [
    '-i lo -j ACCEPT',
    '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-m conntrack --ctstate INVALID -j DROP',
    ...tools.icmpTypes.map((icmp) => `${tools.icmpMatch.join(' ')} ${icmp.type} -j ACCEPT`),
    ...(policy.emergencySshPort === null ? [] : [`-p tcp --dport ${policy.emergencySshPort} -j ACCEPT`]),
    ...policy.publicPorts.map((entry) => `-p ${entry.protocol} --dport ${entry.port} -j ACCEPT`),
    store === 'ipset' ? `-m set --match-set ${tools.ipsetName} src,dst -j ACCEPT` : `-j ${IPTABLES_GRANT_CHAIN}`,
    ...finalRules(policy, family),
  ];
  return [
    '*filter',
    `:${IPTABLES_CHAIN} - [0:0]`,
    ...(store === 'rules' ? [`:${IPTABLES_GRANT_CHAIN} - [0:0]`] : []),
    ...rules.map((rule) => `-A ${IPTABLES_CHAIN} ${rule}`),
    'COMMIT',
    '',
  ].join('\n');
}

export function ipsetCreateArgs(family: Family): string[] {
  const tools = TOOLS[family];
  // The set's default timeout only applies to entries added without one; ours always carry one.
  return ['-exist', 'create', tools.ipsetName, 'hash:ip,port', 'family', tools.ipsetFamily, 'timeout', '1', 'maxelem', String(IPSET_MAX_ELEMENTS)];
}

/** `ipset -exist restore` input: -exist makes an add of an open grant reset its timeout. */
export function ipsetGrantScript(grants: readonly Grant[]): string {
  return grants
    .map((grant) => `add ${TOOLS[addressFamily(grant.address)].ipsetName} ${grant.address},${grant.protocol}:${grant.port} timeout ${grant.seconds}\n`)
    .join('');
}

/** `iptables-restore --noflush` input adding (-A) or deleting (-D) the rule of each grant. */
export function iptablesGrantScript(action: '-A' | '-D', grants: readonly Grant[]): string {
  const rules = grants.map((grant) => `${action} ${IPTABLES_GRANT_CHAIN} -s ${grant.address} -p ${grant.protocol} --dport ${grant.port} -j ACCEPT`);
  return ['*filter', ...rules, 'COMMIT', ''].join('\n');
}

const IPSET_ENTRY = /^add (sknock-v[46]) (\S+),(tcp|udp):(\d+) timeout (\d+)$/gm;

/** The open grants in `ipset save` output (ipset counts whole seconds). */
export function parseIpsetGrants(saved: string): ActiveGrant[] {
  const grants: ActiveGrant[] = [];
  for (const [, , address, protocol, port, seconds] of saved.matchAll(IPSET_ENTRY)) {
    const canonical = canonicalAddress(address!);
    if (canonical === undefined || Number(seconds) <= 0) continue;
    grants.push({ address: canonical, protocol: protocol as 'tcp' | 'udp', port: Number(port), expiresInMs: Number(seconds) * 1000 });
  }
  return grants;
}

function byFamily(grants: readonly Grant[]): Array<[Family, Grant[]]> {
  return FAMILIES.map((family): [Family, Grant[]] => [family, grants.filter((grant) => addressFamily(grant.address) === family)]).filter(
    ([, members]) => members.length > 0,
  );
}

export interface IptablesOptions {
  readonly runner?: CommandRunner;
  /** 'auto' (default) uses ipset when `ipset list -n` works. */
  readonly ipset?: 'auto' | 'yes' | 'no';
  readonly clock?: Clock;
  /** A timer's close that failed (rules without ipset). */
  readonly reportError?: (error: unknown) => void;
}

/**
 * For hosts without nftables: iptables and ip6tables with a chain of their
 * own. With ipset, grants expire in the kernel; without it each grant is a
 * rule deleted by a timer, so a killed daemon leaves its grants open until
 * the next start() replaces the chain.
 */
export class IptablesBackend implements FirewallBackend {
  private readonly runner: CommandRunner;
  private readonly ipsetChoice: 'auto' | 'yes' | 'no';
  private readonly queue = new OperationQueue((grants) => this.applyGrants(grants));
  private readonly timers: ExpiryTimers;
  private store: GrantStore = 'rules';

  constructor(options: IptablesOptions = {}) {
    this.runner = options.runner ?? localRunner;
    this.ipsetChoice = options.ipset ?? 'auto';
    this.timers = new ExpiryTimers({
      clock: options.clock ?? systemClock,
      queue: this.queue,
      close: (grant) => this.applyGrantRules('-D', [grant]),
      reportError: options.reportError ?? warnOnStderr,
    });
  }

  /** Which store start() chose (for logs and tests). */
  get grantStore(): GrantStore {
    return this.store;
  }

  async start(policy: FirewallPolicy): Promise<void> {
    const checked = requirePolicy(policy);
    await this.queue.run(async () => {
      this.store = await this.chooseStore();
      this.timers.takeAll();
      for (const family of FAMILIES) await this.installFamily(checked, family);
    });
  }

  async grant(grants: readonly Grant[]): Promise<void> {
    const checked = requireGrants(grants);
    if (checked.length > 0) await this.queue.grant(checked);
  }

  list(): Promise<ActiveGrant[]> {
    return this.queue.run(async () => {
      if (this.store === 'rules') return this.timers.list();
      const saved = await Promise.all(FAMILIES.map((family) => runOrThrow(this.runner, 'ipset', ['save', TOOLS[family].ipsetName])));
      return parseIpsetGrants(saved.join(''));
    });
  }

  stop(): Promise<void> {
    return this.queue.run(async () => {
      this.timers.takeAll();
      for (const family of FAMILIES) {
        // Bounded: a jump inserted twice by someone else's tooling is removed too.
        for (let attempt = 0; attempt < 16 && (await this.hasJump(family)); attempt++) {
          await runOrThrow(this.runner, TOOLS[family].tables, ['-w', '-D', 'INPUT', '-j', IPTABLES_CHAIN]);
        }
        await this.removeChains(family, [IPTABLES_CHAIN, IPTABLES_GRANT_CHAIN]);
        await this.destroySet(family);
      }
    });
  }

  private async chooseStore(): Promise<GrantStore> {
    if (this.ipsetChoice !== 'auto') return this.ipsetChoice === 'yes' ? 'ipset' : 'rules';
    const probe = await this.runner.run('ipset', ['list', '-n']).catch(() => null);
    return probe?.code === 0 ? 'ipset' : 'rules';
  }

  /** Names of the ipset sets that exist; none when ipset is not installed. */
  private async existingSets(): Promise<string[]> {
    const listing = await this.runner.run('ipset', ['list', '-n']).catch(() => null);
    return listing?.code === 0 ? listing.stdout.split('\n').map((name) => name.trim()) : [];
  }

  private async chainExists(family: Family, chain: string): Promise<boolean> {
    return (await this.runner.run(TOOLS[family].tables, ['-w', '-S', chain])).code === 0;
  }

  private async hasJump(family: Family): Promise<boolean> {
    return (await this.runner.run(TOOLS[family].tables, ['-w', '-C', 'INPUT', '-j', IPTABLES_CHAIN])).code === 0;
  }

  private async installFamily(policy: FirewallPolicy, family: Family): Promise<void> {
    const { tables, restore, ipsetName } = TOOLS[family];
    if (this.store === 'ipset') {
      await runOrThrow(this.runner, 'ipset', ipsetCreateArgs(family));
      await runOrThrow(this.runner, 'ipset', ['flush', ipsetName]);
    }
    await runOrThrow(this.runner, restore, ['-w', '--noflush'], iptablesChainScript(policy, family, this.store));
    if (!(await this.hasJump(family))) await runOrThrow(this.runner, tables, ['-w', '-I', 'INPUT', '1', '-j', IPTABLES_CHAIN]);
    // Objects of the other store, left by an earlier run with another setting, are unreferenced now.
    if (this.store === 'ipset') await this.removeChains(family, [IPTABLES_GRANT_CHAIN]);
    else await this.destroySet(family);
  }

  /** Flushes all, then deletes, those of `chains` that exist (SKNOCK may jump to SKNOCK-GRANTS). */
  private async removeChains(family: Family, chains: readonly string[]): Promise<void> {
    const present: string[] = [];
    for (const chain of chains) if (await this.chainExists(family, chain)) present.push(chain);
    for (const chain of present) await runOrThrow(this.runner, TOOLS[family].tables, ['-w', '-F', chain]);
    for (const chain of present) await runOrThrow(this.runner, TOOLS[family].tables, ['-w', '-X', chain]);
  }

  private async destroySet(family: Family): Promise<void> {
    const { ipsetName } = TOOLS[family];
    if ((await this.existingSets()).includes(ipsetName)) await runOrThrow(this.runner, 'ipset', ['destroy', ipsetName]);
  }

  private async applyGrants(grants: readonly Grant[]): Promise<void> {
    if (this.store === 'ipset') {
      await runOrThrow(this.runner, 'ipset', ['-exist', 'restore'], ipsetGrantScript(grants));
      return;
    }
    // Only new grants get a rule; an open one just gets a later timer.
    await this.applyGrantRules('-A', grants.filter((grant) => !this.timers.isOpen(grant)));
    for (const grant of grants) this.timers.set(grant);
  }

  private async applyGrantRules(action: '-A' | '-D', grants: readonly Grant[]): Promise<void> {
    for (const [family, members] of byFamily(grants)) {
      await runOrThrow(this.runner, TOOLS[family].restore, ['-w', '--noflush'], iptablesGrantScript(action, members));
    }
  }
}
