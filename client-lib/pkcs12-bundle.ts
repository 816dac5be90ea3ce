/**
 * What a PKCS#12 bundle holds, apart from the decoding (pkcs12.ts): this
 * module does not load node-forge, so the server's long-lived threads can
 * use a bundle without keeping its ≈ 2 MB of code (see pkcs12-off-thread.ts).
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { SknockError } from './errors.js';

export type Pkcs12ErrorCode =
  | 'SKNOCK_FILE_NOT_FOUND'
  | 'SKNOCK_PFX_MALFORMED'
  | 'SKNOCK_PFX_BAD_PASSWORD'
  | 'SKNOCK_PFX_NO_KEY'
  | 'SKNOCK_PFX_NO_CERTIFICATE'
  | 'SKNOCK_PFX_KEY_MISMATCH'
  | 'SKNOCK_PFX_NOT_P256'
  | 'SKNOCK_PFX_NO_CA';

/** What a PKCS#12 bundle holds, as node:crypto objects ready for per-packet use. */
export interface Pkcs12Bundle {
  readonly privateKey: KeyObject;
  /** The certificate that matches the private key. */
  readonly certificate: X509Certificate;
  readonly certificateDer: Buffer;
  /** Every other certificate in the bundle (the CA, intermediates). */
  readonly otherCertificates: readonly X509Certificate[];
}

/** The CA certificates of a bundle; a server bundle without one cannot judge knocks. */
export function caCertificatesOf(bundle: Pkcs12Bundle, label = 'PKCS#12 bundle'): X509Certificate[] {
  const authorities = bundle.otherCertificates.filter((candidate) => candidate.ca);
  if (authorities.length === 0) {
    throw new SknockError<Pkcs12ErrorCode>('SKNOCK_PFX_NO_CA', `${label} holds no CA certificate (basicConstraints CA:TRUE): add the CA that issues client certificates`);
  }
  return authorities;
}
