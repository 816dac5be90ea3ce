import { X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SknockError } from './errors.js';

/** The server's certificate as a client needs it: knocks are encrypted to its P-256 key. */
export interface ServerCertificate {
  readonly certificate: X509Certificate;
  readonly der: Buffer;
  readonly publicKey: KeyObject;
}

/** Accepts DER or PEM ("-----BEGIN CERTIFICATE-----"). */
export function parseServerCertificate(bytes: Buffer, label = 'server certificate'): ServerCertificate {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(bytes);
  } catch (error) {
    throw new SknockError('SKNOCK_SERVER_CERT_MALFORMED', `${label} is not an X.509 certificate (DER or PEM)`, { cause: error });
  }
  const publicKey = certificate.publicKey;
  const curve = publicKey.asymmetricKeyDetails?.namedCurve;
  if (publicKey.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw new SknockError(
      'SKNOCK_SERVER_CERT_NOT_P256',
      `${label} has a ${curve ?? publicKey.asymmetricKeyType} key; sKnock servers use P-256 (prime256v1) keys`,
    );
  }
  return { certificate, der: certificate.raw, publicKey };
}

export function loadServerCertificateFile(file: string): ServerCertificate {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new SknockError(
      'SKNOCK_FILE_NOT_FOUND',
      `cannot read server certificate ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      { cause: error },
    );
  }
  return parseServerCertificate(bytes, file);
}
