/**
 * The bounded queue in front of the verifiers, fair between sources: items
 * leave round-robin over the sources that have any queued, so a source that
 * floods waits behind its own packets, not in front of everyone else's. When
 * the queue is full the newest item of the heaviest source is dropped (the
 * arriving one when its source is, or ties with, the heaviest), so the
 * flooder pays for the flood. Pure: no clock, no IO.
 */
import { parseAddress } from '../../client-lib/protocol/address.js';

/** IPv6 hosts get a /64 each, so a source is charged for its whole prefix. */
const IPV6_SOURCE_PREFIX_BYTES = 8;

/**
 * The unit of fairness for a source address: the IPv4 address itself, the
 * /64 of an IPv6 address. Text that is no address is its own key.
 */
export function sourceKeyOf(address: string): string {
  const bytes = parseAddress(address);
  if (bytes === undefined || bytes.length === 4) return address;
  return `${Buffer.from(bytes.subarray(0, IPV6_SOURCE_PREFIX_BYTES)).toString('hex')}/64`;
}

/** A first-in first-out ring that also gives up its newest item; amortised O(1) both ends. */
class Deque<Item> {
  private slots: (Item | undefined)[] = new Array<Item | undefined>(4);
  private head = 0;
  length = 0;

  push(item: Item): void {
    if (this.length === this.slots.length) this.grow();
    this.slots[(this.head + this.length) % this.slots.length] = item;
    this.length += 1;
  }

  shift(): Item | undefined {
    if (this.length === 0) return undefined;
    const item = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.slots.length;
    this.length -= 1;
    return item;
  }

  pop(): Item | undefined {
    if (this.length === 0) return undefined;
    const index = (this.head + this.length - 1) % this.slots.length;
    const item = this.slots[index];
    this.slots[index] = undefined;
    this.length -= 1;
    return item;
  }

  private grow(): void {
    const larger = new Array<Item | undefined>(this.slots.length * 2);
    for (let index = 0; index < this.length; index += 1) larger[index] = this.slots[(this.head + index) % this.slots.length];
    this.slots = larger;
    this.head = 0;
  }
}

export interface SourcedItem<Item> {
  readonly source: string;
  readonly item: Item;
}

export class FairQueue<Item> {
  private readonly bySource = new Map<string, Deque<Item>>();
  /** Sources with queued items, in service order. */
  private readonly turns = new Deque<string>();
  /** Queued count → the sources that have exactly that many: finds the heaviest in O(1). */
  private readonly sourcesByCount = new Map<number, Set<string>>();
  private heaviestCount = 0;
  private itemCount = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`queue capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.itemCount;
  }

  /** Sources with at least one item queued. */
  get sourceCount(): number {
    return this.bySource.size;
  }

  /**
   * Queues `item` for `source` (a key from sourceKeyOf). Returns what was
   * dropped to keep the bound: the item itself, another item of the
   * heaviest source, or undefined when nothing was.
   */
  push(source: string, item: Item): SourcedItem<Item> | undefined {
    let dropped: SourcedItem<Item> | undefined;
    if (this.itemCount >= this.capacity) {
      if (this.refuses(source)) return { source, item };
      const heaviest = this.sourcesByCount.get(this.heaviestCount)!.values().next().value!;
      dropped = { source: heaviest, item: this.bySource.get(heaviest)!.pop()! };
      this.uncount(heaviest);
    }
    let queue = this.bySource.get(source);
    if (queue === undefined) {
      queue = new Deque<Item>();
      this.bySource.set(source, queue);
      this.turns.push(source);
    }
    this.count(source, queue.length);
    queue.push(item);
    return dropped;
  }

  /**
   * Whether push() would drop a new item of `source` itself: the queue is
   * full and `source` would be (one of) the heaviest. Lets a caller skip
   * preparing an item that would be dropped at once.
   */
  refuses(source: string): boolean {
    return this.itemCount >= this.capacity && (this.bySource.get(source)?.length ?? 0) + 1 >= this.heaviestCount;
  }

  /** The next item: the oldest of the source whose turn it is. */
  shift(): SourcedItem<Item> | undefined {
    const source = this.turns.shift();
    if (source === undefined) return undefined;
    const queue = this.bySource.get(source)!;
    const item = queue.shift()!;
    this.uncount(source);
    if (queue.length > 0) this.turns.push(source);
    return { source, item };
  }

  /** Records one more item for `source`, which had `before` queued. */
  private count(source: string, before: number): void {
    if (before > 0) this.sourcesByCount.get(before)!.delete(source);
    this.sourcesWith(before + 1).add(source);
    this.heaviestCount = Math.max(this.heaviestCount, before + 1);
    this.itemCount += 1;
  }

  /** Records one item fewer for `source`, whose deque has already given it up. */
  private uncount(source: string): void {
    const queue = this.bySource.get(source)!;
    const before = queue.length + 1;
    const sources = this.sourcesByCount.get(before)!;
    sources.delete(source);
    if (sources.size === 0) {
      this.sourcesByCount.delete(before);
      // Counts move by one, so the next heaviest holds one item fewer (or the queue is empty).
      if (this.heaviestCount === before) this.heaviestCount = before - 1;
    }
    // A drop never empties a source (the heaviest holds two or more then): only shift does.
    if (queue.length > 0) this.sourcesWith(queue.length).add(source);
    else this.bySource.delete(source);
    this.itemCount -= 1;
  }

  private sourcesWith(count: number): Set<string> {
    let sources = this.sourcesByCount.get(count);
    if (sources === undefined) {
      sources = new Set();
      this.sourcesByCount.set(count, sources);
    }
    return sources;
  }
}
