/** Runs sknock-ca in-process with a fixed clock, in throw-away directories. */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { main } from '../../certificates/ca/cli.js';
import { repoRoot } from '../helpers/fixtures.js';

export const testPassword = 'test-password';
/** Tests never depend on today's date. */
export const testNow = new Date('2026-01-01T00:00:00Z');
/** Fewer than the default iterations: the tests write many bundles, and the count is only a cost. */
export const testIterations = 2048;

export interface CaRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly now?: Date;
  readonly environment?: NodeJS.ProcessEnv;
  readonly randomBytes?: (size: number) => Buffer;
  readonly untilStopped?: () => Promise<void>;
}

export async function runCa(args: readonly string[], options: RunOptions = {}): Promise<CaRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    environment: options.environment ?? { SKNOCK_PFX_PASSWORD: testPassword },
    now: () => options.now ?? testNow,
    randomBytes: options.randomBytes ?? randomBytes,
    pkcs12Iterations: testIterations,
    untilStopped: options.untilStopped ?? (() => Promise.resolve()),
  });
  return { code, stdout, stderr };
}

/** Runs a command that must succeed, and shows its stderr when it does not. */
export async function runCaOk(args: readonly string[], options: RunOptions = {}): Promise<CaRun> {
  const result = await runCa(args, options);
  if (result.code !== 0) throw new Error(`sknock-ca ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result;
}

/** A temporary directory per test; the returned function removes them all. */
export function temporaryDirectories(): { make: () => Promise<string>; removeAll: () => Promise<void> } {
  const made: string[] = [];
  return {
    make: async () => {
      const directory = await mkdtemp(path.join(tmpdir(), 'sknock-ca-test-'));
      made.push(directory);
      return directory;
    },
    removeAll: async () => {
      await Promise.all(made.splice(0).map((directory) => rm(directory, { recursive: true, force: true })));
    },
  };
}

/** A CA with a server "gate" and clients "alice" (tcp/22,udp/53) and "mallory" (tcp/22), in `directory`/ca. */
export async function makeSampleCa(directory: string, options: RunOptions = {}): Promise<string> {
  const dir = path.join(directory, 'ca');
  await runCaOk(['init', '--dir', dir, '--cn', 'Test CA'], options);
  await runCaOk(['server', '--dir', dir, '--name', 'gate'], options);
  await runCaOk(['client', '--dir', dir, '--name', 'alice', '--allow', 'tcp/22,udp/53'], options);
  await runCaOk(['client', '--dir', dir, '--name', 'mallory', '--allow', 'tcp/22'], options);
  return dir;
}

/**
 * Compiles the project with `npx tsc` into a private folder under dist/ (so
 * that a parallel build of dist/ never hands a test a half-written file) and
 * returns the path of sknock-ca.js there. Other parts of the tree may be
 * mid-edit: tsc still emits, and the caller checks the file it needs.
 */
export async function compileProgram(): Promise<{ program: string; remove: () => Promise<void> }> {
  await mkdir(path.join(repoRoot, 'dist'), { recursive: true });
  const outDir = await mkdtemp(path.join(repoRoot, 'dist', '.ca-test-build-'));
  await promisify(execFile)('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json', '--outDir', outDir], { cwd: repoRoot }).catch(
    () => undefined,
  );
  return {
    program: path.join(outDir, 'certificates', 'ca', 'sknock-ca.js'),
    remove: () => rm(outDir, { recursive: true, force: true }),
  };
}
