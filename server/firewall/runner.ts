import { spawn } from 'node:child_process';
import { SknockError } from '../../client-lib/errors.js';
import type { CommandResult, CommandRunner } from './types.js';

/** A firewall command that hangs (xtables lock held, say) must not stall every grant behind it. */
const COMMAND_TIMEOUT_MS = 30_000;

function runDirectly(command: string, args: readonly string[], stdin?: string): Promise<CommandResult> {
  return new Promise((resolve, rejectRun) => {
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout: COMMAND_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // The program may exit without reading its input; its exit code tells the story.
    child.stdin.on('error', () => undefined);
    child.on('error', (error) => {
      rejectRun(new SknockError('SKNOCK_FIREWALL_COMMAND_FAILED', `cannot run ${command}: ${error.message}`, { cause: error }));
    });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

/** Runs programs on this host, in the caller's network namespace. */
export const localRunner: CommandRunner = {
  run: runDirectly,
  spawn: (command, args) => spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'] }),
};

/** Runs every program behind a fixed prefix, e.g. `ip netns exec <namespace>`. */
export function prefixedRunner(prefix: readonly [string, ...string[]], base: CommandRunner = localRunner): CommandRunner {
  const [program, ...prefixArgs] = prefix;
  return {
    run: (command, args, stdin) => base.run(program, [...prefixArgs, command, ...args], stdin),
    spawn: (command, args) => base.spawn(program, [...prefixArgs, command, ...args]),
  };
}

/** Runs a command that must succeed; a failure is an operator error naming the command. */
export async function runOrThrow(runner: CommandRunner, command: string, args: readonly string[], stdin?: string): Promise<string> {
  const result = await runner.run(command, args, stdin);
  if (result.code !== 0) {
    const detail = result.stderr.trim().split('\n').slice(0, 6).join(' | ');
    throw new SknockError('SKNOCK_FIREWALL_COMMAND_FAILED', `${command} ${args.join(' ')} failed (exit ${result.code}): ${detail}`);
  }
  return result.stdout;
}
