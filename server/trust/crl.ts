/**
 * Certificate revocation lists: parsed once per download, verified against
 * the CA that issued them (the original server checked neither signature
 * nor nextUpdate), then used as a set of revoked serial numbers. One input
 * may hold several CRLs (concatenated PEM blocks); each is verified alone.
 */
import type { KeyObject } from 'node:crypto';
import { accept, reject, type Decoded } from '../../client-lib/protocol/result.js';
import { parseAnchors, type TrustAuthorities } from './authorities.js';
import { derTag, encodingOf, readChildrenOf, readWhole } from '../../client-lib/certificate/der.js';
import { parseCertificateList, verifySignedBytes, type ParsedCertificate } from '../../client-lib/certificate/x509.js';

export type CrlReason = 'crl-malformed' | 'crl-untrusted-issuer' | 'crl-bad-signature' | 'crl-unsupported';

export type CrlFreshness = 'fresh' | 'stale' | 'not-yet-valid';

export interface VerifiedCrl {
  /** The CRL as issued, DER: what crlFile gets back. */
  readonly der: Buffer;
  /** Subject of the CA certificate whose key signed the CRL. */
  readonly issuer: string;
  readonly issuerNameDer: Buffer;
  readonly issuerPublicKey: KeyObject;
  readonly thisUpdateMs: number;
  /** RFC 5280 requires it; a CRL without one counts as stale. */
  readonly nextUpdateMs: number | undefined;
  readonly crlNumber: bigint | undefined;
  /** Integer values (two's complement), so encoding differences cannot hide an entry. */
  readonly revokedSerials: ReadonlySet<bigint>;
  readonly count: number;
}

const pemBlocks = /-----BEGIN (?:X509 )?CRL-----([A-Za-z0-9+/=\s]*)-----END (?:X509 )?CRL-----/g;

/** DER as is (one CRL); PEM (`X509 CRL`, or @peculiar/x509's `CRL`) decoded to DER, one per block. */
function crlDers(bytes: Buffer): Decoded<Buffer[], 'crl-malformed'> {
  const head = bytes.subarray(0, 64).toString('latin1').trimStart();
  if (!head.startsWith('-----BEGIN')) return accept([bytes]);
  const blocks = [...bytes.toString('latin1').matchAll(pemBlocks)].map((match) => Buffer.from(match[1]!, 'base64'));
  return blocks.length > 0 ? accept(blocks) : reject('crl-malformed', 'PEM input holds no X509 CRL block');
}

/** A CRL's issuer Name (DER), from element headers only: no entries, no signature. Undefined when not shaped like a CRL. */
function crlIssuerNameDer(der: Buffer): Buffer | undefined {
  const tbsElement = readChildrenOf(der, readWhole(der), derTag.sequence)?.[0];
  const tbs = tbsElement && readChildrenOf(der, tbsElement, derTag.sequence);
  const issuer = tbs?.[tbs[0]?.tag === derTag.integer ? 2 : 1];
  return issuer?.tag === derTag.sequence ? encodingOf(der, issuer) : undefined;
}

