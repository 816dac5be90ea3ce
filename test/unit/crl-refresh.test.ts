/**
 * The CRL refresher against real HTTP(S) servers on 127.0.0.1, with CRLs from
 * a throw-away CA made by sknock-ca in-process. Each failure keeps the CRL
 * in force, leaves crlFile alone and logs exactly one warning with its reason.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCrlServer } from '../../certificates/ca/crl-server.js';
import {
  cronExpressionOf,
  CrlRefresher,
  isRefreshDue,
  judgeCrl,
  type CrlSources,
  type RefreshAttempt,
} from '../../server/crl-refresh.js';
import { crlFileBytes, readCrlFile } from '../../server/crl-file.js';
import { createLogger } from '../../server/log.js';
import { checkClientCertificate, compareCrlAge, createTrustState, parseCrl, type VerifiedCrl } from '../../server/trust/index.js';
import { loadPkcs12File } from '../../client-lib/pkcs12.js';
import { makeSampleCa, runCaOk, temporaryDirectories, testNow, testPassword } from './ca-harness.js';
import { createAuthority, issueCrl } from '../helpers/cert-zoo.js';

const directories = temporaryDirectories();
let caDir: string;
let caCertificate: Buffer;
/** CRL number 1 (nothing revoked) and 2 (alice revoked), DER. */
let crlOne: Buffer;
let crlTwo: Buffer;
/** Same CA name, another key. */
let foreignCrl: Buffer;

beforeAll(async () => {
  caDir = await makeSampleCa(await directories.make());
  caCertificate = await readFile(path.join(caDir, 'ca.cer'));
  await runCaOk(['crl', '--dir', caDir]);
  crlOne = await readFile(path.join(caDir, 'crl.der'));
  await runCaOk(['revoke', '--dir', caDir, '--name', 'alice']);
  await runCaOk(['crl', '--dir', caDir], { now: new Date(testNow.getTime() + 60_000) });
  crlTwo = await readFile(path.join(caDir, 'crl.der'));
  const impostor = path.join(await directories.make(), 'ca');
  await runCaOk(['init', '--dir', impostor, '--cn', 'Test CA']);
  await runCaOk(['crl', '--dir', impostor]);
  foreignCrl = await readFile(path.join(impostor, 'crl.der'));
}, 120_000);
afterAll(() => directories.removeAll());

/** DER CRLs as one PEM body, as a URL may serve several. */
function pemOf(...ders: readonly Buffer[]): string {
  return ders.map((der) => `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`).join('');
}

function verified(bytes: Buffer, caCertificates: readonly Buffer[] = [caCertificate]): VerifiedCrl {
  const parsed = parseCrl(bytes, caCertificates);
  if (!parsed.ok) throw new Error(`test CRL does not verify: ${parsed.reason}`);
  return parsed.value;
}

// ---------------------------------------------------------------------------
// Servers

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

