/**
 * Keeps the CRLs in force current, one per issuing CA: downloads from every
 * configured URL (in order; conditional GET, a deadline, a size limit), or
 * re-reads crlFile when no URL is set; a CRL verified against a configured
 * CA replaces only its own issuer's CRL, and only if it is not older (or is
 * added for an issuer without one); writes the set to crlFile atomically;
 * hands it to the daemon, which swaps in a new trust state. Any failure
 * keeps the CRLs in force and is logged as one warning. node-cron runs the
 * schedule.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, chownSync, closeSync, constants, existsSync, fchownSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { schedule as scheduleCron, type ScheduledTask } from 'node-cron';
import type { CrlRefreshSchedule, ServerConfig } from './config.js';
import { crlFileBytes, describeCrl, readCrlFile } from './crl-file.js';
import { crlPolicyState, issuerCrlStates, type CrlPolicyState, type IssuerCrlState } from './crl-status.js';
import type { Logger } from './log.js';
import type { UnprivilegedUser } from './privileges.js';
import {
  compareCrlAge,
  crlOfIssuer,
  crlsIssuedBy,
  parseAnchors,
  parseCrlBundle,
  withCrl,
  type CrlReason,
  type ParsedCertificate,
  type VerifiedCrl,
} from './trust/index.js';

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
  /**
   * updated: a newer CRL (of any CA) is in force; unchanged: the same CRLs
   * again; not-modified: HTTP 304; failed: every source failed.
   */
  readonly result: 'updated' | 'not-modified' | 'unchanged' | 'failed';
  /** The first URL (or the file) that gave the result; absent when all failed. */
  readonly source?: string;
  /** For updates: the CAs whose CRL changed. */
  readonly updatedIssuers?: readonly string[];
  /** For updates from a URL: whether crlFile now holds them. */
  readonly written?: boolean;
  /** Sources that failed (or offered an older CRL), in the order tried. */
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

export type CrlJudgement =
  | { readonly kind: 'newer'; readonly crl: VerifiedCrl }
  | { readonly kind: 'same' }
  | { readonly kind: 'rejected'; readonly reason: 'crl-older'; readonly detail: string };

/**
 * Whether a verified CRL may go in force beside `inForce`: compared only with
 * the CRL of its own issuer (a CA without one gets it as new), never with
 * another CA's.
 */
export function judgeCrl(candidate: VerifiedCrl, inForce: readonly VerifiedCrl[]): CrlJudgement {
  const current = crlOfIssuer(inForce, candidate);
  if (current === undefined) return { kind: 'newer', crl: candidate };
  const age = compareCrlAge(candidate, current);
  // Replaying an old CRL would un-revoke everyone revoked since.
  if (age === 'older') {
    return {
      kind: 'rejected',
      reason: 'crl-older',
      detail: `offered CRL of ${candidate.issuer} (${ageText(candidate)}) is older than the CRL in force (${ageText(current)})`,
    };
  }
  return age === 'newer' ? { kind: 'newer', crl: candidate } : { kind: 'same' };
}

function ageText(crl: VerifiedCrl): string {
  return `number ${crl.crlNumber ?? 'none'}, thisUpdate ${new Date(crl.thisUpdateMs).toISOString()}`;
}

