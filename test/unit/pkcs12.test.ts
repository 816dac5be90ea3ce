import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SknockError } from '../../client-lib/errors.js';
import { resolvePassword } from '../../client-lib/password.js';
import { caCertificatesOf, loadPkcs12, loadPkcs12File } from '../../client-lib/pkcs12.js';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { writePkcs12 } from '../../certificates/ca/pkcs12-writer.js';
import { describeWithUpstreamFixtures, upstreamFixture } from '../helpers/fixtures.js';

function expectCode(action: () => unknown, code: string): SknockError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(SknockError);
    expect((error as SknockError).code).toBe(code);
    return error as SknockError;
  }
  throw new Error(`expected SknockError ${code}, nothing was thrown`);
}

describeWithUpstreamFixtures('PKCS#12: original sKnock bundles (OpenSSL 1.x legacy encryption)', () => {
  it('opens the test PKI client and server bundles with their CA', () => {
    const client = loadPkcs12File(upstreamFixture('test-pki', 'devclient.pfx'), 'portknocking');
    expect(client.certificate.subject).toContain('CN=sKnock Test Client');
    expect(client.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(caCertificatesOf(client).map((ca) => ca.subject)).toEqual([expect.stringContaining('CN=sKnock Test CA')]);

    const server = loadPkcs12File(upstreamFixture('test-pki', 'devserver.pfx'), 'portknocking');
    expect(server.certificate.subject).toContain('CN=sKnock Test Server');
    expect(server.certificateDer.equals(readFileSync(upstreamFixture('test-pki', 'devserver.cer')))).toBe(true);
  });

  it('says "wrong password" for a wrong password', () => {
    const error = expectCode(() => loadPkcs12File(upstreamFixture('test-pki', 'devclient.pfx'), 'not-it'), 'SKNOCK_PFX_BAD_PASSWORD');
    expect(error.message).toMatch(/wrong password/);
  });
});

describe('PKCS#12: OpenSSL 3 bundles and bad bundles', () => {
  let dir: string;
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const pfx = (name: string) => readFileSync(path.join(dir, name));

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sknock-p12-'));
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec.key');
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'other.key');
    openssl('req', '-new', '-x509', '-key', 'ec.key', '-subj', '/CN=openssl3 client', '-days', '3', '-out', 'ec.crt');
    openssl('req', '-new', '-x509', '-key', 'ec.key', '-subj', '/CN=some CA', '-days', '3', '-addext', 'basicConstraints=critical,CA:TRUE', '-out', 'ca.crt');
    openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key');
    openssl('req', '-new', '-x509', '-key', 'rsa.key', '-subj', '/CN=rsa', '-days', '3', '-out', 'rsa.crt');
    openssl('pkcs12', '-export', '-inkey', 'ec.key', '-in', 'ec.crt', '-passout', 'pass:pw', '-out', 'ec.pfx');
    openssl('pkcs12', '-export', '-inkey', 'ec.key', '-in', 'ec.crt', '-certfile', 'ca.crt', '-passout', 'pass:pw', '-out', 'with-ca.pfx');
    openssl('pkcs12', '-export', '-nokeys', '-in', 'ec.crt', '-passout', 'pass:pw', '-out', 'nokey.pfx');
    openssl('pkcs12', '-export', '-inkey', 'rsa.key', '-in', 'rsa.crt', '-passout', 'pass:pw', '-out', 'rsa.pfx');
    // A bundle whose certificate belongs to another key: OpenSSL refuses to build it, so add the cert as an extra.
    openssl('pkcs12', '-export', '-inkey', 'other.key', '-nocerts', '-passout', 'pass:pw', '-out', 'key-only.pfx');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('opens an AES-256/PBKDF2/SHA-256-MAC bundle', () => {
    const bundle = loadPkcs12(pfx('ec.pfx'), 'pw');
    expect(bundle.certificate.subject).toBe('CN=openssl3 client');
    expect(bundle.otherCertificates).toHaveLength(0);
    expectCode(() => caCertificatesOf(bundle), 'SKNOCK_PFX_NO_CA');
    expect(caCertificatesOf(loadPkcs12(pfx('with-ca.pfx'), 'pw'))[0]?.subject).toBe('CN=some CA');
  });

  it('gives a specific error for each kind of bad bundle', () => {
    expectCode(() => loadPkcs12(pfx('ec.pfx'), 'wrong'), 'SKNOCK_PFX_BAD_PASSWORD');
    expectCode(() => loadPkcs12(pfx('nokey.pfx'), 'pw'), 'SKNOCK_PFX_NO_KEY');
    expectCode(() => loadPkcs12(pfx('key-only.pfx'), 'pw'), 'SKNOCK_PFX_NO_CERTIFICATE');
    expect(expectCode(() => loadPkcs12(pfx('rsa.pfx'), 'pw'), 'SKNOCK_PFX_NOT_P256').message).toMatch(/P-256/);
    expectCode(() => loadPkcs12(Buffer.from('definitely not DER'), 'pw'), 'SKNOCK_PFX_MALFORMED');
    expectCode(() => loadPkcs12File(path.join(dir, 'missing.pfx'), 'pw'), 'SKNOCK_FILE_NOT_FOUND');
  });

  it('says when the key and the certificate do not belong together', () => {
    // OpenSSL refuses to build such a bundle; this project's writer assembles any bags it is given.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const certificate = new X509Certificate(readFileSync(path.join(dir, 'ec.crt'))).raw;
    const bundle = writePkcs12({ privateKey, certificate, otherCertificates: [], friendlyName: 'mismatch', password: 'pw' });
    expect(expectCode(() => loadPkcs12(bundle, 'pw'), 'SKNOCK_PFX_KEY_MISMATCH').message).toMatch(/no certificate in the bundle matches its private key/);
  });
});

describe('password sources', () => {
  it('prefers --password, then --password-file, then SKNOCK_PFX_PASSWORD', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sknock-pw-'));
    const file = path.join(dir, 'pw');
    writeFileSync(file, 'from-file\n');
    const environment = { SKNOCK_PFX_PASSWORD: 'from-env' };
    expect(resolvePassword({ password: 'given', passwordFile: file, environment })).toBe('given');
    expect(resolvePassword({ passwordFile: file, environment })).toBe('from-file');
    expect(resolvePassword({ environment })).toBe('from-env');
    expectCode(() => resolvePassword({ environment: {} }), 'SKNOCK_NO_PASSWORD');
    expectCode(() => resolvePassword({ passwordFile: path.join(dir, 'none'), environment }), 'SKNOCK_FILE_NOT_FOUND');
    rmSync(dir, { recursive: true, force: true });
  });
});
