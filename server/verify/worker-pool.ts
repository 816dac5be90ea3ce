/**
 * Verification on a pool of worker threads, fed from one bounded fair queue
 * on the main thread: submit() only queues, so the capture loop never waits
 * for cryptography. Each lane (a worker, or an in-process examiner) has at
 * most a couple of batches in flight, so packets wait in the fair queue,
 * where the drop policy applies, not in a worker's unbounded inbox.
 *
 * Workers judge everything up to the replay decision; the main thread makes
 * that decision (decideReplay) against the one authoritative replay cache,
 * so no knock is ever accepted twice, whichever workers saw copies of it.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createServerContext, precheckKnock } from '../../client-lib/protocol/index.js';
import type { ReplayCache } from '../replay-cache.js';
import type { TrustOptions, TrustState } from '../trust/index.js';
import { Examiner, reviveExamination, trustOptionsOf, type ExaminerOptions, type TimedKnock } from './examiner.js';
import { FairQueue, sourceKeyOf } from './fair-queue.js';
import { decideReplay, ownedDatagram, refuse, type CapturedKnock, type Examination, type Verdict } from './pipeline.js';
import { packKnocks, type FromWorker, type ToWorker } from './worker-messages.js';

/** One verifier the pool feeds: a worker thread, or an examiner on the calling thread. */
export interface VerifierLane {
  /** Examinations in the order of `knocks`; rejects when the lane has died. */
  examine(knocks: readonly TimedKnock[]): Promise<readonly Examination[]>;
  /** Resolves when every batch sent after this call is judged with the new trust. */
  updateTrust(trust: TrustOptions): Promise<void>;
  close(): Promise<void>;
}

