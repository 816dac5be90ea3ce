/**
 * One verifier's private state and the batch step every verifier runs, in a
 * worker thread (verify-worker.ts) or in process: its own ServerContext
 * (ECDH with the key set once), its own TrustState (and so its own
 * verified-certificate cache), and an advisory replay view. The replay
 * decision itself is never made here: see decideReplay in pipeline.ts.
 */
import type { KeyObject } from 'node:crypto';
import { createServerContext, type ServerContext } from '../../client-lib/protocol/index.js';
import { ReplayCache } from '../replay-cache.js';
import { createTrustState, prepareIssuerTables, type TrustOptions, type TrustState } from '../trust/index.js';
import { BoundedCache, type CacheStats } from '../trust/verified-cache.js';
import { examineKnock, type CapturedKnock, type Examination, type ExaminerState, type VerifierSettings } from './pipeline.js';

/** A captured knock and when it was captured: the time it is judged at, however long it queued. */
export interface TimedKnock extends CapturedKnock {
  readonly receivedAtMs: number;
}

export interface ExaminerOptions {
  readonly serverPrivateKey: KeyObject;
  readonly serverCertificateDer: Buffer;
  readonly settings: VerifierSettings;
  readonly trust: TrustOptions;
  /** Shared secrets kept per ephemeral point of knocks that passed; 0 turns the memo off. */
  readonly ecdhCacheSize?: number;
  /** Replay keys this verifier passed, remembered to refuse copies early; 0 turns it off. */
  readonly advisoryReplayCapacity?: number;
}

export const DEFAULT_ECDH_CACHE_SIZE = 1024;
export const DEFAULT_ADVISORY_REPLAY_CAPACITY = 50_000;

/**
 * ECDH results per ephemeral point, kept only for knocks that passed every
 * check: a replayed genuine knock then costs an HMAC and an AES-GCM check
 * (and is refused by the advisory replay view) instead of a scalar
 * multiplication. The secret depends on the point alone, so the memo is
 * exact. Points of refused knocks are not kept: anyone with the server
 * certificate makes distinct valid points cheaply, so keeping them saves no
 * work under a flood, and each kept entry lived long enough to be promoted
 * to the old generation, which made it most of a verifier's heap growth
 * under informed junk.
 */
class EcdhMemo {
  readonly context: ServerContext;
  private readonly secrets: BoundedCache<Buffer>;
  /** The point agreed for the knock being examined (two fields: no object per ECDH), until remember() or forget(). */
  private agreedKey: string | undefined;
  private agreedSecret: Buffer | undefined;

  constructor(context: ServerContext, capacity: number) {
    this.secrets = new BoundedCache<Buffer>(capacity);
    this.context = capacity === 0 ? context : { ...context, agree: (point) => this.agree(context, point) };
  }

  private agree(context: ServerContext, point: Buffer): Buffer | undefined {
    const key = point.toString('latin1');
    const known = this.secrets.get(key);
    if (known !== undefined) return known;
    const secret = context.agree(point);
    if (secret !== undefined) {
      this.agreedKey = key;
      this.agreedSecret = secret;
    }
    return secret;
  }

  /** The knock just examined passed: keep its point's secret for its copies. */
  remember(): void {
    if (this.agreedKey !== undefined && this.agreedSecret !== undefined) this.secrets.set(this.agreedKey, this.agreedSecret);
    this.forget();
  }

  forget(): void {
    this.agreedKey = undefined;
    this.agreedSecret = undefined;
  }

  stats(): CacheStats {
    return this.secrets.stats();
  }
}

/** A trust state for a verifier: its CAs verify new clients' certificates with precomputed tables. */
function judgingTrustState(options: TrustOptions): TrustState {
  const state = createTrustState(options);
  prepareIssuerTables(state);
  return state;
}

/** A replay view that never remembers: for a verifier told not to keep one. */
const forgetfulReplayView = { has: () => false };

export class Examiner {
  private readonly ecdh: EcdhMemo;
  private readonly settings: VerifierSettings;
  private trust: TrustState;
  private readonly advisoryReplay: ReplayCache | undefined;

  constructor(options: ExaminerOptions) {
    this.ecdh = new EcdhMemo(createServerContext(options.serverPrivateKey, options.serverCertificateDer), options.ecdhCacheSize ?? DEFAULT_ECDH_CACHE_SIZE);
    this.settings = options.settings;
    this.trust = judgingTrustState(options.trust);
    const replayCapacity = options.advisoryReplayCapacity ?? DEFAULT_ADVISORY_REPLAY_CAPACITY;
    this.advisoryReplay = replayCapacity > 0 ? new ReplayCache(replayCapacity) : undefined;
  }

  /** The ECDH memo's hits, misses and size. */
  ecdhMemoStats(): CacheStats {
    return this.ecdh.stats();
  }

  /** A new trust state (new CRL or CAs) for every knock examined from now on; its cache starts empty. */
  updateTrust(options: TrustOptions): void {
    this.trust = judgingTrustState(options);
  }

  examine(knocks: readonly TimedKnock[]): Examination[] {
    const state: ExaminerState = { server: this.ecdh.context, trust: this.trust, settings: this.settings, replay: this.advisoryReplay ?? forgetfulReplayView };
    return knocks.map((knock) => {
      const examination = examineKnock(knock, knock.receivedAtMs, state);
      if (!('replayKey' in examination)) {
        this.ecdh.forget();
        return examination;
      }
      this.ecdh.remember();
      if (this.advisoryReplay && !this.advisoryReplay.isFull(knock.receivedAtMs)) {
        this.advisoryReplay.add(examination.replayKey, examination.replayExpiresAtMs);
      }
      return examination;
    });
  }
}

/** What a TrustState was built from: sent to every verifier, which builds its own state and cache from it. */
export function trustOptionsOf(state: TrustState): TrustOptions {
  return {
    caCertificates: state.anchors.map((anchor) => anchor.der),
    intermediates: state.intermediates.map((intermediate) => intermediate.certificate.der),
    crls: state.crls,
    crlPolicy: state.crlPolicy,
    cacheSize: state.cache.capacity,
  };
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Trust options after a structured clone (postMessage), whose Buffers arrive
 * as plain Uint8Arrays (Sets, bigints and KeyObjects survive as they are).
 */
export function reviveTrustOptions(cloned: TrustOptions): TrustOptions {
  const revive = (crl: NonNullable<TrustOptions['crl']>): NonNullable<TrustOptions['crl']> => ({ ...crl, der: asBuffer(crl.der), issuerNameDer: asBuffer(crl.issuerNameDer) });
  return {
    ...cloned,
    caCertificates: cloned.caCertificates.map(asBuffer),
    intermediates: (cloned.intermediates ?? []).map(asBuffer),
    crls: (cloned.crls ?? []).map(revive),
    crl: cloned.crl ? revive(cloned.crl) : null,
  };
}

/** Examiner options after a structured clone (workerData). */
export function reviveExaminerOptions(cloned: ExaminerOptions): ExaminerOptions {
  return { ...cloned, serverCertificateDer: asBuffer(cloned.serverCertificateDer), trust: reviveTrustOptions(cloned.trust) };
}

/** An examination after a structured clone: its replay key back as a Buffer. */
export function reviveExamination(cloned: Examination): Examination {
  return 'replayKey' in cloned ? { ...cloned, replayKey: asBuffer(cloned.replayKey) } : cloned;
}
