/**
 * What each sknock-ca command does to the CA directory. Every change writes
 * its new files first and commits index.json last, so a crash in between
 * leaves files the index does not know (refused until --force) and never an
 * index that names missing files. The clock and randomness are parameters.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { SknockError } from '../../client-lib/errors.js';
import { loadPkcs12 } from '../../client-lib/pkcs12.js';
import { formatPortList, type PortRequest } from '../../client-lib/protocol/ports.js';
import {
  caPaths,
  keyFileMode,
  leafFiles,
  newIndex,
  publicFileMode,
  readIndex,
  withCaLock,
  writeFileAtomic,
  writeIndex,
  type CaIndex,
  type CaPaths,
  type IssuedCertificate,
  type RevokedCertificate,
} from './ca-state.js';
import { buildCrl, type RevocationReason } from './crl.js';
import { createCrlServer, crlPath } from './crl-server.js';
import {
  addDays,
  buildCaCertificate,
  buildLeafCertificate,
  generateP256KeyPair,
  importSigningKey,
  newSerialNumber,
  normalizeSerialNumber,
  validityFrom,
  wholeSeconds,
  type CertificateKind,
  type LeafProfile,
  type SigningCa,
} from './issue.js';
import { writePkcs12 } from './pkcs12-writer.js';
import { x509 } from './x509-setup.js';

/** The outside world an operation may use, injected so tests control it. */
export interface CaContext {
  readonly now: Date;
  readonly randomBytes: (size: number) => Buffer;
  /** PBKDF2/MAC iterations of written bundles; the writer's default when absent. */
  readonly pkcs12Iterations?: number;
}

export const defaultDays = { ca: 3650, leaf: 365, crl: 7 } as const;

/** Names become file names and certificate subjects: no paths, no spaces, no surprises. */
const namePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/;
/** A server's name is also its subjectAltName dNSName. */
const dnsNamePattern = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function checkName(kind: CertificateKind, name: string): void {
  if (!namePattern.test(name)) {
    throw new SknockError(
      'SKNOCK_CA_BAD_NAME',
      `invalid name "${name}": use 1-64 letters, digits, ".", "_" or "-", starting and ending with a letter or digit`,
    );
  }
  if (kind === 'server' && !dnsNamePattern.test(name)) {
    throw new SknockError('SKNOCK_CA_BAD_NAME', `invalid server name "${name}": it becomes the certificate's DNS name, so use letters, digits, "-" and "."`);
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
}

/** Opens ca.pfx; a wrong password surfaces as the loader's SKNOCK_PFX_BAD_PASSWORD. */
async function openCa(paths: CaPaths, password: string, now: Date): Promise<SigningCa> {
  const bytes = await readFile(paths.keyStore).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
    throw new SknockError('SKNOCK_CA_NOT_INITIALIZED', `${paths.keyStore} is missing: the CA key store is gone or the CA was never created`);
  });
  const bundle = loadPkcs12(bytes, password, paths.keyStore);
  const certificate = new x509.X509Certificate(bundle.certificateDer);
  if (certificate.notAfter.getTime() <= now.getTime()) {
    throw new SknockError(
      'SKNOCK_CA_EXPIRED',
      `the CA certificate expired on ${certificate.notAfter.toISOString()}: it can no longer issue; create a new CA with sknock-ca init`,
    );
  }
  return { certificate, privateKey: bundle.privateKey, signingKey: await importSigningKey(bundle.privateKey) };
}

/** A fresh serial that this CA has not used yet. */
function unusedSerial(index: CaIndex, randomBytes: (size: number) => Buffer): string {
  const used = new Set([index.ca.serial, ...index.issued.map((entry) => entry.serial)]);
  // 126 random bits: a repeat is practically impossible, but a broken random source should fail loudly.
  for (let attempt = 0; attempt < 8; attempt += 1) {
    const serial = newSerialNumber(randomBytes);
    if (!used.has(serial)) return serial;
  }
  throw new SknockError('SKNOCK_CA_SERIAL_COLLISION', 'the random source keeps producing serial numbers already in use');
}

// ---- init ----

