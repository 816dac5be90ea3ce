/**
 * Verification throughput against its physical bound, all measured in one
 * run: `openssl speed` (P-256 ECDH and ECDSA verify), the same operations
 * through node:crypto, the pipeline in process, and the worker pool with
 * one worker and with one per core.
 */
import { createECDH, createPublicKey, diffieHellman, generateKeyPairSync, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseAddress } from '../client-lib/protocol/address.js';
import { buildV2Knock } from '../client-lib/protocol/index.js';
import { ReplayCache } from '../server/replay-cache.js';
import { createTrustState, parseCrl } from '../server/trust/index.js';
import { Examiner, trustOptionsOf, type TimedKnock } from '../server/verify/examiner.js';
import type { VerifierSettings } from '../server/verify/pipeline.js';
import { createVerificationPool } from '../server/verify/worker-pool.js';
import { run } from './netns.js';
import { median } from './grants.js';
import { BENCH_SERVICE_PORT, type BenchPki, type ClientIdentity } from './pki.js';

const SOURCE = '198.18.0.2';
export const benchSettings: VerifierSettings = {
  minFrameLength: 800,
  legacyKnocks: true,
  allowSourceAddressMode: false,
  timestampWindowMs: 7000,
  grantDurationSeconds: 15,
  maxGrantDurationSeconds: 3600,
};

export interface OpensslBound {
  readonly ecdh_per_s: number;
  readonly ecdsa_verify_per_s: number;
}

/** `openssl speed` for P-256 ECDH and ECDSA; its summary lines are parsed. */
export async function opensslSpeed(seconds: number): Promise<OpensslBound> {
  const text = await run('openssl', ['speed', '-seconds', String(seconds), 'ecdhp256', 'ecdsap256'], 120_000);
  const ecdsa = /256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)/.exec(text);
  const ecdh = /256 bits ecdh \(nistp256\)\s+\S+\s+([\d.]+)/.exec(text);
  if (!ecdsa || !ecdh) throw new Error(`cannot parse openssl speed output:\n${text}`);
  return { ecdh_per_s: Number(ecdh[1]), ecdsa_verify_per_s: Number(ecdsa[2]) };
}

/** Knocks per second when each costs one ECDH and `verifies` ECDSA verifications at these rates. */
export function knockBound(rates: OpensslBound, verifies: number): number {
  return 1 / (1 / rates.ecdh_per_s + verifies / rates.ecdsa_verify_per_s);
}

/**
 * A round's rate per second of wall-clock time, and per second of CPU time
 * the whole process spent meanwhile (every thread: main, workers, V8's own).
 * `openssl speed` divides by its CPU time, not by the clock (a busy loop
 * pinned beside it leaves its figure unchanged; with -elapsed it halves), so
 * the CPU rate is the one measured in the bound's own unit: it charges every
 * thread's work to the knocks and none of another process's.
 */
export interface RoundRate {
  readonly per_s: number;
  readonly per_cpu_s: number;
}

/** Starts timing a round; the function it returns ends the round with the count of what was done. */
function timeRound(): (count: number) => RoundRate {
  const wallStart = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  return (count) => {
    const wallSeconds = Number(process.hrtime.bigint() - wallStart) / 1e9;
    const cpu = process.cpuUsage(cpuStart);
    return { per_s: count / wallSeconds, per_cpu_s: count / ((cpu.user + cpu.system) / 1e6) };
  };
}

/** Operations per CPU-second, as `openssl speed` counts them (see RoundRate). */
function operationsPerSecond(seconds: number, operation: () => void): number {
  let count = 0;
  const endRound = timeRound();
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() - start < budget) {
    for (let index = 0; index < 50; index += 1) operation();
    count += 50;
  }
  return endRound(count).per_cpu_s;
}

/** The same operations through node:crypto: the best path found, and the per-packet key import it replaced. */
export function nodeCryptoBaseline(seconds: number) {
  const server = createECDH('prime256v1');
  server.generateKeys();
  const peers = Array.from({ length: 256 }, () => {
    const peer = createECDH('prime256v1');
    peer.generateKeys();
    return peer.getPublicKey();
  });
  const serverKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const signer = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const message = Buffer.alloc(700, 7);
  const signature = sign('sha256', message, signer.privateKey);
  const spki = signer.publicKey.export({ format: 'der', type: 'spki' });
  let next = 0;
  const ecdhRawPoint = operationsPerSecond(seconds, () => server.computeSecret(peers[next++ % peers.length]!));
  const ecdhKeyObjectPerPacket = operationsPerSecond(seconds, () => {
    const point = peers[next++ % peers.length]!;
    const publicKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }, format: 'jwk' });
    diffieHellman({ privateKey: serverKey, publicKey });
  });
  const verifyCachedKey = operationsPerSecond(seconds, () => verify('sha256', message, signer.publicKey, signature));
  const verifyKeyImportPerPacket = operationsPerSecond(seconds, () => verify('sha256', message, createPublicKey({ key: spki, format: 'der', type: 'spki' }), signature));
  return { ecdh_raw_point_per_s: ecdhRawPoint, ecdh_keyobject_per_packet_per_s: ecdhKeyObjectPerPacket, ecdsa_verify_cached_key_per_s: verifyCachedKey, ecdsa_verify_key_import_per_packet_per_s: verifyKeyImportPerPacket };
}

