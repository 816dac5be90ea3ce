import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildKnock } from '../../client-lib/knock.js';
import { caCertificatesOf, loadPkcs12File, type Pkcs12Bundle } from '../../client-lib/pkcs12.js';
import { parseAddress } from '../../client-lib/protocol/address.js';
import { createServerContext } from '../../client-lib/protocol/index.js';
import { parseServerCertificate, type ServerCertificate } from '../../client-lib/server-certificate.js';
import { ReplayCache, ReplayJournal } from '../../server/replay-cache.js';
import { createTrustState, parseCrl, type TrustOptions, type TrustState } from '../../server/trust/index.js';
import { Examiner, trustOptionsOf, type ExaminerOptions, type TimedKnock } from '../../server/verify/examiner.js';
import type { CapturedKnock, Examination, Verdict } from '../../server/verify/pipeline.js';
import { InProcessLane, VerificationPool, WorkerLane, type VerifierLane } from '../../server/verify/worker-pool.js';
import { junkPackets } from '../../bench/junk.js';
import { repoRoot } from '../helpers/fixtures.js';
import { testVerifierSettings } from '../helpers/verifier-settings.js';

const devPki = path.join(repoRoot, 'certificates', 'dev');
/** The compiled worker: test/global-setup.ts builds dist/ before the tests run. */
const workerScript = new URL(`file://${path.join(repoRoot, 'dist', 'server', 'verify', 'verify-worker.js')}`);
const now = Date.parse('2027-03-01T12:00:00Z');
const settings = testVerifierSettings;

let server: Pkcs12Bundle;
let serverCertificate: ServerCertificate;
let caCertificates: Buffer[];
const clients: Record<string, Pkcs12Bundle> = {};

beforeAll(() => {
  server = loadPkcs12File(path.join(devPki, 'server', 'devserver.pfx'), 'portknocking');
  serverCertificate = parseServerCertificate(readFileSync(path.join(devPki, 'server', 'devserver.cer')));
  caCertificates = caCertificatesOf(server).map((ca) => ca.raw);
  for (const name of ['alice', 'mallory']) clients[name] = loadPkcs12File(path.join(devPki, 'client', `${name}.pfx`), 'portknocking');
});

function trustState(withCrl: boolean): TrustState {
  const crl = parseCrl(readFileSync(path.join(devPki, 'crl.der')), caCertificates);
  if (!crl.ok) throw new Error(`dev CRL: ${crl.reason}`);
  return createTrustState({ caCertificates, crl: withCrl ? crl.value : null, crlPolicy: 'warn' });
}

function examinerOptions(trust: TrustOptions): ExaminerOptions {
  return { serverPrivateKey: server.privateKey, serverCertificateDer: server.certificateDer, settings, trust };
}

function knockFrom(name: string, source = '198.18.0.2'): CapturedKnock {
  const datagram = buildKnock({
    identity: clients[name]!,
    serverCertificate,
    ports: [{ protocol: 'tcp', port: 22 }],
    format: 'v2',
    clientAddress: Buffer.from(parseAddress(source)!),
    now: () => now,
  });
  return { datagram, source, frameLength: datagram.length + 42 };
}

/** A verifier that answers only when the test says so, recording what it was given. */
class ManualLane implements VerifierLane {
  readonly batches: TimedKnock[][] = [];
  private readonly answers: Array<() => void> = [];
  trustUpdates = 0;

  examine(knocks: readonly TimedKnock[]): Promise<readonly Examination[]> {
    this.batches.push([...knocks]);
    return new Promise((resolve) =>
      this.answers.push(() =>
        resolve(knocks.map((knock) => ({ verdict: { accepted: false, reason: knock.datagram.toString() === 'junk' ? 'bad-mac1' : 'decrypt-failed' } }))),
      ),
    );
  }

  /** Answers the oldest batch; false when none is waiting. */
  answer(): boolean {
    const next = this.answers.shift();
    next?.();
    return next !== undefined;
  }

  async updateTrust(): Promise<void> {
    this.trustUpdates += 1;
  }

  async close(): Promise<void> {}
}

