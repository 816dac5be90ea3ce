import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { SknockError } from '../../client-lib/errors.js';
import type { HelperReply, HelperRequest } from './helper-protocol.js';
import type { ActiveGrant, Grant } from './types.js';

type WithoutId<Request> = Request extends unknown ? Omit<Request, 'id'> : never;
type RequestBody = WithoutId<HelperRequest>;
type HelperProcess = ChildProcessByStdio<Writable, Readable, null>;

const CLOSE_GRACE_MS = 5_000;

interface Pending {
  readonly resolve: (reply: HelperReply) => void;
  readonly reject: (error: SknockError) => void;
}

/**
 * The daemon's side of the privileged helper: every call is one request to
 * the root child. Spawn it while still root (its argv fixes the backend and
 * the policy), then drop privileges; the pipe stays usable. `start` installs
 * that policy once; `stop` is the last request of the session.
 */
export class FirewallHelperClient {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private failure: SknockError | null = null;

  private constructor(private readonly child: HelperProcess) {
    child.on('error', (error) => this.fail(`could not be started: ${error.message}`));
    child.on('exit', (code, signal) => this.fail(`exited (${signal ?? `code ${code}`})`));
    child.stdin.on('error', () => undefined); // the exit event tells why
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => this.onReply(line));
  }

  /** Starts the helper, e.g. [process.execPath, '.../privileged-helper.js', ...formatHelperArguments({ backend, policy })]. */
  static spawn(argv: readonly [string, ...string[]]): FirewallHelperClient {
    const [program, ...args] = argv;
    // stderr inherited: the helper's warnings land in the daemon's log stream.
    return new FirewallHelperClient(spawn(program, args, { stdio: ['pipe', 'pipe', 'inherit'] }));
  }

  /** The helper's process id (undefined if it could not be started). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Installs the policy the helper was started with; the helper serves this once. */
  async start(): Promise<void> {
    await this.request({ op: 'start' });
  }

  async grant(grants: readonly Grant[]): Promise<void> {
    await this.request({ op: 'grant', grants });
  }

  async list(): Promise<ActiveGrant[]> {
    const reply = await this.request({ op: 'list' });
    return reply.ok && reply.result ? reply.result : [];
  }

  /** Removes the policy and ends the session: the helper runs a stop only when nothing follows it. */
  async stop(): Promise<void> {
    const replied = this.request({ op: 'stop' });
    this.child.stdin.end();
    await replied;
  }

  /** Ends the helper (it leaves the firewall as it is) and waits for it to exit, killing it after 5 s. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    const killer = setTimeout(() => this.child.kill(), CLOSE_GRACE_MS);
    await exited;
    clearTimeout(killer);
  }

  private request(body: RequestBody): Promise<HelperReply> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.child.stdin.writableEnded) {
      return Promise.reject(new SknockError('SKNOCK_FIREWALL_HELPER_DEAD', 'the firewall helper session has ended (stop or close was called)'));
    }
    const id = this.nextId++;
    const replied = new Promise<HelperReply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.child.stdin.write(`${JSON.stringify({ id, ...body })}\n`);
    return replied.then((reply) => {
      if (reply.ok) return reply;
      throw new SknockError(reply.error.code, `firewall helper: ${reply.error.message}`);
    });
  }

  private onReply(line: string): void {
    let reply: HelperReply;
    try {
      reply = JSON.parse(line) as HelperReply;
    } catch {
      this.fail('broke the protocol (a reply that is not JSON)');
      this.child.kill();
      return;
    }
    const waiting = reply.id === null ? undefined : this.pending.get(reply.id);
    if (!waiting) return;
    this.pending.delete(reply.id!);
    waiting.resolve(reply);
  }

  private fail(why: string): void {
    this.failure ??= new SknockError(
      'SKNOCK_FIREWALL_HELPER_DEAD',
      `the firewall helper ${why}: grants can no longer be opened; restart sknock-server`,
    );
    for (const waiting of this.pending.values()) waiting.reject(this.failure);
    this.pending.clear();
  }
}
