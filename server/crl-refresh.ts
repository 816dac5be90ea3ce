/**
 * Keeps the CRL in force current: downloads it from the configured URLs (in
 * order; conditional GET, a deadline, a size limit), or re-reads crlFile when
 * no URL is set; accepts a CRL only if the CA signed it and it is not older
 * than the one in force; writes it to crlFile atomically; hands it to the
 * daemon, which swaps in a new trust state. Any failure keeps the CRL in
 * force and is logged as one warning. node-cron runs the schedule.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, chownSync, closeSync, constants, existsSync, fchownSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { schedule as scheduleCron, type ScheduledTask } from 'node-cron';
import type { CrlRefreshSchedule, ServerConfig } from './config.js';
import { describeCrl } from './crl-file.js';
import { crlPolicyState, type CrlPolicyState } from './crl-status.js';
import type { Logger } from './log.js';
import type { UnprivilegedUser } from './privileges.js';
import { parseCrl, type CrlReason, type VerifiedCrl } from './trust/index.js';

export interface DownloadLimits {
  /** For the whole exchange, redirects and body included: a trickling server cannot hold a refresh forever. */
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly maxRedirects: number;
}

/** 16 MiB holds a CRL of some 400,000 entries. */
export const DEFAULT_DOWNLOAD_LIMITS: DownloadLimits = { timeoutMs: 15_000, maxBytes: 16 << 20, maxRedirects: 3 };

/** What a server said about the version we hold, for If-None-Match / If-Modified-Since. */
export interface HttpValidators {
  readonly etag?: string;
  readonly lastModified?: string;
}

export type DownloadFailureReason = 'unreachable' | 'timeout' | 'http-status' | 'too-large' | 'bad-redirect';

export type Download =
  | { readonly kind: 'body'; readonly bytes: Buffer; readonly validators: HttpValidators }
  | { readonly kind: 'not-modified' }
  | { readonly kind: 'failed'; readonly reason: DownloadFailureReason; readonly detail: string };

export type RefreshFailureReason = DownloadFailureReason | CrlReason | 'crl-older' | 'file-unreadable';

export type RefreshTrigger = 'start' | 'schedule' | 'sighup';

/** One refresh, as logged and as crl-status shows it. */
export interface RefreshAttempt {
  readonly trigger: RefreshTrigger;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** updated: a newer CRL is in force; not-modified: HTTP 304; unchanged: the same CRL again; failed: every source failed. */
  readonly result: 'updated' | 'not-modified' | 'unchanged' | 'failed';
  /** The URL (or file) that gave the result; absent when all failed. */
  readonly source?: string;
  /** For updates from a URL: whether crlFile now holds it. */
  readonly written?: boolean;
  /** Sources that failed, in the order tried. */
  readonly failures: readonly { readonly source: string; readonly reason: RefreshFailureReason; readonly detail: string }[];
}

// ---------------------------------------------------------------------------
// Download: never throws; every failure is a reason.

type Hop =
  | { readonly kind: 'response'; readonly status: number; readonly headers: http.IncomingHttpHeaders; readonly bytes: Buffer | null }
  | { readonly kind: 'failed'; readonly reason: DownloadFailureReason; readonly detail: string };

function failedHop(error: unknown, signal: AbortSignal): Hop {
  if (signal.aborted) return { kind: 'failed', reason: 'timeout', detail: 'no complete answer within the deadline' };
  const code = (error as NodeJS.ErrnoException).code;
  return { kind: 'failed', reason: 'unreachable', detail: code ?? (error instanceof Error ? error.message : String(error)) };
}

/** One GET; the body is read only for 200, and at most maxBytes of it. */
function get(url: URL, headers: Record<string, string>, signal: AbortSignal, maxBytes: number): Promise<Hop> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (hop: Hop): void => {
      if (settled) return;
      settled = true;
      resolve(hop);
    };
    const client = url.protocol === 'https:' ? https : http;
    const tooLarge = (size: string): void => {
      settle({ kind: 'failed', reason: 'too-large', detail: `answer of ${size} bytes exceeds the limit of ${maxBytes}` });
      request.destroy();
    };
    const request = client.get(url, { headers, signal }, (response) => {
      const status = response.statusCode ?? 0;
      response.on('error', (error) => settle(failedHop(error, signal)));
      if (status !== 200) {
        settle({ kind: 'response', status, headers: response.headers, bytes: null });
        response.destroy();
        return;
      }
      const declared = Number(response.headers['content-length']);
      if (declared > maxBytes) return tooLarge(String(declared));
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) tooLarge(`more than ${maxBytes}`);
        else chunks.push(chunk);
      });
      response.on('end', () => settle({ kind: 'response', status, headers: response.headers, bytes: Buffer.concat(chunks) }));
      response.on('close', () => settle(failedHop(new Error('connection closed before the end of the answer'), signal)));
    });
    request.on('error', (error) => settle(failedHop(error, signal)));
  });
}

