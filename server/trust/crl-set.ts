/**
 * The CRLs in force: at most one per issuer, where an issuer is a CA name
 * AND the key that verified the CRL (a re-keyed CA of the same name is
 * another issuer). A CRL only ever replaces its own issuer's, and only when
 * it is not older, so a genuine CRL of one CA can never stand in for
 * another's (which would un-revoke that CA's revoked clients). Pure.
 */
import type { ParsedCertificate } from '../../client-lib/certificate/x509.js';
import { crlCovers, type VerifiedCrl } from './crl.js';

export type CrlAge = 'newer' | 'same' | 'older' | 'other-issuer';

export function sameCrlIssuer(a: VerifiedCrl, b: VerifiedCrl): boolean {
  return a.issuerNameDer.equals(b.issuerNameDer) && a.issuerPublicKey.equals(b.issuerPublicKey);
}

/**
 * Newer by CRL number when both carry one, else by thisUpdate; a thisUpdate
 * going back is never newer. CRLs of different issuers have no order.
 */
export function compareCrlAge(candidate: VerifiedCrl, current: VerifiedCrl): CrlAge {
  if (!sameCrlIssuer(candidate, current)) return 'other-issuer';
  if (candidate.thisUpdateMs < current.thisUpdateMs) return 'older';
  if (candidate.crlNumber !== undefined && current.crlNumber !== undefined) {
    if (candidate.crlNumber === current.crlNumber) return 'same';
    return candidate.crlNumber > current.crlNumber ? 'newer' : 'older';
  }
  return candidate.thisUpdateMs > current.thisUpdateMs ? 'newer' : 'same';
}

/** The CRL in force for `candidate`'s issuer, if any. */
export function crlOfIssuer(crls: readonly VerifiedCrl[], candidate: VerifiedCrl): VerifiedCrl | undefined {
  return crls.find((crl) => sameCrlIssuer(crl, candidate));
}

/** The CRL that speaks for certificates `issuer` signed, if any. */
export function crlCovering(crls: readonly VerifiedCrl[], issuer: ParsedCertificate): VerifiedCrl | undefined {
  return crls.find((crl) => crlCovers(crl, issuer));
}

/** `crls` with `crl` in force for its issuer: added, or replacing that issuer's CRL (the caller has judged its age). */
export function withCrl(crls: readonly VerifiedCrl[], crl: VerifiedCrl): VerifiedCrl[] {
  const index = crls.findIndex((held) => sameCrlIssuer(held, crl));
  return index < 0 ? [...crls, crl] : crls.map((held, position) => (position === index ? crl : held));
}

/** One CRL per issuer out of any list (e.g. a file holding two of one CA): the newest of each. */
export function newestPerIssuer(crls: readonly VerifiedCrl[]): VerifiedCrl[] {
  let set: VerifiedCrl[] = [];
  for (const crl of crls) {
    const held = crlOfIssuer(set, crl);
    if (held === undefined || compareCrlAge(crl, held) === 'newer') set = withCrl(set, crl);
  }
  return set;
}

/** The CRLs whose issuer is one of `authorities` (after the CA certificates changed). */
export function crlsIssuedBy(crls: readonly VerifiedCrl[], authorities: readonly ParsedCertificate[]): VerifiedCrl[] {
  return crls.filter((crl) => authorities.some((authority) => crlCovers(crl, authority)));
}
