import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  caPaths,
  newIndex,
  parseIndex,
  serializeIndex,
  withCaLock,
  writeFileAtomic,
  type CaIndex,
} from '../../certificates/ca/ca-state.js';
import { newSerialNumber, normalizeSerialNumber, validityFrom } from '../../certificates/ca/issue.js';
import { bundlePassword, caKeyPassword } from '../../certificates/ca/passwords.js';
import { temporaryDirectories, testNow } from './ca-harness.js';

const directories = temporaryDirectories();
afterEach(() => directories.removeAll());

function expectCode(action: () => unknown, code: string): void {
  expect(action).toThrow(expect.objectContaining({ name: 'SknockError', code }));
}

const sampleIndex: CaIndex = {
  ...newIndex({ subject: 'CN=Test CA', serial: '0a', notAfter: '2036-01-01T00:00:00.000Z' }),
  crlNumber: 4,
  issued: [
    {
      name: 'gate',
      kind: 'server',
      serial: '11',
      subject: 'CN=gate',
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2027-01-01T00:00:00.000Z',
      files: ['server/gate.pfx', 'server/gate.cer'],
    },
    {
      name: 'alice',
      kind: 'client',
      serial: '22',
      subject: 'CN=alice',
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2027-01-01T00:00:00.000Z',
      permittedPorts: 'tcp/22,udp/53',
      files: ['client/alice.pfx'],
    },
  ],
  revoked: [{ serial: '22', name: 'alice', revocationDate: '2026-02-01T00:00:00.000Z', reason: 'keyCompromise' }],
};

describe('CA index', () => {
  it('round-trips through its JSON form', () => {
    expect(parseIndex(serializeIndex(sampleIndex), 'index.json')).toEqual(sampleIndex);
  });

  it.each([
    ['not JSON', (json: string) => json.slice(0, -3), /not JSON/],
    ['another format', (json: string) => json.replace('sknock-ca-index/1', 'other/9'), /format is not/],
    ['a negative CRL number', (json: string) => json.replace('"crlNumber": 4', '"crlNumber": -1'), /crlNumber/],
    ['a serial that is not hex', (json: string) => json.replace('"serial": "11"', '"serial": "zz"'), /issued\[0\]\.serial/],
    ['an unknown kind', (json: string) => json.replace('"kind": "server"', '"kind": "router"'), /issued\[0\]\.kind/],
    ['a client without ports', (json: string) => json.replace('"permittedPorts": "tcp/22,udp/53",', ''), /issued\[1\]\.permittedPorts/],
    ['bad ports', (json: string) => json.replace('tcp/22,udp/53', 'tcp/0'), /issued\[1\]\.permittedPorts: invalid port/],
    ['an unknown reason', (json: string) => json.replace('keyCompromise', 'boredom'), /revoked\[0\]\.reason/],
    ['a bad date', (json: string) => json.replace('2026-02-01T00:00:00.000Z', 'yesterday'), /revocationDate is not a date/],
  ])('names what is wrong when it holds %s', (_, damage, detail) => {
    const json = damage(serializeIndex(sampleIndex));
    expect(() => parseIndex(json, '/ca/index.json')).toThrow(
      expect.objectContaining({ code: 'SKNOCK_CA_BAD_INDEX', message: expect.stringMatching(detail) }),
    );
  });
});

