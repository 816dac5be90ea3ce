import { closeSync, constants, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { SknockError } from '../client-lib/errors.js';

/** One remembered knock: its replay key (base64), when it may be forgotten, and whose it is. */
export type ReplayRecord = readonly [id: string, expiresAtMs: number, owner?: string];

export interface ReplayCacheOptions {
  /** Where accepted knocks are persisted; none for an in-memory (advisory) cache. */
  readonly journal?: ReplayJournal;
  /** Live entries one client (certificate fingerprint) may hold; unlimited when absent. */
  readonly entriesPerClient?: number;
  /** The journal is rewritten only once it holds at least this many dead records (and twice as many as live ones). */
  readonly minDeadRecordsToCompact?: number;
  /** A failed rewrite of the journal: the old file stays in use and complete, so this is only reported. */
  readonly onCompactionError?: (error: unknown) => void;
  /** Runs a compaction after the current turn, so the knock that triggered it is not kept waiting; setImmediate by default. */
  readonly scheduleCompaction?: (task: () => void) => void;
}

/** What an authoritative acceptance tells the cache besides the key: whose knock, and the time. */
export interface ReplayAcceptance {
  readonly owner: string;
  readonly nowMs: number;
}

export const DEFAULT_MIN_DEAD_RECORDS_TO_COMPACT = 4_096;

interface ReplayEntry {
  readonly expiresAtMs: number;
  readonly owner: string | undefined;
}

/**
 * Identities of accepted knocks, kept until their timestamp leaves the
 * acceptance window (after that the timestamp check refuses them anyway).
 * Bounded: when full, new knocks are refused rather than old entries
 * forgotten, because forgetting would reopen a replay window. A per-client
 * quota keeps one certificate from filling it for everyone.
 */
export class ReplayCache {
  private readonly entriesById = new Map<string, ReplayEntry>();
  /** Expiry times of each owner's entries; expired ones are dropped lazily. */
  private readonly expiriesByOwner = new Map<string, number[]>();
  private readonly journal: ReplayJournal | undefined;
  readonly entriesPerClient: number;
  private readonly minDeadRecordsToCompact: number;
  private readonly onCompactionError: (error: unknown) => void;
  private readonly scheduleCompaction: (task: () => void) => void;
  /** Journal length at which dead records are next counted: counting costs a prune, so it is amortized. */
  private nextCompactionCheck = 0;
  /** One scheduled compaction at most: appends while it waits must not queue more. */
  private compactionPending = false;

  constructor(
    readonly capacity: number,
    options: ReplayCacheOptions = {},
  ) {
    this.journal = options.journal;
    this.entriesPerClient = options.entriesPerClient ?? Infinity;
    this.minDeadRecordsToCompact = options.minDeadRecordsToCompact ?? DEFAULT_MIN_DEAD_RECORDS_TO_COMPACT;
    this.onCompactionError = options.onCompactionError ?? ((error) => process.stderr.write(`sknock: replay journal compaction failed: ${String(error)}\n`));
    this.scheduleCompaction = options.scheduleCompaction ?? ((task) => void setImmediate(task));
  }

  get size(): number {
    return this.entriesById.size;
  }

  has(key: Buffer, nowMs: number): boolean {
    const entry = this.entriesById.get(key.toString('base64'));
    return entry !== undefined && entry.expiresAtMs > nowMs;
  }

  isFull(nowMs: number): boolean {
    if (this.entriesById.size < this.capacity) return false;
    this.prune(nowMs);
    return this.entriesById.size >= this.capacity;
  }

  /** Whether `owner` already holds its whole quota of live entries. */
  isOverQuota(owner: string, nowMs: number): boolean {
    const expiries = this.expiriesByOwner.get(owner);
    if (expiries === undefined || expiries.length < this.entriesPerClient) return false;
    const live = expiries.filter((expiry) => expiry > nowMs);
    if (live.length === 0) this.expiriesByOwner.delete(owner);
    else this.expiriesByOwner.set(owner, live);
    return live.length >= this.entriesPerClient;
  }

  /**
   * Records an accepted knock, persisted before the caller opens anything.
   * `accepted` (the authoritative path) names its owner for the quota and
   * lets the journal be compacted, after this turn, once it is mostly dead records.
   */
  add(key: Buffer, expiresAtMs: number, accepted?: ReplayAcceptance): void {
    const id = key.toString('base64');
    this.remember(id, expiresAtMs, accepted?.owner);
    if (this.journal === undefined) return;
    this.journal.append([id, expiresAtMs, accepted?.owner]);
    if (accepted !== undefined && !this.compactionPending && this.journal.records >= this.nextCompactionCheck) {
      this.compactionPending = true;
      // The rewrite takes the whole live set at run time, so knocks added while it waits are in it or appended after it.
      this.scheduleCompaction(() => this.runScheduledCompaction(accepted.nowMs));
    }
  }

  /** Closes the journal; a compaction still scheduled then does nothing. */
  close(): void {
    this.journal?.close();
  }

  prune(nowMs: number): void {
    for (const [id, entry] of this.entriesById) {
      if (entry.expiresAtMs <= nowMs) this.entriesById.delete(id);
    }
    for (const [owner, expiries] of this.expiriesByOwner) {
      const live = expiries.filter((expiry) => expiry > nowMs);
      if (live.length === 0) this.expiriesByOwner.delete(owner);
      else this.expiriesByOwner.set(owner, live);
    }
  }

  /** Restores what a previous run accepted, so a restart does not reopen the window. */
  restore(records: Iterable<ReplayRecord>, nowMs: number): void {
    for (const [id, expiresAtMs, owner] of records) {
      if (expiresAtMs > nowMs && (this.entriesById.has(id) || this.entriesById.size < this.capacity)) this.remember(id, expiresAtMs, owner);
    }
  }

  /** Rewrites the journal with the live entries only (at start, and whenever it is mostly dead records). */
  compactJournal(nowMs: number): void {
    if (this.journal === undefined) return;
    this.prune(nowMs);
    this.journal.rewrite(this.records());
    this.scheduleCompactionCheck();
  }

  *records(): IterableIterator<ReplayRecord> {
    for (const [id, { expiresAtMs, owner }] of this.entriesById) yield [id, expiresAtMs, owner];
  }

  private remember(id: string, expiresAtMs: number, owner: string | undefined): void {
    const earlier = this.entriesById.get(id);
    this.entriesById.set(id, { expiresAtMs: Math.max(expiresAtMs, earlier?.expiresAtMs ?? 0), owner: owner ?? earlier?.owner });
    if (owner === undefined || earlier !== undefined) return;
    const expiries = this.expiriesByOwner.get(owner);
    if (expiries === undefined) this.expiriesByOwner.set(owner, [expiresAtMs]);
    else expiries.push(expiresAtMs);
  }

  /** `nowMs` is the triggering knock's time: pruning at an earlier time than the real one only keeps more. */
  private runScheduledCompaction(nowMs: number): void {
    this.compactionPending = false;
    const journal = this.journal!;
    if (journal.closed) return;
    try {
      this.compactJournalIfMostlyDead(nowMs);
    } catch (error) {
      this.nextCompactionCheck = journal.records + this.minDeadRecordsToCompact;
      this.onCompactionError(error);
    }
  }

  private compactJournalIfMostlyDead(nowMs: number): void {
    this.prune(nowMs);
    const live = this.entriesById.size;
    const dead = this.journal!.records - live;
    if (dead > 2 * live && dead >= this.minDeadRecordsToCompact) this.journal!.rewrite(this.records());
    this.scheduleCompactionCheck();
  }

  /** Next count after at least max(minimum, 2 × live) appends: each count's prune is paid for by the appends before it. */
  private scheduleCompactionCheck(): void {
    this.nextCompactionCheck = this.journal!.records + Math.max(this.minDeadRecordsToCompact, 2 * this.entriesById.size);
  }
}

const RECORD_LINE = /^(\d{1,16}) ([A-Za-z0-9+/=]{4,200})(?: ([0-9A-Za-z._:+/=-]{1,128}))?$/;

function formatRecord([id, expiresAtMs, owner]: ReplayRecord): string {
  return owner === undefined ? `${expiresAtMs} ${id}\n` : `${expiresAtMs} ${id} ${owner}\n`;
}

function writeAll(descriptor: number, text: string): void {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) offset += writeSync(descriptor, bytes, offset);
}