/** Lets the promise callbacks of answered batches run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

const junk = (source: string, label = 'junk'): CapturedKnock => ({ datagram: Buffer.from(label), source, frameLength: 900 });

function manualPool(lanes: ManualLane[], options: { queueCapacity?: number; maxBatch?: number; mac1Key?: Buffer } = {}) {
  const verdicts: Array<{ source: string; label: string; verdict: Verdict }> = [];
  let created = 0;
  const pool = new VerificationPool({
    createLane: () => lanes[created++]!,
    lanes: lanes.length,
    trust: trustState(false),
    replay: new ReplayCache(100),
    now: () => now,
    onVerdict: (knock, verdict) => verdicts.push({ source: knock.source, label: knock.datagram.toString(), verdict }),
    ...options,
  });
  return { pool, verdicts };
}

async function answerAll(lanes: ManualLane[], pool: VerificationPool): Promise<void> {
  for (let round = 0; round < 10_000; round += 1) {
    const answered = lanes.map((lane) => lane.answer()).some(Boolean);
    await settle();
    if (!answered && pool.stats().queued === 0) return;
  }
  throw new Error('the pool never ran dry');
}

describe('verification pool: queueing, fairness and counters (fake verifiers)', () => {
  it('with the mac1 key, refuses blind junk in submit(): it never takes a place in the queue or reaches a verifier', async () => {
    const lane = new ManualLane();
    const mac1Key = createServerContext(server.privateKey, server.certificateDer).mac1Key;
    const { pool, verdicts } = manualPool([lane], { mac1Key });
    const genuine = knockFrom('alice');
    const forged = Buffer.from(genuine.datagram);
    forged[forged.length - 1]! ^= 1;
    pool.submit({ ...genuine, datagram: forged }, now);
    pool.submit(junk('198.18.1.1', 'junk'), now);
    pool.submit(genuine, now);
    expect(verdicts.map((entry) => entry.verdict)).toEqual([
      expect.objectContaining({ accepted: false, reason: 'bad-mac1' }),
      expect.objectContaining({ accepted: false, reason: 'bad-magic' }),
    ]);
    expect(lane.batches.flat().map((knock) => knock.datagram)).toEqual([genuine.datagram]);
    expect(pool.stats()).toMatchObject({ received: 3, rejected: { 'bad-mac1': 1, 'bad-magic': 1 } });
  });

  it('never lets a lane hold more than two batches: the rest waits in the fair queue, then goes in larger batches', async () => {
    const lane = new ManualLane();
    const { pool } = manualPool([lane], { maxBatch: 4 });
    for (let index = 0; index < 20; index += 1) pool.submit(junk('198.18.1.1'), now);
    // The idle lane gets the first knock at once; while it judges, only a whole batch follows within the turn.
    expect(lane.batches.map((batch) => batch.length)).toEqual([1, 4]);
    expect(pool.stats()).toMatchObject({ received: 20, queued: 15, queuedPeak: 15 });
    lane.answer();
    await settle();
    expect(lane.batches.map((batch) => batch.length)).toEqual([1, 4, 4]);
    expect(pool.stats().queued).toBe(11);
  });

  it('sends a busy lane a partial batch at the end of the turn, not knock by knock', async () => {
    const lane = new ManualLane();
    const { pool } = manualPool([lane], { maxBatch: 4 });
    for (let index = 0; index < 3; index += 1) pool.submit(junk('198.18.1.1'), now);
    expect(lane.batches.map((batch) => batch.length)).toEqual([1]);
    await Promise.resolve();
    expect(lane.batches.map((batch) => batch.length)).toEqual([1, 2]);
    expect(pool.stats().queued).toBe(0);
  });

  it('hands a flooder its own turn only: a later source is judged before the flood backlog', async () => {
    const lane = new ManualLane();
    const { pool, verdicts } = manualPool([lane], { maxBatch: 1 });
    for (let index = 0; index < 10; index += 1) pool.submit(junk('198.18.1.1', `flood-${index}`), now);
    pool.submit(junk('198.18.0.2', 'legit'), now);
    await answerAll([lane], pool);
    const order = verdicts.map((entry) => entry.label);
    expect(order.slice(0, 4)).toEqual(['flood-0', 'flood-1', 'flood-2', 'legit']);
    expect(order.filter((label) => label.startsWith('flood-'))).toEqual(Array.from({ length: 10 }, (_, index) => `flood-${index}`));
  });

  it('when full, drops the newest of the heaviest source and counts it; the legitimate knock is judged', async () => {
    const lane = new ManualLane();
    const { pool, verdicts } = manualPool([lane], { queueCapacity: 8, maxBatch: 1 });
    for (let index = 0; index < 100; index += 1) pool.submit(junk('198.18.1.1', `flood-${index}`), now);
    expect(pool.submit(junk('fd00:18::2', 'legit'), now)).toBe(true);
    for (let index = 100; index < 150; index += 1) pool.submit(junk('198.18.1.1', `flood-${index}`), now);
    await answerAll([lane], pool);
    const stats = pool.stats();
    // Two batches went to the lane at once; eight waited; everything else from the flooder was dropped.
    expect(stats.dropped['queue-full']).toBe(151 - 2 - 8);
    expect(stats.received).toBe(151);
    expect(verdicts.map((entry) => entry.label)).toContain('legit');
    expect(verdicts).toHaveLength(10);
    expect(stats.rejected).toEqual({ 'decrypt-failed': 10 });
  });

  it('counts rejections by reason and drops after close', async () => {
    const lane = new ManualLane();
    const { pool } = manualPool([lane]);
    pool.submit(junk('198.18.1.1'), now);
    pool.submit(junk('198.18.1.2', 'other'), now);
    pool.submit(junk('198.18.1.3'), now);
    await answerAll([lane], pool);
    expect(pool.stats().rejected).toEqual({ 'bad-mac1': 2, 'decrypt-failed': 1 });
    const closed = pool.close();
    expect(pool.submit(junk('198.18.1.1'), now)).toBe(false);
    await closed;
    expect(pool.stats().dropped).toEqual({ 'queue-full': 0, 'verifier-failed': 0, closed: 1 });
  });

  it('spreads work over lanes, the least busy first', () => {
    const lanes = [new ManualLane(), new ManualLane()];
    const { pool } = manualPool(lanes, { maxBatch: 1 });
    for (let index = 0; index < 4; index += 1) pool.submit(junk(`198.18.1.${index}`), now);
    expect(lanes.map((lane) => lane.batches.length)).toEqual([2, 2]);
  });

  it('replaces a lane that dies and counts its knocks as dropped', async () => {
    const dead: VerifierLane = {
      examine: () => Promise.reject(new Error('worker crashed')),
      updateTrust: async () => undefined,
      close: async () => undefined,
    };
    const healthy = new ManualLane();
    const errors: string[] = [];
    const lanes = [dead, healthy];
    let created = 0;
    const pool = new VerificationPool({
      createLane: () => lanes[created++]!,
      lanes: 1,
      trust: trustState(false),
      replay: new ReplayCache(100),
      now: () => now,
      onVerdict: () => undefined,
      onError: (error) => errors.push(error.message),
    });
    pool.submit(junk('198.18.1.1'), now);
    await settle();
    pool.submit(junk('198.18.1.1'), now);
    await answerAll([healthy], pool);
    expect(errors).toEqual(['worker crashed']);
    expect(pool.stats()).toMatchObject({ laneRestarts: 1, dropped: { 'verifier-failed': 1 }, rejected: { 'bad-mac1': 1 } });
  });
});

describe('verification pool: replay exactness and trust updates (real verifiers)', () => {
  const started: VerificationPool[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((pool) => pool.close()));
  });

  function realPool(kind: 'in-process' | 'worker', lanes: number, trust: TrustState, collect: VerifierLane[] = [], replay = new ReplayCache(1000)) {
    const verdicts: Verdict[] = [];
    const pool = new VerificationPool({
      createLane: (options) => {
        const lane = kind === 'worker' ? new WorkerLane(examinerOptions(options), workerScript) : new InProcessLane(examinerOptions(options));
        collect.push(lane);
        return lane;
      },
      lanes,
      trust,
      replay,
      now: () => now,
      onVerdict: (_knock, verdict) => verdicts.push(verdict),
      maxBatch: 1,
    });
    started.push(pool);
    return { pool, verdicts, replay };
  }

  for (const kind of ['in-process', 'worker'] as const) {
    it(`accepts a knock exactly once however many ${kind} lanes judge copies of it`, async () => {
      const { pool, verdicts, replay } = realPool(kind, 3, trustState(true));
      const knock = knockFrom('alice');
      // maxBatch 1 and the least-busy rule put copies on every lane at once.
      for (let copy = 0; copy < 9; copy += 1) pool.submit({ ...knock, datagram: Buffer.from(knock.datagram) }, now);
      await pool.idle();
      expect(verdicts.filter((verdict) => verdict.accepted)).toHaveLength(1);
      expect(verdicts.filter((verdict) => !verdict.accepted && verdict.reason === 'replay')).toHaveLength(8);
      expect(replay.size).toBe(1);
      expect(pool.stats()).toMatchObject({ received: 9, accepted: 1, rejected: { replay: 8 } });
    });
  }

  for (const kind of ['in-process', 'worker'] as const) {
    it(`queues a copy of each knock (${kind} lane): the caller may reuse its buffer at once, as capture does`, async () => {
      const { pool, verdicts } = realPool(kind, 1, trustState(true));
      const reused = Buffer.alloc(2048);
      const submitFrom = (knock: CapturedKnock) => {
        knock.datagram.copy(reused);
        pool.submit({ ...knock, datagram: reused.subarray(0, knock.datagram.length) }, now);
      };
      // maxBatch 1 and one lane: the second and third knocks wait in the queue while the buffer is overwritten.
      submitFrom(knockFrom('alice'));
      submitFrom(knockFrom('alice', '198.18.0.3'));
      submitFrom(knockFrom('mallory', '198.18.0.4'));
      reused.fill(0);
      await pool.idle();
      expect(verdicts.map((verdict) => (verdict.accepted ? 'accepted' : verdict.reason))).toEqual(['accepted', 'accepted', 'revoked']);
    });
  }

  it('refuses a knock whose replay entry cannot be written, as a verdict, not an unhandled rejection', async () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'sknock-journal-'));
    try {
      const journal = new ReplayJournal(path.join(folder, 'replay-cache'));
      journal.close();
      const { pool, verdicts } = realPool('in-process', 1, trustState(true), [], new ReplayCache(1000, { journal }));
      pool.submit(knockFrom('alice'), now);
      await pool.idle();
      expect(verdicts).toMatchObject([{ accepted: false, reason: 'replay-journal-failed' }]);
      expect(pool.stats()).toMatchObject({ accepted: 0, rejected: { 'replay-journal-failed': 1 } });
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('puts a new trust state (a CRL that revokes a client) in force in every worker', async () => {
    const lanes: VerifierLane[] = [];
    const { pool, verdicts } = realPool('worker', 2, trustState(false), lanes);
    const examineOnEach = async () =>
      Promise.all(lanes.map(async (lane) => (await lane.examine([{ ...knockFrom('mallory'), receivedAtMs: now }]))[0]!.verdict));

    const before = await examineOnEach();
    expect(before.map((verdict) => verdict.accepted)).toEqual([true, true]);
    await pool.updateTrust(trustState(true));
    const after = await examineOnEach();
    expect(after.map((verdict) => (verdict.accepted ? 'accepted' : verdict.reason))).toEqual(['revoked', 'revoked']);

    // And through the pool: alice still passes, mallory does not.
    pool.submit(knockFrom('alice'), now);
    pool.submit(knockFrom('mallory', '198.18.0.3'), now);
    await pool.idle();
    expect(verdicts.map((verdict) => (verdict.accepted ? 'accepted' : verdict.reason)).sort()).toEqual(['accepted', 'revoked']);
  });
});

describe('examiner: the ECDH memo keeps only the points of knocks that passed', () => {
  const timed = (knock: CapturedKnock): TimedKnock => ({ ...knock, receivedAtMs: now });
  const examiner = () => new Examiner(examinerOptions(trustOptionsOf(trustState(true))));

  it('keeps nothing for informed junk (valid points, correct mac1) nor for a knock that opens but is refused', () => {
    const verifier = examiner();
    const junk = junkPackets('informed', 20, server.certificateDer).map((datagram) => timed({ datagram, source: '198.18.1.1', frameLength: datagram.length + 42 }));
    const reasons = verifier.examine(junk).map(({ verdict }) => (verdict.accepted ? 'accepted' : verdict.reason));
    expect(reasons).toEqual(Array(20).fill('decrypt-failed'));
    // mallory is in the dev CRL: the knock opens (an ECDH), then its certificate is refused.
    expect(verifier.examine([timed(knockFrom('mallory'))])[0]!.verdict).toMatchObject({ accepted: false, reason: 'revoked' });
    expect(verifier.ecdhMemoStats()).toMatchObject({ size: 0, hits: 0, misses: 21 });
  });

  it("keeps a passed knock's point: a copy of it skips the ECDH and is refused as a replay", () => {
    const verifier = examiner();
    const knock = timed(knockFrom('alice'));
    expect(verifier.examine([knock])[0]).toHaveProperty('replayKey');
    const copy = verifier.examine([{ ...knock, datagram: Buffer.from(knock.datagram) }])[0]!;
    expect(copy.verdict).toMatchObject({ accepted: false, reason: 'replay' });
    expect(verifier.ecdhMemoStats()).toMatchObject({ size: 1, hits: 1, misses: 1 });
  });
});