interface TestServer {
  readonly url: string;
  readonly requests: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function listen(server: http.Server | https.Server, scheme: 'http' | 'https', requests: http.IncomingHttpHeaders[]): Promise<TestServer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const started: TestServer = {
    url: `${scheme}://127.0.0.1:${port}/crl.der`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(started);
  return started;
}

async function serve(handler: Handler): Promise<TestServer> {
  const requests: http.IncomingHttpHeaders[] = [];
  return listen(
    http.createServer((request, response) => {
      requests.push(request.headers);
      handler(request, response);
    }),
    'http',
    requests,
  );
}

const body = (bytes: Buffer | string, headers: http.OutgoingHttpHeaders = {}): Handler => (_request, response) => {
  response.writeHead(200, { 'content-type': 'application/pkix-crl', ...headers });
  response.end(bytes);
};

/** A URL nothing listens on: a server started and closed again. */
async function deadUrl(): Promise<string> {
  const server = await serve(body(crlTwo));
  await server.close();
  servers.splice(servers.indexOf(server), 1);
  return server.url;
}

// ---------------------------------------------------------------------------
// The refresher under test

interface Harness {
  readonly refresher: CrlRefresher;
  readonly crlFile: string;
  readonly updates: VerifiedCrl[];
  readonly logs: Record<string, unknown>[];
  warnings(): Record<string, unknown>[];
}

interface HarnessOptions {
  /** A CRL (DER) written to crlFile and in force at start; or several, in force, written as PEM. */
  readonly initial?: Buffer | readonly Buffer[];
  readonly caCertificates?: readonly Buffer[];
  readonly policy?: CrlSources['policy'];
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
  readonly nowMs?: number;
}

async function harness(urls: readonly string[], options: HarnessOptions = {}): Promise<Harness> {
  const crlFile = path.join(await directories.make(), 'crl.der');
  const caCertificates = options.caCertificates ?? [caCertificate];
  const initial = (Buffer.isBuffer(options.initial) ? [options.initial] : (options.initial ?? [])).map((bytes) => verified(bytes, caCertificates));
  if (initial.length > 0) writeFileSync(crlFile, crlFileBytes(initial));
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', format: 'json', repeatLimit: false, sink: { write: (line: string) => logs.push(JSON.parse(line)) } });
  const updates: VerifiedCrl[] = [];
  const sources: CrlSources = { urls, crlFile, policy: options.policy ?? 'require', caCertificates };
  const refresher = new CrlRefresher({
    sources,
    initial,
    logger,
    onUpdate: (_crls, changed) => updates.push(...changed),
    limits: { timeoutMs: options.timeoutMs ?? 5_000, maxBytes: options.maxBytes ?? 1 << 20, maxRedirects: 3 },
    now: () => options.nowMs ?? testNow.getTime() + 120_000,
  });
  return { refresher, crlFile, updates, logs, warnings: () => logs.filter((line) => line.level === 'warn' || line.level === 'error').filter((line) => line.event !== 'crl-state') };
}

/** The last good CRL stays: nothing swapped, file untouched, one warning naming the reason. */
function expectKeptWithOneWarning(run: Harness, attempt: RefreshAttempt, reason: string): void {
  expect(attempt.result).toBe('failed');
  expect(attempt.failures.map((failure) => failure.reason)).toEqual([reason]);
  expect(run.updates).toEqual([]);
  expect(run.refresher.current()[0]?.crlNumber).toBe(2n);
  expect(readFileSync(run.crlFile).equals(crlTwo)).toBe(true);
  const warnings = run.warnings();
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ event: 'crl-refresh-failed', reason, consequence: 'the CRL in force stays', crlNumber: '2' });
}

describe('CrlRefresher: accepting a CRL', () => {
  it('downloads a newer CRL, puts it in force and replaces crlFile atomically', async () => {
    const server = await serve(body(crlTwo));
    const run = await harness([server.url], { initial: crlOne });
    const attempt = await run.refresher.refresh('start');
    expect(attempt).toMatchObject({ trigger: 'start', result: 'updated', source: server.url, written: true, failures: [] });
    expect(run.updates.map((crl) => crl.crlNumber)).toEqual([2n]);
    expect(run.refresher.current()[0]?.count).toBe(1);
    expect(readFileSync(run.crlFile).equals(crlTwo)).toBe(true);
    // The temporary file was renamed, not left behind.
    expect(readdirSync(path.dirname(run.crlFile))).toEqual(['crl.der']);
    expect(run.logs.find((line) => line.event === 'crl-updated')).toMatchObject({ source: server.url, crlNumber: '2', revoked: 1 });
  });

  it('accepts PEM', async () => {
    const pem = `-----BEGIN X509 CRL-----\n${crlTwo.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END X509 CRL-----\n`;
    const server = await serve(body(pem, { 'content-type': 'application/x-pem-file' }));
    const run = await harness([server.url], { initial: crlOne });
    expect((await run.refresher.refresh('schedule')).result).toBe('updated');
    expect(run.refresher.current()[0]?.crlNumber).toBe(2n);
  });

  it('starts without any CRL and takes the first valid one', async () => {
    const server = await serve(body(crlOne));
    const run = await harness([server.url]);
    expect((await run.refresher.refresh('start')).result).toBe('updated');
    expect(run.refresher.current()[0]?.crlNumber).toBe(1n);
  });

  it('tries every URL in order: failures beside a good answer are only skipped', async () => {
    const order: string[] = [];
    const missing = await serve((_request, response) => {
      order.push('404');
      response.writeHead(404).end();
    });
    const good = await serve((request, response) => {
      order.push('good');
      body(crlTwo)(request, response);
    });
    const dead = await deadUrl();
    const run = await harness([dead, missing.url, good.url], { initial: crlOne });
    const attempt = await run.refresher.refresh('schedule');
    expect(attempt).toMatchObject({ result: 'updated', source: good.url });
    expect(attempt.failures.map((failure) => [failure.source, failure.reason])).toEqual([
      [dead, 'unreachable'],
      [missing.url, 'http-status'],
    ]);
    expect(order).toEqual(['404', 'good']);
    expect(run.warnings()).toEqual([]);
  });

  it('follows a redirect', async () => {
    const target = await serve(body(crlTwo));
    const redirect = await serve((_request, response) => response.writeHead(302, { location: target.url }).end());
    const run = await harness([redirect.url], { initial: crlOne });
    expect(await run.refresher.refresh('schedule')).toMatchObject({ result: 'updated', source: redirect.url });
  });

  it('joins a refresh already under way instead of starting a second', async () => {
    const server = await serve(body(crlTwo));
    const run = await harness([server.url], { initial: crlOne });
    const [first, second] = await Promise.all([run.refresher.refresh('schedule'), run.refresher.refresh('sighup')]);
    expect(second).toBe(first);
    expect(server.requests).toHaveLength(1);
  });

  it('re-reads crlFile when no URL is set', async () => {
    const run = await harness([], { initial: crlOne });
    expect((await run.refresher.refresh('schedule')).result).toBe('unchanged');
    writeFileSync(run.crlFile, crlTwo);
    expect(await run.refresher.refresh('sighup')).toMatchObject({ result: 'updated', source: run.crlFile });
    expect(run.updates.map((crl) => crl.crlNumber)).toEqual([2n]);
  });
});

