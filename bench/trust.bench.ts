/**
 * Cost of judging a knock's client certificate: a client not seen before,
 * a cached one, and the bare node:crypto parse + CA signature check as the
 * baseline, measured in the same run. Build, then:
 *   node dist/bench/trust.bench.js [clients]
 * Prints one JSON object. Certificates come from the test certificate zoo.
 */
import { X509Certificate } from 'node:crypto';
import { checkClientCertificate, createTrustState, trustCacheStats, type TrustState } from '../server/trust/index.js';
import { createAuthority, issueCertificate } from '../test/helpers/cert-zoo.js';
import { median } from './grants.js';

const now = new Date('2026-01-01T00:00:00Z');
const clientCount = Number(process.argv[2] ?? 500);
const rounds = 7;
const cachedPasses = 5;

function microsecondsPerCall(calls: number, run: () => void): number {
  const start = process.hrtime.bigint();
  run();
  return Number(process.hrtime.bigint() - start) / 1000 / calls;
}

function checkAll(state: TrustState, certificates: readonly Buffer[]): void {
  for (const der of certificates) {
    if (!checkClientCertificate(state, der, undefined, now.getTime()).ok) throw new Error('benchmark client rejected');
  }
}

async function main(): Promise<void> {
  if (!Number.isInteger(clientCount) || clientCount < 10) throw new Error('usage: trust.bench.js [clients >= 10]');
  const ca = await createAuthority({ now });
  const clients: Buffer[] = [];
  for (let index = 0; index < clientCount; index += 1) {
    clients.push((await issueCertificate(ca, { now, subject: `CN=bench client ${index}` })).der);
  }
  const options = { caCertificates: [ca.der], crlPolicy: 'warn' as const, cacheSize: clientCount };
  const caKey = new X509Certificate(ca.der).publicKey;

  // Rounds interleave the three measurements so that load from other processes hits all of them alike.
  const samples = { newClientUs: [] as number[], cachedClientUs: [] as number[], bareNodeParseVerifyUs: [] as number[] };
  let state = createTrustState(options);
  checkAll(state, clients);
  for (let round = 0; round < rounds; round += 1) {
    state = createTrustState(options);
    samples.newClientUs.push(microsecondsPerCall(clients.length, () => checkAll(state, clients)));
    samples.cachedClientUs.push(
      microsecondsPerCall(clients.length * cachedPasses, () => {
        for (let pass = 0; pass < cachedPasses; pass += 1) checkAll(state, clients);
      }),
    );
    samples.bareNodeParseVerifyUs.push(
      microsecondsPerCall(clients.length, () => {
        for (const der of clients) if (!new X509Certificate(der).verify(caKey)) throw new Error('baseline verify failed');
      }),
    );
  }

  const round = (value: number) => Math.round(value * 10) / 10;
  console.log(
    JSON.stringify({
      benchmark: 'trust',
      node: process.version,
      clients: clients.length,
      rounds,
      medianUsPerCheck: {
        newClient: round(median(samples.newClientUs)),
        cachedClient: round(median(samples.cachedClientUs)),
        bareNodeParseVerify: round(median(samples.bareNodeParseVerifyUs)),
      },
      lastRoundCache: trustCacheStats(state),
    }),
  );
}

await main();
