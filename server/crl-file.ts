import { readFileSync } from 'node:fs';
import { crlFreshness, parseCrl, type CrlFreshness, type VerifiedCrl } from './trust/index.js';

export type CrlFileState =
  | { readonly kind: 'loaded'; readonly crl: VerifiedCrl; readonly freshness: CrlFreshness }
  | { readonly kind: 'missing'; readonly detail: string }
  | { readonly kind: 'invalid'; readonly detail: string };

/**
 * Reads and verifies the CRL file against the CA certificates. Never throws:
 * a missing or bad file is a state the caller reports (crlPolicy decides
 * what it means for knocks).
 */
export function readCrlFile(file: string, caCertificates: readonly Buffer[], nowMs: number): CrlFileState {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    return { kind: 'missing', detail: `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}` };
  }
  const parsed = parseCrl(bytes, caCertificates);
  if (!parsed.ok) return { kind: 'invalid', detail: `${file}: ${parsed.reason}${parsed.detail ? ` (${parsed.detail})` : ''}` };
  return { kind: 'loaded', crl: parsed.value, freshness: crlFreshness(parsed.value, nowMs) };
}

export function describeCrl(crl: VerifiedCrl): Record<string, string | number> {
  return {
    issuer: crl.issuer,
    thisUpdate: new Date(crl.thisUpdateMs).toISOString(),
    nextUpdate: crl.nextUpdateMs === undefined ? 'none' : new Date(crl.nextUpdateMs).toISOString(),
    crlNumber: crl.crlNumber === undefined ? 'none' : crl.crlNumber.toString(),
    revoked: crl.count,
  };
}