export interface InitResult {
  readonly paths: CaPaths;
  readonly subject: string;
  readonly serial: string;
  readonly notAfter: Date;
}

export async function initCa(
  options: { readonly directory: string; readonly commonName: string; readonly days: number; readonly caPassword: string },
  context: CaContext,
): Promise<InitResult> {
  const paths = caPaths(options.directory);
  await mkdir(paths.directory, { recursive: true, mode: 0o700 });
  // Under the lock, so that two inits at once cannot both find the directory empty.
  return withCaLock(paths, async () => {
    for (const file of [paths.index, paths.keyStore, paths.certificate]) {
      if (await exists(file)) {
        throw new SknockError(
          'SKNOCK_CA_EXISTS',
          `${options.directory} already holds a CA (${path.basename(file)} exists); refusing to replace it: choose another --dir`,
        );
      }
    }
    const keys = await generateP256KeyPair();
    const serial = newSerialNumber(context.randomBytes);
    const validity = validityFrom(context.now, options.days);
    const certificate = await buildCaCertificate({ commonName: options.commonName, keys, serialNumber: serial, validity });
    const keyStore = writePkcs12({
      privateKey: keys.privateKey,
      certificate,
      otherCertificates: [],
      friendlyName: options.commonName,
      password: options.caPassword,
      iterations: context.pkcs12Iterations,
      randomBytes: context.randomBytes,
    });
    const subject = new x509.X509Certificate(certificate).subject;
    await writeFileAtomic(paths.keyStore, keyStore, keyFileMode);
    await writeFileAtomic(paths.certificate, certificate, publicFileMode);
    await writeIndex(paths, newIndex({ subject, serial, notAfter: validity.notAfter.toISOString() }));
    return { paths, subject, serial, notAfter: validity.notAfter };
  });
}

// ---- server / client ----

export interface IssueOptions {
  readonly directory: string;
  readonly kind: CertificateKind;
  readonly name: string;
  /** Clients only. */
  readonly permittedPorts?: readonly PortRequest[];
  readonly days: number;
  readonly force: boolean;
  readonly caPassword: string;
  readonly bundlePassword: string;
}

export interface IssueResult {
  readonly entry: IssuedCertificate;
  /** Absolute paths written. */
  readonly files: readonly string[];
  /** The CA expires before the requested end, so the certificate ends with the CA. */
  readonly clampedToCa: boolean;
  /** Earlier certificates under this name that --force replaced on disk but that stay valid until revoked. */
  readonly stillValid: readonly IssuedCertificate[];
}

function profileFor(options: IssueOptions): LeafProfile {
  if (options.kind === 'server') return { kind: 'server', dnsName: options.name };
  if (!options.permittedPorts || options.permittedPorts.length === 0) {
    throw new SknockError('SKNOCK_BAD_PORT_SPEC', 'a client certificate needs --allow, e.g. --allow tcp/22,udp/53');
  }
  return { kind: 'client', permittedPorts: options.permittedPorts };
}

