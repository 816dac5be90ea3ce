import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLReason, SubjectAlternativeName, id_ce_cRLReasons } from '@peculiar/asn1-x509';
import { fromBER, Utf8String } from 'asn1js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { x509 } from '../../certificates/ca/x509-setup.js';
import { loadPkcs12 } from '../../client-lib/pkcs12.js';
import { compileProgram, makeSampleCa, runCa, runCaOk, temporaryDirectories, testNow, testPassword } from './ca-harness.js';

const run = promisify(execFile);
const directories = temporaryDirectories();
afterEach(() => directories.removeAll());

const dayMs = 86_400_000;

async function bundle(file: string, password = testPassword) {
  return loadPkcs12(await readFile(file), password, file);
}

function peculiar(der: Buffer): x509.X509Certificate {
  return new x509.X509Certificate(der);
}

/** The 1.3.6.1.4.1.19518 otherName, read from the raw extension: @peculiar/x509's SAN parser drops otherNames. */
function authorizationValue(certificate: x509.X509Certificate): string | undefined {
  const extension = certificate.getExtension('2.5.29.17');
  if (!extension) return undefined;
  const names = AsnConvert.parse(extension.value, SubjectAlternativeName);
  const otherName = names.find((name) => name.otherName?.typeId === '1.3.6.1.4.1.19518')?.otherName;
  if (!otherName) return undefined;
  const decoded = fromBER(otherName.value).result;
  return decoded instanceof Utf8String ? decoded.valueBlock.value : undefined;
}

function serialBytes(certificate: X509Certificate): Buffer {
  return Buffer.from(certificate.serialNumber, 'hex');
}

async function readIndexJson(dir: string) {
  return JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
}