describe('CrlRefresher: conditional GET', () => {
  it('sends If-None-Match with the ETag and keeps the CRL on 304', async () => {
    const folder = await directories.make();
    const served = path.join(folder, 'crl.der');
    writeFileSync(served, crlTwo);
    const requests: http.IncomingHttpHeaders[] = [];
    const crlServer = createCrlServer(served, (error) => {
      throw error;
    });
    crlServer.on('request', (request: http.IncomingMessage) => requests.push(request.headers));
    const server = await listen(crlServer, 'http', requests);
    const run = await harness([server.url], { initial: crlOne });
    expect((await run.refresher.refresh('start')).result).toBe('updated');
    expect(requests[0]?.['if-none-match']).toBeUndefined();
    expect(await run.refresher.refresh('schedule')).toMatchObject({ result: 'not-modified', source: server.url });
    expect(requests[1]?.['if-none-match']).toMatch(/^".+"$/);
    expect(requests[1]?.['if-modified-since']).toBeDefined();
    expect(run.updates).toHaveLength(1);
    expect(run.warnings()).toEqual([]);
  });

  it('sends If-Modified-Since when the server gives only Last-Modified', async () => {
    const lastModified = new Date(testNow).toUTCString();
    const server = await serve((request, response) => {
      if (request.headers['if-modified-since'] === lastModified) response.writeHead(304).end();
      else body(crlTwo, { 'last-modified': lastModified })(request, response);
    });
    const run = await harness([server.url], { initial: crlOne });
    await run.refresher.refresh('start');
    expect(await run.refresher.refresh('schedule')).toMatchObject({ result: 'not-modified' });
    expect(server.requests[1]).toMatchObject({ 'if-modified-since': lastModified });
    expect(server.requests[1]?.['if-none-match']).toBeUndefined();
  });

  it('treats a 304 to an unconditional request as a failure', async () => {
    const server = await serve((_request, response) => response.writeHead(304).end());
    const run = await harness([server.url], { initial: crlTwo });
    expectKeptWithOneWarning(run, await run.refresher.refresh('start'), 'http-status');
  });

  it('counts the same CRL again as unchanged, not as an update', async () => {
    const server = await serve(body(crlTwo));
    const run = await harness([server.url], { initial: crlTwo });
    expect((await run.refresher.refresh('schedule')).result).toBe('unchanged');
    expect(run.updates).toEqual([]);
  });
});

