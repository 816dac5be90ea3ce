import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReplayCache, ReplayJournal, type ReplayRecord } from '../../server/replay-cache.js';

const key = (text: string) => Buffer.from(text);
const id = (text: string) => key(text).toString('base64');

/** Stands in for setImmediate: scheduled compactions run only when the test says the turn is over. */
function manualScheduler() {
  const tasks: (() => void)[] = [];
  return {
    schedule: (task: () => void) => void tasks.push(task),
    get pending(): number {
      return tasks.length;
    },
    runPending(): void {
      for (const task of tasks.splice(0)) task();
    },
  };
}

describe('replay cache', () => {
  it('remembers a key until its expiry, then forgets it', () => {
    const cache = new ReplayCache(10);
    cache.add(key('a'), 1_000);
    expect(cache.has(key('a'), 999)).toBe(true);
    expect(cache.has(key('a'), 1_000)).toBe(false);
    expect(cache.has(key('b'), 0)).toBe(false);
  });

  it('is bounded: full means full until entries expire', () => {
    const cache = new ReplayCache(2);
    cache.add(key('a'), 100);
    cache.add(key('b'), 200);
    expect(cache.isFull(50)).toBe(true);
    expect(cache.isFull(150)).toBe(false);
    expect(cache.size).toBe(1);
  });

  it('holds each client to its quota of live entries; expiry frees it', () => {
    const cache = new ReplayCache(100, { entriesPerClient: 2 });
    cache.add(key('a1'), 1_000, { owner: 'alice', nowMs: 0 });
    expect(cache.isOverQuota('alice', 0)).toBe(false);
    cache.add(key('a2'), 2_000, { owner: 'alice', nowMs: 0 });
    expect(cache.isOverQuota('alice', 0)).toBe(true);
    expect(cache.isOverQuota('bob', 0)).toBe(false);
    // Entries without an owner (an advisory copy) count against nobody.
    cache.add(key('x'), 2_000);
    expect(cache.isOverQuota('bob', 0)).toBe(false);
    expect(cache.isOverQuota('alice', 1_000)).toBe(false);
    cache.add(key('a3'), 3_000, { owner: 'alice', nowMs: 1_000 });
    expect(cache.isOverQuota('alice', 1_000)).toBe(true);
    expect(cache.isOverQuota('alice', 2_000)).toBe(false);
  });

  describe('journal', () => {
    let dir: string;
    let file: string;
    beforeEach(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'sknock-replay-'));
      file = path.join(dir, 'replay.journal');
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    /** What a restart would see: the two files read back. */
    const restarted = (options: { entriesPerClient?: number } = {}, nowMs = 0): ReplayCache => {
      const cache = new ReplayCache(1_000, options);
      cache.restore(new ReplayJournal(file).read(), nowMs);
      return cache;
    };

    it('survives a restart: what was accepted before is still refused after, quota included', () => {
      const journal = new ReplayJournal(file);
      const first = new ReplayCache(10, { journal });
      first.add(key('knock-1'), 5_000, { owner: 'alice', nowMs: 0 });
      first.add(key('knock-2'), 1_000, { owner: 'alice', nowMs: 0 });
      journal.close();
      // A torn line from a crash mid-write is ignored.
      appendFileSync(file, '12345 tor');

      const second = restarted({ entriesPerClient: 1 }, 2_000);
      expect(second.has(key('knock-1'), 2_000)).toBe(true);
      expect(second.has(key('knock-2'), 2_000)).toBe(false);
      expect(second.isOverQuota('alice', 2_000)).toBe(true);
    });

    it('compacts at start to the live entries and keeps appending after', () => {
      writeFileSync(file, `5000 ${id('live')} alice\n1000 ${id('dead')} alice\n`);
      // A line of the journal format before owners were recorded.
      writeFileSync(`${file}.alt`, `6000 ${id('old')}\n`);
      const journal = new ReplayJournal(file);
      const cache = new ReplayCache(10, { journal });
      cache.restore(journal.read(), 2_000);
      cache.compactJournal(2_000);
      cache.add(key('new'), 9_000, { owner: 'bob', nowMs: 2_000 });
      journal.close();
      const records = new ReplayJournal(file).read();
      expect(records).toHaveLength(3);
      expect(records).toEqual(expect.arrayContaining([[id('live'), 5_000, 'alice'], [id('old'), 6_000], [id('new'), 9_000, 'bob']]));
    });

    it('compacts while running once dead records outnumber live ones twice, keeping every live entry', () => {
      const journal = new ReplayJournal(file);
      const scheduler = manualScheduler();
      const cache = new ReplayCache(1_000, { journal, minDeadRecordsToCompact: 50, scheduleCompaction: scheduler.schedule });
      cache.compactJournal(0);
      const live: string[] = [];
      let largest = 0;
      let smallestAfterGrowth = Infinity;
      // Each step: 10 knocks that live 1 s; time moves on 1 s per step, so all but the last 10 die.
      for (let step = 0; step < 40; step += 1) {
        const nowMs = step * 1_000;
        for (let index = 0; index < 10; index += 1) {
          const name = `knock-${step}-${index}`;
          cache.add(key(name), nowMs + 1_000, { owner: 'alice', nowMs });
          live.push(name);
        }
        // The step's knocks were one turn of the event loop; the compaction they scheduled runs after it.
        scheduler.runPending();
        const bytes = statSync(file).size + statSync(`${file}.alt`).size;
        if (bytes > largest) largest = bytes;
        else smallestAfterGrowth = Math.min(smallestAfterGrowth, bytes);
        // Crash-safe at every step: what a restart reads holds every live entry.
        const afterRestart = restarted({}, nowMs);
        for (const name of live.slice(-10)) expect(afterRestart.has(key(name), nowMs)).toBe(true);
      }
      journal.close();
      // Without compaction 400 records (~25 KB); with it the files stay at a few times the minimum.
      expect(largest).toBeLessThan(100 * 60);
      expect(smallestAfterGrowth).toBeLessThan(largest);
      const records = new ReplayJournal(file).read();
      expect(records.length).toBeLessThan(400);
      expect(records.map(([name]) => name)).toEqual(expect.arrayContaining(live.slice(-10).map(id)));
    });

    describe('compaction after the knock that triggers it', () => {
      const contents = () => [readFileSync(file, 'utf8'), readFileSync(`${file}.alt`, 'utf8')].join('');

      /** A cache whose journal holds six dead records (appended by advisory adds, which never count them). */
      const withDeadRecords = (options: { journal?: ReplayJournal; onCompactionError?: (error: unknown) => void } = {}) => {
        const journal = options.journal ?? new ReplayJournal(file);
        const scheduler = manualScheduler();
        const cache = new ReplayCache(100, { journal, minDeadRecordsToCompact: 4, scheduleCompaction: scheduler.schedule, onCompactionError: options.onCompactionError });
        cache.compactJournal(0);
        for (let index = 0; index < 6; index += 1) cache.add(key(`old-${index}`), 100);
        return { journal, scheduler, cache };
      };

      it('compacts at start at once, without the scheduler', () => {
        writeFileSync(file, `100 ${id('dead')} alice\n`);
        const { scheduler } = withDeadRecords();
        expect(scheduler.pending).toBe(0);
        expect(contents()).not.toContain(id('dead'));
      });

      it('appends at once but rewrites only when the scheduler runs, scheduling one compaction at a time', () => {
        const { journal, scheduler, cache } = withDeadRecords();
        cache.add(key('fresh'), 10_000, { owner: 'alice', nowMs: 1_000 });
        expect(scheduler.pending).toBe(1);
        expect(journal.records).toBe(7);
        expect(contents()).toContain(id('old-0'));
        expect(contents()).toContain(id('fresh'));
        cache.add(key('while-waiting'), 10_000, { owner: 'alice', nowMs: 1_000 });
        expect(scheduler.pending).toBe(1);

        scheduler.runPending();
        expect(contents()).not.toContain(id('old-0'));
        expect(journal.records).toBe(2);
        journal.close();
        expect(new ReplayJournal(file).read()).toEqual(
          expect.arrayContaining([
            [id('fresh'), 10_000, 'alice'],
            [id('while-waiting'), 10_000, 'alice'],
          ]),
        );
      });

      it('loses no knock accepted between scheduling and running: a restart still refuses it', () => {
        const { journal, scheduler, cache } = withDeadRecords();
        cache.add(key('fresh'), 10_000, { owner: 'alice', nowMs: 1_000 });
        cache.add(key('between'), 10_000, { owner: 'bob', nowMs: 1_500 });
        scheduler.runPending();
        cache.add(key('after'), 10_000, { owner: 'carol', nowMs: 2_000 });
        journal.close();

        const afterRestart = restarted({ entriesPerClient: 1 }, 2_000);
        for (const name of ['fresh', 'between', 'after']) expect(afterRestart.has(key(name), 2_000)).toBe(true);
        expect(afterRestart.has(key('old-0'), 0)).toBe(false);
        expect(afterRestart.isOverQuota('bob', 2_000)).toBe(true);
      });

      it('a compaction still scheduled at close writes nothing, and the closed journal takes no more records', () => {
        const errors: unknown[] = [];
        const { journal, scheduler, cache } = withDeadRecords({ onCompactionError: (error) => errors.push(error) });
        cache.add(key('fresh'), 10_000, { owner: 'alice', nowMs: 1_000 });
        cache.close();
        const atClose = contents();

        scheduler.runPending();
        expect(contents()).toBe(atClose);
        expect(errors).toEqual([]);
        expect(() => journal.append([id('late'), 10_000])).toThrow(expect.objectContaining({ code: 'SKNOCK_REPLAY_JOURNAL_CLOSED' }));
        expect(contents()).toBe(atClose);
      });

      it('reports a failed rewrite instead of throwing, and counts again only after more appends', () => {
        class FillingDiskJournal extends ReplayJournal {
          full = false;
          override rewrite(records: Iterable<ReplayRecord>): void {
            if (this.full) throw new Error('no space left on device');
            super.rewrite(records);
          }
        }
        const errors: unknown[] = [];
        const journal = new FillingDiskJournal(file);
        const { scheduler, cache } = withDeadRecords({ journal, onCompactionError: (error) => errors.push(error) });
        journal.full = true;
        cache.add(key('fresh'), 10_000, { owner: 'alice', nowMs: 1_000 });
        scheduler.runPending();
        expect(errors).toEqual([expect.objectContaining({ message: 'no space left on device' })]);
        expect(contents()).toContain(id('old-0'));

        for (let index = 0; index < 3; index += 1) cache.add(key(`more-${index}`), 10_000, { owner: 'alice', nowMs: 1_000 });
        expect(scheduler.pending).toBe(0);
        cache.add(key('more-3'), 10_000, { owner: 'alice', nowMs: 1_000 });
        expect(scheduler.pending).toBe(1);
        journal.close();
      });

      it('by default compacts in the next turn of the event loop (setImmediate)', async () => {
        const journal = new ReplayJournal(file);
        const cache = new ReplayCache(100, { journal, minDeadRecordsToCompact: 4 });
        cache.compactJournal(0);
        for (let index = 0; index < 6; index += 1) cache.add(key(`old-${index}`), 100);
        cache.add(key('fresh'), 10_000, { owner: 'alice', nowMs: 1_000 });
        expect(contents()).toContain(id('old-0'));
        await new Promise((resolve) => setImmediate(resolve));
        expect(contents()).not.toContain(id('old-0'));
        expect(contents()).toContain(id('fresh'));
        cache.close();
      });
    });

    it('reads the union of both files, so a crash between the switch and the truncation loses nothing', () => {
      const both: ReplayRecord[] = [[id('a'), 5_000, 'alice'], [id('b'), 6_000, 'bob']];
      writeFileSync(file, `5000 ${id('a')} alice\n`);
      writeFileSync(`${file}.alt`, `5000 ${id('a')} alice\n6000 ${id('b')} bob\n`);
      const cache = restarted({}, 0);
      expect([...cache.records()]).toEqual(both);
    });

    it('after a restart, rewrites into the empty file: the one holding the entries is never emptied first', () => {
      writeFileSync(file, '');
      writeFileSync(`${file}.alt`, `5000 ${id('a')} alice\n`);
      const journal = new ReplayJournal(file);
      journal.rewrite([[id('a'), 5_000, 'alice'], [id('b'), 6_000, 'bob']]);
      journal.close();
      expect(readFileSync(file, 'utf8')).toBe(`5000 ${id('a')} alice\n6000 ${id('b')} bob\n`);
      expect(readFileSync(`${file}.alt`, 'utf8')).toBe('');
    });

    it('when both files hold entries, the active one takes them all before the other is emptied', () => {
      writeFileSync(file, `5000 ${id('a')} alice\n`);
      writeFileSync(`${file}.alt`, `5000 ${id('a')} alice\n6000 ${id('b')} bob\n`);
      const journal = new ReplayJournal(file);
      journal.rewrite([[id('a'), 5_000, 'alice'], [id('b'), 6_000, 'bob']]);
      journal.close();
      expect(readFileSync(`${file}.alt`, 'utf8')).toBe('');
      expect(new ReplayJournal(file).read()).toEqual([[id('a'), 5_000, 'alice'], [id('b'), 6_000, 'bob']]);
    });
  });
});
