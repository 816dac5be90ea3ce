import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { crlFreshness, crlsToPem, newestPerIssuer, parseCrlBundle, type CrlReason, type VerifiedCrl } from './trust/index.js';

export type CrlFileState =
  | {
      readonly kind: 'loaded';
      /** One per issuer (the newest, should the file hold two of one CA). */
      readonly crls: readonly VerifiedCrl[];
      /** CRLs of CAs that are not configured (any more): they speak for no client, so they are left out. */
      readonly ignored: readonly string[];
    }
  | { readonly kind: 'missing'; readonly detail: string }
  | { readonly kind: 'invalid'; readonly reason: CrlReason; readonly detail: string };

/**
 * Reads and verifies the CRL file (one DER CRL, or PEM blocks: one per
 * issuing CA) against the CA certificates. Never throws: a missing or bad
 * file is a state the caller reports (crlPolicy decides what it means for
 * knocks). A CRL that is malformed or badly signed makes the whole file
 * invalid: the file was damaged or tampered with.
 */
export function readCrlFile(file: string, caCertificates: readonly Buffer[]): CrlFileState {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    return { kind: 'missing', detail: `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}` };
  }
  const bundle = parseCrlBundle(bytes, caCertificates, { label: (index, count) => (count > 1 ? `${file} (CRL ${index + 1} of ${count})` : file) });
  if (!bundle.ok) return { kind: 'invalid', reason: bundle.reason, detail: `${bundle.detail ?? file} (${bundle.reason})` };
  return { kind: 'loaded', crls: newestPerIssuer(bundle.value.crls), ignored: bundle.value.ignored };
}

/**
 * What crlFile holds for the CRLs in force: one CRL as its DER, byte for byte
 * as published (what earlier versions read); several as PEM, one block per issuer.
 */
export function crlFileBytes(crls: readonly VerifiedCrl[]): Buffer {
  return crls.length === 1 ? crls[0]!.der : crlsToPem(crls);
}

/** Tells CAs of one name apart (a re-keyed CA is another issuer): SHA-256 of the key, first 8 bytes. */
function issuerKeyId(crl: VerifiedCrl): string {
  return createHash('sha256').update(crl.issuerPublicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function describeCrl(crl: VerifiedCrl): Record<string, string | number> {
  return {
    issuer: crl.issuer,
    issuerKey: issuerKeyId(crl),
    thisUpdate: new Date(crl.thisUpdateMs).toISOString(),
    nextUpdate: crl.nextUpdateMs === undefined ? 'none' : new Date(crl.nextUpdateMs).toISOString(),
    crlNumber: crl.crlNumber === undefined ? 'none' : crl.crlNumber.toString(),
    revoked: crl.count,
  };
}

/** describeCrl with the CRL's freshness at `nowMs`. */
export function describeCrlAt(crl: VerifiedCrl, nowMs: number): Record<string, string | number> {
  return { ...describeCrl(crl), freshness: crlFreshness(crl, nowMs) };
}
