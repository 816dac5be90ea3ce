/**
 * The certificate authorities a server trusts: configured anchors, configured
 * intermediates, and intermediates that arrive in a knock. Configuration
 * problems throw for the operator; a knock's intermediate gets a reason.
 */
import { SknockError } from '../../client-lib/errors.js';
import { isIssuedBy, isSignedBy, parseCertificate, type ParsedCertificate } from '../../client-lib/certificate/x509.js';

export type TrustConfigErrorCode =
  | 'SKNOCK_TRUST_NO_CA'
  | 'SKNOCK_TRUST_BAD_CA'
  | 'SKNOCK_TRUST_BAD_INTERMEDIATE'
  | 'SKNOCK_TRUST_CRL_MISMATCH'
  | 'SKNOCK_TRUST_CRL_DUPLICATE'
  | 'SKNOCK_TRUST_BAD_OPTION';

/** Why `certificate` cannot issue certificates, or undefined when it can. */
export function authorityProblem(certificate: ParsedCertificate, requireKeyUsage: boolean): string | undefined {
  if (certificate.basicConstraints?.ca !== true) return 'is not a CA (basicConstraints CA:TRUE missing)';
  if (certificate.keyUsage === undefined) {
    return requireKeyUsage ? 'has no keyUsage extension (keyCertSign required)' : undefined;
  }
  return certificate.keyUsage.has('keyCertSign') ? undefined : 'keyUsage lacks keyCertSign';
}

/** A CA certificate that may have issued a client, with the anchor its chain ends in. */
export interface IssuerLink {
  readonly issuer: ParsedCertificate;
  readonly anchor: ParsedCertificate;
  /** Set when `issuer` is an intermediate (then it is the same certificate). */
  readonly intermediate?: ParsedCertificate;
}

/** The links whose name and key identifier fit `certificate`'s issuer, then those whose key signed it. */
export function findIssuers<Link extends { readonly issuer: ParsedCertificate }>(
  certificate: ParsedCertificate,
  links: readonly Link[],
): { named: Link[]; signing: Link[] } {
  const named = links.filter((link) => isIssuedBy(certificate, link.issuer));
  return { named, signing: named.filter((link) => isSignedBy(certificate, link.issuer.p256Key ?? link.issuer.publicKey)) };
}

/**
 * Why `intermediate` cannot link a client to `anchors`, ignoring time (checked per knock).
 * Returns the anchor that issued it when it can.
 */
export function linkIntermediate(
  intermediate: ParsedCertificate,
  anchors: readonly ParsedCertificate[],
): { anchor: ParsedCertificate } | { problem: string } {
  const problem = authorityProblem(intermediate, true);
  if (problem) return { problem: `intermediate ${intermediate.subject} ${problem}` };
  // Name constraints, policies and the like would need enforcing; refusing is the safe reading of RFC 5280.
  if (intermediate.unsupportedCriticalExtensions.length > 0) {
    return { problem: `intermediate ${intermediate.subject} has unsupported critical extensions ${intermediate.unsupportedCriticalExtensions.join(', ')}` };
  }
  const { named, signing } = findIssuers(intermediate, anchors.map((anchor) => ({ issuer: anchor })));
  // pathLenConstraint 0 on the anchor forbids any CA below it.
  const link = signing.find((candidate) => candidate.issuer.basicConstraints?.pathLength !== 0);
  if (link) return { anchor: link.issuer };
  if (signing.length > 0) return { problem: `anchor ${signing[0]!.issuer.subject} has pathLenConstraint 0: no intermediate allowed` };
  if (named.length > 0) return { problem: `intermediate ${intermediate.subject} has a bad signature from ${named[0]!.issuer.subject}` };
  return { problem: `intermediate ${intermediate.subject} is not issued by a configured CA (issuer ${intermediate.issuer})` };
}

function parseConfigured(der: Buffer, label: string, code: TrustConfigErrorCode): ParsedCertificate {
  const parsed = parseCertificate(der);
  if (!parsed.ok) throw new SknockError(code, `${label}: ${parsed.detail ?? parsed.reason}; give a DER X.509 certificate`);
  return parsed.value;
}

/** Parses configured CA certificates (trust anchors); throws SknockError for the operator. */
export function parseAnchors(ders: readonly Buffer[]): ParsedCertificate[] {
  if (ders.length === 0) {
    throw new SknockError('SKNOCK_TRUST_NO_CA', 'no CA certificate configured: the server needs the CA that issues client certificates');
  }
  return ders.map((der, index) => {
    const anchor = parseConfigured(der, `CA certificate #${index + 1}`, 'SKNOCK_TRUST_BAD_CA');
    const problem = authorityProblem(anchor, false);
    if (problem) throw new SknockError('SKNOCK_TRUST_BAD_CA', `CA certificate ${anchor.subject} ${problem}: configure the issuing CA, not a client or server certificate`);
    return anchor;
  });
}

export interface LinkedIntermediate {
  readonly certificate: ParsedCertificate;
  readonly anchor: ParsedCertificate;
}

/** Parses configured intermediates and links each to an anchor; throws SknockError for the operator. */
export function parseIntermediates(ders: readonly Buffer[], anchors: readonly ParsedCertificate[]): LinkedIntermediate[] {
  return ders.map((der, index) => {
    const certificate = parseConfigured(der, `intermediate certificate #${index + 1}`, 'SKNOCK_TRUST_BAD_INTERMEDIATE');
    const link = linkIntermediate(certificate, anchors);
    if ('problem' in link) throw new SknockError('SKNOCK_TRUST_BAD_INTERMEDIATE', `${link.problem}: fix the configured intermediates`);
    return { certificate, anchor: link.anchor };
  });
}

/** What a CRL may be issued by: a trust state has these, or they are built from CA certificates alone. */
export interface TrustAuthorities {
  readonly anchors: readonly ParsedCertificate[];
  readonly intermediates: readonly LinkedIntermediate[];
}
