import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { PortRequest, TransportProtocol } from '../../client-lib/protocol/ports.js';

/** What happens to traffic nobody was granted: `none` leaves it alone. */
export type FirewallMode = 'none' | 'reject' | 'drop';

export interface FirewallPolicy {
  readonly mode: FirewallMode;
  /** Always open over TCP so a broken knock setup cannot lock the operator out (the original's rule); null = off. */
  readonly emergencySshPort: number | null;
  /** Open to everyone (a web server on the same host, for instance). */
  readonly publicPorts: readonly PortRequest[];
}

/** One source address allowed to reach one port for a while. */
export interface Grant {
  /** Canonical IPv4 or IPv6 text (no zone index). */
  readonly address: string;
  readonly protocol: TransportProtocol;
  readonly port: number;
  /** 1–86400. A grant already open is extended to now + seconds. */
  readonly seconds: number;
}

export interface ActiveGrant {
  readonly address: string;
  readonly protocol: TransportProtocol;
  readonly port: number;
  readonly expiresInMs: number;
}

/** All the daemon knows about a firewall. */
export interface FirewallBackend {
  /** Installs the policy; leftovers of a crashed run are replaced, never duplicated. */
  start(policy: FirewallPolicy): Promise<void>;
  /** Opens a batch of grants; one already open is extended, never duplicated. */
  grant(grants: readonly Grant[]): Promise<void>;
  list(): Promise<ActiveGrant[]>;
  /** Removes the project's own objects only, never anyone else's. */
  stop(): Promise<void>;
}

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * How backends run programs: argument arrays, never a shell. Production runs
 * them directly; tests prefix `ip netns exec <ns>` so nothing reaches the
 * root namespace.
 */
export interface CommandRunner {
  /** Resolves with the exit code (non-zero too); rejects only when the program cannot run. */
  run(command: string, args: readonly string[], stdin?: string): Promise<CommandResult>;
  /** Starts a long-running program with piped stdio (the `nft -i` session). */
  spawn(command: string, args: readonly string[]): ChildProcessWithoutNullStreams;
}

/** Timers as a parameter, so expiry can be tested without waiting. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** How the daemon chooses a backend (config key firewallBackend and friends). */
export type BackendOptions =
  | { readonly kind: 'nftables' }
  /** ipset: 'auto' uses ipset sets when the `ipset` tool works, else one rule per grant. */
  | { readonly kind: 'iptables'; readonly ipset: 'auto' | 'yes' | 'no' }
  | { readonly kind: 'command'; readonly openCommand: readonly string[]; readonly closeCommand: readonly string[] };

export type FirewallErrorCode =
  | 'SKNOCK_FIREWALL_INVALID_GRANT'
  | 'SKNOCK_FIREWALL_INVALID_POLICY'
  | 'SKNOCK_FIREWALL_INVALID_OPTIONS'
  | 'SKNOCK_FIREWALL_BAD_TEMPLATE'
  | 'SKNOCK_FIREWALL_COMMAND_FAILED'
  | 'SKNOCK_FIREWALL_HELPER_DEAD'
  | 'SKNOCK_FIREWALL_HELPER_REFUSED';