/** The CRLs in force, for a log line: one CRL's fields as they are, several summed up per CA. */
export function describeCrlSet(crls: readonly VerifiedCrl[]): Record<string, string | number> {
  if (crls.length === 0) return { crl: 'none' };
  if (crls.length === 1) return describeCrl(crls[0]!);
  const summary = crls.map((crl) => {
    const { issuer, crlNumber, nextUpdate, revoked } = describeCrl(crl);
    return `${issuer}: number ${crlNumber}, nextUpdate ${nextUpdate}, revoked ${revoked}`;
  });
  return { crls: crls.length, inForce: summary.join('; ') };
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

/** What the refresher holds and reports after each attempt and state change (for crl-status). */
export interface CrlRefreshStatus {
  readonly crls: readonly VerifiedCrl[];
  readonly issuers: readonly IssuerCrlState[];
  readonly policyState: CrlPolicyState;
  readonly lastAttempt: RefreshAttempt | null;
}

export interface CrlRefresherOptions {
  readonly sources: CrlSources;
  /** The CRLs read from crlFile at start (at most one per issuer). */
  readonly initial: readonly VerifiedCrl[];
  readonly logger: Logger;
  /** Puts the CRLs in force after a change (the daemon builds a new trust state); `changed` are the new ones. */
  readonly onUpdate: (crls: readonly VerifiedCrl[], changed: readonly VerifiedCrl[]) => void;
  /** After each attempt and state change: the record for crl-status. */
  readonly onStatus?: (status: CrlRefreshStatus) => void;
  readonly limits?: DownloadLimits;
  readonly now?: () => number;
}

type Failure = RefreshAttempt['failures'][number];

/** What one source gave: CRLs put in force, the same CRLs again, a 304, or nothing usable. */
type SourceOutcome = { readonly kind: 'updated'; readonly changed: readonly VerifiedCrl[] } | { readonly kind: 'unchanged' | 'not-modified' | 'failed' };

function describeFailures(failures: readonly Failure[]): string {
  return failures.map((failure) => `${failure.source}: ${failure.reason} (${failure.detail})`).join('; ');
}

/** The attempt's result: updated over unchanged over not-modified; failed only when every source failed. */
const resultRank: readonly RefreshAttempt['result'][] = ['updated', 'unchanged', 'not-modified'];

export class CrlRefresher {
  private sources: CrlSources;
  private authorities: readonly ParsedCertificate[];
  private crls: readonly VerifiedCrl[];
  private readonly validators = new Map<string, HttpValidators>();
  private last: RefreshAttempt | null = null;
  private lastStartMs: number | null = null;
  private running: Promise<RefreshAttempt> | null = null;
  private task: ScheduledTask | null = null;
  /** The per-CA states last logged, to log each change once. */
  private loggedStates: string | null = null;
  private boundaryTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly limits: DownloadLimits;

  constructor(private readonly options: CrlRefresherOptions) {
    this.sources = options.sources;
    this.authorities = parseAnchors(options.sources.caCertificates);
    this.crls = options.initial;
    this.now = options.now ?? Date.now;
    this.limits = options.limits ?? DEFAULT_DOWNLOAD_LIMITS;
    this.checkFileWritable();
  }

  /** The CRLs in force, at most one per issuing CA. */
  current(): readonly VerifiedCrl[] {
    return this.crls;
  }

  lastAttempt(): RefreshAttempt | null {
    return this.last;
  }

  /**
   * New sources (configuration reload). CRLs of CAs no longer configured
   * leave; a CRL read from the new crlFile replaces its issuer's only if it is
   * not older, like a download. The caller then builds its trust state from
   * current(). Throws SknockError for bad CA certificates, changing nothing.
   */
  reconfigure(sources: CrlSources, crlsFromFile: readonly VerifiedCrl[]): void {
    const caChanged = !sameBuffers(sources.caCertificates, this.sources.caCertificates);
    const authorities = caChanged ? parseAnchors(sources.caCertificates) : this.authorities;
    if (sources.urls.join(' ') !== this.sources.urls.join(' ') || caChanged) this.validators.clear();
    this.sources = sources;
    this.authorities = authorities;
    this.crls = crlsIssuedBy(this.crls, authorities);
    for (const crl of crlsFromFile) if (judgeCrl(crl, this.crls).kind === 'newer') this.crls = withCrl(this.crls, crl);
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
    const finish = (result: RefreshAttempt['result'], details: Omit<RefreshAttempt, 'trigger' | 'startedAt' | 'finishedAt' | 'result' | 'failures'> = {}): RefreshAttempt => ({
      trigger,
      startedAt: new Date(startMs).toISOString(),
      finishedAt: new Date(this.now()).toISOString(),
      result,
      ...details,
      failures,
    });
    const { urls, crlFile } = this.sources;
    // Nothing to refresh from: the configuration already warned that revocation is not checked.
    if (urls.length === 0 && crlFile === null) return this.record(finish('unchanged'));
    // Every URL, not the first that answers: each CA publishes its own CRL, and none stands in for another's.
    const outcomes: { source: string; outcome: SourceOutcome }[] = [];
    if (urls.length === 0 && crlFile !== null) outcomes.push({ source: crlFile, outcome: this.rereadFile(crlFile, failures) });
    for (const url of urls) outcomes.push({ source: url, outcome: await this.tryUrl(url, failures) });
    // A CRL that a later URL superseded in this round was never in force on its own.
    const changed = outcomes.flatMap(({ outcome }) => (outcome.kind === 'updated' ? outcome.changed : [])).filter((crl) => this.crls.includes(crl));
    const result = resultRank.find((rank) => outcomes.some(({ outcome }) => outcome.kind === rank)) ?? 'failed';
    const source = outcomes.find(({ outcome }) => outcome.kind === result)?.source;
    if (result !== 'updated') return this.record(finish(result, source === undefined ? {} : { source }));
    this.options.onUpdate(this.crls, changed);
    const updatedIssuers = changed.map((crl) => crl.issuer);
    // A re-read crlFile is the source itself: nothing to write back.
    if (urls.length === 0) return this.record(finish('updated', { source: source!, updatedIssuers }), changed);
    return this.record(finish('updated', { source: source!, updatedIssuers, written: this.writeFile() }), changed);
  }

  private rereadFile(crlFile: string, failures: Failure[]): SourceOutcome {
    const state = readCrlFile(crlFile, this.sources.caCertificates);
    if (state.kind === 'missing') {
      failures.push({ source: crlFile, reason: 'file-unreadable', detail: state.detail });
      return { kind: 'failed' };
    }
    if (state.kind === 'invalid') {
      failures.push({ source: crlFile, reason: state.reason, detail: state.detail });
      return { kind: 'failed' };
    }
    return this.adopt(crlFile, state.crls, failures);
  }

  private async tryUrl(url: string, failures: Failure[]): Promise<SourceOutcome> {
    // Conditional only while CRLs are in force (none after the CAs changed).
    const download = await downloadCrl(url, this.crls.length === 0 ? undefined : this.validators.get(url), this.limits);
    if (download.kind === 'failed') {
      failures.push({ source: url, reason: download.reason, detail: download.detail });
      return { kind: 'failed' };
    }
    if (download.kind === 'not-modified') return { kind: 'not-modified' };
    // The body may come from anyone: at most one CRL per configured CA is parsed and verified.
    const bundle = parseCrlBundle(download.bytes, this.sources.caCertificates, { capBlocksAtCas: true });
    if (!bundle.ok) {
      failures.push({ source: url, reason: bundle.reason, detail: bundle.detail ?? bundle.reason });
      return { kind: 'failed' };
    }
    const { crls, ignored } = bundle.value;
    if (crls.length === 0) {
      failures.push({ source: url, reason: 'crl-untrusted-issuer', detail: `no CRL of a configured CA: ${ignored.join('; ')}` });
      return { kind: 'failed' };
    }
    for (const note of ignored) this.options.logger.warn('crl-ignored', { source: url, detail: note, consequence: 'a CRL of a CA that is not configured speaks for no client' });
    const outcome = this.adopt(url, crls, failures);
    if (outcome.kind !== 'failed') this.validators.set(url, download.validators);
    return outcome;
  }

  /** Puts each verified CRL in force for its issuer when it is not older than that issuer's. */
  private adopt(source: string, offered: readonly VerifiedCrl[], failures: Failure[]): SourceOutcome {
    const changed: VerifiedCrl[] = [];
    let accepted = 0;
    for (const crl of offered) {
      const judged = judgeCrl(crl, this.crls);
      if (judged.kind === 'rejected') {
        failures.push({ source, reason: judged.reason, detail: judged.detail });
        continue;
      }
      accepted += 1;
      if (judged.kind === 'newer') {
        this.crls = withCrl(this.crls, judged.crl);
        changed.push(judged.crl);
      }
    }
    if (changed.length > 0) return { kind: 'updated', changed };
    return { kind: accepted > 0 ? 'unchanged' : 'failed' };
  }

  /** Writes the CRLs in force to crlFile; they are in force either way. */
  private writeFile(): boolean {
    const { crlFile } = this.sources;
    if (crlFile === null) return false;
    try {
      replaceFileAtomically(crlFile, crlFileBytes(this.crls));
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

  private record(attempt: RefreshAttempt, changed: readonly VerifiedCrl[] = []): RefreshAttempt {
    this.last = attempt;
    const { logger } = this.options;
    const skipped = attempt.failures.length > 0 ? { skipped: describeFailures(attempt.failures) } : {};
    if (attempt.result === 'failed') {
      const reason = attempt.failures[0]?.reason;
      logger.warn('crl-refresh-failed', {
        trigger: attempt.trigger,
        reason,
        detail: describeFailures(attempt.failures),
        consequence: 'the CRL in force stays',
        ...describeCrlSet(this.crls),
      });
    } else if (attempt.result === 'updated') {
      // One line per CA whose CRL changed, with that CRL's fields.
      for (const crl of changed) {
        logger.info('crl-updated', { trigger: attempt.trigger, source: attempt.source, written: attempt.written, ...describeCrl(crl), ...skipped });
      }
    } else {
      logger.debug('crl-unchanged', { trigger: attempt.trigger, source: attempt.source, result: attempt.result, ...skipped });
    }
    this.checkPolicyState();
    return attempt;
  }

  /** Logs the CRL state once per change of any CA's, and re-checks at the next thisUpdate/nextUpdate. */
  private checkPolicyState(): void {
    const nowMs = this.now();
    const issuers = issuerCrlStates(this.authorities, this.crls, nowMs);
    const policyState = crlPolicyState(issuers);
    const states = issuers.map(({ issuer, state }) => `${issuer}: ${state}`).join('; ');
    if (states !== this.loggedStates) {
      this.loggedStates = states;
      this.logPolicyState(policyState, issuers);
    }
    this.options.onStatus?.({ crls: this.crls, issuers, policyState, lastAttempt: this.last });
    if (this.boundaryTimer !== null) clearTimeout(this.boundaryTimer);
    this.boundaryTimer = null;
    const boundaries = this.crls.flatMap((crl) => [crl.thisUpdateMs, crl.nextUpdateMs]).filter((time): time is number => time !== undefined && time >= nowMs);
    if (boundaries.length > 0 && this.task !== null) {
      // setTimeout holds at most 2^31-1 ms; a later boundary is simply re-checked then.
      this.boundaryTimer = setTimeout(() => this.checkPolicyState(), Math.min(Math.min(...boundaries) - nowMs + 1_000, 2 ** 31 - 1));
      this.boundaryTimer.unref();
    }
  }

  private logPolicyState(state: CrlPolicyState, issuers: readonly IssuerCrlState[]): void {
    const { logger } = this.options;
    const perCa = issuers.length > 1 ? { issuers: issuers.map(({ issuer, state: issuerState }) => `${issuer}: ${issuerState}`).join('; ') } : {};
    const fields = { state, crlPolicy: this.sources.policy, ...(this.crls.length === 0 ? {} : describeCrlSet(this.crls)), ...perCa };
    const uncovered = issuers.filter((issuer) => issuer.state !== 'fresh');
    // With several CAs, only the clients of those without a current CRL are affected.
    const whose = uncovered.length === issuers.length ? 'EVERY KNOCK' : `KNOCKS OF CLIENTS OF ${uncovered.map((issuer) => issuer.issuer).join('; ')}`;
    if (state === 'fresh') logger.info('crl-state', { ...fields, consequence: 'revocation is checked' });
    else if (this.sources.policy === 'require') {
      logger.error('crl-state', { ...fields, consequence: `${whose} ${uncovered.length === issuers.length ? 'IS' : 'ARE'} REFUSED until a current CRL arrives (crlPolicy = require)` });
    } else {
      const accepted = uncovered.length === issuers.length ? 'KNOCKS ARE' : `${whose} ARE`;
      logger.warn('crl-state', { ...fields, consequence: `${accepted} ACCEPTED WITHOUT REVOCATION CHECKS until a current CRL arrives (crlPolicy = warn)` });
    }
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
