import { CommandHooksBackend } from './command-hooks.js';
import { IptablesBackend } from './iptables.js';
import { NftablesBackend } from './nftables.js';
import { localRunner } from './runner.js';
import type { BackendOptions, CommandRunner, FirewallBackend } from './types.js';

export type {
  ActiveGrant,
  BackendOptions,
  Clock,
  CommandResult,
  CommandRunner,
  FirewallBackend,
  FirewallErrorCode,
  FirewallMode,
  FirewallPolicy,
  Grant,
} from './types.js';
export { CommandHooksBackend, parseCommandTemplate } from './command-hooks.js';
export { FirewallHelperClient } from './helper-client.js';
export { formatHelperArguments, parseBackendOptions } from './helper-protocol.js';
export { IptablesBackend } from './iptables.js';
export { NftablesBackend } from './nftables.js';
export { localRunner, prefixedRunner } from './runner.js';
export { MAX_GRANT_SECONDS } from './validation.js';

/**
 * The backend the configuration names, running its commands through
 * `runner`. With the local runner this process is in the namespace it
 * manages, so nftables grants may go over its own netlink socket.
 */
export function createFirewallBackend(options: BackendOptions, runner: CommandRunner = localRunner, warn?: (message: string) => void): FirewallBackend {
  switch (options.kind) {
    case 'nftables':
      return new NftablesBackend({ runner, netlink: runner === localRunner, ...(warn ? { warn } : {}) });
    case 'iptables':
      return new IptablesBackend({ runner, ipset: options.ipset });
    case 'command':
      return new CommandHooksBackend({ runner, openCommand: options.openCommand, closeCommand: options.closeCommand });
  }
}