const redirectStatuses = new Set([301, 302, 303, 307, 308]);

/** Fetches `url`, conditionally when `validators` are given; follows a few http(s) redirects. */
export async function downloadCrl(url: string, validators: HttpValidators | undefined, limits: DownloadLimits = DEFAULT_DOWNLOAD_LIMITS): Promise<Download> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  const headers: Record<string, string> = { accept: 'application/pkix-crl, application/x-pem-file;q=0.9, */*;q=0.1' };
  if (validators?.etag !== undefined) headers['if-none-match'] = validators.etag;
  if (validators?.lastModified !== undefined) headers['if-modified-since'] = validators.lastModified;
  let target = new URL(url);
  for (let hop = 0; hop <= limits.maxRedirects; hop += 1) {
    const answer = await get(target, headers, signal, limits.maxBytes);
    if (answer.kind === 'failed') return answer;
    const { status } = answer;
    if (status === 200 && answer.bytes !== null) {
      const etag = answer.headers.etag;
      const lastModified = answer.headers['last-modified'];
      return { kind: 'body', bytes: answer.bytes, validators: { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) } };
    }
    // A 304 means "what you hold is current" only if we said what we hold.
    if (status === 304 && validators !== undefined) return { kind: 'not-modified' };
    if (!redirectStatuses.has(status)) return { kind: 'failed', reason: 'http-status', detail: `HTTP ${status} ${http.STATUS_CODES[status] ?? ''}`.trimEnd() };
    let next: URL;
    try {
      next = new URL(answer.headers.location ?? '', target);
    } catch {
      return { kind: 'failed', reason: 'bad-redirect', detail: `HTTP ${status} with an unusable Location` };
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') return { kind: 'failed', reason: 'bad-redirect', detail: `redirect to ${next.protocol} URL` };
    target = next;
  }
  return { kind: 'failed', reason: 'bad-redirect', detail: `more than ${limits.maxRedirects} redirects` };
}

// ---------------------------------------------------------------------------
// Judgement: pure.

/** Newer by CRL number when both carry one, else by thisUpdate; a thisUpdate going back is never newer. */
export function compareCrlAge(candidate: VerifiedCrl, current: VerifiedCrl): 'newer' | 'same' | 'older' {
  // A CRL of another CA (the CA was replaced on reload) has no order with the old one.
  if (!candidate.issuerPublicKey.equals(current.issuerPublicKey)) return 'newer';
  if (candidate.thisUpdateMs < current.thisUpdateMs) return 'older';
  if (candidate.crlNumber !== undefined && current.crlNumber !== undefined) {
    if (candidate.crlNumber === current.crlNumber) return 'same';
    return candidate.crlNumber > current.crlNumber ? 'newer' : 'older';
  }
  return candidate.thisUpdateMs > current.thisUpdateMs ? 'newer' : 'same';
}

export type CrlJudgement =
  | { readonly kind: 'newer'; readonly crl: VerifiedCrl }
  | { readonly kind: 'same' }
  | { readonly kind: 'rejected'; readonly reason: CrlReason | 'crl-older'; readonly detail: string };

/** Whether downloaded bytes may replace `current`: signed by a configured CA, and not older. */
export function judgeCrl(bytes: Buffer, caCertificates: readonly Buffer[], current: VerifiedCrl | null): CrlJudgement {
  const parsed = parseCrl(bytes, caCertificates);
  if (!parsed.ok) return { kind: 'rejected', reason: parsed.reason, detail: parsed.detail ?? parsed.reason };
  if (current === null) return { kind: 'newer', crl: parsed.value };
  const age = compareCrlAge(parsed.value, current);
  // Replaying an old CRL would un-revoke everyone revoked since.
  if (age === 'older') {
    return { kind: 'rejected', reason: 'crl-older', detail: `offered ${ageText(parsed.value)} is older than the CRL in force (${ageText(current)})` };
  }
  return age === 'newer' ? { kind: 'newer', crl: parsed.value } : { kind: 'same' };
}