describe('sknock-ca init', () => {
  it('creates a P-256 CA that may sign certificates and CRLs only, with its key in a 0600 PKCS#12', async () => {
    const dir = path.join(await directories.make(), 'ca');
    const result = await runCaOk(['init', '--dir', dir, '--cn', 'Example CA', '--days', '100']);
    expect(result.stdout).toContain('CN=Example CA');

    expect((await stat(path.join(dir, 'ca.pfx'))).mode & 0o777).toBe(0o600);
    const store = await bundle(path.join(dir, 'ca.pfx'));
    const der = await readFile(path.join(dir, 'ca.cer'));
    expect(store.certificateDer.equals(der)).toBe(true);
    expect(store.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');

    const certificate = peculiar(der);
    expect(certificate.subject).toBe('CN=Example CA');
    expect(certificate.issuer).toBe('CN=Example CA');
    expect(await certificate.verify({ publicKey: certificate.publicKey, date: testNow })).toBe(true);
    const basic = certificate.getExtension(x509.BasicConstraintsExtension)!;
    expect([basic.ca, basic.pathLength, basic.critical]).toEqual([true, 0, true]);
    const usage = certificate.getExtension(x509.KeyUsagesExtension)!;
    expect(usage.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(usage.critical).toBe(true);
    const subjectKeyId = certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(certificate.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(subjectKeyId);
    expect(certificate.notAfter.getTime()).toBe(testNow.getTime() + 100 * dayMs);

    const index = await readIndexJson(dir);
    expect(index).toMatchObject({ crlNumber: 0, issued: [], revoked: [], ca: { subject: 'CN=Example CA' } });
  });

  it('refuses a second init in the same directory and leaves the first CA alone', async () => {
    const dir = path.join(await directories.make(), 'ca');
    await runCaOk(['init', '--dir', dir]);
    const before = await readFile(path.join(dir, 'ca.pfx'));
    const second = await runCa(['init', '--dir', dir]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/already holds a CA.*SKNOCK_CA_EXISTS/);
    expect((await readFile(path.join(dir, 'ca.pfx'))).equals(before)).toBe(true);
  });

  it('needs a password and says where to give it', async () => {
    const dir = path.join(await directories.make(), 'ca');
    const result = await runCa(['init', '--dir', dir], { environment: {} });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no password for the CA key store.*--ca-password-file.*SKNOCK_CA_PASSWORD.*SKNOCK_NO_PASSWORD/s);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('sknock-ca server and client', () => {
  const shared = temporaryDirectories();
  afterAll(() => shared.removeAll());
  let dir: string;
  let caDer: Buffer;
  let caCertificate: X509Certificate;
  beforeAll(async () => {
    dir = await makeSampleCa(await shared.make());
    caDer = await readFile(path.join(dir, 'ca.cer'));
    caCertificate = new X509Certificate(caDer);
  });

  it('writes the server bundle (key, certificate, CA) and the certificate alone as DER', async () => {
    const server = await bundle(path.join(dir, 'server', 'gate.pfx'));
    expect((await stat(path.join(dir, 'server', 'gate.pfx'))).mode & 0o777).toBe(0o600);
    expect(server.certificateDer.equals(await readFile(path.join(dir, 'server', 'gate.cer')))).toBe(true);
    expect(server.otherCertificates.map((other) => other.raw.equals(caDer))).toEqual([true]);
    expect(server.certificate.verify(caCertificate.publicKey)).toBe(true);

    const certificate = peculiar(server.certificateDer);
    expect(certificate.subject).toBe('CN=gate');
    expect(certificate.getExtension(x509.BasicConstraintsExtension)!.ca).toBe(false);
    const usage = certificate.getExtension(x509.KeyUsagesExtension)!;
    expect(usage.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement);
    expect(certificate.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.serverAuth]);
    const names = certificate.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON();
    expect(names).toEqual([{ type: 'dns', value: 'gate' }]);
    expect(certificate.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(
      peculiar(caDer).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
    expect(certificate.getExtension(x509.SubjectKeyIdentifierExtension)).toBeTruthy();
  });

  it('writes a client bundle whose certificate carries the permitted ports in the original otherName form', async () => {
    const client = await bundle(path.join(dir, 'client', 'alice.pfx'));
    expect(client.certificate.verify(caCertificate.publicKey)).toBe(true);
    expect(client.otherCertificates.map((other) => other.raw.equals(caDer))).toEqual([true]);

    const certificate = peculiar(client.certificateDer);
    expect(authorizationValue(certificate)).toBe('1.22,0.53');
    const usage = certificate.getExtension(x509.KeyUsagesExtension)!;
    expect(usage.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement);
    expect(usage.critical).toBe(true);
    expect(certificate.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    const basic = certificate.getExtension(x509.BasicConstraintsExtension)!;
    expect([basic.ca, basic.critical]).toEqual([false, true]);
    // Validity: a year by default, with notBefore an hour early for clock skew.
    expect(certificate.notAfter.getTime()).toBe(testNow.getTime() + 365 * dayMs);
    expect(certificate.notBefore.getTime()).toBe(testNow.getTime() - 3_600_000);
  });

  it('gives every certificate a random, positive, non-zero 16-byte serial, recorded in the index', async () => {
    const index = await readIndexJson(dir);
    const certificates = [
      caCertificate,
      (await bundle(path.join(dir, 'server', 'gate.pfx'))).certificate,
      (await bundle(path.join(dir, 'client', 'alice.pfx'))).certificate,
      (await bundle(path.join(dir, 'client', 'mallory.pfx'))).certificate,
    ];
    const serials = certificates.map(serialBytes);
    for (const serial of serials) {
      expect(serial.length).toBe(16);
      expect(serial[0]! & 0x80).toBe(0);
      expect(serial[0]).not.toBe(0);
    }
    expect(new Set(serials.map((serial) => serial.toString('hex'))).size).toBe(4);
    expect(index.ca.serial).toBe(serials[0]!.toString('hex'));
    expect(index.issued.map((entry: { serial: string }) => entry.serial)).toEqual(serials.slice(1).map((serial) => serial.toString('hex')));
    expect(index.issued[1]).toMatchObject({
      name: 'alice',
      kind: 'client',
      subject: 'CN=alice',
      permittedPorts: 'tcp/22,udp/53',
      notAfter: new Date(testNow.getTime() + 365 * dayMs).toISOString(),
    });
  });

  it('refuses an existing name, and with --force issues anew while the old one stays listed and valid', async () => {
    const refused = await runCa(['client', '--dir', dir, '--name', 'alice', '--allow', 'tcp/22']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already issued.*--force.*SKNOCK_CA_NAME_EXISTS/);

    const forcedDir = await makeSampleCa(await directories.make());
    const oldSerial = (await readIndexJson(forcedDir)).issued[1].serial;
    const forced = await runCaOk(['client', '--dir', forcedDir, '--name', 'alice', '--allow', 'tcp/2222', '--force']);
    expect(forced.stderr).toContain(`--serial ${oldSerial}`);
    const alice = peculiar((await bundle(path.join(forcedDir, 'client', 'alice.pfx'))).certificateDer);
    expect(authorizationValue(alice)).toBe('1.2222');
    const entries = (await readIndexJson(forcedDir)).issued.filter((entry: { name: string }) => entry.name === 'alice');
    expect(entries.map((entry: { permittedPorts: string }) => entry.permittedPorts)).toEqual(['tcp/22,udp/53', 'tcp/2222']);
  });

  it('refuses a bundle file the index does not know (left by an interrupted command) unless --force', async () => {
    const orphan = path.join(dir, 'client', 'carol.pfx');
    await writeFile(orphan, 'half-written');
    const refused = await runCa(['client', '--dir', dir, '--name', 'carol', '--allow', 'tcp/22']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not in the index.*--force/);
    await runCaOk(['client', '--dir', dir, '--name', 'carol', '--allow', 'tcp/22', '--force']);
    expect((await bundle(orphan)).certificate.subject).toBe('CN=carol');
  });

  it('rejects a bad --allow, a bad name, a missing --allow and unknown options before touching the CA', async () => {
    const indexBefore = await readFile(path.join(dir, 'index.json'), 'utf8');
    const badPort = await runCa(['client', '--dir', dir, '--name', 'eve', '--allow', 'tcp/70000']);
    expect([badPort.code, badPort.stderr]).toEqual([1, expect.stringMatching(/invalid port "tcp\/70000".*SKNOCK_BAD_PORT_SPEC/)]);
    const badProtocol = await runCa(['client', '--dir', dir, '--name', 'eve', '--allow', 'icmp/1']);
    expect(badProtocol.stderr).toMatch(/SKNOCK_BAD_PORT_SPEC/);
    const noAllow = await runCa(['client', '--dir', dir, '--name', 'eve']);
    expect([noAllow.code, noAllow.stderr]).toEqual([2, expect.stringContaining('client needs --allow')]);
    const traversal = await runCa(['client', '--dir', dir, '--name', '../eve', '--allow', 'tcp/22']);
    expect(traversal.stderr).toMatch(/invalid name.*SKNOCK_CA_BAD_NAME/);
    const notDns = await runCa(['server', '--dir', dir, '--name', 'my_server']);
    expect(notDns.stderr).toMatch(/DNS name.*SKNOCK_CA_BAD_NAME/);
    const unknownOption = await runCa(['server', '--dir', dir, '--name', 'x', '--allow', 'tcp/22']);
    expect([unknownOption.code, unknownOption.stderr]).toEqual([2, expect.stringContaining("Unknown option '--allow'")]);
    expect(await readFile(path.join(dir, 'index.json'), 'utf8')).toBe(indexBefore);
  });

  it('says "wrong password" for a wrong CA password and writes nothing', async () => {
    const result = await runCa(['client', '--dir', dir, '--name', 'dave', '--allow', 'tcp/22', '--ca-password', 'not-it']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/wrong password.*ca\.pfx.*SKNOCK_PFX_BAD_PASSWORD/);
    expect(existsSync(path.join(dir, 'client', 'dave.pfx'))).toBe(false);
  });

  it('keeps the CA password apart from the bundle password when both are given', async () => {
    const dir2 = path.join(await directories.make(), 'ca');
    const environment = { SKNOCK_CA_PASSWORD: 'ca-secret', SKNOCK_PFX_PASSWORD: 'bundle-secret' };
    await runCaOk(['init', '--dir', dir2], { environment });
    await runCaOk(['client', '--dir', dir2, '--name', 'erin', '--allow', 'udp/53'], { environment });
    expect((await bundle(path.join(dir2, 'ca.pfx'), 'ca-secret')).certificate.subject).toBe('CN=sKnock CA');
    expect((await bundle(path.join(dir2, 'client', 'erin.pfx'), 'bundle-secret')).certificate.subject).toBe('CN=erin');
  });

  it('ends a certificate with the CA when --days reaches past it, and says so', async () => {
    const dir2 = path.join(await directories.make(), 'ca');
    await runCaOk(['init', '--dir', dir2, '--days', '30']);
    const result = await runCaOk(['server', '--dir', dir2, '--name', 'long', '--days', '365']);
    expect(result.stderr).toContain('the CA expires first');
    const server = peculiar((await bundle(path.join(dir2, 'server', 'long.pfx'))).certificateDer);
    expect(server.notAfter.getTime()).toBe(testNow.getTime() + 30 * dayMs);
  });

  it('refuses to issue once the CA has expired', async () => {
    const later = new Date(testNow.getTime() + 3651 * dayMs);
    const result = await runCa(['server', '--dir', dir, '--name', 'late'], { now: later });
    expect(result.stderr).toMatch(/CA certificate expired.*SKNOCK_CA_EXPIRED/);
  });
});

describe('sknock-ca revoke, crl and list', () => {
  async function crlOf(dir: string): Promise<x509.X509Crl> {
    return new x509.X509Crl(await readFile(path.join(dir, 'crl.der')));
  }

  function crlNumber(crl: x509.X509Crl): number {
    const extension = crl.extensions.find((candidate) => candidate.type === '2.5.29.20')!;
    const integer = fromBER(extension.value).result as unknown as { valueBlock: { valueDec: number } };
    return integer.valueBlock.valueDec;
  }

  it('revokes by name and by serial, and each CRL lists them with a higher CRL number, signed by the CA', async () => {
    const dir = await makeSampleCa(await directories.make());
    const index = await readIndexJson(dir);
    const [, alice, mallory] = index.issued as { serial: string }[];
    const caCertificate = peculiar(await readFile(path.join(dir, 'ca.cer')));

    await runCaOk(['crl', '--dir', dir]);
    const empty = await crlOf(dir);
    expect(crlNumber(empty)).toBe(1);
    expect(empty.entries).toEqual([]);

    const byName = await runCaOk(['revoke', '--dir', dir, '--name', 'mallory', '--reason', 'keyCompromise']);
    expect(byName.stdout).toContain(mallory!.serial);
    // A serial as people paste it: colons and upper case.
    const pasted = alice!.serial.toUpperCase().match(/../g)!.join(':');
    await runCaOk(['revoke', '--dir', dir, '--serial', pasted]);
    const later = new Date(testNow.getTime() + 60_000);
    await runCaOk(['crl', '--dir', dir, '--days', '30'], { now: later });

    const crl = await crlOf(dir);
    expect(crlNumber(crl)).toBe(2);
    expect(crl.thisUpdate.getTime()).toBe(later.getTime());
    expect(crl.nextUpdate!.getTime()).toBe(later.getTime() + 30 * dayMs);
    expect(await crl.verify({ publicKey: caCertificate.publicKey })).toBe(true);
    expect(crl.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(
      caCertificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
    const entries = new Map(crl.entries.map((entry) => [entry.serialNumber.toLowerCase(), entry]));
    expect([...entries.keys()].sort()).toEqual([alice!.serial, mallory!.serial].sort());
    expect(entries.get(mallory!.serial)!.reason).toBe(x509.X509CrlReason.keyCompromise);
    expect(entries.get(mallory!.serial)!.revocationDate.getTime()).toBe(testNow.getTime());
    // "unspecified" is left out of the entry altogether (RFC 5280 5.3.1).
    expect(entries.get(alice!.serial)!.extensions).toEqual([]);
    expect(entries.get(mallory!.serial)!.extensions.map((extension) => extension.type)).toEqual([id_ce_cRLReasons]);
    expect(AsnConvert.parse(entries.get(mallory!.serial)!.extensions[0]!.value, CRLReason).reason).toBe(1);

    await runCaOk(['crl', '--dir', dir]);
    expect(crlNumber(await crlOf(dir))).toBe(3);
    expect((await readIndexJson(dir)).crlNumber).toBe(3);
  });

  it('refuses unknown names and serials, double revocation, bad reasons and --name with --serial', async () => {
    const dir = await makeSampleCa(await directories.make());
    const unknownName = await runCa(['revoke', '--dir', dir, '--name', 'nobody']);
    expect([unknownName.code, unknownName.stderr]).toEqual([1, expect.stringMatching(/no certificate named "nobody".*SKNOCK_CA_UNKNOWN_NAME/)]);
    const unknownSerial = await runCa(['revoke', '--dir', dir, '--serial', '0badc0de']);
    expect(unknownSerial.stderr).toMatch(/SKNOCK_CA_UNKNOWN_SERIAL/);
    const notHex = await runCa(['revoke', '--dir', dir, '--serial', 'xyz']);
    expect(notHex.stderr).toMatch(/SKNOCK_CA_BAD_SERIAL/);
    const badReason = await runCa(['revoke', '--dir', dir, '--name', 'alice', '--reason', 'certificateHold']);
    expect([badReason.code, badReason.stderr]).toEqual([2, expect.stringContaining('unknown --reason')]);
    const both = await runCa(['revoke', '--dir', dir, '--name', 'alice', '--serial', '01']);
    expect([both.code, both.stderr]).toEqual([2, expect.stringContaining('exactly one of --name and --serial')]);

    await runCaOk(['revoke', '--dir', dir, '--name', 'alice']);
    const again = await runCa(['revoke', '--dir', dir, '--name', 'alice']);
    expect(again.stderr).toMatch(/already revoked.*SKNOCK_CA_ALREADY_REVOKED/);
    expect((await readIndexJson(dir)).revoked).toHaveLength(1);
  });

  it('lists issued certificates with status, expiry and ports, and warns of revocations not yet in the CRL', async () => {
    const dir = await makeSampleCa(await directories.make());
    await runCaOk(['revoke', '--dir', dir, '--name', 'mallory', '--reason', 'superseded']);
    const before = await runCaOk(['list', '--dir', dir]);
    expect(before.stdout).toMatch(/client\s+alice\s+[0-9a-f]{32}\s+2027-01-01\s+valid\s+tcp\/22,udp\/53/);
    expect(before.stdout).toMatch(/client\s+mallory\s+[0-9a-f]{32}\s+2027-01-01\s+revoked 2026-01-01 \(superseded\)/);
    expect(before.stdout).toContain('no CRL yet');
    expect(before.stdout).toContain('1 revocation(s) not in crl.der yet (mallory)');

    await runCaOk(['crl', '--dir', dir]);
    const after = await runCaOk(['list', '--dir', dir]);
    expect(after.stdout).toContain('CRL number 1, next update 2026-01-08');
    expect(after.stdout).not.toContain('not in crl.der');

    const expired = await runCaOk(['list', '--dir', dir, '--json'], { now: new Date('2027-06-01T00:00:00Z') });
    const listed = JSON.parse(expired.stdout);
    expect(listed.certificates.map((entry: { name: string; status: { state: string } }) => [entry.name, entry.status.state])).toEqual([
      ['gate', 'expired'],
      ['alice', 'expired'],
      ['mallory', 'revoked'],
    ]);
  });
});

describe('sknock-ca usage', () => {
  it('answers --help and a bare command line with the usage, and requires --dir', async () => {
    const help = await runCa(['--help']);
    expect([help.code, help.stdout]).toEqual([0, expect.stringContaining('sknock-ca client --dir DIR --name NAME --allow')]);
    const bare = await runCa([]);
    expect([bare.code, bare.stderr]).toEqual([2, expect.stringContaining('sknock-ca init')]);
    const commandHelp = await runCa(['revoke', '--help']);
    expect([commandHelp.code, commandHelp.stdout]).toEqual([0, expect.stringContaining('keyCompromise')]);
    for (const command of ['init', 'server', 'client', 'revoke', 'crl', 'list']) {
      const missing = await runCa([command]);
      expect([missing.code, missing.stderr]).toEqual([2, expect.stringContaining(`${command} needs --dir`)]);
    }
    const unknown = await runCa(['frobnicate']);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringContaining('unknown command "frobnicate"')]);
    const badDays = await runCa(['init', '--dir', 'x', '--days', '0']);
    expect([badDays.code, badDays.stderr]).toEqual([2, expect.stringContaining('--days must be a whole number')]);
  });

  it('says a directory holds no CA', async () => {
    const dir = await directories.make();
    const result = await runCa(['list', '--dir', dir]);
    expect([result.code, result.stderr]).toEqual([1, expect.stringMatching(/holds no CA.*sknock-ca init.*SKNOCK_CA_NOT_INITIALIZED/)]);
  });
});

describe('sknock-ca as a program', () => {
  let program: string;
  let removeBuild: () => Promise<void>;
  beforeAll(async () => {
    ({ program, remove: removeBuild } = await compileProgram());
    expect(existsSync(program)).toBe(true);
  });
  afterAll(() => removeBuild());

  it('runs init, client and list from the compiled file, and exits non-zero on errors', async () => {
    expect((await readFile(program, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
    const dir = path.join(await directories.make(), 'ca');
    const passwordFile = path.join(path.dirname(dir), 'password');
    await writeFile(passwordFile, `${testPassword}\n`);
    const environment = { ...process.env, SKNOCK_PFX_PASSWORD: undefined };
    await run('node', [program, 'init', '--dir', dir, '--password-file', passwordFile], { env: environment });
    await run('node', [program, 'client', '--dir', dir, '--name', 'zoe', '--allow', 'tcp/22', '--password-file', passwordFile], {
      env: environment,
    });
    const listed = await run('node', [program, 'list', '--dir', dir], { env: environment });
    expect(listed.stdout).toMatch(/client\s+zoe/);
    expect((await bundle(path.join(dir, 'client', 'zoe.pfx'))).certificate.subject).toBe('CN=zoe');

    const failure = await run('node', [program, 'revoke', '--dir', dir, '--name', 'nobody'], { env: environment }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure).toMatchObject({ code: 1, stderr: expect.stringContaining('SKNOCK_CA_UNKNOWN_NAME') });
  });
});