describe('CrlRefresher: every failure keeps the last good CRL with one warning', () => {
  it('server down', async () => {
    const run = await harness([await deadUrl()], { initial: crlTwo });
    const attempt = await run.refresher.refresh('schedule');
    expectKeptWithOneWarning(run, attempt, 'unreachable');
    expect(attempt.failures[0]?.detail).toBe('ECONNREFUSED');
  });

  it('404', async () => {
    const server = await serve((_request, response) => response.writeHead(404).end('no'));
    const run = await harness([server.url], { initial: crlTwo });
    const attempt = await run.refresher.refresh('schedule');
    expectKeptWithOneWarning(run, attempt, 'http-status');
    expect(attempt.failures[0]?.detail).toBe('HTTP 404 Not Found');
  });

  it('garbage', async () => {
    const server = await serve(body('<html>this is not a CRL</html>'));
    const run = await harness([server.url], { initial: crlTwo });
    expectKeptWithOneWarning(run, await run.refresher.refresh('schedule'), 'crl-malformed');
  });

  it('a CRL signed by another key under the same CA name', async () => {
    const server = await serve(body(foreignCrl));
    const run = await harness([server.url], { initial: crlTwo });
    expectKeptWithOneWarning(run, await run.refresher.refresh('schedule'), 'crl-bad-signature');
  });

  it('an older CRL (lower number, older thisUpdate): no un-revoking by replay', async () => {
    const server = await serve(body(crlOne));
    const run = await harness([server.url], { initial: crlTwo });
    const attempt = await run.refresher.refresh('schedule');
    expectKeptWithOneWarning(run, attempt, 'crl-older');
    expect(attempt.failures[0]?.detail).toMatch(/number 1, .* older than the CRL in force \(number 2/);
  });

  it('more distinct CRLs of configured CAs than CAs: refused as a whole before any is verified', async () => {
    const server = await serve(body(pemOf(crlOne, crlTwo), { 'content-type': 'application/x-pem-file' }));
    const run = await harness([server.url], { initial: crlTwo });
    const attempt = await run.refresher.refresh('schedule');
    expectKeptWithOneWarning(run, attempt, 'crl-malformed');
    expect(attempt.failures[0]?.detail).toBe('the input holds 2 distinct CRLs of configured CAs, more than the 1 configured CAs that may sign CRLs');
  });

  it('a very slow answer (timeout), also when the body trickles', async () => {
    const silent = await serve(() => undefined);
    const trickle = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': crlTwo.length });
      response.write(crlTwo.subarray(0, 10));
    });
    const run = await harness([silent.url, trickle.url], { initial: crlTwo, timeoutMs: 300 });
    const attempt = await run.refresher.refresh('schedule');
    expect(attempt.failures.map((failure) => failure.reason)).toEqual(['timeout', 'timeout']);
    expect(run.warnings()).toHaveLength(1);
    expect(run.refresher.current()[0]?.crlNumber).toBe(2n);
  });

  it('a huge body, declared or not', async () => {
    const huge = Buffer.alloc(200_000, 0x30);
    const declared = await serve(body(huge, { 'content-length': huge.length }));
    const chunked = await serve((_request, response) => {
      response.writeHead(200);
      for (let index = 0; index < 20; index += 1) response.write(huge.subarray(0, 10_000));
      response.end();
    });
    const run = await harness([declared.url, chunked.url], { initial: crlTwo, maxBytes: 50_000 });
    const attempt = await run.refresher.refresh('schedule');
    expect(attempt.failures.map((failure) => failure.reason)).toEqual(['too-large', 'too-large']);
    expect(run.warnings()).toHaveLength(1);
    expect(readFileSync(run.crlFile).equals(crlTwo)).toBe(true);
  });

  it('a failing crlFile write keeps the new CRL in force and says so once', async () => {
    const server = await serve(body(crlTwo));
    const run = await harness([server.url], { initial: crlOne });
    const unwritable = new CrlRefresher({
      sources: { urls: [server.url], crlFile: path.join(run.crlFile, 'no-such-folder', 'crl.der'), policy: 'warn', caCertificates: [caCertificate] },
      initial: [verified(crlOne)],
      logger: createLogger({ format: 'json', repeatLimit: false, sink: { write: (line: string) => run.logs.push(JSON.parse(line)) } }),
      onUpdate: (_crls, changed) => run.updates.push(...changed),
      now: () => testNow.getTime(),
    });
    expect(await unwritable.refresh('schedule')).toMatchObject({ result: 'updated', written: false });
    expect(run.updates.map((crl) => crl.crlNumber)).toEqual([2n]);
    expect(run.warnings().map((line) => line.event)).toEqual(['crl-file-not-writable', 'crl-write-failed']);
  });
});