function knocksFrom(pki: BenchPki, clients: readonly ClientIdentity[], nowMs: number): TimedKnock[] {
  return clients.map((client) => {
    const datagram = buildV2Knock({
      serverCertificateDer: pki.server.certificateDer,
      ports: [{ protocol: 'tcp', port: BENCH_SERVICE_PORT }],
      clientAddress: Buffer.from(parseAddress(SOURCE)!),
      timestampMs: nowMs,
      certificateDer: client.certificateDer,
      signer: client.privateKey,
    });
    return { datagram, source: SOURCE, frameLength: datagram.length + 42, receivedAtMs: nowMs };
  });
}

function trustOf(pki: BenchPki) {
  const crl = parseCrl(readFileSync(pki.crlFile), pki.caCertificates);
  if (!crl.ok) throw new Error(`bench CRL: ${crl.reason}`);
  return createTrustState({ caCertificates: [...pki.caCertificates], crl: crl.value, crlPolicy: 'require' });
}

/** The benchmark's own garbage (building knocks is client work) collected before a measured round; run.ts exposes gc(). */
function collectBenchGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/**
 * Measurement rounds per figure: the median is reported, so one noisy round
 * (GC, a neighbour) does not decide it. Five, not three: on this host four
 * probe runs of the same code, each the median of three paired rounds, gave
 * two-worker ratios from 1.39 to 1.91.
 */
export const MEASUREMENT_ROUNDS = 5;

/** `clients` cut into `rounds` slices of equal size: each round's knocks come from clients no verifier has seen. */
function slices<T>(items: readonly T[], rounds: number): T[][] {
  const size = Math.floor(items.length / rounds);
  return Array.from({ length: rounds }, (_, index) => items.slice(index * size, (index + 1) * size));
}

/** Rates of a figure's rounds, in order, and their medians. */
export interface RatesOfRounds {
  readonly per_s: readonly number[];
  readonly per_cpu_s: readonly number[];
  readonly median_per_s: number;
  readonly median_per_cpu_s: number;
}

function ratesOf(rounds: readonly RoundRate[]): RatesOfRounds {
  const perSecond = rounds.map((rate) => rate.per_s);
  const perCpuSecond = rounds.map((rate) => rate.per_cpu_s);
  return { per_s: perSecond, per_cpu_s: perCpuSecond, median_per_s: median(perSecond), median_per_cpu_s: median(perCpuSecond) };
}

/**
 * How a verifier is warmed before it is measured. V8 optimizes a small
 * function only after thousands of calls: with 2,500 warm knocks per worker,
 * a dozen functions of the new-client path (isIssuedBy, checkV2Envelope, …)
 * were still being compiled for the first time during the measured rounds,
 * on V8's background threads. Each pass over the warm clients follows a
 * trust update, which starts every verifier with an empty certificate cache,
 * so the same clients take the new-client path again without issuing more
 * certificates.
 */
export interface Warmup {
  /** New clients, distinct per verifier set (the pools' caches must not know the measured ones). */
  readonly clients: readonly ClientIdentity[];
  /** New-client passes over them. */
  readonly newClientPasses: number;
}

/**
 * Knocks per second through the pipeline on this thread: new clients (the
 * median of MEASUREMENT_ROUNDS rounds of distinct clients), then the same
 * clients again.
 */
export function inProcessThroughput(pki: BenchPki, clients: readonly ClientIdentity[], warmup: Warmup) {
  const examiner = new Examiner({ serverPrivateKey: pki.server.privateKey, serverCertificateDer: pki.server.certificateDer, settings: benchSettings, trust: trustOptionsOf(trustOf(pki)) });
  const examineAll = (group: readonly ClientIdentity[]): RoundRate => {
    const knocks = knocksFrom(pki, group, Date.now());
    collectBenchGarbage();
    const endRound = timeRound();
    const accepted = examiner.examine(knocks).filter((examination) => examination.verdict.accepted).length;
    const rate = endRound(knocks.length);
    if (accepted !== knocks.length) throw new Error(`only ${accepted} of ${knocks.length} benchmark knocks were accepted`);
    return rate;
  };
  for (let pass = 0; pass < warmup.newClientPasses; pass += 1) {
    examiner.updateTrust(trustOptionsOf(trustOf(pki)));
    examineAll(warmup.clients);
  }
  examineAll(warmup.clients);
  const rounds = slices(clients, MEASUREMENT_ROUNDS);
  return { new: ratesOf(rounds.map(examineAll)), repeat: ratesOf(rounds.map(examineAll)) };
}