/**
 * Two append-only files of `expiryMs base64key [owner]` lines, `file` and
 * `file.alt`, written synchronously for every accepted knock before its
 * grant, so that even kill -9 loses nothing. Both are opened while root and
 * used through their descriptors after the privilege drop (the folder stays
 * root's). A rewrite fills the idle file, fsyncs it, switches appends to it
 * and only then empties the other: at every instant the union of the two
 * holds every live entry, and that union is what a start reads.
 */
export class ReplayJournal {
  readonly files: readonly [string, string];
  private descriptors: [number, number] | undefined;
  private active: 0 | 1 = 0;
  private activeRecords = 0;
  private closedForGood = false;

  constructor(readonly file: string) {
    this.files = [file, `${file}.alt`];
  }

  /** Closed journals are never reopened: after the privilege drop that would not even be allowed. */
  get closed(): boolean {
    return this.closedForGood;
  }

  /** Records in the file appends go to, counted since this process opened it. */
  get records(): number {
    return this.activeRecords;
  }

  /** Reads the entries of a previous run from both files (a torn last line is ignored). */
  read(): ReplayRecord[] {
    const records: ReplayRecord[] = [];
    for (const file of this.files) {
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const match = RECORD_LINE.exec(line);
        if (match) records.push(match[3] === undefined ? [match[2]!, Number(match[1])] : [match[2]!, Number(match[1]), match[3]]);
      }
    }
    return records;
  }

  /** Replaces the journal's content with `records`, crash-safe (see the class comment). */
  rewrite(records: Iterable<ReplayRecord>): void {
    const descriptors = this.open();
    const idle = this.active === 0 ? 1 : 0;
    let text = '';
    let count = 0;
    for (const record of records) {
      text += formatRecord(record);
      count += 1;
    }
    if (fstatSync(descriptors[idle]).size > 0) {
      // Both files hold entries (a rewrite was cut short): the active one takes them all before the idle one is emptied.
      writeAll(descriptors[this.active], text);
      fsyncSync(descriptors[this.active]);
    }
    ftruncateSync(descriptors[idle], 0);
    writeAll(descriptors[idle], text);
    fsyncSync(descriptors[idle]);
    // Only now does the idle file alone hold every live entry: switch, then empty the other.
    const previous = this.active;
    this.active = idle;
    this.activeRecords = count;
    ftruncateSync(descriptors[previous], 0);
  }

  append(record: ReplayRecord): void {
    // No fsync: the page cache survives a killed process; only a power cut could lose the last lines.
    writeAll(this.open()[this.active], formatRecord(record));
    this.activeRecords += 1;
  }

  close(): void {
    for (const descriptor of this.descriptors ?? []) closeSync(descriptor);
    this.descriptors = undefined;
    this.closedForGood = true;
  }

  private open(): [number, number] {
    if (this.closedForGood) throw new SknockError('SKNOCK_REPLAY_JOURNAL_CLOSED', `${this.file}: the replay journal was closed; nothing more is written to it`);
    // O_NOFOLLOW: root never appends through a link someone left in the folder.
    const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
    if (this.descriptors === undefined) {
      const first = openSync(this.files[0], flags, 0o600);
      try {
        this.descriptors = [first, openSync(this.files[1], flags, 0o600)];
      } catch (error) {
        closeSync(first);
        throw error;
      }
      // The file a previous run appended to is the active one: a rewrite must never empty the only file with entries.
      this.active = fstatSync(this.descriptors[1]).size > fstatSync(this.descriptors[0]).size ? 1 : 0;
    }
    return this.descriptors;
  }
}
