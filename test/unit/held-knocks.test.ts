/**
 * Knocks captured while the start refresh of the CRL runs: the same cheap
 * checks as the pool before one is held, a bounded hold fair between
 * sources, every drop counted, and the held knocks judged after release as
 * of their capture time. Judged by a real in-process pool with the dev PKI.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildKnock } from '../../client-lib/knock.js';
import { caCertificatesOf, loadPkcs12File, type Pkcs12Bundle } from '../../client-lib/pkcs12.js';
import { parseAddress } from '../../client-lib/protocol/address.js';
import { createServerContext } from '../../client-lib/protocol/index.js';
import { parseServerCertificate, type ServerCertificate } from '../../client-lib/server-certificate.js';
import { ReplayCache } from '../../server/replay-cache.js';
import { createTrustState, parseCrl } from '../../server/trust/index.js';
import { KnockHold } from '../../server/verify/held-knocks.js';
import type { CapturedKnock, Verdict } from '../../server/verify/pipeline.js';
import { createVerificationPool } from '../../server/verify/worker-pool.js';
import { repoRoot } from '../helpers/fixtures.js';
import { testVerifierSettings } from '../helpers/verifier-settings.js';

const devPki = path.join(repoRoot, 'certificates', 'dev');
const now = Date.parse('2027-03-01T12:00:00Z');

let server: Pkcs12Bundle;
let serverCertificate: ServerCertificate;
let alice: Pkcs12Bundle;

beforeAll(() => {
  server = loadPkcs12File(path.join(devPki, 'server', 'devserver.pfx'), 'portknocking');
  serverCertificate = parseServerCertificate(readFileSync(path.join(devPki, 'server', 'devserver.cer')));
  alice = loadPkcs12File(path.join(devPki, 'client', 'alice.pfx'), 'portknocking');
});

function knockFromAlice(source: string, port = 22): CapturedKnock {
  const datagram = buildKnock({
    identity: alice,
    serverCertificate,
    ports: [{ protocol: 'tcp', port }],
    format: 'v2',
    clientAddress: Buffer.from(parseAddress(source)!),
    now: () => now,
  });
  return { datagram, source, frameLength: datagram.length + 42 };
}

/** A pool as the daemon builds it (in process), and a hold in front of it. */
function startingServer(capacity: number) {
  const caCertificates = caCertificatesOf(server).map((ca) => ca.raw);
  const crl = parseCrl(readFileSync(path.join(devPki, 'crl.der')), caCertificates);
  if (!crl.ok) throw new Error(`dev CRL: ${crl.reason}`);
  const verdicts: { source: string; verdict: Verdict }[] = [];
  const pool = createVerificationPool({
    workers: 1,
    inProcess: true,
    serverPrivateKey: server.privateKey,
    serverCertificateDer: server.certificateDer,
    settings: testVerifierSettings,
    trust: createTrustState({ caCertificates, crls: [crl.value], crlPolicy: 'require' }),
    replay: new ReplayCache(1000),
    now: () => now,
    onVerdict: (knock, verdict) => verdicts.push({ source: knock.source, verdict }),
  });
  const hold = new KnockHold(pool, createServerContext(server.privateKey, server.certificateDer).mac1Key, capacity);
  return { pool, hold, verdicts };
}

describe('knocks held during the start refresh of the CRL', () => {
  it('refuses junk with the cheap checks at once, never holding it; a valid knock waits and is judged after release', async () => {
    const { pool, hold, verdicts } = startingServer(8);
    const valid = knockFromAlice('198.18.0.2');
    const badMac1 = Buffer.from(valid.datagram);
    badMac1[badMac1.length - 1]! ^= 1;
    hold.submit({ datagram: Buffer.from('not a knock at all'), source: '198.18.1.1', frameLength: 900 }, now);
    hold.submit({ ...valid, datagram: badMac1, source: '198.18.1.2' }, now);
    hold.submit({ ...valid, datagram: valid.datagram.subarray(0, 100), source: '198.18.1.3' }, now);
    hold.submit(valid, now);
    await pool.idle();
    // Junk was judged (refused) right away and counted with every other refusal; the valid knock waits.
    expect(hold.counts()).toEqual({ held: 1, dropped: 0, refusedEarly: 3 });
    expect(verdicts.map(({ source, verdict }) => [source, verdict.accepted ? 'accepted' : verdict.reason])).toEqual([
      ['198.18.1.1', 'bad-magic'],
      ['198.18.1.2', 'bad-mac1'],
      ['198.18.1.3', 'too-short'],
    ]);
    expect(pool.stats()).toMatchObject({ received: 3, queued: 0 });

    expect(hold.release()).toEqual({ held: 1, dropped: 0, refusedEarly: 3 });
    await pool.idle();
    expect(verdicts.at(-1)).toMatchObject({ source: '198.18.0.2', verdict: { accepted: true } });
    // After the release, knocks go straight to the pool.
    hold.submit(knockFromAlice('198.18.0.2', 53), now);
    await pool.idle();
    expect(pool.stats().received).toBe(5);
    await pool.close();
  });

  it('holds a copy of each knock: the buffer capture reuses may change while it waits', async () => {
    const { pool, hold, verdicts } = startingServer(8);
    const valid = knockFromAlice('198.18.0.2');
    const reused = Buffer.from(valid.datagram);
    hold.submit({ ...valid, datagram: reused }, now);
    reused.fill(0);
    hold.release();
    await pool.idle();
    expect(verdicts).toMatchObject([{ source: '198.18.0.2', verdict: { accepted: true } }]);
    await pool.close();
  });

  it('holds at most its capacity, drops from the heaviest source and counts every drop', async () => {
    const { pool, hold, verdicts } = startingServer(4);
    // Copies of one valid knock pass the cheap checks (mac1 is not a signature): a replaying flooder.
    const flood = knockFromAlice('198.18.1.9');
    for (let copy = 0; copy < 50; copy += 1) hold.submit(flood, now);
    const legitimate = knockFromAlice('198.18.0.2');
    hold.submit(legitimate, now);
    expect(hold.counts()).toEqual({ held: 4, dropped: 47, refusedEarly: 0 });
    expect(pool.stats().received).toBe(0);

    expect(hold.release()).toMatchObject({ held: 4, dropped: 47 });
    await pool.idle();
    const judged = verdicts.map(({ source, verdict }) => `${source} ${verdict.accepted ? 'accepted' : verdict.reason}`);
    expect(judged).toContain('198.18.0.2 accepted');
    expect(judged.filter((line) => line === '198.18.1.9 accepted')).toHaveLength(1);
    expect(judged.filter((line) => line === '198.18.1.9 replay')).toHaveLength(2);
    await pool.close();
  });
});