export const DROP_REASONS = ['queue-full', 'verifier-failed', 'closed'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface PoolStats {
  readonly lanes: number;
  /** Knocks submitted. */
  readonly received: number;
  readonly accepted: number;
  /** Rejections by reason code (pipeline, trust and codec reasons). */
  readonly rejected: Readonly<Record<string, number>>;
  /** Knocks never judged, by why. */
  readonly dropped: Readonly<Record<DropReason, number>>;
  readonly queued: number;
  readonly queuedPeak: number;
  /** Sources (IPv4 addresses, IPv6 /64s) with knocks waiting. */
  readonly queuedSources: number;
  readonly laneRestarts: number;
}

export interface VerificationPoolOptions {
  /** Builds a lane judging with `trust`; called once per lane and again to replace one that died. */
  readonly createLane: (trust: TrustOptions) => VerifierLane;
  readonly lanes: number;
  readonly trust: TrustState;
  /** The authoritative replay cache: the only one an acceptance is recorded in. */
  readonly replay: ReplayCache;
  readonly now: () => number;
  /** Every judged knock, in the order its lane returned it. */
  readonly onVerdict: (knock: CapturedKnock, verdict: Verdict) => void;
  /** A lane died (it is replaced), or onVerdict threw. */
  readonly onError?: (error: Error) => void;
  /**
   * The server's v2 mac1 key: when given, the length/header/mac1 checks run
   * in submit(), so blind junk never takes a place in the queue.
   */
  readonly mac1Key?: Buffer;
  /** Knocks waiting at most; default 4096. */
  readonly queueCapacity?: number;
  /** Knocks per batch at most; default 32. */
  readonly maxBatch?: number;
}

export const DEFAULT_QUEUE_CAPACITY = 4096;
export const DEFAULT_MAX_BATCH = 32;
/** A lane that dies more often than this per minute is not replaced: something is wrong beyond one packet. */
const MAX_LANE_RESTARTS_PER_MINUTE = 5;
/** Two keep a lane busy while a result travels back; more would only queue outside the fair queue. */
const BATCHES_IN_FLIGHT_PER_LANE = 2;

interface LaneSlot {
  lane: VerifierLane;
  inFlight: number;
}

export class VerificationPool {
  private readonly queue: FairQueue<TimedKnock>;
  private readonly slots: LaneSlot[];
  private trust: TrustOptions;
  private readonly maxBatch: number;
  private closing = false;
  private inFlightBatches = 0;
  private endOfTurnDispatch = false;
  private idleWaiters: Array<() => void> = [];
  private counters = { received: 0, accepted: 0, queuedPeak: 0, laneRestarts: 0 };
  private recentRestartsMs: number[] = [];
  private readonly rejected = new Map<string, number>();
  private readonly dropped: Record<DropReason, number> = { 'queue-full': 0, 'verifier-failed': 0, closed: 0 };

  constructor(private readonly options: VerificationPoolOptions) {
    if (!Number.isInteger(options.lanes) || options.lanes < 1) throw new RangeError(`a pool needs at least one lane, got ${options.lanes}`);
    this.queue = new FairQueue(options.queueCapacity ?? DEFAULT_QUEUE_CAPACITY);
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.trust = trustOptionsOf(options.trust);
    this.slots = Array.from({ length: options.lanes }, () => ({ lane: options.createLane(this.trust), inFlight: 0 }));
  }

  /**
   * Queues a captured knock judged as of `receivedAtMs`. Never blocks and
   * never throws; false when the knock (or nothing, if another source's
   * knock made room) was dropped. The datagram may be a view the caller
   * reuses once this returns: what is queued is a copy.
   */
  submit(knock: CapturedKnock, receivedAtMs: number): boolean {
    this.counters.received += 1;
    if (this.closing) {
      this.dropped.closed += 1;
      return false;
    }
    if (this.slots.length === 0) {
      this.dropped['verifier-failed'] += 1;
      return false;
    }
    if (this.options.mac1Key) {
      const refusal = precheckKnock(knock.datagram, this.options.mac1Key);
      if (refusal) {
        this.conclude([{ ...knock, receivedAtMs }], [{ verdict: refuse(refusal.reason, refusal.detail) }]);
        return true;
      }
    }
    const source = sourceKeyOf(knock.source);
    // Refused before the copy: under a flood most knocks end here, and each copy was an ArrayBuffer for the collector.
    if (this.queue.refuses(source)) {
      this.dropped['queue-full'] += 1;
      return false;
    }
    const timed: TimedKnock = { datagram: ownedDatagram(knock), source: knock.source, frameLength: knock.frameLength, receivedAtMs };
    const dropped = this.queue.push(source, timed);
    if (dropped !== undefined) this.dropped['queue-full'] += 1;
    this.counters.queuedPeak = Math.max(this.counters.queuedPeak, this.queue.size);
    this.dispatch(false);
    return dropped?.item !== timed;
  }

  /**
   * Replaces the trust state (a new CRL, new CAs) in every lane; resolves
   * when all of them judge with it. Knocks already sent to a lane are judged
   * with the state they were sent under.
   */
  async updateTrust(trust: TrustState): Promise<void> {
    this.trust = trustOptionsOf(trust);
    await Promise.all(this.slots.map((slot) => slot.lane.updateTrust(this.trust)));
  }

  stats(): PoolStats {
    return {
      lanes: this.slots.length,
      received: this.counters.received,
      accepted: this.counters.accepted,
      rejected: Object.fromEntries(this.rejected),
      dropped: { ...this.dropped },
      queued: this.queue.size,
      queuedPeak: this.counters.queuedPeak,
      queuedSources: this.queue.sourceCount,
      laneRestarts: this.counters.laneRestarts,
    };
  }

  /** Resolves once nothing is queued or being judged. */
  idle(): Promise<void> {
    if (this.queue.size === 0 && this.inFlightBatches === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking knocks, judges what is queued, then stops the lanes. */
  async close(): Promise<void> {
    this.closing = true;
    await this.idle();
    await Promise.all(this.slots.map((slot) => slot.lane.close()));
  }

  /**
   * Sends what is queued to lanes with room. An idle lane gets a batch at
   * once, however small (a lone knock waits for nothing). A lane that is
   * already judging gets one within the turn only once a full batch's worth
   * (maxBatch) is queued, and otherwise at the end of the turn: a burst
   * submitted in one turn (packets read from the ring in one go) then goes
   * out in large batches, not as batches of one that leave the lane idle
   * until the turn ends.
   */
  private dispatch(endOfTurn: boolean): void {
    while (this.queue.size > 0) {
      // The least busy lane first: an idle worker never waits while another holds two batches.
      let slot: LaneSlot | undefined;
      for (const candidate of this.slots) if (candidate.inFlight < (slot?.inFlight ?? BATCHES_IN_FLIGHT_PER_LANE)) slot = candidate;
      if (slot === undefined) return;
      if (slot.inFlight > 0 && !endOfTurn && this.queue.size < this.maxBatch) {
        this.dispatchAtEndOfTurn();
        return;
      }
      // Share the backlog among lanes: small batches when the queue is short keep latency low.
      const batchSize = Math.min(this.maxBatch, Math.ceil(this.queue.size / this.slots.length));
      const batch: TimedKnock[] = [];
      while (batch.length < batchSize) batch.push(this.queue.shift()!.item);
      this.send(slot, batch);
    }
  }

  private dispatchAtEndOfTurn(): void {
    if (this.endOfTurnDispatch) return;
    this.endOfTurnDispatch = true;
    queueMicrotask(() => {
      this.endOfTurnDispatch = false;
      this.dispatch(true);
    });
  }

  private send(slot: LaneSlot, batch: readonly TimedKnock[]): void {
    slot.inFlight += 1;
    this.inFlightBatches += 1;
    const { lane } = slot;
    lane.examine(batch).then(
      (examinations) => this.conclude(batch, examinations),
      (error: unknown) => {
        this.dropped['verifier-failed'] += batch.length;
        this.replaceLane(slot, lane, error);
      },
    ).finally(() => {
      slot.inFlight -= 1;
      this.inFlightBatches -= 1;
      this.dispatch(true);
      if (this.queue.size === 0 && this.inFlightBatches === 0) this.wakeIdleWaiters();
    });
  }

  private conclude(batch: readonly TimedKnock[], examinations: readonly Examination[]): void {
    batch.forEach((knock, index) => {
      const verdict = decideReplay(examinations[index]!, this.options.replay, this.options.now());
      if (verdict.accepted) this.counters.accepted += 1;
      else this.rejected.set(verdict.reason, (this.rejected.get(verdict.reason) ?? 0) + 1);
      try {
        this.options.onVerdict(knock, verdict);
      } catch (error) {
        this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  private replaceLane(slot: LaneSlot, failed: VerifierLane, error: unknown): void {
    // Several batches of one dead lane fail: replace it once.
    if (slot.lane !== failed || !this.slots.includes(slot)) return;
    void failed.close().catch(() => undefined);
    const nowMs = this.options.now();
    this.recentRestartsMs = this.recentRestartsMs.filter((atMs) => nowMs - atMs < 60_000);
    const cause = error instanceof Error ? error : new Error(String(error));
    if (this.closing || this.recentRestartsMs.length >= MAX_LANE_RESTARTS_PER_MINUTE) {
      this.slots.splice(this.slots.indexOf(slot), 1);
      this.options.onError?.(new Error(`verifier lane not replaced (${this.slots.length} left): ${cause.message}`, { cause }));
      // With no lane left nothing would ever judge what waits.
      if (this.slots.length === 0) while (this.queue.shift() !== undefined) this.dropped['verifier-failed'] += 1;
      return;
    }
    this.options.onError?.(cause);
    this.recentRestartsMs.push(nowMs);
    slot.lane = this.options.createLane(this.trust);
    this.counters.laneRestarts += 1;
  }

  private wakeIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** The worker entry beside this module (in dist/ next to the compiled pool). */
export const VERIFY_WORKER_SCRIPT = new URL('./verify-worker.js', import.meta.url);

/** Two 1 MB semi-spaces, as SERVER_NODE_FLAGS give every isolate (the flag wins where both are set). */
const WORKER_YOUNG_GENERATION_MB = 3;

/** A lane on a worker thread of its own. */
export class WorkerLane implements VerifierLane {
  private readonly worker: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private death: Error | undefined;

  constructor(options: ExaminerOptions, script: URL = VERIFY_WORKER_SCRIPT) {
    // A small young generation: under a flood each worker's scavenger space would otherwise grow to tens of MB.
    this.worker = new Worker(script, { workerData: options, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
    this.worker.on('message', (message: FromWorker) => this.receive(message));
    this.worker.on('error', (error) => this.die(error));
    this.worker.on('exit', (code) => this.die(new Error(`verify worker exited with code ${code}`)));
  }

  examine(knocks: readonly TimedKnock[]): Promise<readonly Examination[]> {
    const packed = packKnocks(knocks);
    return this.request<readonly Examination[]>((batchId) => ({ kind: 'examine', batchId, knocks: packed }), [packed.bytes]);
  }

  updateTrust(trust: TrustOptions): Promise<void> {
    return this.request<void>((requestId) => ({ kind: 'trust', requestId, trust }), []);
  }

  async close(): Promise<void> {
    this.death ??= new Error('verify worker closed');
    await this.worker.terminate();
  }

  private request<Result>(message: (id: number) => ToWorker, transfer: ArrayBuffer[]): Promise<Result> {
    if (this.death) return Promise.reject(this.death);
    const id = this.nextId++;
    return new Promise<Result>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.postMessage(message(id), transfer);
    });
  }

  private receive(message: FromWorker): void {
    const id = message.kind === 'examined' ? message.batchId : message.requestId;
    const waiter = this.pending.get(id);
    if (waiter === undefined) return;
    this.pending.delete(id);
    switch (message.kind) {
      case 'examined':
        waiter.resolve(message.examinations.map(reviveExamination));
        return;
      case 'trust-applied':
        waiter.resolve(undefined);
        return;
      case 'trust-failed':
        waiter.reject(new Error(`verify worker refused the trust update: ${message.message}`));
        return;
    }
  }

  private die(error: Error): void {
    this.death ??= error;
    for (const waiter of this.pending.values()) waiter.reject(this.death);
    this.pending.clear();
  }
}

/** A lane that judges on the calling thread: the single-threaded path, and tests. */
export class InProcessLane implements VerifierLane {
  private readonly examiner: Examiner;

  constructor(options: ExaminerOptions) {
    this.examiner = new Examiner(options);
  }

  async examine(knocks: readonly TimedKnock[]): Promise<readonly Examination[]> {
    return this.examiner.examine(knocks);
  }

  async updateTrust(trust: TrustOptions): Promise<void> {
    this.examiner.updateTrust(trust);
  }

  async close(): Promise<void> {}
}

/** `workers` as configured: 0 means one per core. */
export function workerCountOf(configured: number): number {
  return configured === 0 ? availableParallelism() : configured;
}

export type WorkerPoolOptions = Omit<VerificationPoolOptions, 'createLane' | 'lanes'> &
  Omit<ExaminerOptions, 'trust'> & {
    /** Worker threads; 0 = one per core. */
    readonly workers: number;
    /** Judge on the main thread instead of worker threads (one lane). */
    readonly inProcess?: boolean;
    readonly workerScript?: URL;
  };

/** A pool of worker threads (or one in-process lane) each with its own examiner. */
export function createVerificationPool(options: WorkerPoolOptions): VerificationPool {
  const examinerOptions = (trust: TrustOptions): ExaminerOptions => ({
    serverPrivateKey: options.serverPrivateKey,
    serverCertificateDer: options.serverCertificateDer,
    settings: options.settings,
    trust,
    ...(options.ecdhCacheSize === undefined ? {} : { ecdhCacheSize: options.ecdhCacheSize }),
    ...(options.advisoryReplayCapacity === undefined ? {} : { advisoryReplayCapacity: options.advisoryReplayCapacity }),
  });
  return new VerificationPool({
    ...options,
    mac1Key: createServerContext(options.serverPrivateKey, options.serverCertificateDer).mac1Key,
    lanes: options.inProcess ? 1 : workerCountOf(options.workers),
    createLane: (trust) => (options.inProcess ? new InProcessLane(examinerOptions(trust)) : new WorkerLane(examinerOptions(trust), options.workerScript)),
  });
}