describe('atomic writes and the CA lock', () => {
  it('writes with the mode asked for, replaces whole files and leaves no temporary file behind', async () => {
    const directory = await directories.make();
    const file = path.join(directory, 'sub', 'key.pfx');
    await writeFileAtomic(file, Buffer.from('first'), 0o600);
    await writeFileAtomic(file, Buffer.from('second'), 0o600);
    expect(await readFile(file, 'utf8')).toBe('second');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(path.dirname(file))).toEqual(['key.pfx']);
  });

  it('refuses to run while a live process holds the lock, takes over a dead one, and always releases it', async () => {
    const paths = caPaths(await directories.make());
    await writeFile(paths.lock, `${process.pid}\n`);
    await expect(withCaLock(paths, async () => 'ran')).rejects.toMatchObject({ code: 'SKNOCK_CA_BUSY' });

    const exited = spawnSync(process.execPath, ['-e', '']);
    await writeFile(paths.lock, `${exited.pid}\n`);
    expect(await withCaLock(paths, async () => 'ran')).toBe('ran');
    expect(existsSync(paths.lock)).toBe(false);

    await expect(withCaLock(paths, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(existsSync(paths.lock)).toBe(false);
    expect(await readdir(paths.directory)).toEqual([]);
  });
});

describe('serial numbers and validity', () => {
  it('keeps serials positive, non-zero and 16 bytes long whatever the random source gives', () => {
    expect(newSerialNumber((size) => Buffer.alloc(size, 0))).toBe(`01${'00'.repeat(15)}`);
    expect(newSerialNumber((size) => Buffer.alloc(size, 0xff))).toBe(`7f${'ff'.repeat(15)}`);
    expect(newSerialNumber((size) => Buffer.alloc(size, 0x80))).toBe(`01${'80'.repeat(15)}`);
  });

  it('reads serials the way people write them', () => {
    expect(normalizeSerialNumber('0x0A:BC')).toBe('0abc');
    expect(normalizeSerialNumber('000abc')).toBe('0abc');
    expect(normalizeSerialNumber('7F')).toBe('7f');
    expect(normalizeSerialNumber('0')).toBe('00');
    expect(normalizeSerialNumber('g1')).toBeUndefined();
    expect(normalizeSerialNumber('1'.repeat(41))).toBeUndefined();
  });

  it('starts validity an hour early and never runs past the limit', () => {
    const limit = new Date(testNow.getTime() + 10 * 86_400_000);
    expect(validityFrom(testNow, 5, limit)).toEqual({
      notBefore: new Date(testNow.getTime() - 3_600_000),
      notAfter: new Date(testNow.getTime() + 5 * 86_400_000),
      clamped: false,
    });
    expect(validityFrom(testNow, 50, limit)).toMatchObject({ notAfter: limit, clamped: true });
  });
});

describe('passwords', () => {
  it('takes --password, then --password-file (first line), then SKNOCK_PFX_PASSWORD', async () => {
    const file = path.join(await directories.make(), 'password');
    await writeFile(file, 'from-file\n');
    const environment = { SKNOCK_PFX_PASSWORD: 'from-env' };
    expect(bundlePassword({ password: 'from-flag', passwordFile: file }, environment)).toBe('from-flag');
    expect(bundlePassword({ passwordFile: file }, environment)).toBe('from-file');
    expect(bundlePassword({}, environment)).toBe('from-env');
    expectCode(() => bundlePassword({}, {}), 'SKNOCK_NO_PASSWORD');
    expectCode(() => bundlePassword({ password: '' }, {}), 'SKNOCK_CA_EMPTY_PASSWORD');
    expectCode(() => bundlePassword({ password: 'pässwörd' }, {}), 'SKNOCK_CA_PASSWORD_NOT_ASCII');
  });

  it("takes the CA's own password first and the bundle password otherwise", () => {
    const environment = { SKNOCK_PFX_PASSWORD: 'bundle', SKNOCK_CA_PASSWORD: 'ca-env' };
    expect(caKeyPassword({ caPassword: 'ca-flag', password: 'bundle-flag' }, environment)).toBe('ca-flag');
    expect(caKeyPassword({ password: 'bundle-flag' }, environment)).toBe('ca-env');
    expect(caKeyPassword({ password: 'bundle-flag' }, { SKNOCK_PFX_PASSWORD: 'bundle' })).toBe('bundle-flag');
    expect(caKeyPassword({}, { SKNOCK_PFX_PASSWORD: 'bundle' })).toBe('bundle');
    expectCode(() => caKeyPassword({}, {}), 'SKNOCK_NO_PASSWORD');
    expectCode(() => caKeyPassword({ caPasswordFile: '/nonexistent/password' }, {}), 'SKNOCK_FILE_NOT_FOUND');
  });
});
