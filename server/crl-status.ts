/**
 * The daemon's CRL status record, for `sknock-server crl-status`: which CRLs
 * are in force (one per issuing CA), each CA's CRL state, and how the last
 * refresh attempt went. The daemon opens the
 * file while still root (next to the replay journal, whose folder the
 * unprivileged user cannot write) and rewrites it in place through that
 * descriptor; one newline ends the record, so a reader can tell a whole
 * record from one caught mid-write.
 */
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerConfig } from './config.js';
import { describeCrl, describeCrlAt, type CrlFileState } from './crl-file.js';
import type { CrlRefreshStatus, RefreshAttempt } from './crl-refresh.js';
import { crlCovering, crlFreshness, type ParsedCertificate, type VerifiedCrl } from './trust/index.js';

export type CrlPolicyState = 'fresh' | 'stale' | 'not-yet-valid' | 'missing';

/** One configured CA: the CRL in force for the certificates it signed, and that CRL's state. */
export interface IssuerCrlState {
  readonly issuer: string;
  readonly state: CrlPolicyState;
  readonly crl: VerifiedCrl | undefined;
}

type CrlDescription = Readonly<Record<string, string | number>>;

export interface CrlStatusRecord {
  readonly pid: number;
  readonly writtenAt: string;
  /** The CRL the daemon judges knocks with (describeCrl), or null; with several, the one that goes stale first. */
  readonly crl: CrlDescription | null;
  /** Each configured CA with its CRL in force (absent in records of older versions). */
  readonly issuers?: readonly { readonly issuer: string; readonly state: CrlPolicyState; readonly crl: CrlDescription | null }[];
  readonly policy: ServerConfig['crl']['policy'];
  /** The worst state of any CA's CRL: what limits the knocks. */
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

/** Each CA and the CRL in force for it ('missing': none, so its clients are not covered). */
export function issuerCrlStates(authorities: readonly ParsedCertificate[], crls: readonly VerifiedCrl[], nowMs: number): IssuerCrlState[] {
  return authorities.map((authority) => {
    const crl = crlCovering(crls, authority);
    return { issuer: authority.subject, state: crl === undefined ? 'missing' : crlFreshness(crl, nowMs), crl };
  });
}

const severity: Record<CrlPolicyState, number> = { fresh: 0, 'not-yet-valid': 1, stale: 2, missing: 3 };

/** The state that limits knocks: the worst of any CA's ('missing' without any). */
export function crlPolicyState(issuers: readonly IssuerCrlState[]): CrlPolicyState {
  return issuers.reduce<CrlPolicyState>((worst, { state }) => (severity[state] > severity[worst] ? state : worst), issuers.length === 0 ? 'missing' : 'fresh');
}

/** The CRL to watch: the only one, or the one whose nextUpdate comes first (none counts as passed). */
function firstToGoStale(crls: readonly VerifiedCrl[]): VerifiedCrl | undefined {
  return [...crls].sort((a, b) => (a.nextUpdateMs ?? -Infinity) - (b.nextUpdateMs ?? -Infinity))[0];
}

/** The status record of the refresher's state. */
export function crlStatusRecord(
  state: CrlRefreshStatus,
  policy: ServerConfig['crl']['policy'],
  pid: number,
  writtenAt: Date,
): CrlStatusRecord {
  const watched = firstToGoStale(state.crls);
  return {
    pid,
    writtenAt: writtenAt.toISOString(),
    crl: watched === undefined ? null : describeCrl(watched),
    issuers: state.issuers.map(({ issuer, state: issuerState, crl }) => ({ issuer, state: issuerState, crl: crl === undefined ? null : describeCrl(crl) })),
    policy,
    policyState: state.policyState,
    lastAttempt: state.lastAttempt,
  };
}

function describeAttempt(attempt: RefreshAttempt): string {
  const head = `${attempt.finishedAt} (${attempt.trigger}): ${attempt.result}`;
  const source = attempt.source === undefined ? '' : ` from ${attempt.source}`;
  const failures = attempt.failures.map((failure) => `\n  ${failure.source}: ${failure.reason}: ${failure.detail}`).join('');
  return `${head}${source}${attempt.written === false ? ' (not written to crlFile)' : ''}${failures}`;
}

function describeFields(description: CrlDescription): string {
  return Object.entries(description)
    .filter(([key]) => key !== 'issuer')
    .map(([key, value]) => `${key} ${value}`)
    .join(', ');
}

/** The text `sknock-server crl-status` prints: the file's CRLs, the daemon's CRLs in force per CA, the last refresh attempt. */
export function formatCrlStatus(config: ServerConfig, fileState: CrlFileState | null, status: CrlStatusRead, nowMs: number): string {
  const lines: string[] = [`policy: crlPolicy = ${config.crl.policy}`, `urls: ${config.crl.urls.join(' ') || 'none (the file is re-read)'}`];
  if (fileState === null) lines.push('file: none configured (crlFile)');
  else if (fileState.kind !== 'loaded') lines.push(`file: ${config.crl.file}: ${fileState.kind}: ${fileState.detail}`);
  else {
    lines.push(`file: ${config.crl.file}${fileState.crls.length > 1 ? ` (${fileState.crls.length} CRLs, one per CA)` : ''}`);
    for (const crl of fileState.crls) for (const [key, value] of Object.entries(describeCrlAt(crl, nowMs))) lines.push(`  ${key}: ${value}`);
    for (const ignored of fileState.ignored) lines.push(`  ignored: ${ignored}`);
  }
  if (!status.ok) {
    lines.push(`daemon: ${status.detail}`);
    return lines.join('\n');
  }
  const { record } = status;
  lines.push(`daemon: pid ${record.pid}, status written ${record.writtenAt}`);
  const issuers = record.issuers ?? [];
  if (issuers.length > 1) {
    lines.push(`  in force, per CA (${issuers.filter((issuer) => issuer.crl !== null).length} CRLs for ${issuers.length} CAs):`);
    for (const { issuer, state, crl } of issuers) lines.push(`    ${issuer}: ${state}${crl === null ? ' (no CRL)' : `, ${describeFields(crl)}`}`);
  } else if (record.crl === null) lines.push('  in force: no CRL');
  else {
    lines.push('  in force:');
    for (const [key, value] of Object.entries(record.crl)) lines.push(`    ${key}: ${value}`);
  }
  lines.push(`  state: ${record.policyState}`);
  lines.push(`  last refresh: ${record.lastAttempt === null ? 'none yet' : describeAttempt(record.lastAttempt)}`);
  return lines.join('\n');
}
