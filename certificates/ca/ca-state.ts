/**
 * The CA's directory: where each file lives, the index of what was issued
 * and revoked, atomic writes and the lock that keeps two commands apart.
 *
 *   DIR/ca.pfx               CA key + certificate (PKCS#12, encrypted, 0600)
 *   DIR/ca.cer               CA certificate (DER)
 *   DIR/index.json           issued and revoked certificates, last CRL number
 *   DIR/crl.der              the current CRL (DER)
 *   DIR/server/NAME.pfx|.cer server bundle (0600) and certificate (DER)
 *   DIR/client/NAME.pfx      client bundle (0600)
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SknockError } from '../../client-lib/errors.js';
import { parsePortList } from '../../client-lib/protocol/ports.js';
import { isRevocationReason, type RevocationReason } from './crl.js';
import { normalizeSerialNumber, type CertificateKind } from './issue.js';

export interface IssuedCertificate {
  readonly name: string;
  readonly kind: CertificateKind;
  /** Lower-case hex, as normalizeSerialNumber writes it. */
  readonly serial: string;
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** Clients only, as --allow takes them: `tcp/22,udp/53`. */
  readonly permittedPorts?: string;
  /** Paths relative to the CA directory. */
  readonly files: readonly string[];
}

export interface RevokedCertificate {
  readonly serial: string;
  readonly name: string;
  readonly revocationDate: string;
  readonly reason: RevocationReason;
}

export interface CaIndex {
  readonly format: typeof indexFormat;
  readonly ca: { readonly subject: string; readonly serial: string; readonly notAfter: string };
  /** The number of the last CRL written; 0 before the first. */
  readonly crlNumber: number;
  readonly issued: readonly IssuedCertificate[];
  readonly revoked: readonly RevokedCertificate[];
}

const indexFormat = 'sknock-ca-index/1';
export const keyFileMode = 0o600;
export const publicFileMode = 0o644;

export function caPaths(directory: string) {
  return {
    directory,
    keyStore: path.join(directory, 'ca.pfx'),
    certificate: path.join(directory, 'ca.cer'),
    index: path.join(directory, 'index.json'),
    crl: path.join(directory, 'crl.der'),
    lock: path.join(directory, '.sknock-ca.lock'),
  };
}

export type CaPaths = ReturnType<typeof caPaths>;

/** The files a leaf certificate is written to, relative to the CA directory. */
export function leafFiles(kind: CertificateKind, name: string): { bundle: string; certificate?: string } {
  return kind === 'server'
    ? { bundle: path.join('server', `${name}.pfx`), certificate: path.join('server', `${name}.cer`) }
    : { bundle: path.join('client', `${name}.pfx`) };
}

export function newIndex(ca: CaIndex['ca']): CaIndex {
  return { format: indexFormat, ca, crlNumber: 0, issued: [], revoked: [] };
}

// ---- parsing index.json: a file people may edit, so every field is checked ----

type Json = unknown;

function indexError(file: string, detail: string): SknockError {
  return new SknockError('SKNOCK_CA_BAD_INDEX', `${file} is damaged: ${detail}; restore it from a backup`);
}

function field(record: Json, key: string, where: string, file: string): Json {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw indexError(file, `${where} is not an object`);
  return (record as Record<string, Json>)[key];
}

function text(record: Json, key: string, where: string, file: string): string {
  const value = field(record, key, where, file);
  if (typeof value !== 'string' || value === '') throw indexError(file, `${where}.${key} is not a non-empty string`);
  return value;
}

function date(record: Json, key: string, where: string, file: string): string {
  const value = text(record, key, where, file);
  if (Number.isNaN(Date.parse(value))) throw indexError(file, `${where}.${key} is not a date`);
  return value;
}

function serial(record: Json, key: string, where: string, file: string): string {
  const value = normalizeSerialNumber(text(record, key, where, file));
  if (value === undefined) throw indexError(file, `${where}.${key} is not a hexadecimal serial number`);
  return value;
}

function list(record: Json, key: string, where: string, file: string): Json[] {
  const value = field(record, key, where, file);
  if (!Array.isArray(value)) throw indexError(file, `${where}.${key} is not a list`);
  return value;
}

function parseIssued(entry: Json, where: string, file: string): IssuedCertificate {
  const kind = text(entry, 'kind', where, file);
  if (kind !== 'server' && kind !== 'client') throw indexError(file, `${where}.kind is neither server nor client`);
  const files = list(entry, 'files', where, file).map((item, position) => {
    if (typeof item !== 'string') throw indexError(file, `${where}.files[${position}] is not a string`);
    return item;
  });
  const issued: IssuedCertificate = {
    name: text(entry, 'name', where, file),
    kind,
    serial: serial(entry, 'serial', where, file),
    subject: text(entry, 'subject', where, file),
    notBefore: date(entry, 'notBefore', where, file),
    notAfter: date(entry, 'notAfter', where, file),
    files,
  };
  if (kind === 'server') return issued;
  const ports = text(entry, 'permittedPorts', where, file);
  try {
    parsePortList(ports);
  } catch (error) {
    throw indexError(file, `${where}.permittedPorts: ${(error as Error).message}`);
  }
  return { ...issued, permittedPorts: ports };
}

