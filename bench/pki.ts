/**
 * The benchmark's certificates: the development PKI's server and CA
 * (certificates/dev, public by design), plus as many fresh client
 * certificates signed by that CA as a run needs, so that "new client" knocks
 * really are new to the server's certificate cache.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLeafCertificate, generateP256KeyPair, importSigningKey, newSerialNumber, validityFrom, type SigningCa } from '../certificates/ca/issue.js';
import { caCertificatesOf, loadPkcs12File, type Pkcs12Bundle } from '../client-lib/pkcs12.js';
import type { PortRequest } from '../client-lib/protocol/ports.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const devPki = path.join(repoRoot, 'certificates', 'dev');
const DEV_PASSWORD = 'portknocking';
/** What every benchmark client may open. */
export const BENCH_SERVICE_PORT = 2000;
const permittedPorts: readonly PortRequest[] = [{ protocol: 'tcp', port: BENCH_SERVICE_PORT }];

export interface ClientIdentity {
  readonly privateKey: KeyObject;
  readonly certificateDer: Buffer;
}

export interface BenchPki {
  readonly server: Pkcs12Bundle;
  readonly serverPfxFile: string;
  readonly serverCertificateFile: string;
  readonly caCertificates: readonly Buffer[];
  readonly crlFile: string;
  readonly password: string;
}

export function loadBenchPki(): BenchPki {
  const serverPfxFile = path.join(devPki, 'server', 'devserver.pfx');
  const server = loadPkcs12File(serverPfxFile, DEV_PASSWORD);
  return {
    server,
    serverPfxFile,
    serverCertificateFile: path.join(devPki, 'server', 'devserver.cer'),
    caCertificates: caCertificatesOf(server, serverPfxFile).map((certificate) => certificate.raw),
    crlFile: path.join(devPki, 'crl.der'),
    password: DEV_PASSWORD,
  };
}

/** `count` new client identities signed by the development CA. */
export async function issueClients(count: number, now: Date): Promise<ClientIdentity[]> {
  const caBundle = loadPkcs12File(path.join(devPki, 'ca.pfx'), DEV_PASSWORD);
  const ca: SigningCa = {
    certificate: new x509.X509Certificate(caBundle.certificateDer),
    privateKey: caBundle.privateKey,
    signingKey: await importSigningKey(caBundle.privateKey),
  };
  const clients: ClientIdentity[] = [];
  for (let index = 0; index < count; index += 1) {
    const keys = await generateP256KeyPair();
    const certificateDer = await buildLeafCertificate({
      commonName: `bench-client-${index}`,
      profile: { kind: 'client', permittedPorts },
      publicKey: keys.publicKey,
      ca,
      serialNumber: newSerialNumber(randomBytes),
      validity: validityFrom(now, 30),
    });
    clients.push({ privateKey: keys.privateKey, certificateDer });
  }
  return clients;
}

interface StoredClient {
  readonly key: string;
  readonly certificate: string;
}

/** Writes identities for the client-side program (a file in the run's private temporary folder). */
export function writeClients(file: string, clients: readonly ClientIdentity[]): void {
  const stored: StoredClient[] = clients.map((client) => ({
    key: client.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    certificate: client.certificateDer.toString('base64'),
  }));
  writeFileSync(file, JSON.stringify(stored), { mode: 0o600 });
}

export function readClients(file: string): ClientIdentity[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as StoredClient[]).map((stored) => ({
    privateKey: createPrivateKey({ key: Buffer.from(stored.key, 'base64'), format: 'der', type: 'pkcs8' }),
    certificateDer: Buffer.from(stored.certificate, 'base64'),
  }));
}
