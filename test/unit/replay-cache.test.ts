import { mkdtempSync, readFileSync, rmSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ReplayCache, ReplayJournal } from '../../server/replay-cache.js';

const key = (text: string) => Buffer.from(text);

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

  describe('journal', () => {
    let dir: string;
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('survives a restart: what was accepted before is still refused after', () => {
      dir = mkdtempSync(path.join(tmpdir(), 'sknock-replay-'));
      const file = path.join(dir, 'replay.journal');
      const first = new ReplayCache(10, new ReplayJournal(file));
      first.add(key('knock-1'), 5_000);
      first.add(key('knock-2'), 1_000);
      // A torn line from a crash mid-write is ignored.
      appendFileSync(file, '12345 tor');

      const journal = new ReplayJournal(file);
      const second = new ReplayCache(10, journal);
      second.restore(journal.read(), 2_000);
      expect(second.has(key('knock-1'), 2_000)).toBe(true);
      expect(second.has(key('knock-2'), 2_000)).toBe(false);

      journal.compact(second.entries());
      expect(readFileSync(file, 'utf8')).toBe(`5000 ${key('knock-1').toString('base64')}\n`);
      second.add(key('knock-3'), 9_000);
      journal.close();
      expect(new ReplayJournal(file).read()).toHaveLength(2);
    });
  });
});