function parseRevoked(entry: Json, where: string, file: string): RevokedCertificate {
  const reason = text(entry, 'reason', where, file);
  if (!isRevocationReason(reason)) throw indexError(file, `${where}.reason "${reason}" is not a revocation reason`);
  return {
    serial: serial(entry, 'serial', where, file),
    name: text(entry, 'name', where, file),
    revocationDate: date(entry, 'revocationDate', where, file),
    reason,
  };
}

export function parseIndex(json: string, file: string): CaIndex {
  let document: Json;
  try {
    document = JSON.parse(json);
  } catch (error) {
    throw indexError(file, `not JSON (${(error as Error).message})`);
  }
  if (field(document, 'format', 'the index', file) !== indexFormat) throw indexError(file, `format is not "${indexFormat}"`);
  const ca = field(document, 'ca', 'the index', file);
  const crlNumber = field(document, 'crlNumber', 'the index', file);
  if (!Number.isSafeInteger(crlNumber) || (crlNumber as number) < 0) throw indexError(file, 'crlNumber is not a whole number');
  return {
    format: indexFormat,
    ca: { subject: text(ca, 'subject', 'ca', file), serial: serial(ca, 'serial', 'ca', file), notAfter: date(ca, 'notAfter', 'ca', file) },
    crlNumber: crlNumber as number,
    issued: list(document, 'issued', 'the index', file).map((entry, position) => parseIssued(entry, `issued[${position}]`, file)),
    revoked: list(document, 'revoked', 'the index', file).map((entry, position) => parseRevoked(entry, `revoked[${position}]`, file)),
  };
}

export function serializeIndex(index: CaIndex): string {
  return `${JSON.stringify(index, null, 2)}\n`;
}

// ---- files ----

/** A missing file that every CA has becomes the operator's error; anything else stays as it is. */
function missingCa(paths: CaPaths): (error: NodeJS.ErrnoException) => never {
  return (error) => {
    if (error.code !== 'ENOENT') throw error;
    throw new SknockError(
      'SKNOCK_CA_NOT_INITIALIZED',
      `${paths.directory} holds no CA (no index.json): create one with sknock-ca init --dir ${paths.directory}`,
    );
  };
}

export async function readIndex(paths: CaPaths): Promise<CaIndex> {
  const json = await readFile(paths.index, 'utf8').catch(missingCa(paths));
  return parseIndex(json, paths.index);
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` in one step: a temporary file in the same directory,
 * fsync, rename, fsync of the directory. A crash leaves the old or the new
 * file, never half of one.
 */
export async function writeFileAtomic(file: string, data: Buffer | string, mode: number): Promise<void> {
  const directory = path.dirname(file);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const temporary = path.join(directory, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(directory);
}

export function writeIndex(paths: CaPaths, index: CaIndex): Promise<void> {
  return writeFileAtomic(paths.index, serializeIndex(index), publicFileMode);
}

function processIsAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** link() of a file that already holds our pid makes the lock appear whole, or not at all. */
async function acquireLock(paths: CaPaths): Promise<void> {
  const claim = `${paths.lock}.${process.pid}.${randomBytes(6).toString('hex')}`;
  await writeFile(claim, `${process.pid}\n`, { mode: keyFileMode, flag: 'wx' }).catch(missingCa(paths));
  try {
    for (let attempt = 1; attempt <= 2; attempt += 1) {
      try {
        await link(claim, paths.lock);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = Number.parseInt(await readFile(paths.lock, 'utf8').catch(() => ''), 10);
      if (attempt === 2 || processIsAlive(holder)) {
        throw new SknockError(
          'SKNOCK_CA_BUSY',
          `another sknock-ca (pid ${Number.isNaN(holder) ? 'unknown' : holder}) is working on ${paths.directory}; ` +
            `if none is, remove ${paths.lock}`,
        );
      }
      // The lock's process is gone (a crash): take it over.
      await rm(paths.lock, { force: true });
    }
  } finally {
    await rm(claim, { force: true });
  }
}

/** Runs `action` holding DIR/.sknock-ca.lock, so that two commands never read-modify-write the index at once. */
export async function withCaLock<T>(paths: CaPaths, action: () => Promise<T>): Promise<T> {
  await acquireLock(paths);
  try {
    return await action();
  } finally {
    await rm(paths.lock, { force: true });
  }
}
