/**
 * The daemon's CRL status record, for `sknock-server crl-status`: which CRL
 * is in force and how the last refresh attempt went. The daemon opens the
 * file while still root (next to the replay journal, whose folder the
 * unprivileged user cannot write) and rewrites it in place through that
 * descriptor; one newline ends the record, so a reader can tell a whole
 * record from one caught mid-write.
 */
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerConfig } from './config.js';
import { describeCrl, type CrlFileState } from './crl-file.js';
import type { RefreshAttempt } from './crl-refresh.js';
import { crlFreshness, type VerifiedCrl } from './trust/index.js';

export type CrlPolicyState = 'fresh' | 'stale' | 'not-yet-valid' | 'missing';

export interface CrlStatusRecord {
  readonly pid: number;
  readonly writtenAt: string;
  /** The CRL the daemon judges knocks with (describeCrl), or null. */
  readonly crl: Readonly<Record<string, string | number>> | null;
  readonly policy: ServerConfig['crl']['policy'];
  readonly policyState: CrlPolicyState;
  readonly lastAttempt: RefreshAttempt | null;
}

/** Beside the replay journal: the daemon's state folder. */
export function crlStatusFileFor(config: ServerConfig): string {
  return path.join(path.dirname(config.runtime.replayCacheFile), 'crl-status.json');
}

export interface CrlStatusWriter {
  write(record: CrlStatusRecord): void;
  close(): void;
}

/** Opens (creates) the status file; call while root, before the privilege drop. */
export function openCrlStatusWriter(file: string): CrlStatusWriter {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const descriptor = openSync(file, 'w', 0o644);
  return {
    write(record) {
      const text = `${JSON.stringify(record)}\n`;
      writeSync(descriptor, text, 0);
      ftruncateSync(descriptor, Buffer.byteLength(text));
    },
    close: () => closeSync(descriptor),
  };
}

export type CrlStatusRead = { readonly ok: true; readonly record: CrlStatusRecord } | { readonly ok: false; readonly detail: string };

/** Reads the record, retrying briefly when it was caught mid-write. */
export async function readCrlStatus(file: string, attempts = 5): Promise<CrlStatusRead> {
  let detail = 'unreadable';
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      return { ok: false, detail: `no status at ${file} (${(error as NodeJS.ErrnoException).code ?? error}): is the daemon running?` };
    }
    const end = text.indexOf('\n');
    try {
      if (end >= 0) return { ok: true, record: JSON.parse(text.slice(0, end)) as CrlStatusRecord };
      detail = `${file} holds no complete record`;
    } catch (error) {
      detail = `${file}: ${(error as Error).message}`;
    }
    await sleep(20);
  }
  return { ok: false, detail };
}

export function crlPolicyState(crl: VerifiedCrl | null, nowMs: number): CrlPolicyState {
  return crl === null ? 'missing' : crlFreshness(crl, nowMs);
}

function describeAttempt(attempt: RefreshAttempt): string {
  const head = `${attempt.finishedAt} (${attempt.trigger}): ${attempt.result}`;
  const source = attempt.source === undefined ? '' : ` from ${attempt.source}`;
  const failures = attempt.failures.map((failure) => `\n  ${failure.source}: ${failure.reason}: ${failure.detail}`).join('');
  return `${head}${source}${attempt.written === false ? ' (not written to crlFile)' : ''}${failures}`;
}

/** The text `sknock-server crl-status` prints: the file's CRL, the daemon's CRL in force, the last refresh attempt. */
export function formatCrlStatus(config: ServerConfig, fileState: CrlFileState | null, status: CrlStatusRead): string {
  const lines: string[] = [`policy: crlPolicy = ${config.crl.policy}`, `urls: ${config.crl.urls.join(' ') || 'none (the file is re-read)'}`];
  if (fileState === null) lines.push('file: none configured (crlFile)');
  else if (fileState.kind !== 'loaded') lines.push(`file: ${config.crl.file}: ${fileState.kind}: ${fileState.detail}`);
  else {
    lines.push(`file: ${config.crl.file}`);
    for (const [key, value] of Object.entries({ ...describeCrl(fileState.crl), freshness: fileState.freshness })) lines.push(`  ${key}: ${value}`);
  }
  if (!status.ok) {
    lines.push(`daemon: ${status.detail}`);
    return lines.join('\n');
  }
  const { record } = status;
  lines.push(`daemon: pid ${record.pid}, status written ${record.writtenAt}`);
  if (record.crl === null) lines.push('  in force: no CRL');
  else {
    lines.push('  in force:');
    for (const [key, value] of Object.entries(record.crl)) lines.push(`    ${key}: ${value}`);
  }
  lines.push(`  state: ${record.policyState}`);
  lines.push(`  last refresh: ${record.lastAttempt === null ? 'none yet' : describeAttempt(record.lastAttempt)}`);
  return lines.join('\n');
}
