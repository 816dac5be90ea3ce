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

function operationsPerSecond(seconds: number, operation: () => void): number {
  let count = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() - start < budget) {
    for (let index = 0; index < 50; index += 1) operation();
    count += 50;
  }
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
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

function perSecond(count: number, start: bigint): number {
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
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

/**
 * Knocks per second through the pipeline on this thread: new clients (the
 * median of MEASUREMENT_ROUNDS rounds of distinct clients), then the same
 * clients again. `warmClients` first, so that the code is compiled.
 */
export function inProcessThroughput(pki: BenchPki, clients: readonly ClientIdentity[], warmClients: readonly ClientIdentity[]) {
  const examiner = new Examiner({ serverPrivateKey: pki.server.privateKey, serverCertificateDer: pki.server.certificateDer, settings: benchSettings, trust: trustOptionsOf(trustOf(pki)) });
  const examineAll = (group: readonly ClientIdentity[]) => {
    const knocks = knocksFrom(pki, group, Date.now());
    collectBenchGarbage();
    const start = process.hrtime.bigint();
    const accepted = examiner.examine(knocks).filter((examination) => examination.verdict.accepted).length;
    const rate = perSecond(knocks.length, start);
    if (accepted !== knocks.length) throw new Error(`only ${accepted} of ${knocks.length} benchmark knocks were accepted`);
    return rate;
  };
  examineAll(warmClients);
  examineAll(warmClients);
  const rounds = slices(clients, MEASUREMENT_ROUNDS);
  const newPerSecond = median(rounds.map(examineAll));
  const repeatPerSecond = median(rounds.map(examineAll));
  return { new_per_s: newPerSecond, repeat_per_s: repeatPerSecond };
}

export interface PoolSetup {
  readonly workers: number;
  /** New clients that compile the pool's code before it is measured (distinct per pool). */
  readonly warmClients: readonly ClientIdentity[];
}

export interface PoolRates {
  readonly workers: number;
  /** One rate per measurement round, in order: round r of every pool ran back to back. */
  readonly new_rates: readonly number[];
  readonly repeat_rates: readonly number[];
  readonly new_per_s: number;
  readonly repeat_per_s: number;
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
  const submitAll = async (group: readonly ClientIdentity[]): Promise<number> => {
    const knocks = knocksFrom(pki, group, Date.now());
    submitted += knocks.length;
    collectBenchGarbage();
    const start = process.hrtime.bigint();
    for (const knock of knocks) pool.submit(knock, knock.receivedAtMs);
    await pool.idle();
    return perSecond(knocks.length, start);
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
  const pools = await Promise.all(setups.map((setup) => benchPool(pki, setup, clients.length * 2 + setup.warmClients.length)));
  try {
    // Pass p of every pool before pass p + 1 of any: no pool waits through the other's whole warm-up before its rounds
    // (in one probe the pool that had waited was ≈ 25 % slower in its first round than in its third; the cause was not found).
    const passes = async (count: (setup: PoolSetup) => number, group: (setup: PoolSetup) => readonly ClientIdentity[]): Promise<void> => {
      const most = Math.max(...setups.map(count));
      for (let pass = 0; pass < most; pass += 1) {
        for (const [index, setup] of setups.entries()) if (pass < count(setup)) await pools[index]!.submitAll(group(setup));
      }
    };
    // Workers start and compile their code on the first knocks, new and repeat: not part of the figures.
    await passes((setup) => 1 + setup.workers * 2, (setup) => setup.warmClients);
    const rounds = slices(clients, MEASUREMENT_ROUNDS);
    const newRates = setups.map((): number[] => []);
    for (const round of rounds) for (const [index, bench] of pools.entries()) newRates[index]!.push(await bench.submitAll(round));
    // Every worker has its own cache: warm each client into all of them (with more passes than workers, most land everywhere).
    await passes((setup) => setup.workers * 2, () => clients);
    const repeatRates = setups.map((): number[] => []);
    for (const round of rounds) for (const [index, bench] of pools.entries()) repeatRates[index]!.push(await bench.submitAll(round));
    for (const bench of pools) bench.check();
    return setups.map((setup, index) => ({
      workers: pools[index]!.pool.stats().lanes,
      new_rates: newRates[index]!,
      repeat_rates: repeatRates[index]!,
      new_per_s: median(newRates[index]!),
      repeat_per_s: median(repeatRates[index]!),
    }));
  } finally {
    await Promise.all(pools.map((bench) => bench.pool.close()));
  }
}

/** The median over rounds of `numerator[r] / denominator[r]`: rates measured back to back. */
export function pairedRatio(numerator: readonly number[], denominator: readonly number[]): number {
  return median(numerator.map((value, index) => value / denominator[index]!));
}

export const allCores = (): number => availableParallelism();
