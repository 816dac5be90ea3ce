import { SknockError } from '../../client-lib/errors.js';
import { ExpiryTimers, systemClock, warnOnStderr } from './expiry-timers.js';
import { OperationQueue } from './operation-queue.js';
import { localRunner, runOrThrow } from './runner.js';
import { requireGrants, requirePolicy } from './validation.js';
import type { ActiveGrant, Clock, CommandRunner, FirewallBackend, FirewallPolicy, Grant } from './types.js';

const PLACEHOLDER = /\{([^{}]*)\}/g;
const PLACEHOLDER_NAMES = ['address', 'protocol', 'port', 'seconds'] as const;
type PlaceholderName = (typeof PLACEHOLDER_NAMES)[number];

/** The config loader and the root helper refuse a hook without {address} in these words. */
export const ADDRESS_PLACEHOLDER_REQUIRED = 'must contain {address}: the command has to know whom to open for';

/**
 * Splits a config value such as `/usr/local/bin/ufw-open {address} {protocol} {port}`
 * into argv words (at whitespace; there is no quoting because there is no shell)
 * and checks it: a known placeholder in any word but the first, so the program
 * itself never comes from a packet, and {address} somewhere.
 */
export function parseCommandTemplate(text: string, key = 'command'): string[] {
  const words = text.trim().split(/\s+/).filter((word) => word !== '');
  checkCommandTemplate(words, key);
  return words;
}

export function checkCommandTemplate(words: unknown, key = 'command'): asserts words is readonly string[] {
  const fail = (why: string): never => {
    throw new SknockError('SKNOCK_FIREWALL_BAD_TEMPLATE', `${key}: ${why}`);
  };
  if (!Array.isArray(words) || words.length === 0 || words.some((word) => typeof word !== 'string' || word === '')) {
    fail('expected a program and its arguments');
  }
  const checked = words as readonly string[];
  if (checked[0]!.includes('{')) fail('the program (first word) must not contain a placeholder');
  for (const word of checked) {
    for (const [, name] of word.matchAll(PLACEHOLDER)) {
      if (!PLACEHOLDER_NAMES.includes(name as PlaceholderName)) {
        fail(`unknown placeholder {${name}}: use ${PLACEHOLDER_NAMES.map((known) => `{${known}}`).join(' ')}`);
      }
    }
  }
  // Checked again here, as root: a hook that cannot tell whom it opens for would open for everyone.
  if (!checked.some((word) => word.includes('{address}'))) fail(ADDRESS_PLACEHOLDER_REQUIRED);
}

/** The argv for one grant: each placeholder replaced inside its word; words never split or join. */
export function expandCommand(words: readonly string[], grant: Grant): string[] {
  const values: Record<PlaceholderName, string> = {
    address: grant.address,
    protocol: grant.protocol,
    port: String(grant.port),
    seconds: String(grant.seconds),
  };
  return words.map((word) => word.replace(PLACEHOLDER, (_match, name: PlaceholderName) => values[name]));
}

export interface CommandHooksOptions {
  readonly openCommand: readonly string[];
  readonly closeCommand: readonly string[];
  readonly runner?: CommandRunner;
  readonly clock?: Clock;
  /** A timer's close command that failed. */
  readonly reportError?: (error: unknown) => void;
}

/**
 * knockd/fwknop-style hooks: the operator's own commands open and close each
 * grant. Expiry is a timer in this process (extension resets it), so a killed
 * daemon leaves its grants open: the close command never runs for them.
 */
export class CommandHooksBackend implements FirewallBackend {
  private readonly openCommand: readonly string[];
  private readonly closeCommand: readonly string[];
  private readonly runner: CommandRunner;
  private readonly queue = new OperationQueue((grants) => this.openGrants(grants));
  private readonly timers: ExpiryTimers;

  constructor(options: CommandHooksOptions) {
    checkCommandTemplate(options.openCommand, 'openCommand');
    checkCommandTemplate(options.closeCommand, 'closeCommand');
    this.openCommand = [...options.openCommand];
    this.closeCommand = [...options.closeCommand];
    this.runner = options.runner ?? localRunner;
    this.timers = new ExpiryTimers({
      clock: options.clock ?? systemClock,
      queue: this.queue,
      close: (grant) => this.runHook(this.closeCommand, grant),
      reportError: options.reportError ?? warnOnStderr,
    });
  }

  /** The hooks own no ruleset: the policy is only checked. */
  async start(policy: FirewallPolicy): Promise<void> {
    requirePolicy(policy);
  }

  async grant(grants: readonly Grant[]): Promise<void> {
    const checked = requireGrants(grants);
    if (checked.length > 0) await this.queue.grant(checked);
  }

  list(): Promise<ActiveGrant[]> {
    return this.queue.run(async () => this.timers.list());
  }

  /** Closes every open grant now. */
  stop(): Promise<void> {
    return this.queue.run(() => this.runEach(this.closeCommand, this.timers.takeAll()));
  }

  private async openGrants(grants: readonly Grant[]): Promise<void> {
    const opening: Grant[] = [];
    for (const grant of grants) {
      if (this.timers.isOpen(grant)) this.timers.set(grant); // extension: only a later close
      else opening.push(grant);
    }
    await this.runEach(this.openCommand, opening, (grant) => this.timers.set(grant));
  }

  /** Runs the hook for every grant even when some fail, then reports the failures together. */
  private async runEach(words: readonly string[], grants: readonly Grant[], onSuccess?: (grant: Grant) => void): Promise<void> {
    const failures: unknown[] = [];
    for (const grant of grants) {
      try {
        await this.runHook(words, grant);
        onSuccess?.(grant);
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) {
      const first = failures[0] instanceof Error ? failures[0].message : String(failures[0]);
      throw new SknockError('SKNOCK_FIREWALL_COMMAND_FAILED', `${failures.length} of ${grants.length} hook commands failed; first: ${first}`, {
        cause: failures[0],
      });
    }
  }

  private async runHook(words: readonly string[], grant: Grant): Promise<void> {
    const [program, ...args] = expandCommand(words, grant);
    await runOrThrow(this.runner, program!, args);
  }
}