export async function issueLeaf(options: IssueOptions, context: CaContext): Promise<IssueResult> {
  checkName(options.kind, options.name);
  const profile = profileFor(options);
  const paths = caPaths(options.directory);
  const relativeFiles = leafFiles(options.kind, options.name);
  return withCaLock(paths, async () => {
    const index = await readIndex(paths);
    const previous = index.issued.filter((entry) => entry.name === options.name);
    if (!options.force) {
      if (previous.length > 0) {
        throw new SknockError(
          'SKNOCK_CA_NAME_EXISTS',
          `a certificate named "${options.name}" was already issued (serial ${previous.at(-1)!.serial}); ` +
            'give --force to issue a new one (the old one stays valid until you revoke it)',
        );
      }
      for (const relative of Object.values(relativeFiles)) {
        if (await exists(path.join(paths.directory, relative))) {
          throw new SknockError(
            'SKNOCK_CA_NAME_EXISTS',
            `${relative} exists but is not in the index (an earlier command may have been interrupted); give --force to replace it`,
          );
        }
      }
    }
    const ca = await openCa(paths, options.caPassword, context.now);
    const keys = await generateP256KeyPair();
    const serial = unusedSerial(index, context.randomBytes);
    const validity = validityFrom(context.now, options.days, ca.certificate.notAfter);
    const certificate = await buildLeafCertificate({
      commonName: options.name,
      profile,
      publicKey: keys.publicKey,
      ca,
      serialNumber: serial,
      validity,
    });
    const bundle = writePkcs12({
      privateKey: keys.privateKey,
      certificate,
      // Every bundle carries the CA, as the original's did: a server needs it to judge knocks.
      otherCertificates: [Buffer.from(ca.certificate.rawData)],
      friendlyName: options.name,
      password: options.bundlePassword,
      iterations: context.pkcs12Iterations,
      randomBytes: context.randomBytes,
    });
    const written = [path.join(paths.directory, relativeFiles.bundle)];
    await writeFileAtomic(written[0]!, bundle, keyFileMode);
    if (relativeFiles.certificate !== undefined) {
      written.push(path.join(paths.directory, relativeFiles.certificate));
      await writeFileAtomic(written[1]!, certificate, publicFileMode);
    }
    const entry: IssuedCertificate = {
      name: options.name,
      kind: options.kind,
      serial,
      subject: new x509.X509Certificate(certificate).subject,
      notBefore: validity.notBefore.toISOString(),
      notAfter: validity.notAfter.toISOString(),
      ...(profile.kind === 'client' ? { permittedPorts: formatPortList(profile.permittedPorts) } : {}),
      files: Object.values(relativeFiles),
    };
    await writeIndex(paths, { ...index, issued: [...index.issued, entry] });
    const revokedSerials = new Set(index.revoked.map((revoked) => revoked.serial));
    const stillValid = previous.filter(
      (earlier) => !revokedSerials.has(earlier.serial) && Date.parse(earlier.notAfter) > context.now.getTime(),
    );
    return { entry, files: written, clampedToCa: validity.clamped, stillValid };
  });
}

// ---- revoke ----

export type RevocationTarget = { readonly name: string } | { readonly serial: string };

export async function revoke(
  options: { readonly directory: string; readonly target: RevocationTarget; readonly reason: RevocationReason },
  context: Pick<CaContext, 'now'>,
): Promise<{ readonly revoked: readonly RevokedCertificate[] }> {
  const paths = caPaths(options.directory);
  const wantedSerial = 'serial' in options.target ? normalizeSerialNumber(options.target.serial) : undefined;
  if ('serial' in options.target && wantedSerial === undefined) {
    throw new SknockError('SKNOCK_CA_BAD_SERIAL', `"${options.target.serial}" is not a hexadecimal serial number`);
  }
  return withCaLock(paths, async () => {
    const index = await readIndex(paths);
    const matches = index.issued.filter((entry) =>
      'name' in options.target ? entry.name === options.target.name : entry.serial === wantedSerial,
    );
    if (matches.length === 0) {
      throw 'name' in options.target
        ? new SknockError('SKNOCK_CA_UNKNOWN_NAME', `no certificate named "${options.target.name}" was issued by this CA (see sknock-ca list)`)
        : new SknockError('SKNOCK_CA_UNKNOWN_SERIAL', `no certificate with serial ${wantedSerial} was issued by this CA (see sknock-ca list)`);
    }
    const alreadyRevoked = new Set(index.revoked.map((entry) => entry.serial));
    const targets = matches.filter((entry) => !alreadyRevoked.has(entry.serial));
    if (targets.length === 0) {
      throw new SknockError('SKNOCK_CA_ALREADY_REVOKED', `every certificate matching ${describeTarget(options.target)} is already revoked`);
    }
    const revocationDate = wholeSeconds(context.now).toISOString();
    const revoked = targets.map((entry) => ({ serial: entry.serial, name: entry.name, revocationDate, reason: options.reason }));
    await writeIndex(paths, { ...index, revoked: [...index.revoked, ...revoked] });
    return { revoked };
  });
}

function describeTarget(target: RevocationTarget): string {
  return 'name' in target ? `name "${target.name}"` : `serial ${target.serial}`;
}

// ---- crl ----