function ageText(crl: VerifiedCrl): string {
  return `number ${crl.crlNumber ?? 'none'}, thisUpdate ${new Date(crl.thisUpdateMs).toISOString()}`;
}

/** The cron expression node-cron runs: the configured one, or a tick each minute that checks the interval. */
export function cronExpressionOf(schedule: CrlRefreshSchedule): string {
  return schedule.kind === 'cron' ? schedule.expression : '0 * * * * *';
}

/** A minute tick starts an interval refresh once the interval (less half a tick, for jitter) has passed. */
export function isRefreshDue(schedule: CrlRefreshSchedule, lastStartMs: number | null, nowMs: number): boolean {
  if (schedule.kind === 'cron' || lastStartMs === null) return true;
  return nowMs - lastStartMs >= schedule.intervalMs - 30_000;
}

// ---------------------------------------------------------------------------
// The file: prepared while root, replaced atomically afterwards.

/**
 * Called while root: lets `user` replace crlFile after the privilege drop.
 * A missing folder is created for the user; in a folder the user owns, the
 * file is handed over too. Folders owned by anyone else are left as they are.
 */
export function prepareCrlFile(crlFile: string | null, user: UnprivilegedUser): void {
  if (crlFile === null) return;
  const directory = path.dirname(crlFile);
  if (!existsSync(directory)) {
    mkdirSync(directory, { recursive: true, mode: 0o755 });
    chownSync(directory, user.uid, user.gid);
  }
  if (statSync(directory).uid !== user.uid) return;
  // The user can rename anything into its own folder: never follow a link as root
  // (a symlink to /etc/shadow would otherwise be handed to the user).
  let descriptor: number;
  try {
    descriptor = openSync(crlFile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return; // missing, or a symlink: nothing to hand over
  }
  try {
    if (fstatSync(descriptor).isFile()) fchownSync(descriptor, user.uid, user.gid);
  } finally {
    closeSync(descriptor);
  }
}

/** Whether this process can create and rename files in crlFile's folder (after the drop: as the user). */
export function canReplaceFile(file: string): boolean {
  try {
    accessSync(path.dirname(file), constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Temporary file in the same folder, fsync, rename: readers see the old CRL or the new one, never half. */
export function replaceFileAtomically(file: string, bytes: Buffer): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.partial`);
  const descriptor = openSync(temporary, 'wx', 0o644);
  try {
    writeSync(descriptor, bytes);
    fsyncSync(descriptor);
    closeSync(descriptor);
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

// ---------------------------------------------------------------------------
// The refresher: state and scheduling.

export interface CrlSources {
  readonly urls: readonly string[];
  readonly crlFile: string | null;
  readonly policy: ServerConfig['crl']['policy'];
  readonly caCertificates: readonly Buffer[];
}

export interface CrlRefresherOptions {
  readonly sources: CrlSources;
  /** The CRL read from crlFile at start, or null. */
  readonly initial: VerifiedCrl | null;
  readonly logger: Logger;
  /** Puts a newer CRL in force (the daemon builds a new trust state). */
  readonly onUpdate: (crl: VerifiedCrl) => void;
  /** After each attempt and state change: the record for crl-status. */
  readonly onStatus?: (status: { crl: VerifiedCrl | null; policyState: CrlPolicyState; lastAttempt: RefreshAttempt | null }) => void;
  readonly limits?: DownloadLimits;
  readonly now?: () => number;
}

type Failure = RefreshAttempt['failures'][number];

function describeFailures(failures: readonly Failure[]): string {
  return failures.map((failure) => `${failure.source}: ${failure.reason} (${failure.detail})`).join('; ');
}

export class CrlRefresher {
  private sources: CrlSources;
  private crl: VerifiedCrl | null;
  private readonly validators = new Map<string, HttpValidators>();
  private last: RefreshAttempt | null = null;
  private lastStartMs: number | null = null;
  private running: Promise<RefreshAttempt> | null = null;
  private task: ScheduledTask | null = null;
  private policyState: CrlPolicyState | null = null;
  private boundaryTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly limits: DownloadLimits;

  constructor(private readonly options: CrlRefresherOptions) {
    this.sources = options.sources;
    this.crl = options.initial;
    this.now = options.now ?? Date.now;
    this.limits = options.limits ?? DEFAULT_DOWNLOAD_LIMITS;
    this.checkFileWritable();
  }

  current(): VerifiedCrl | null {
    return this.crl;
  }

  lastAttempt(): RefreshAttempt | null {
    return this.last;
  }

  /**
   * New sources (configuration reload). A CRL read from the new crlFile
   * replaces the one in force only if it is not older, like a download; the
   * caller then builds its trust state from current().
   */
  reconfigure(sources: CrlSources, crlFromFile: VerifiedCrl | null): void {
    const caChanged = !sameBuffers(sources.caCertificates, this.sources.caCertificates);
    if (sources.urls.join(' ') !== this.sources.urls.join(' ') || caChanged) this.validators.clear();
    this.sources = sources;
    if (caChanged) this.crl = null;
    if (crlFromFile !== null && (this.crl === null || compareCrlAge(crlFromFile, this.crl) === 'newer')) this.crl = crlFromFile;
    this.checkFileWritable();
    this.checkPolicyState();
  }

  /** One refresh now; a refresh already under way is joined, not doubled. */
  refresh(trigger: RefreshTrigger): Promise<RefreshAttempt> {
    this.running ??= this.attempt(trigger).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Runs refreshes on the schedule until stop(); call after the start refresh. */
  start(schedule: CrlRefreshSchedule): void {
    this.task?.destroy();
    const logger = this.options.logger;
    const cronLogger = {
      info: (message: string) => logger.debug('crl-schedule', { message }),
      warn: (message: string) => logger.debug('crl-schedule', { message }),
      error: (message: string | Error) => logger.debug('crl-schedule', { message: String(message) }),
      debug: (message: string | Error) => logger.debug('crl-schedule', { message: String(message) }),
    };
    this.task = scheduleCron(
      cronExpressionOf(schedule),
      async () => {
        if (isRefreshDue(schedule, this.lastStartMs, this.now())) await this.refresh('schedule');
      },
      { name: 'crl-refresh', noOverlap: true, logger: cronLogger },
    );
    this.checkPolicyState();
  }

  /** Stops the schedule and the state timer; a refresh under way finishes on its own. */
  stop(): void {
    void this.task?.destroy();
    this.task = null;
    if (this.boundaryTimer !== null) clearTimeout(this.boundaryTimer);
    this.boundaryTimer = null;
  }

  private async attempt(trigger: RefreshTrigger): Promise<RefreshAttempt> {
    const startMs = this.now();
    this.lastStartMs = startMs;
    const failures: Failure[] = [];
    const finish = (result: RefreshAttempt['result'], source?: string, written?: boolean): RefreshAttempt => ({
      trigger,
      startedAt: new Date(startMs).toISOString(),
      finishedAt: new Date(this.now()).toISOString(),
      result,
      ...(source === undefined ? {} : { source }),
      ...(written === undefined ? {} : { written }),
      failures,
    });
    const { urls, crlFile } = this.sources;
    // Nothing to refresh from: the configuration already warned that revocation is not checked.
    if (urls.length === 0 && crlFile === null) return this.record(finish('unchanged'));
    let outcome: RefreshAttempt | null = null;
    if (urls.length === 0 && crlFile !== null) outcome = this.rereadFile(crlFile, failures, finish);
    for (const url of urls) {
      if (outcome !== null) break;
      outcome = await this.tryUrl(url, failures, finish);
    }
    return this.record(outcome ?? finish('failed'));
  }

  private rereadFile(crlFile: string, failures: Failure[], finish: (result: RefreshAttempt['result'], source?: string) => RefreshAttempt): RefreshAttempt | null {
    let bytes: Buffer;
    try {
      bytes = readFileSync(crlFile);
    } catch (error) {
      failures.push({ source: crlFile, reason: 'file-unreadable', detail: (error as NodeJS.ErrnoException).code ?? String(error) });
      return null;
    }
    const judged = judgeCrl(bytes, this.sources.caCertificates, this.crl);
    if (judged.kind === 'rejected') {
      failures.push({ source: crlFile, reason: judged.reason, detail: judged.detail });
      return null;
    }
    if (judged.kind === 'same') return finish('unchanged', crlFile);
    this.putInForce(judged.crl);
    return finish('updated', crlFile);
  }

  private async tryUrl(
    url: string,
    failures: Failure[],
    finish: (result: RefreshAttempt['result'], source?: string, written?: boolean) => RefreshAttempt,
  ): Promise<RefreshAttempt | null> {
    // Conditional only while the CRL in force is the one this URL gave us.
    const download = await downloadCrl(url, this.crl === null ? undefined : this.validators.get(url), this.limits);
    if (download.kind === 'failed') {
      failures.push({ source: url, reason: download.reason, detail: download.detail });
      return null;
    }
    if (download.kind === 'not-modified') return finish('not-modified', url);
    const judged = judgeCrl(download.bytes, this.sources.caCertificates, this.crl);
    if (judged.kind === 'rejected') {
      failures.push({ source: url, reason: judged.reason, detail: judged.detail });
      return null;
    }
    this.validators.set(url, download.validators);
    if (judged.kind === 'same') return finish('unchanged', url);
    this.putInForce(judged.crl);
    return finish('updated', url, this.writeFile(download.bytes));
  }

  /** Writes the accepted bytes to crlFile; the CRL is in force either way. */
  private writeFile(bytes: Buffer): boolean {
    const { crlFile } = this.sources;
    if (crlFile === null) return false;
    try {
      replaceFileAtomically(crlFile, bytes);
      return true;
    } catch (error) {
      this.options.logger.warn('crl-write-failed', {
        file: crlFile,
        error: (error as NodeJS.ErrnoException).code ?? String(error),
        consequence: 'the new CRL is in force, but a restart would fall back to the older file',
      });
      return false;
    }
  }

  private putInForce(crl: VerifiedCrl): void {
    this.crl = crl;
    this.options.onUpdate(crl);
  }

  private record(attempt: RefreshAttempt): RefreshAttempt {
    this.last = attempt;
    const { logger } = this.options;
    const inForce = this.crl === null ? { crl: 'none' } : describeCrl(this.crl);
    const skipped = attempt.failures.length > 0 ? { skipped: describeFailures(attempt.failures) } : {};
    if (attempt.result === 'failed') {
      const reason = attempt.failures[0]?.reason;
      logger.warn('crl-refresh-failed', { trigger: attempt.trigger, reason, detail: describeFailures(attempt.failures), consequence: 'the CRL in force stays', ...inForce });
    } else if (attempt.result === 'updated') {
      logger.info('crl-updated', { trigger: attempt.trigger, source: attempt.source, written: attempt.written, ...inForce, ...skipped });
    } else {
      logger.debug('crl-unchanged', { trigger: attempt.trigger, source: attempt.source, result: attempt.result, ...skipped });
    }
    this.checkPolicyState();
    return attempt;
  }

  /** Logs the CRL state once per change, and re-checks at the next thisUpdate/nextUpdate. */
  private checkPolicyState(): void {
    const nowMs = this.now();
    const state = crlPolicyState(this.crl, nowMs);
    if (state !== this.policyState) {
      this.policyState = state;
      this.logPolicyState(state);
    }
    this.options.onStatus?.({ crl: this.crl, policyState: state, lastAttempt: this.last });
    if (this.boundaryTimer !== null) clearTimeout(this.boundaryTimer);
    this.boundaryTimer = null;
    const boundary = [this.crl?.thisUpdateMs, this.crl?.nextUpdateMs].find((time) => time !== undefined && time >= nowMs);
    if (boundary !== undefined && this.task !== null) {
      // setTimeout holds at most 2^31-1 ms; a later boundary is simply re-checked then.
      this.boundaryTimer = setTimeout(() => this.checkPolicyState(), Math.min(boundary - nowMs + 1_000, 2 ** 31 - 1));
      this.boundaryTimer.unref();
    }
  }

  private logPolicyState(state: CrlPolicyState): void {
    const { logger } = this.options;
    const fields = { state, crlPolicy: this.sources.policy, ...(this.crl === null ? {} : describeCrl(this.crl)) };
    if (state === 'fresh') logger.info('crl-state', { ...fields, consequence: 'revocation is checked' });
    else if (this.sources.policy === 'require') {
      logger.error('crl-state', { ...fields, consequence: 'EVERY KNOCK IS REFUSED until a current CRL arrives (crlPolicy = require)' });
    } else logger.warn('crl-state', { ...fields, consequence: 'KNOCKS ARE ACCEPTED WITHOUT REVOCATION CHECKS until a current CRL arrives (crlPolicy = warn)' });
  }

  private checkFileWritable(): void {
    const { crlFile, urls } = this.sources;
    if (crlFile !== null && urls.length > 0 && !canReplaceFile(crlFile)) {
      this.options.logger.warn('crl-file-not-writable', {
        file: crlFile,
        detail: `this process cannot create files in ${path.dirname(crlFile)}`,
        consequence: 'downloaded CRLs are used but not saved: a restart falls back to the older file (see docs/OPERATIONS.md, CRL distribution)',
      });
    }
  }
}

function sameBuffers(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  return a.length === b.length && a.every((item, index) => item.equals(b[index]!));
}
