import { ESSENTIAL_ICMP, ESSENTIAL_ICMPV6 } from './icmp.js';
import { NETLINK_BATCH_LIMIT, NetlinkGrantWriter, NetlinkTransportError, type GrantWriter } from './nft-netlink.js';
import { NftSession } from './nft-session.js';
import { OperationQueue } from './operation-queue.js';
import { localRunner, runOrThrow } from './runner.js';
import { canonicalAddress } from '../../client-lib/protocol/address.js';
import { addressFamily, requireGrants, requirePolicy } from './validation.js';
import type { ActiveGrant, CommandRunner, FirewallBackend, FirewallPolicy, Grant } from './types.js';

/** The project's own table; nothing outside it is ever touched. */
const TABLE_FAMILY = 'inet';
const TABLE_NAME = 'sknock';
export const NFT_TABLE = `${TABLE_FAMILY} ${TABLE_NAME}`;
const GRANT_SETS = { 4: 'grants_v4', 6: 'grants_v6' } as const;

/**
 * Larger batches go to a spawned `nft -f -`. Measured for add+delete+add:
 * the session ≈ 0.16 ms per grant, a spawn ≈ 20 ms + 0.04 ms per grant, so
 * they cross near 130 grants; 64 keeps session lines short.
 */
export const SESSION_BATCH_LIMIT = 64;

/** Adding then deleting a table that may not exist makes the delete safe. */
const DELETE_OWN_TABLE = [`table ${NFT_TABLE} {}`, `delete table ${NFT_TABLE}`];

function portSetRule(protocol: 'tcp' | 'udp', ports: readonly number[]): string[] {
  return ports.length === 0 ? [] : [`${protocol} dport { ${ports.join(', ')} } accept`];
}

function finalVerdict(policy: FirewallPolicy): string[] {
  switch (policy.mode) {
    case 'none':
      return [];
    case 'drop':
      return ['drop'];
    case 'reject':
      // A TCP reset fails a connect at once; an ICMP reject on IPv6 only after the SYN retry.
      return ['meta l4proto tcp reject with tcp reset', 'reject with icmpx port-unreachable'];
  }
}

/**
 * The whole start transaction: the old table (a crashed run's leftovers) goes
 * and the new one comes in one atomic `nft -f -`, so there is never a moment
 * with no policy and never two tables.
 */
export function nftStartScript(policy: FirewallPolicy): string {
  const publicPorts = (protocol: 'tcp' | 'udp'): number[] =>
    policy.publicPorts.filter((entry) => entry.protocol === protocol).map((entry) => entry.port);
  const rules = [
    'iif lo accept',
    'ct state established,related accept',
    'ct state invalid drop',
    `icmp type { ${ESSENTIAL_ICMP.map((icmp) => icmp.name).join(', ')} } accept`,
    `icmpv6 type { ${ESSENTIAL_ICMPV6.map((icmp) => icmp.name).join(', ')} } accept`,
    ...(policy.emergencySshPort === null ? [] : [`tcp dport ${policy.emergencySshPort} accept`]),
    ...portSetRule('tcp', publicPorts('tcp')),
    ...portSetRule('udp', publicPorts('udp')),
    `ip saddr . meta l4proto . th dport @${GRANT_SETS[4]} accept`,
    `ip6 saddr . meta l4proto . th dport @${GRANT_SETS[6]} accept`,
    ...finalVerdict(policy),
  ];
  return [
    ...DELETE_OWN_TABLE,
    `table ${NFT_TABLE} {`,
    // Kernel-side timeouts close every grant on time even if the daemon is killed.
    `  set ${GRANT_SETS[4]} { type ipv4_addr . inet_proto . inet_service; flags timeout; }`,
    `  set ${GRANT_SETS[6]} { type ipv6_addr . inet_proto . inet_service; flags timeout; }`,
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    ...rules.map((rule) => `    ${rule}`),
    '  }',
    '}',
    '',
  ].join('\n');
}

export function nftStopScript(): string {
  return [...DELETE_OWN_TABLE, ''].join('\n');
}

/**
 * One transaction's commands for a batch of validated grants. `add element`
 * leaves an existing element's timeout alone (nft 1.0.6), so every element is
 * added (so that it exists), deleted and added again with its full timeout:
 * a grant already open is extended, never duplicated, on every kernel.
 */
export function nftGrantCommands(grants: readonly Grant[]): string[] {
  const commands: string[] = [];
  for (const family of [4, 6] as const) {
    const members = grants.filter((grant) => addressFamily(grant.address) === family);
    if (members.length === 0) continue;
    const elements = members.map((grant) => `${grant.address} . ${grant.protocol} . ${grant.port}`);
    const withTimeouts = members.map((grant, index) => `${elements[index]} timeout ${grant.seconds}s`);
    const set = `${NFT_TABLE} ${GRANT_SETS[family]}`;
    commands.push(
      `add element ${set} { ${withTimeouts.join(', ')} }`,
      `delete element ${set} { ${elements.join(', ')} }`,
      `add element ${set} { ${withTimeouts.join(', ')} }`,
    );
  }
  return commands;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

/** nft's duration text ("1h2m3s456ms", "984ms") in milliseconds. */
export function parseNftDuration(text: string): number {
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)(ms|d|h|m|s)/g)) total += Number(amount) * (DURATION_UNITS_MS[unit!] ?? 0);
  return total;
}