export interface CrlResult {
  readonly file: string;
  readonly crlNumber: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly revokedCount: number;
}

export async function publishCrl(
  options: { readonly directory: string; readonly days: number; readonly caPassword: string },
  context: CaContext,
): Promise<CrlResult> {
  const paths = caPaths(options.directory);
  return withCaLock(paths, async () => {
    const index = await readIndex(paths);
    const ca = await openCa(paths, options.caPassword, context.now);
    const thisUpdate = wholeSeconds(context.now);
    const nextUpdate = wholeSeconds(addDays(context.now, options.days));
    const crlNumber = index.crlNumber + 1;
    const crl = buildCrl({
      ca,
      crlNumber,
      thisUpdate,
      nextUpdate,
      revoked: index.revoked.map((entry) => ({
        serialNumber: entry.serial,
        revocationDate: new Date(entry.revocationDate),
        reason: entry.reason,
      })),
    });
    // The number is committed before the CRL is written: after a crash a number is skipped, never issued twice.
    await writeIndex(paths, { ...index, crlNumber });
    await writeFileAtomic(paths.crl, crl, publicFileMode);
    return { file: paths.crl, crlNumber, thisUpdate, nextUpdate, revokedCount: index.revoked.length };
  });
}

// ---- list ----

export type CertificateStatus =
  | { readonly state: 'valid' }
  | { readonly state: 'expired' }
  | { readonly state: 'revoked'; readonly reason: RevocationReason; readonly revocationDate: string };

export interface ListedCertificate extends IssuedCertificate {
  readonly status: CertificateStatus;
}

export interface ListResult {
  readonly ca: CaIndex['ca'];
  readonly crlNumber: number;
  /** nextUpdate of DIR/crl.der, absent before the first CRL. */
  readonly crlNextUpdate: Date | undefined;
  readonly certificates: readonly ListedCertificate[];
  /** Revoked certificates that DIR/crl.der does not list yet, so servers still accept them. */
  readonly unpublishedRevocations: readonly RevokedCertificate[];
}

async function readCurrentCrl(paths: CaPaths): Promise<x509.X509Crl | undefined> {
  const der = await readFile(paths.crl).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  return der === undefined ? undefined : new x509.X509Crl(der);
}

export async function listCertificates(directory: string, context: Pick<CaContext, 'now'>): Promise<ListResult> {
  const paths = caPaths(directory);
  const index = await readIndex(paths);
  const revokedBySerial = new Map(index.revoked.map((entry) => [entry.serial, entry]));
  const certificates = index.issued.map((entry): ListedCertificate => {
    const revoked = revokedBySerial.get(entry.serial);
    const status: CertificateStatus = revoked
      ? { state: 'revoked', reason: revoked.reason, revocationDate: revoked.revocationDate }
      : Date.parse(entry.notAfter) <= context.now.getTime()
        ? { state: 'expired' }
        : { state: 'valid' };
    return { ...entry, status };
  });
  const crl = await readCurrentCrl(paths);
  const published = new Set(crl?.entries.map((entry) => normalizeSerialNumber(entry.serialNumber)) ?? []);
  return {
    ca: index.ca,
    crlNumber: index.crlNumber,
    crlNextUpdate: crl?.nextUpdate,
    certificates,
    unpublishedRevocations: index.revoked.filter((entry) => !published.has(entry.serial)),
  };
}

// ---- serve ----

/** Starts serving DIR/crl.der over HTTP; the caller closes the server. */
export async function serveCrl(
  options: { readonly directory: string; readonly port: number; readonly host: string },
  onError: (error: Error) => void,
): Promise<{ readonly server: Server; readonly url: string }> {
  const paths = caPaths(options.directory);
  // A directory that holds no CA is refused now rather than at the first request.
  await readIndex(paths);
  const server = createCrlServer(paths.crl, onError);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new SknockError('SKNOCK_CA_LISTEN', `cannot listen on ${options.host} port ${options.port}: ${error.code ?? error.message}`, { cause: error })),
    );
    server.listen(options.port, options.host, resolve);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `http://${host}:${address.port}${crlPath}` };
}
