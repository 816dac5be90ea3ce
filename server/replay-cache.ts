import { appendFileSync, closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

/**
 * Identities of accepted knocks, kept until their timestamp leaves the
 * acceptance window (after that the timestamp check refuses them anyway).
 * Bounded: when full, new knocks are refused rather than old entries
 * forgotten, because forgetting would reopen a replay window.
 */
export class ReplayCache {
  private readonly expiries = new Map<string, number>();

  constructor(
    readonly capacity: number,
    private readonly journal?: ReplayJournal,
  ) {}

  get size(): number {
    return this.expiries.size;
  }

  has(key: Buffer, nowMs: number): boolean {
    const expiry = this.expiries.get(key.toString('base64'));
    return expiry !== undefined && expiry > nowMs;
  }

  isFull(nowMs: number): boolean {
    if (this.expiries.size < this.capacity) return false;
    this.prune(nowMs);
    return this.expiries.size >= this.capacity;
  }

  /** Records an accepted knock; persisted before the caller opens anything. */
  add(key: Buffer, expiresAtMs: number): void {
    const id = key.toString('base64');
    this.expiries.set(id, Math.max(expiresAtMs, this.expiries.get(id) ?? 0));
    this.journal?.append(id, expiresAtMs);
  }

  prune(nowMs: number): void {
    for (const [id, expiry] of this.expiries) {
      if (expiry <= nowMs) this.expiries.delete(id);
    }
  }

  /** Restores what a previous run accepted, so a restart does not reopen the window. */
  restore(entries: Iterable<readonly [string, number]>, nowMs: number): void {
    for (const [id, expiry] of entries) {
      if (expiry > nowMs && this.expiries.size < this.capacity) this.expiries.set(id, Math.max(expiry, this.expiries.get(id) ?? 0));
    }
  }

  entries(): IterableIterator<[string, number]> {
    return this.expiries.entries();
  }
}

/**
 * An append-only file of `expiryMs base64key` lines, written synchronously
 * for every accepted knock before its grant, so that even kill -9 loses
 * nothing; compacted at start.
 */
export class ReplayJournal {
  private descriptor: number | undefined;

  constructor(readonly file: string) {}

  /** Reads the entries of a previous run (a torn last line is ignored). */
  read(): Array<[string, number]> {
    if (!existsSync(this.file)) return [];
    const entries: Array<[string, number]> = [];
    for (const line of readFileSync(this.file, 'utf8').split('\n')) {
      const match = /^(\d{1,16}) ([A-Za-z0-9+/=]{4,200})$/.exec(line);
      if (match) entries.push([match[2]!, Number(match[1])]);
    }
    return entries;
  }

  /** Rewrites the file with only the live entries (temporary file + rename), then appends. */
  compact(entries: Iterable<readonly [string, number]>): void {
    const temporary = `${this.file}.tmp-${process.pid}`;
    let text = '';
    for (const [id, expiry] of entries) text += `${expiry} ${id}\n`;
    writeFileSync(temporary, text, { mode: 0o600 });
    renameSync(temporary, this.file);
    this.close();
    this.descriptor = openSync(this.file, 'a', 0o600);
  }

  append(id: string, expiresAtMs: number): void {
    this.descriptor ??= openSync(this.file, 'a', 0o600);
    // No fsync: the page cache survives a killed process; only a power cut could lose the last lines.
    appendFileSync(this.descriptor, `${expiresAtMs} ${id}\n`);
  }

  close(): void {
    if (this.descriptor !== undefined) closeSync(this.descriptor);
    this.descriptor = undefined;
  }
}