const SET_ELEMENT = /([0-9a-fA-F.:]+) \. (tcp|udp) \. (\d+)(?: timeout [0-9dhms]+)? expires ([0-9dhms]+)/g;

/** The open grants in `nft list table inet sknock` output. */
export function parseNftGrants(listing: string): ActiveGrant[] {
  const grants: ActiveGrant[] = [];
  for (const [, address, protocol, port, expires] of listing.matchAll(SET_ELEMENT)) {
    const canonical = canonicalAddress(address!);
    const expiresInMs = parseNftDuration(expires!);
    if (canonical === undefined || expiresInMs <= 0) continue;
    grants.push({ address: canonical, protocol: protocol as 'tcp' | 'udp', port: Number(port), expiresInMs });
  }
  return grants;
}

export interface NftablesOptions {
  readonly runner?: CommandRunner;
  /** Small batches through a long-running `nft -i` (default); false spawns `nft -f -` for every batch. */
  readonly interactive?: boolean;
  /**
   * Grants through a netfilter netlink socket of this process (nft-netlink.ts)
   * when the native addon is there, `nft` otherwise. Only for a backend that
   * runs in the network namespace it manages (the root helper): the socket
   * ignores the runner. Default false; a function opens the writer instead
   * of NetlinkGrantWriter.open (tests).
   */
  readonly netlink?: boolean | (() => GrantWriter | { readonly unavailable: string });
  /** Told when grants cannot use netlink and go through `nft` (default: nowhere). */
  readonly warn?: (message: string) => void;
}

/** The default backend: one inet table, grants in kernel-expiring sets. */
export class NftablesBackend implements FirewallBackend {
  private readonly runner: CommandRunner;
  private readonly interactive: boolean;
  private readonly queue = new OperationQueue((grants) => this.applyGrants(grants));
  private session: NftSession | null = null;
  /** Wanted (options.netlink) until it proves unavailable. */
  private netlinkWanted: boolean;
  private readonly openWriter: () => GrantWriter | { readonly unavailable: string };
  private netlink: GrantWriter | null = null;
  private readonly warn: (message: string) => void;

  constructor(options: NftablesOptions = {}) {
    this.runner = options.runner ?? localRunner;
    this.interactive = options.interactive ?? true;
    this.netlinkWanted = options.netlink !== undefined && options.netlink !== false;
    this.openWriter = typeof options.netlink === 'function' ? options.netlink : () => NetlinkGrantWriter.open({ table: TABLE_NAME, sets: GRANT_SETS });
    this.warn = options.warn ?? (() => undefined);
  }

  async start(policy: FirewallPolicy): Promise<void> {
    const checked = requirePolicy(policy);
    await this.queue.run(async () => {
      this.closeSession();
      await runOrThrow(this.runner, 'nft', ['-f', '-'], nftStartScript(checked));
      if (this.netlinkWanted && !this.netlink) this.openNetlink();
      if (this.netlink || !this.interactive) return;
      this.session = new NftSession(this.runner);
      // Pay nft's start-up (≈ 50 ms) now rather than on the first knock.
      await this.session.execute('');
    });
  }

  async grant(grants: readonly Grant[]): Promise<void> {
    const checked = requireGrants(grants);
    if (checked.length > 0) await this.queue.grant(checked);
  }

  list(): Promise<ActiveGrant[]> {
    return this.queue.run(async () => parseNftGrants(await runOrThrow(this.runner, 'nft', ['list', 'table', TABLE_FAMILY, TABLE_NAME])));
  }

  stop(): Promise<void> {
    return this.queue.run(async () => {
      this.closeSession();
      this.netlink?.close();
      this.netlink = null;
      await runOrThrow(this.runner, 'nft', ['-f', '-'], nftStopScript());
    });
  }

  private async applyGrants(grants: readonly Grant[]): Promise<void> {
    if (this.netlink && grants.length <= NETLINK_BATCH_LIMIT) {
      try {
        this.netlink.write(grants);
        return;
      } catch (error) {
        if (!(error instanceof NetlinkTransportError)) throw error;
        this.netlink = null;
        this.netlinkWanted = false;
        this.warn(`grants over netlink failed (${error.message}); they go through nft from now on`);
      }
    }
    const commands = nftGrantCommands(grants);
    if (this.interactive && grants.length <= SESSION_BATCH_LIMIT) {
      this.session ??= new NftSession(this.runner);
      if ((await this.session.execute(commands.join('; '))) === 'done') return;
    }
    await runOrThrow(this.runner, 'nft', ['-f', '-'], `${commands.join('\n')}\n`);
  }

  private openNetlink(): void {
    const opened = this.openWriter();
    if (!('unavailable' in opened)) {
      this.netlink = opened;
      return;
    }
    this.netlinkWanted = false;
    this.warn(`grants go through nft, not netlink: ${opened.unavailable}`);
  }

  private closeSession(): void {
    this.session?.close();
    this.session = null;
  }
}
