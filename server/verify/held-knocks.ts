/**
 * Knocks captured while the start refresh of the CRL runs wait here, so that
 * none is judged with an outdated CRL. They first pass the same cheap checks
 * the pool applies before queueing (precheckKnock: length, header, mac1), so
 * junk never takes a place; the wait is bounded and fair between sources
 * like the pool's own queue, and every knock it cannot keep is counted.
 * Junk goes on to the pool at once: its refusal does not depend on the CRL,
 * and the pool counts it with every other refusal.
 */
import { precheckKnock } from '../../client-lib/protocol/index.js';
import { FairQueue, sourceKeyOf } from './fair-queue.js';
import { ownedDatagram, type CapturedKnock } from './pipeline.js';

/** Where knocks are judged: the verification pool. */
export interface KnockSink {
  submit(knock: CapturedKnock, receivedAtMs: number): boolean;
}

export interface HeldKnockCounts {
  /** Knocks waiting now. */
  readonly held: number;
  /** Knocks that passed the cheap checks but found the hold full: never judged (clients retry). */
  readonly dropped: number;
  /** Knocks the cheap checks refused while holding, handed to the pool at once. */
  readonly refusedEarly: number;
}

interface HeldKnock {
  readonly knock: CapturedKnock;
  readonly receivedAtMs: number;
}

export class KnockHold {
  /** null once released: from then on every knock goes straight to the sink. */
  private queue: FairQueue<HeldKnock> | null;
  private dropped = 0;
  private refusedEarly = 0;

  constructor(
    private readonly sink: KnockSink,
    /** The server's v2 mac1 key, as the pool has it. */
    private readonly mac1Key: Buffer,
    capacity: number,
  ) {
    this.queue = new FairQueue(capacity);
  }

  /** Holds a knock that passes the cheap checks, until release(); hands anything else to the sink. Never throws. */
  submit(knock: CapturedKnock, receivedAtMs: number): void {
    if (this.queue === null) {
      this.sink.submit(knock, receivedAtMs);
      return;
    }
    if (precheckKnock(knock.datagram, this.mac1Key) !== undefined) {
      this.refusedEarly += 1;
      this.sink.submit(knock, receivedAtMs);
      return;
    }
    const source = sourceKeyOf(knock.source);
    // As in the pool: a knock the full hold would drop is not copied first.
    if (this.queue.refuses(source) || this.queue.push(source, { knock: { ...knock, datagram: ownedDatagram(knock) }, receivedAtMs }) !== undefined) {
      this.dropped += 1;
    }
  }

  /** Hands every held knock to the sink, judged as of its capture time, and stops holding. */
  release(): HeldKnockCounts {
    const queue = this.queue;
    this.queue = null;
    let released = 0;
    for (let next = queue?.shift(); next !== undefined; next = queue?.shift()) {
      this.sink.submit(next.item.knock, next.item.receivedAtMs);
      released += 1;
    }
    return { held: released, dropped: this.dropped, refusedEarly: this.refusedEarly };
  }

  counts(): HeldKnockCounts {
    return { held: this.queue?.size ?? 0, dropped: this.dropped, refusedEarly: this.refusedEarly };
  }
}
