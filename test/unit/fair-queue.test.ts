import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FairQueue, sourceKeyOf } from '../../server/verify/fair-queue.js';

function drain<Item>(queue: FairQueue<Item>): Array<[string, Item]> {
  const out: Array<[string, Item]> = [];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) out.push([next.source, next.item]);
  return out;
}

describe('fair queue', () => {
  it('serves sources round-robin and each source first in, first out', () => {
    const queue = new FairQueue<string>(100);
    for (const item of ['a1', 'a2', 'a3']) queue.push('a', item);
    queue.push('b', 'b1');
    queue.push('c', 'c1');
    queue.push('b', 'b2');
    expect(drain(queue).map(([, item]) => item)).toEqual(['a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
    expect(queue.size).toBe(0);
    expect(queue.sourceCount).toBe(0);
  });

  it('when full, drops the newest knock of the heaviest source, not the arriving one of a light source', () => {
    const queue = new FairQueue<string>(4);
    for (const item of ['f1', 'f2', 'f3']) expect(queue.push('flood', item)).toBeUndefined();
    expect(queue.push('other', 'o1')).toBeUndefined();
    expect(queue.push('legit', 'l1')).toEqual({ source: 'flood', item: 'f3' });
    expect(queue.size).toBe(4);
    expect(drain(queue).map(([, item]) => item)).toEqual(['f1', 'o1', 'l1', 'f2']);
  });

  it('when full, drops the arriving knock of the heaviest source (and on ties)', () => {
    const queue = new FairQueue<string>(3);
    queue.push('flood', 'f1');
    queue.push('flood', 'f2');
    queue.push('light', 'l1');
    expect(queue.push('flood', 'f3')).toEqual({ source: 'flood', item: 'f3' });
    // light would tie with flood at two: the arriving one goes.
    expect(queue.push('light', 'l2')).toEqual({ source: 'light', item: 'l2' });
    expect(drain(queue).map(([, item]) => item)).toEqual(['f1', 'l1', 'f2']);
  });

  it('says beforehand exactly when push() would drop the arriving item itself', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.array(fc.oneof(fc.constantFrom('a', 'b', 'c', 'd'), fc.constant(null)), { maxLength: 200 }), (capacity, operations) => {
        const queue = new FairQueue<number>(capacity);
        operations.forEach((source, step) => {
          if (source === null) {
            queue.shift();
            return;
          }
          const refused = queue.refuses(source);
          expect(queue.push(source, step)?.item === step).toBe(refused);
        });
      }),
      { seed: 12, numRuns: 300 },
    );
  });

  it('keeps finding the heaviest source as items leave', () => {
    const queue = new FairQueue<number>(6);
    for (let index = 0; index < 4; index += 1) queue.push('a', index);
    queue.push('b', 10);
    queue.push('b', 11);
    queue.shift(); // a:3 left
    queue.shift(); // b:1 left
    queue.shift(); // a:2 left
    expect(queue.push('c', 20)).toBeUndefined();
    expect(queue.push('c', 21)).toBeUndefined();
    expect(queue.push('d', 30)).toBeUndefined();
    // Full: a and c hold two each, b one; d would hold two → ties → the arriving one is dropped.
    expect(queue.push('d', 31)).toEqual({ source: 'd', item: 31 });
    const dropped = queue.push('e', 40);
    expect(dropped?.source === 'a' || dropped?.source === 'c').toBe(true);
  });

  it('never exceeds its bound, and a source with one knock is never displaced by a heavier one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 40 }),
        fc.array(fc.oneof(fc.constantFrom('push-flood', 'push-spoof', 'shift')), { maxLength: 400 }),
        (capacity, operations) => {
          const queue = new FairQueue<string>(capacity);
          const legit = 'legit-knock';
          let spoofed = 0;
          let legitInQueue = false;
          let legitServed = false;
          operations.forEach((operation, step) => {
            if (step === Math.floor(operations.length / 2) && !legitInQueue) {
              const dropped = queue.push('legit', legit);
              // Only dropped when every source holds one knock (pure ties): then the newest goes.
              legitInQueue = dropped?.item !== legit;
            } else if (operation === 'push-flood') {
              const dropped = queue.push('flood', `f${step}`);
              if (dropped?.item === legit) throw new Error('the legitimate knock was dropped for the flooder');
            } else if (operation === 'push-spoof') {
              const dropped = queue.push(`spoof-${spoofed++}`, `s${step}`);
              if (dropped?.item === legit) throw new Error('the legitimate knock was dropped for a spoofed source');
            } else if (queue.shift()?.item === legit) {
              legitServed = true;
            }
            expect(queue.size).toBeLessThanOrEqual(capacity);
          });
          const rest = drain(queue).map(([, item]) => item);
          expect(legitServed || rest.includes(legit) || !legitInQueue).toBe(true);
        },
      ),
      { seed: 6, numRuns: 300 },
    );
  });

  it('counts an IPv4 address as itself and an IPv6 address by its /64', () => {
    expect(sourceKeyOf('198.18.0.2')).toBe('198.18.0.2');
    expect(sourceKeyOf('fd00:18::2')).toBe(sourceKeyOf('fd00:18::ffff:1'));
    expect(sourceKeyOf('fd00:18::2')).not.toBe(sourceKeyOf('fd00:18:0:1::2'));
    expect(sourceKeyOf('not an address')).toBe('not an address');
  });
});