/** The first of identical blocks: repeating one CRL must not multiply the signature checks. */
function distinctDers(ders: readonly Buffer[]): Buffer[] {
  const seen = new Set<string>();
  return ders.filter((der) => {
    const key = der.toString('latin1');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** CRLs as PEM, one block each: how several CRLs share one file. */
export function crlsToPem(crls: readonly VerifiedCrl[]): Buffer {
  const block = (crl: VerifiedCrl) => `-----BEGIN X509 CRL-----\n${crl.der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END X509 CRL-----\n`;
  return Buffer.from(crls.map(block).join(''), 'latin1');
}

function authoritiesOf(issuers: TrustAuthorities | readonly Buffer[]): ParsedCertificate[] {
  if (Array.isArray(issuers)) return parseAnchors(issuers as readonly Buffer[]);
  const { anchors, intermediates } = issuers as TrustAuthorities;
  return [...anchors, ...intermediates.map((intermediate) => intermediate.certificate)];
}

function maySignCrls(authority: ParsedCertificate): boolean {
  return authority.keyUsage === undefined || authority.keyUsage.has('cRLSign');
}

const UNKNOWN_ISSUER = 'CRL issuer is none of the configured CAs';

/** Verifies one DER CRL against the authorities (see parseCrl). */
function verifyCrlDer(der: Buffer, authorities: readonly ParsedCertificate[]): Decoded<VerifiedCrl, CrlReason> {
  const parsed = parseCertificateList(der);
  if (!parsed.ok) return parsed;
  const crl = parsed.value;
  // A critical extension we do not process (delta CRL, indirect CRL, partitioned scope) changes what the list means.
  if (crl.unsupportedCriticalExtensions.length > 0) {
    return reject('crl-unsupported', `CRL has unsupported critical extensions ${crl.unsupportedCriticalExtensions.join(', ')}`);
  }
  const named = authorities.filter((authority) => authority.subjectNameDer.equals(crl.issuerNameDer));
  if (named.length === 0) return reject('crl-untrusted-issuer', UNKNOWN_ISSUER);
  const allowed = named.filter(maySignCrls);
  if (allowed.length === 0) return reject('crl-untrusted-issuer', `CA ${named[0]!.subject} may not sign CRLs (keyUsage lacks cRLSign)`);
  const outcomes = allowed.map((authority) => ({ authority, outcome: verifySignedBytes(crl, authority.publicKey) }));
  const signer = outcomes.find((candidate) => candidate.outcome === 'valid')?.authority;
  if (!signer) {
    return outcomes.some((candidate) => candidate.outcome === 'unsupported-algorithm')
      ? reject('crl-unsupported', `CRL signature algorithm ${crl.signatureAlgorithm} is not supported`)
      : reject('crl-bad-signature', `CRL signature does not verify with the key of ${allowed[0]!.subject}`);
  }
  const revokedSerials = new Set(crl.revokedSerials);
  return accept({
    der,
    issuer: signer.subject,
    issuerNameDer: signer.subjectNameDer,
    issuerPublicKey: signer.publicKey,
    thisUpdateMs: crl.thisUpdateMs,
    nextUpdateMs: crl.nextUpdateMs,
    crlNumber: crl.crlNumber,
    revokedSerials,
    count: revokedSerials.size,
  });
}

export interface CrlInputOptions {
  /**
   * A download from anyone must not buy unbounded parsing and signature
   * checks: at most one distinct CRL per CA that may sign CRLs is taken
   * (more refuses the input), and a block that names no configured CA is
   * set aside without being parsed.
   */
  readonly capBlocksAtCas?: boolean;
}

/**
 * Every distinct CRL in `bytes` (one DER CRL, or PEM blocks; identical blocks
 * once), each parsed and verified on its own: one outcome per CRL, in input
 * order; input that holds no CRL at all, or (capBlocksAtCas) too many of
 * configured CAs, gives one 'crl-malformed'. `issuers` as for parseCrl.
 */
export function parseCrlBlocks(bytes: Buffer, issuers: TrustAuthorities | readonly Buffer[], options: CrlInputOptions = {}): Decoded<VerifiedCrl, CrlReason>[] {
  const authorities = authoritiesOf(issuers);
  const ders = crlDers(bytes);
  if (!ders.ok) return [ders];
  const distinct = distinctDers(ders.value);
  if (!options.capBlocksAtCas) return distinct.map((der) => verifyCrlDer(der, authorities));
  // A block naming no configured CA is set aside unread; only one naming a CA that may sign CRLs can cost a signature check.
  const issuerNames = distinct.map(crlIssuerNameDer);
  const naming = (candidates: readonly ParsedCertificate[], issuer: Buffer | undefined) =>
    issuer === undefined || candidates.some((candidate) => candidate.subjectNameDer.equals(issuer));
  const signers = authorities.filter(maySignCrls);
  const cap = Math.max(1, signers.length);
  const claimed = issuerNames.filter((issuer) => naming(signers, issuer)).length;
  if (claimed > cap) return [reject('crl-malformed', `the input holds ${claimed} distinct CRLs of configured CAs, more than the ${cap} configured CAs that may sign CRLs`)];
  const namesConfigured = issuerNames.map((issuer) => naming(authorities, issuer));
  return distinct.map((der, index) => (namesConfigured[index] ? verifyCrlDer(der, authorities) : reject('crl-untrusted-issuer', UNKNOWN_ISSUER)));
}

/** The CRLs of one input that speak for configured CAs, and a note for each CRL of another CA. */
export interface CrlBundle {
  readonly crls: readonly VerifiedCrl[];
  readonly ignored: readonly string[];
}

/** Names block `index` of `count` in notes and refusals ('' for no name); by default its position among several. */
export type CrlBlockLabel = (index: number, count: number) => string;

const blockPosition: CrlBlockLabel = (index, count) => (count > 1 ? `CRL ${index + 1} of ${count}` : '');

/**
 * parseCrlBlocks, sorted: in input of several CRLs, one of a CA that is not
 * configured is set aside with a note (it speaks for no client); any other
 * refusal refuses the whole input (a damaged or forged CRL, or a broken CA).
 */
export function parseCrlBundle(
  bytes: Buffer,
  issuers: TrustAuthorities | readonly Buffer[],
  options: CrlInputOptions & { readonly label?: CrlBlockLabel } = {},
): Decoded<CrlBundle, CrlReason> {
  const blocks = parseCrlBlocks(bytes, issuers, options);
  const label = options.label ?? blockPosition;
  const crls: VerifiedCrl[] = [];
  const ignored: string[] = [];
  for (const [index, block] of blocks.entries()) {
    const name = label(index, blocks.length);
    const labelled = (text: string) => (name === '' ? text : `${name}: ${text}`);
    if (block.ok) crls.push(block.value);
    else if (block.reason === 'crl-untrusted-issuer' && blocks.length > 1) ignored.push(labelled(block.detail ?? block.reason));
    else return reject(block.reason, labelled(block.detail ?? block.reason));
  }
  return accept({ crls, ignored });
}

/**
 * Parses one CRL and verifies it: the issuer name must equal (byte for byte)
 * the subject of one of the given CAs, that CA must be allowed to sign CRLs,
 * and its key must verify the signature. `issuers` is a trust state or CA
 * certificates (DER); a bad CA certificate throws SknockError (operator input).
 */
export function parseCrl(bytes: Buffer, issuers: TrustAuthorities | readonly Buffer[]): Decoded<VerifiedCrl, CrlReason> {
  const ders = crlDers(bytes);
  if (!ders.ok) return ders;
  const authorities = authoritiesOf(issuers);
  // One CRL means one block: several, even identical ones, are a mistake, not "take the first".
  if (ders.value.length > 1) return reject('crl-malformed', `input holds ${ders.value.length} CRLs where one was expected`);
  return verifyCrlDer(ders.value[0]!, authorities);
}

export function crlFreshness(crl: VerifiedCrl, nowMs: number): CrlFreshness {
  if (nowMs < crl.thisUpdateMs) return 'not-yet-valid';
  return crl.nextUpdateMs === undefined || nowMs > crl.nextUpdateMs ? 'stale' : 'fresh';
}

/** The CRL speaks for certificates issued by the CA that signed it: same name, same key. */
export function crlCovers(crl: VerifiedCrl, issuer: ParsedCertificate): boolean {
  return crl.issuerNameDer.equals(issuer.subjectNameDer) && crl.issuerPublicKey.equals(issuer.publicKey);
}
