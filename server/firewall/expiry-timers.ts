import { grantKey } from './validation.js';
import type { OperationQueue } from './operation-queue.js';
import type { ActiveGrant, Clock, Grant } from './types.js';

export const systemClock: Clock = {
  now: () => Date.now(),
  // Unreferenced: an open grant must not keep a finished process alive.
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Where a close that failed in the background is reported when the caller gives nothing better. */
export function warnOnStderr(error: unknown): void {
  process.emitWarning(error instanceof Error ? error : new Error(String(error)));
}

export interface ExpiryTimersOptions {
  readonly clock: Clock;
  /** Closes run in the backend's operation order, after any extension queued before them. */
  readonly queue: OperationQueue;
  readonly close: (grant: Grant) => Promise<void>;
  readonly reportError: (error: unknown) => void;
}

interface OpenGrant {
  readonly grant: Grant;
  readonly expiresAt: number;
  readonly timer: unknown;
  /** Which set() made this entry: the timer of an entry extended since must not close it. */
  readonly generation: number;
}

/**
 * Userland expiry for backends whose firewall cannot expire entries itself
 * (iptables rules without ipset, command hooks). These grants stay open if
 * the process is killed, until the next start() replaces the ruleset.
 */
export class ExpiryTimers {
  private readonly open = new Map<string, OpenGrant>();
  private generations = 0;

  constructor(private readonly options: ExpiryTimersOptions) {}

  isOpen(grant: Grant): boolean {
    return this.open.has(grantKey(grant));
  }

  /** Records a grant as open until now + seconds, replacing (extending) an earlier one. */
  set(grant: Grant): void {
    const { clock } = this.options;
    const key = grantKey(grant);
    const previous = this.open.get(key);
    if (previous) clock.clearTimeout(previous.timer);
    const delayMs = grant.seconds * 1000;
    const generation = ++this.generations;
    const timer = clock.setTimeout(() => this.due(key, generation), delayMs);
    this.open.set(key, { grant, expiresAt: clock.now() + delayMs, timer, generation });
  }

  /** Forgets every grant (stop) and returns them so the caller can close them. */
  takeAll(): Grant[] {
    const grants = [...this.open.values()].map((entry) => {
      this.options.clock.clearTimeout(entry.timer);
      return entry.grant;
    });
    this.open.clear();
    return grants;
  }

  list(): ActiveGrant[] {
    const now = this.options.clock.now();
    return [...this.open.values()].map(({ grant, expiresAt }) => ({
      address: grant.address,
      protocol: grant.protocol,
      port: grant.port,
      expiresInMs: Math.max(0, expiresAt - now),
    }));
  }

  private due(key: string, generation: number): void {
    const { queue, close, reportError } = this.options;
    queue
      .run(async () => {
        const entry = this.open.get(key);
        if (!entry || entry.generation !== generation) return;
        this.open.delete(key);
        await close(entry.grant);
      })
      .catch(reportError);
  }
}