describe('CrlRefresher over HTTPS', () => {
  it('downloads from an https URL whose certificate the agent trusts', async () => {
    const folder = await directories.make();
    const key = path.join(folder, 'key.pem');
    const certificate = path.join(folder, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', certificate, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const requests: http.IncomingHttpHeaders[] = [];
    const server = await listen(
      https.createServer({ key: readFileSync(key), cert: readFileSync(certificate) }, (request, response) => {
        requests.push(request.headers);
        body(crlTwo)(request, response);
      }),
      'https',
      requests,
    );
    const original = https.globalAgent.options.ca;
    https.globalAgent.options.ca = readFileSync(certificate);
    try {
      const run = await harness([server.url], { initial: crlOne });
      expect(await run.refresher.refresh('start')).toMatchObject({ result: 'updated', source: server.url });
    } finally {
      https.globalAgent.options.ca = original;
    }
    // Without the server's certificate trusted, TLS fails and counts as unreachable.
    const untrusted = await harness([server.url], { initial: crlTwo });
    const attempt = await untrusted.refresher.refresh('schedule');
    expect(attempt.failures[0]?.reason).toBe('unreachable');
  });
});

describe('CrlRefresher schedule', () => {
  it('runs the six-field cron form (seconds first) with node-cron', async () => {
    const server = await serve(body(crlTwo));
    const run = await harness([server.url], { initial: crlOne, nowMs: Date.now() });
    run.refresher.start({ kind: 'cron', expression: '* * * * * *' });
    try {
      for (let waited = 0; waited < 50 && run.refresher.lastAttempt() === null; waited += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      run.refresher.stop();
    }
    expect(run.refresher.lastAttempt()).toMatchObject({ trigger: 'schedule', result: 'updated' });
  });

  it('ticks every minute for CRL_UPDATE_INTERVAL_IN_MINUTES and refreshes once the interval has passed', () => {
    const interval = { kind: 'interval', minutes: 30, intervalMs: 1_800_000 } as const;
    expect(cronExpressionOf(interval)).toBe('0 * * * * *');
    expect(cronExpressionOf({ kind: 'cron', expression: '*/2 * * * * *' })).toBe('*/2 * * * * *');
    expect(isRefreshDue(interval, null, 0)).toBe(true);
    expect(isRefreshDue(interval, 0, 29 * 60_000)).toBe(false);
    expect(isRefreshDue(interval, 0, 30 * 60_000 - 20_000)).toBe(true);
    expect(isRefreshDue({ kind: 'cron', expression: '* * * * *' }, 0, 1)).toBe(true);
  });
});

describe('CRL state logging', () => {
  it('logs the state once per change, loudly under require', async () => {
    const server = await serve(body(crlTwo));
    const stale = verified(crlTwo).nextUpdateMs! + 1;
    const run = await harness([server.url], { initial: crlTwo, nowMs: stale });
    await run.refresher.refresh('schedule');
    await run.refresher.refresh('schedule');
    const states = run.logs.filter((line) => line.event === 'crl-state');
    expect(states).toHaveLength(1);
    expect(states[0]).toMatchObject({ level: 'error', state: 'stale', crlPolicy: 'require' });
    expect(String(states[0]?.consequence)).toContain('EVERY KNOCK IS REFUSED');
  });
});

describe('CRL ordering (pure)', () => {
  it('orders by CRL number, never accepts a thisUpdate going back', () => {
    const one = verified(crlOne);
    const two = verified(crlTwo);
    expect(compareCrlAge(two, one)).toBe('newer');
    expect(compareCrlAge(one, two)).toBe('older');
    expect(compareCrlAge(two, two)).toBe('same');
    expect(compareCrlAge({ ...two, crlNumber: 9n, thisUpdateMs: one.thisUpdateMs - 1 }, one)).toBe('older');
    expect(compareCrlAge({ ...two, crlNumber: undefined }, { ...one, crlNumber: undefined })).toBe('newer');
    expect(compareCrlAge({ ...one, crlNumber: undefined }, { ...one, crlNumber: undefined })).toBe('same');
  });

  it('judges a CRL against its issuer\'s in force: other key refused when parsed, same CRL unchanged, older refused', () => {
    expect(parseCrl(foreignCrl, [caCertificate])).toMatchObject({ ok: false, reason: 'crl-bad-signature' });
    expect(judgeCrl(verified(crlTwo), [verified(crlTwo)])).toEqual({ kind: 'same' });
    expect(judgeCrl(verified(crlTwo), [verified(crlOne)])).toMatchObject({ kind: 'newer' });
    expect(judgeCrl(verified(crlOne), [verified(crlTwo)])).toMatchObject({ kind: 'rejected', reason: 'crl-older' });
    expect(judgeCrl(verified(crlOne), [])).toMatchObject({ kind: 'newer' });
  });
});

describe('CrlRefresher with two CAs: one CRL in force per issuer', () => {
  /** "CN=Second CA", with clients bob and carol. */
  let secondCa: Buffer;
  /** Number 1, nothing revoked. */
  let olderCrlOfB: Buffer;
  /** Number 2, carol revoked; newer than crlTwo of the first CA in every way. */
  let crlOfB: Buffer;
  const clientDer: Record<string, Buffer> = {};
  const cas = (): Buffer[] => [caCertificate, secondCa];

  beforeAll(async () => {
    const dir = path.join(await directories.make(), 'ca');
    await runCaOk(['init', '--dir', dir, '--cn', 'Second CA']);
    for (const name of ['bob', 'carol']) await runCaOk(['client', '--dir', dir, '--name', name, '--allow', 'tcp/22']);
    secondCa = await readFile(path.join(dir, 'ca.cer'));
    await runCaOk(['crl', '--dir', dir]);
    olderCrlOfB = await readFile(path.join(dir, 'crl.der'));
    await runCaOk(['revoke', '--dir', dir, '--name', 'carol']);
    await runCaOk(['crl', '--dir', dir], { now: new Date(testNow.getTime() + 90_000) });
    crlOfB = await readFile(path.join(dir, 'crl.der'));
    for (const [name, ca] of [['alice', caDir], ['mallory', caDir], ['bob', dir], ['carol', dir]] as const) {
      clientDer[name] = loadPkcs12File(path.join(ca, 'client', `${name}.pfx`), testPassword).certificateDer;
    }
  }, 120_000);

  /** What each client gets from a trust state built from the refresher's CRLs, as the daemon builds it. */
  function outcomes(run: Harness): Record<string, string> {
    const trust = createTrustState({ caCertificates: cas(), crls: run.refresher.current(), crlPolicy: 'require' });
    const nowMs = testNow.getTime() + 120_000;
    return Object.fromEntries(
      Object.entries(clientDer).map(([name, der]) => {
        const verdict = checkClientCertificate(trust, der, undefined, nowMs);
        return [name, verdict.ok ? 'accepted' : verdict.reason];
      }),
    );
  }

  it("a genuine, newer CRL of CA B from the CRL URL never replaces CA A's: A's revoked client stays revoked", async () => {
    const server = await serve(body(crlOfB));
    const run = await harness([server.url], { initial: crlTwo, caCertificates: cas() });
    expect(outcomes(run)).toEqual({ alice: 'revoked', mallory: 'accepted', bob: 'no-crl', carol: 'no-crl' });
    const attempt = await run.refresher.refresh('schedule');
    expect(attempt).toMatchObject({ result: 'updated', updatedIssuers: ['CN=Second CA'], written: true, failures: [] });
    expect(run.refresher.current().map((crl) => [crl.issuer, crl.crlNumber])).toEqual([
      ['CN=Test CA', 2n],
      ['CN=Second CA', 2n],
    ]);
    // B's CRL is kept for B's clients, A's still speaks for A's.
    expect(outcomes(run)).toEqual({ alice: 'revoked', mallory: 'accepted', bob: 'accepted', carol: 'revoked' });
    expect(run.updates.map((crl) => crl.issuer)).toEqual(['CN=Second CA']);
    expect(run.logs.filter((line) => line.event === 'crl-updated')).toMatchObject([{ issuer: 'CN=Second CA', crlNumber: '2', revoked: 1 }]);
  });

  it('writes both CRLs to crlFile as PEM, and a restart reads both back', async () => {
    const server = await serve(body(crlOfB));
    const run = await harness([server.url], { initial: crlTwo, caCertificates: cas() });
    await run.refresher.refresh('schedule');
    const text = readFileSync(run.crlFile, 'latin1');
    expect(text.match(/-----BEGIN X509 CRL-----/g)).toHaveLength(2);
    const reread = readCrlFile(run.crlFile, cas());
    if (reread.kind !== 'loaded') throw new Error(reread.detail);
    expect(reread.crls.map((crl) => crl.der.toString('hex'))).toEqual([crlTwo.toString('hex'), crlOfB.toString('hex')]);
    expect(reread.ignored).toEqual([]);
    // A single CRL is still written as the DER it was published as.
    const single = await harness([server.url], { caCertificates: [secondCa] });
    await single.refresher.refresh('schedule');
    expect(readFileSync(single.crlFile).equals(crlOfB)).toBe(true);
  });

  it('reads old single-CRL files (DER or PEM) as before', async () => {
    const file = path.join(await directories.make(), 'crl.pem');
    for (const bytes of [crlTwo, Buffer.from(`-----BEGIN X509 CRL-----\n${crlTwo.toString('base64')}\n-----END X509 CRL-----\n`)]) {
      writeFileSync(file, bytes);
      const state = readCrlFile(file, [caCertificate]);
      expect(state).toMatchObject({ kind: 'loaded', ignored: [] });
      expect(state.kind === 'loaded' && state.crls.map((crl) => crl.crlNumber)).toEqual([2n]);
    }
    // One CRL of a CA that is not configured is still an invalid file, as before.
    writeFileSync(file, crlOfB);
    expect(readCrlFile(file, [caCertificate])).toMatchObject({ kind: 'invalid', reason: 'crl-untrusted-issuer' });
  });

  it("leaves out a CRL of a CA no longer configured, but refuses a file with a forged CRL", async () => {
    const run = await harness([], { initial: [crlTwo, crlOfB], caCertificates: cas() });
    const kept = readCrlFile(run.crlFile, [caCertificate]);
    expect(kept).toMatchObject({ kind: 'loaded', ignored: [expect.stringContaining('(CRL 2 of 2): CRL issuer is none of the configured CAs')] });
    expect(kept.kind === 'loaded' && kept.crls.map((crl) => crl.issuer)).toEqual(['CN=Test CA']);
    writeFileSync(run.crlFile, Buffer.concat([readFileSync(run.crlFile), crlFileBytes([{ ...verified(crlTwo), der: foreignCrl }, verified(crlTwo)])]));
    expect(readCrlFile(run.crlFile, cas())).toMatchObject({ kind: 'invalid', reason: 'crl-bad-signature' });
  });

  it("fetches every URL, each CA's CRL from its own, in one refresh", async () => {
    const ofA = await serve(body(crlTwo));
    const ofB = await serve(body(crlOfB));
    const run = await harness([ofA.url, ofB.url], { caCertificates: cas() });
    const attempt = await run.refresher.refresh('start');
    expect(attempt).toMatchObject({ result: 'updated', source: ofA.url, updatedIssuers: ['CN=Test CA', 'CN=Second CA'], written: true });
    expect(outcomes(run)).toEqual({ alice: 'revoked', mallory: 'accepted', bob: 'accepted', carol: 'revoked' });
    expect(await run.refresher.refresh('schedule')).toMatchObject({ result: 'unchanged', failures: [] });
  });

  it('compares a CRL only with its own issuer\'s: an older CRL of B is refused, A\'s stays', async () => {
    const server = await serve(body(olderCrlOfB));
    const run = await harness([server.url], { initial: [crlTwo, crlOfB], caCertificates: cas() });
    const attempt = await run.refresher.refresh('schedule');
    expect(attempt.result).toBe('failed');
    expect(attempt.failures).toMatchObject([{ reason: 'crl-older', detail: expect.stringContaining('offered CRL of CN=Second CA (number 1') }]);
    expect(run.refresher.current().map((crl) => crl.crlNumber)).toEqual([2n, 2n]);
    expect(run.warnings()).toMatchObject([{ event: 'crl-refresh-failed', reason: 'crl-older', crls: 2 }]);
  });

  it('re-reads a crlFile of several CRLs per issuer when no URL is set', async () => {
    const run = await harness([], { initial: crlTwo, caCertificates: cas() });
    writeFileSync(run.crlFile, crlFileBytes([verified(crlOne), verified(crlOfB, cas())]));
    // A's CRL number 1 is older than the one in force: refused; B's is new: added.
    const attempt = await run.refresher.refresh('sighup');
    expect(attempt).toMatchObject({ result: 'updated', source: run.crlFile, updatedIssuers: ['CN=Second CA'] });
    expect(attempt.failures).toMatchObject([{ reason: 'crl-older' }]);
    expect(run.refresher.current().map((crl) => [crl.issuer, crl.crlNumber])).toEqual([
      ['CN=Test CA', 2n],
      ['CN=Second CA', 2n],
    ]);
  });

  it("drops the CRL of a CA removed on reload, and keeps the others'", async () => {
    const run = await harness([], { initial: [crlTwo, crlOfB], caCertificates: cas() });
    run.refresher.reconfigure({ urls: [], crlFile: run.crlFile, policy: 'require', caCertificates: [caCertificate] }, []);
    expect(run.refresher.current().map((crl) => crl.issuer)).toEqual(['CN=Test CA']);
  });

  describe('a download of several CRL blocks', () => {
    /** Two CRLs of a CA that is not configured. */
    const unrelated: Buffer[] = [];
    beforeAll(async () => {
      const unrelatedCa = await createAuthority({ now: testNow, name: 'CN=Unrelated CA' });
      for (const crlNumber of [1n, 2n]) unrelated.push(await issueCrl(unrelatedCa, { now: testNow, crlNumber }));
    });
    const pemBody = (...ders: readonly Buffer[]) => body(pemOf(...ders), { 'content-type': 'application/x-pem-file' });

    it('adopts the CRL of a configured CA and notes the block of an unrelated CA', async () => {
      const server = await serve(pemBody(unrelated[0]!, crlOfB));
      const run = await harness([server.url], { initial: crlTwo, caCertificates: cas() });
      expect(await run.refresher.refresh('schedule')).toMatchObject({ result: 'updated', updatedIssuers: ['CN=Second CA'], failures: [] });
      expect(outcomes(run)).toEqual({ alice: 'revoked', mallory: 'accepted', bob: 'accepted', carol: 'revoked' });
      expect(run.warnings()).toEqual([
        expect.objectContaining({ event: 'crl-ignored', source: server.url, detail: 'CRL 1 of 2: CRL issuer is none of the configured CAs' }),
      ]);
    });

    it('fails the URL when no block is of a configured CA', async () => {
      const server = await serve(pemBody(...unrelated));
      const run = await harness([server.url], { initial: crlTwo, caCertificates: cas() });
      const attempt = await run.refresher.refresh('schedule');
      expect(attempt).toMatchObject({ result: 'failed', failures: [{ reason: 'crl-untrusted-issuer', detail: expect.stringMatching(/^no CRL of a configured CA: CRL 1 of 2: /) }] });
      expect(run.refresher.current().map((crl) => crl.issuer)).toEqual(['CN=Test CA']);
    });

    it('verifies a repeated block once and adopts it', async () => {
      const server = await serve(pemBody(crlOfB, crlOfB));
      const run = await harness([server.url], { initial: crlTwo, caCertificates: cas() });
      expect(await run.refresher.refresh('schedule')).toMatchObject({ result: 'updated', updatedIssuers: ['CN=Second CA'], failures: [] });
      expect(run.updates).toHaveLength(1);
      expect(run.warnings()).toEqual([]);
    });

    it("fails the URL, adopting nothing, for a forged block of a configured CA beside a good one", async () => {
      const server = await serve(pemBody(crlOfB, foreignCrl));
      const run = await harness([server.url], { initial: crlTwo, caCertificates: cas() });
      const attempt = await run.refresher.refresh('schedule');
      expect(attempt).toMatchObject({ result: 'failed', failures: [{ reason: 'crl-bad-signature', detail: 'CRL 2 of 2: CRL signature does not verify with the key of CN=Test CA' }] });
      expect(run.updates).toEqual([]);
      expect(run.refresher.current().map((crl) => [crl.issuer, crl.crlNumber])).toEqual([['CN=Test CA', 2n]]);
      expect(run.warnings()).toMatchObject([{ event: 'crl-refresh-failed', reason: 'crl-bad-signature' }]);
    });
  });

  it('logs which CA has no current CRL, and whose knocks that refuses', async () => {
    const run = await harness([], { initial: crlTwo, caCertificates: cas() });
    await run.refresher.refresh('schedule');
    const states = run.logs.filter((line) => line.event === 'crl-state');
    expect(states).toHaveLength(1);
    expect(states[0]).toMatchObject({ level: 'error', state: 'missing', issuers: 'CN=Test CA: fresh; CN=Second CA: missing', crlNumber: '2' });
    expect(String(states[0]?.consequence)).toBe('KNOCKS OF CLIENTS OF CN=Second CA ARE REFUSED until a current CRL arrives (crlPolicy = require)');
  });
});