export interface PoolSetup {
  readonly workers: number;
  readonly warmup: Warmup;
}

export interface PoolRates {
  readonly workers: number;
  /** Round r of every pool ran back to back. */
  readonly new: RatesOfRounds;
  readonly repeat: RatesOfRounds;
}

/** A pool under measurement: submit a group of knocks, wait until every one is judged. */
async function benchPool(pki: BenchPki, setup: PoolSetup, queueCapacity: number) {
  const replay = new ReplayCache(1_000_000);
  let accepted = 0;
  let submitted = 0;
  const pool = createVerificationPool({
    workers: setup.workers,
    serverPrivateKey: pki.server.privateKey,
    serverCertificateDer: pki.server.certificateDer,
    settings: benchSettings,
    trust: trustOf(pki),
    replay,
    now: Date.now,
    onVerdict: (_knock, verdict) => void (verdict.accepted && (accepted += 1)),
    queueCapacity,
  });
  const submitAll = async (group: readonly ClientIdentity[]): Promise<RoundRate> => {
    const knocks = knocksFrom(pki, group, Date.now());
    submitted += knocks.length;
    collectBenchGarbage();
    const endRound = timeRound();
    for (const knock of knocks) pool.submit(knock, knock.receivedAtMs);
    await pool.idle();
    return endRound(knocks.length);
  };
  const check = (): void => {
    if (accepted !== submitted) throw new Error(`the pool accepted ${accepted} of ${submitted} benchmark knocks`);
  };
  return { pool, submitAll, check };
}

/**
 * Knocks per second through worker pools (submit, judge, replay decision),
 * new and repeat clients, each the median of MEASUREMENT_ROUNDS rounds.
 * The pools are warmed, then measured, in turns: round r runs on each pool
 * before round r + 1 on any, so the one-worker and all-core rounds of a
 * pair run seconds apart, not minutes, and their ratio per round cancels
 * the machine's drift. Every knock carries the time it was built, so the
 * run never ages out of the timestamp window.
 */
export async function poolThroughputs(pki: BenchPki, clients: readonly ClientIdentity[], setups: readonly PoolSetup[]): Promise<PoolRates[]> {
  const pools = await Promise.all(setups.map((setup) => benchPool(pki, setup, Math.max(clients.length, setup.warmup.clients.length) * 2)));
  try {
    // Pass p of every pool before pass p + 1 of any: no pool waits through the other's whole warm-up before its rounds
    // (in one probe the pool that had waited was ≈ 25 % slower in its first round than in its third; the cause was not found).
    const passes = async (count: (setup: PoolSetup) => number, group: (setup: PoolSetup) => readonly ClientIdentity[], before?: (index: number) => Promise<void>): Promise<void> => {
      const most = Math.max(...setups.map(count));
      for (let pass = 0; pass < most; pass += 1) {
        for (const [index, setup] of setups.entries()) {
          if (pass >= count(setup)) continue;
          await before?.(index);
          await pools[index]!.submitAll(group(setup));
        }
      }
    };
    await passes(
      (setup) => setup.warmup.newClientPasses,
      (setup) => setup.warmup.clients,
      (index) => pools[index]!.pool.updateTrust(trustOf(pki)),
    );
    // Then the repeat path: with more passes than workers, most clients reach every worker's cache.
    await passes((setup) => setup.workers * 2, (setup) => setup.warmup.clients);
    const rounds = slices(clients, MEASUREMENT_ROUNDS);
    const newRates = setups.map((): RoundRate[] => []);
    for (const round of rounds) for (const [index, bench] of pools.entries()) newRates[index]!.push(await bench.submitAll(round));
    // Every worker has its own cache: warm each client into all of them.
    await passes((setup) => setup.workers * 2, () => clients);
    const repeatRates = setups.map((): RoundRate[] => []);
    for (const round of rounds) for (const [index, bench] of pools.entries()) repeatRates[index]!.push(await bench.submitAll(round));
    for (const bench of pools) bench.check();
    return setups.map((_setup, index) => ({ workers: pools[index]!.pool.stats().lanes, new: ratesOf(newRates[index]!), repeat: ratesOf(repeatRates[index]!) }));
  } finally {
    await Promise.all(pools.map((bench) => bench.pool.close()));
  }
}

/** The median over rounds of `numerator[r] / denominator[r]`: rates measured back to back. */
export function pairedRatio(numerator: readonly number[], denominator: readonly number[]): number {
  return median(numerator.map((value, index) => value / denominator[index]!));
}

export const allCores = (): number => availableParallelism();
