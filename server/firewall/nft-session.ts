import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { SknockError } from '../../client-lib/errors.js';
import type { CommandRunner } from './types.js';

/** Prints one known line and touches no kernel state: marks the end of the line before it. */
const MARKER_COMMAND = 'describe tcp dport';
const MARKER_OUTPUT = /^payload expression[^\n]*\n/m;
const SESSION_TIMEOUT_MS = 5_000;

export type SessionOutcome = 'done' | 'session-lost';

/**
 * A long-running `nft -i`: one line is one transaction (commands separated by
 * `;` commit together or not at all). Measured here: ≈ 0.6–0.8 ms per small
 * transaction against ≈ 5 ms (add) or ≈ 17 ms (add+delete) for a spawned
 * `nft -f -`, whose exit waits on the kernel. nft reports errors on stderr
 * before it reads the next line, so what stderr holds once the marker's
 * output arrives belongs to this line. Callers run one line at a time.
 */
export class NftSession {
  private child: ChildProcessWithoutNullStreams | null = null;
  private stdout = '';
  private stderr = '';
  private settle: ((outcome: SessionOutcome | SknockError) => void) | null = null;

  constructor(
    private readonly runner: CommandRunner,
    private readonly timeoutMs = SESSION_TIMEOUT_MS,
  ) {}

  /** Runs one transaction; 'session-lost' means nft died or hung and the caller should retry another way. */
  execute(line: string): Promise<SessionOutcome> {
    if (line.includes('\n')) throw new Error('an nft session line must be one line');
    if (this.settle) throw new Error('NftSession runs one line at a time');
    const child = this.child ?? this.launch();
    this.stdout = '';
    this.stderr = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.forget(child), this.timeoutMs);
      const settle = (outcome: SessionOutcome | SknockError): void => {
        if (this.settle !== settle) return; // already settled
        clearTimeout(timer);
        this.settle = null;
        if (outcome instanceof SknockError) reject(outcome);
        else resolve(outcome);
      };
      this.settle = settle;
      child.stdin.write(`${line}\n${MARKER_COMMAND}\n`);
    });
  }

  close(): void {
    this.child?.stdin.end();
    this.child = null;
  }

  private launch(): ChildProcessWithoutNullStreams {
    const child = this.runner.spawn('nft', ['-i']);
    this.child = child;
    const lost = (): void => this.forget(child);
    child.stdin.on('error', lost);
    child.on('error', lost);
    child.on('exit', lost);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    return child;
  }

  private onStdout(chunk: string): void {
    this.stdout += chunk;
    const marker = MARKER_OUTPUT.exec(this.stdout);
    const settle = this.settle;
    if (!marker || !settle) return;
    this.stdout = this.stdout.slice(marker.index + marker[0].length);
    // Let stderr that was written before the marker be read in this same poll round.
    setImmediate(() => {
      const errors = this.stderr.trim();
      this.stderr = '';
      if (!errors) {
        settle('done');
        return;
      }
      const detail = errors.split('\n').slice(0, 3).join(' | ');
      settle(new SknockError('SKNOCK_FIREWALL_COMMAND_FAILED', `nft transaction failed: ${detail}`));
    });
  }

  /** Forgets a dead or hung nft (killing it if it still runs) and releases a waiting caller. */
  private forget(child: ChildProcessWithoutNullStreams): void {
    if (child !== this.child) return; // an earlier session, closed on purpose
    this.child = null;
    child.kill();
    this.settle?.('session-lost');
  }
}
