/**
 * What sknock-ca writes, read by OpenSSL 3 (no -legacy): every bundle opens,
 * the chain and the CRL verify, the revoked client is refused.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateP256KeyPair, buildCaCertificate } from '../../certificates/ca/issue.js';
import { writePkcs12 } from '../../certificates/ca/pkcs12-writer.js';
import { loadPkcs12 } from '../../client-lib/pkcs12.js';
import { repoRoot } from '../helpers/fixtures.js';
import { makeSampleCa, runCaOk, temporaryDirectories, testNow, testPassword } from '../unit/ca-harness.js';

const execFileAsync = promisify(execFile);

interface OpensslResult {
  readonly code: number;
  readonly output: string;
}

/** Runs openssl with an argument array; the exit status is returned, not thrown. */
async function openssl(args: readonly string[]): Promise<OpensslResult> {
  try {
    const { stdout, stderr } = await execFileAsync('openssl', [...args]);
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

async function opensslOk(args: readonly string[]): Promise<string> {
  const result = await openssl(args);
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.output}`);
  return result.output;
}

/** PEM copies of the CA certificate, the CRL and each client certificate, as `openssl verify` wants them. */
async function pemFiles(caDir: string, work: string, clients: readonly string[], password: string) {
  const caPem = path.join(work, 'ca.pem');
  const crlPem = path.join(work, 'crl.pem');
  await opensslOk(['x509', '-inform', 'DER', '-in', path.join(caDir, 'ca.cer'), '-out', caPem]);
  await opensslOk(['crl', '-inform', 'DER', '-in', path.join(caDir, 'crl.der'), '-out', crlPem]);
  const clientPems: Record<string, string> = {};
  for (const client of clients) {
    clientPems[client] = path.join(work, `${client}.pem`);
    await opensslOk([
      'pkcs12', '-in', path.join(caDir, 'client', `${client}.pfx`), '-passin', `pass:${password}`,
      '-clcerts', '-nokeys', '-out', clientPems[client]!,
    ]);
  }
  return { caPem, crlPem, clientPems };
}

function verifyArgs(at: Date, caPem: string, crlPem: string, certificatePem: string, purpose: string): string[] {
  return [
    'verify', '-attime', String(Math.floor(at.getTime() / 1000)), '-purpose', purpose,
    '-CAfile', caPem, '-crl_check', '-CRLfile', crlPem, certificatePem,
  ];
}

async function bundlesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { recursive: true });
  return entries.filter((entry) => entry.endsWith('.pfx')).map((entry) => path.join(directory, entry));
}

describe('sknock-ca output read by OpenSSL 3', () => {
  const directories = temporaryDirectories();
  afterAll(() => directories.removeAll());
  let work: string;
  let caDir: string;
  let mallorySerial: string;

  beforeAll(async () => {
    work = await directories.make();
    caDir = await makeSampleCa(work);
    await runCaOk(['revoke', '--dir', caDir, '--name', 'mallory', '--reason', 'keyCompromise']);
    await runCaOk(['crl', '--dir', caDir]);
    await runCaOk(['crl', '--dir', caDir]);
    mallorySerial = new X509Certificate(
      loadPkcs12(await readFile(path.join(caDir, 'client', 'mallory.pfx')), testPassword).certificateDer,
    ).serialNumber;
  });

  it('opens every bundle, the CA key store included, with PBES2/AES-256 and a SHA-256 MAC, and refuses a wrong password', async () => {
    const bundles = await bundlesUnder(caDir);
    expect(bundles.map((file) => path.relative(caDir, file)).sort()).toEqual(
      ['ca.pfx', 'client/alice.pfx', 'client/mallory.pfx', 'server/gate.pfx'].sort(),
    );
    for (const file of bundles) {
      const info = await opensslOk(['pkcs12', '-info', '-noout', '-in', file, '-passin', `pass:${testPassword}`]);
      expect(info).toContain('MAC: sha256');
      expect(info).toMatch(/Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration \d+, PRF hmacWithSHA256/);
      const wrong = await openssl(['pkcs12', '-info', '-noout', '-in', file, '-passin', 'pass:wrong']);
      expect(wrong.code).not.toBe(0);
      expect(wrong.output).toMatch(/invalid password/i);
    }
  });

  it('verifies a valid client against the CA and its CRL, and refuses the revoked one', async () => {
    const { caPem, crlPem, clientPems } = await pemFiles(caDir, work, ['alice', 'mallory'], testPassword);
    const at = new Date(testNow.getTime() + 86_400_000);
    const alice = await openssl(verifyArgs(at, caPem, crlPem, clientPems.alice!, 'sslclient'));
    expect(alice).toEqual({ code: 0, output: expect.stringContaining('alice.pem: OK') });
    const mallory = await openssl(verifyArgs(at, caPem, crlPem, clientPems.mallory!, 'sslclient'));
    expect(mallory.code).not.toBe(0);
    expect(mallory.output).toContain('certificate revoked');
    // A CRL past its nextUpdate (seven days by default) is refused too.
    const stale = await openssl(verifyArgs(new Date(testNow.getTime() + 8 * 86_400_000), caPem, crlPem, clientPems.alice!, 'sslclient'));
    expect(stale.output).toContain('CRL has expired');
  });

  it('verifies the server certificate (.cer) for its purpose', async () => {
    const serverPem = path.join(work, 'gate.pem');
    await opensslOk(['x509', '-inform', 'DER', '-in', path.join(caDir, 'server', 'gate.cer'), '-out', serverPem]);
    const { caPem, crlPem } = await pemFiles(caDir, work, [], testPassword);
    const at = new Date(testNow.getTime() + 86_400_000);
    expect(await openssl(verifyArgs(at, caPem, crlPem, serverPem, 'sslserver'))).toMatchObject({ code: 0 });
  });

  it('shows the CRL number and the revoked serial with its reason in openssl crl -text', async () => {
    const text = await opensslOk(['crl', '-inform', 'DER', '-in', path.join(caDir, 'crl.der'), '-noout', '-text']);
    expect(text).toMatch(/X509v3 CRL Number:\s*\n\s*2\n/);
    expect(text).toContain('Version 2');
    expect(text).toContain(`Serial Number: ${mallorySerial}`);
    expect(text).toMatch(/CRL Reason Code:\s*\n\s*Key Compromise/);
    expect(text).toContain('Next Update: Jan  8 00:00:00 2026 GMT');
  });

  it('writes bundles whose non-ASCII password OpenSSL takes as UTF-8', async () => {
    const keys = await generateP256KeyPair();
    const validity = { notBefore: testNow, notAfter: new Date(testNow.getTime() + 86_400_000) };
    const certificate = await buildCaCertificate({ commonName: 'Unicode', keys, serialNumber: '01', validity });
    const file = path.join(work, 'unicode.pfx');
    const password = 'pässwörd-€';
    await writeFile(file, writePkcs12({ privateKey: keys.privateKey, certificate, otherCertificates: [], friendlyName: 'ü', password }));
    expect((await openssl(['pkcs12', '-info', '-noout', '-in', file, '-passin', `pass:${password}`])).code).toBe(0);
  });
});

describe('the development PKI in certificates/dev', () => {
  const directories = temporaryDirectories();
  afterAll(() => directories.removeAll());
  const devDir = path.join(repoRoot, 'certificates', 'dev');
  const devPassword = 'portknocking';

  it('opens every bundle with "portknocking", accepts alice and bob, and refuses the revoked mallory', async () => {
    const bundles = await bundlesUnder(devDir);
    expect(bundles.map((file) => path.relative(devDir, file)).sort()).toEqual(
      ['ca.pfx', 'client/alice.pfx', 'client/bob.pfx', 'client/mallory.pfx', 'server/devserver.pfx'].sort(),
    );
    for (const file of bundles) {
      await opensslOk(['pkcs12', '-info', '-noout', '-in', file, '-passin', `pass:${devPassword}`]);
    }
    const work = await directories.make();
    const { caPem, crlPem, clientPems } = await pemFiles(devDir, work, ['alice', 'bob', 'mallory'], devPassword);
    // A moment inside the PKI's own validity, so the test does not depend on today's date.
    const ca = new X509Certificate(await readFile(path.join(devDir, 'ca.cer')));
    const at = new Date(new Date(ca.validFrom).getTime() + 2 * 3_600_000);
    expect((await openssl(verifyArgs(at, caPem, crlPem, clientPems.alice!, 'sslclient'))).code).toBe(0);
    expect((await openssl(verifyArgs(at, caPem, crlPem, clientPems.bob!, 'sslclient'))).code).toBe(0);
    expect((await openssl(verifyArgs(at, caPem, crlPem, clientPems.mallory!, 'sslclient'))).output).toContain('certificate revoked');
  });

  it('gives alice tcp/22,tcp/2000 and bob tcp/8080, and its CRL lasts for years', async () => {
    const index = JSON.parse(await readFile(path.join(devDir, 'index.json'), 'utf8'));
    const ports = Object.fromEntries(index.issued.map((entry: { name: string; permittedPorts?: string }) => [entry.name, entry.permittedPorts]));
    expect(ports).toEqual({ devserver: undefined, alice: 'tcp/22,tcp/2000', bob: 'tcp/8080', mallory: 'tcp/22' });
    expect(index.ca.subject).toBe('CN=sKnock Dev CA');
    const text = await opensslOk(['crl', '-inform', 'DER', '-in', path.join(devDir, 'crl.der'), '-noout', '-text']);
    const nextUpdate = Date.parse(/Next Update: (.*)/.exec(text)![1]!);
    const lastUpdate = Date.parse(/Last Update: (.*)/.exec(text)![1]!);
    expect(nextUpdate - lastUpdate).toBeGreaterThanOrEqual(3650 * 86_400_000);
  });
});
