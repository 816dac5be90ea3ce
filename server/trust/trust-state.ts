/**
 * Per-knock judgement of a client certificate, in this order (the first
 * failure is the reason): parse; chain to a configured CA and its
 * signature; validity periods; revocation; client profile (P-256, not a CA,
 * keyUsage, extendedKeyUsage, critical extensions); authorization; CRL
 * policy. Pure: the clock is a parameter. What does not depend on the clock
 * is verified once per certificate and cached for the life of the state.
 *
 * Revocation: a state holds at most one CRL per issuing CA (name and key),
 * and a CRL speaks only for the certificates its issuer signed. A client
 * issued by the anchor is looked up in the anchor's CRL. With an
 * intermediate, the intermediate is looked up in the anchor's CRL and the
 * client in the intermediate's CRL (verifiable when the intermediate is a
 * configured CA); a certificate whose issuer has no CRL in force is "not
 * covered": 'no-crl' under 'require', a warning under 'warn'.
 */
import type { KeyObject } from 'node:crypto';
import { SknockError } from '../../client-lib/errors.js';
import type { PortRequest } from '../../client-lib/protocol/ports.js';
import { accept, reject, type Decoded } from '../../client-lib/protocol/result.js';
import { readAuthorization } from '../../client-lib/certificate/authorization.js';
import type { P256Key } from '../../client-lib/certificate/p256-key.js';
import {
  findIssuers,
  linkIntermediate,
  parseAnchors,
  parseIntermediates,
  type IssuerLink,
  type TrustAuthorities,
} from './authorities.js';
import { crlCovers, crlFreshness, type VerifiedCrl } from './crl.js';
import { crlCovering, sameCrlIssuer } from './crl-set.js';
import { BoundedCache, type CacheStats } from './verified-cache.js';
import { isP256, oid, parseCertificate, sha256Hex, type ParsedCertificate } from '../../client-lib/certificate/x509.js';

export const trustReasons = [
  'certificate-malformed',
  'not-p256',
  'untrusted-issuer',
  'bad-certificate-signature',
  'certificate-expired',
  'certificate-not-yet-valid',
  'ca-certificate',
  'missing-key-usage',
  'wrong-extended-key-usage',
  'revoked',
  'no-crl',
  'crl-stale',
  'no-authorization',
  'malformed-authorization',
  'bad-intermediate',
] as const;
export type TrustReason = (typeof trustReasons)[number];

/** Accepted under crlPolicy 'warn' despite these; the caller should log them loudly. */
export type TrustWarning = 'no-crl' | 'crl-stale' | 'crl-not-yet-valid';

export type CrlPolicy = 'warn' | 'require';

/** Who knocked, as far as the certificate says: ready for the signature check and the port decision. */
export interface ClientIdentity {
  readonly subject: string;
  readonly issuer: string;
  /** The serial's integer value in hex (`-` first if an old PKI made it negative). */
  readonly serialHex: string;
  /** The certificate's P-256 key: what the knock's signature is checked with. */
  readonly signingKey: P256Key;
  readonly permittedPorts: readonly PortRequest[];
  readonly certificateSha256: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

export type TrustVerdict =
  | { readonly ok: true; readonly value: ClientIdentity; readonly warnings: readonly TrustWarning[] }
  | { readonly ok: false; readonly reason: TrustReason; readonly detail?: string };

export interface TrustOptions {
  /** Trust anchors, DER. */
  readonly caCertificates: readonly Buffer[];
  /** CA certificates between an anchor and clients, DER; each must be issued by an anchor. */
  readonly intermediates?: readonly Buffer[];
  /** The CRLs in force, at most one per issuing CA; each verified against a configured CA. */
  readonly crls?: readonly VerifiedCrl[];
  /** One CRL: the same as `crls: [crl]` (and added to them). */
  readonly crl?: VerifiedCrl | null;
  readonly crlPolicy: CrlPolicy;
  /** Verified certificates kept; default 10,000. */
  readonly cacheSize?: number;
}

type ChainRole = 'client' | 'intermediate' | 'anchor';

/** What was verified once, without a clock, about one certificate (and intermediate). */
interface VerifiedChain {
  readonly identity: ClientIdentity;
  readonly validity: readonly { readonly role: ChainRole; readonly subject: string; readonly notBeforeMs: number; readonly notAfterMs: number }[];
  /** Issuers in the chain that no CRL in force speaks for. */
  readonly uncoveredIssuers: readonly string[];
  /** The CRLs the chain was looked up in: their freshness is checked per knock. */
  readonly crlsUsed: readonly VerifiedCrl[];
}

export interface TrustState extends TrustAuthorities {
  /** At most one per issuer (name and key). */
  readonly crls: readonly VerifiedCrl[];
  readonly crlPolicy: CrlPolicy;
  /** Internal memo of verified chains; read it through trustCacheStats. */
  readonly cache: BoundedCache<VerifiedChain>;
}

export const defaultCacheSize = 10_000;

/**
 * Builds an immutable trust state (a new CRL or CA means a new state, and so
 * an empty cache). Throws SknockError for configuration mistakes.
 */
export function createTrustState(options: TrustOptions): TrustState {
  const anchors = parseAnchors(options.caCertificates);
  const intermediates = parseIntermediates(options.intermediates ?? [], anchors);
  const crls = [...(options.crls ?? []), ...(options.crl ? [options.crl] : [])];
  const authorities = [...anchors, ...intermediates.map((intermediate) => intermediate.certificate)];
  crls.forEach((crl, index) => {
    if (!authorities.some((authority) => crlCovers(crl, authority))) {
      throw new SknockError(
        'SKNOCK_TRUST_CRL_MISMATCH',
        `the CRL of ${crl.issuer} was verified against a CA that is not configured: parse it with this server's CA certificates`,
      );
    }
    // Two lists for one issuer would make revocation depend on which one a lookup meets first.
    if (crls.slice(0, index).some((earlier) => sameCrlIssuer(earlier, crl))) {
      throw new SknockError('SKNOCK_TRUST_CRL_DUPLICATE', `two CRLs of ${crl.issuer} (same key): keep one CRL per issuing CA`);
    }
  });
  const cacheSize = options.cacheSize ?? defaultCacheSize;
  if (!Number.isInteger(cacheSize) || cacheSize < 1) {
    throw new SknockError('SKNOCK_TRUST_BAD_OPTION', `cacheSize must be a positive integer, got ${cacheSize}`);
  }
  return Object.freeze({
    anchors: Object.freeze(anchors),
    intermediates: Object.freeze(intermediates),
    crls: Object.freeze(crls),
    crlPolicy: options.crlPolicy,
    cache: new BoundedCache<VerifiedChain>(cacheSize),
  });
}

/**
 * Gives the configured CAs' P-256 keys their precomputed tables, so that a
 * new client's certificate verifies in about a third of the time. For the
 * threads that judge knocks: ≈40 ms per CA once per thread, ≈150 KB each.
 */
export function prepareIssuerTables(authorities: TrustAuthorities): void {
  for (const authority of [...authorities.anchors, ...authorities.intermediates.map((intermediate) => intermediate.certificate)]) {
    authority.p256Key?.useIssuerTable();
  }
}

export function trustCacheStats(state: TrustState): CacheStats {
  return state.cache.stats();
}

function serialHex(serial: bigint): string {
  const digits = (serial < 0n ? -serial : serial).toString(16);
  return `${serial < 0n ? '-' : ''}${digits.length % 2 === 1 ? '0' : ''}${digits}`;
}

function keyDescription(key: KeyObject): string {
  return key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyType ?? 'unknown';
}

/** The links a client may chain through: the knock's intermediate if it sent one, else the configured CAs. */
function issuerLinks(state: TrustState, intermediateDer: Buffer | undefined): Decoded<IssuerLink[], 'bad-intermediate'> {
  if (intermediateDer === undefined) {
    return accept([
      ...state.anchors.map((anchor) => ({ issuer: anchor, anchor })),
      ...state.intermediates.map(({ certificate, anchor }) => ({ issuer: certificate, anchor, intermediate: certificate })),
    ]);
  }
  const parsed = parseCertificate(intermediateDer);
  if (!parsed.ok) return reject('bad-intermediate', `intermediate ${parsed.detail ?? parsed.reason}`);
  const link = linkIntermediate(parsed.value, state.anchors);
  if ('problem' in link) return reject('bad-intermediate', link.problem);
  return accept([{ issuer: parsed.value, anchor: link.anchor, intermediate: parsed.value }]);
}

/** The client profile of the original sKnock: a P-256 end-entity key for signing, for client authentication. */
function profileProblem(client: ParsedCertificate): Decoded<P256Key, TrustReason> {
  if (!isP256(client) || !client.p256Key) return reject('not-p256', `client key is ${keyDescription(client.publicKey)}; knocks are signed with P-256`);
  // A CA's key must not double as a knocking client.
  if (client.basicConstraints?.ca === true) return reject('ca-certificate', `${client.subject} is a CA certificate (basicConstraints CA:TRUE)`);
  if (!client.keyUsage?.has('digitalSignature')) {
    const present = client.keyUsage ? `keyUsage is ${[...client.keyUsage].join(', ') || 'empty'}` : 'no keyUsage extension';
    return reject('missing-key-usage', `${present}; knock signatures need digitalSignature`);
  }
  // Stops a server certificate of the same CA from knocking.
  if (client.extendedKeyUsage && !client.extendedKeyUsage.includes(oid.clientAuth)) {
    return reject('wrong-extended-key-usage', `extendedKeyUsage ${client.extendedKeyUsage.join(', ')} lacks clientAuth`);
  }
  if (client.unsupportedCriticalExtensions.length > 0) {
    return reject('certificate-malformed', `unsupported critical extensions ${client.unsupportedCriticalExtensions.join(', ')}`);
  }
  return accept(client.p256Key);
}

interface RevocationLookup {
  readonly uncovered: string[];
  readonly used: VerifiedCrl[];
}

/**
 * Each certificate of the chain is looked up in the CRL of the CA that signed
 * it, never in another CA's: revoked if listed there; otherwise the CRLs
 * used and the issuers no CRL in force speaks for.
 */
function revocationProblem(crls: readonly VerifiedCrl[], client: ParsedCertificate, link: IssuerLink): Decoded<RevocationLookup, 'revoked'> {
  const lookup: RevocationLookup = { uncovered: [], used: [] };
  const lookups = [{ certificate: client, issuer: link.issuer }];
  if (link.intermediate) lookups.push({ certificate: link.intermediate, issuer: link.anchor });
  for (const { certificate, issuer } of lookups) {
    const crl = crlCovering(crls, issuer);
    if (crl === undefined) {
      lookup.uncovered.push(issuer.subject);
    } else if (crl.revokedSerials.has(certificate.serial)) {
      return reject('revoked', `${certificate.subject} (serial ${serialHex(certificate.serial)}) is in the CRL of ${crl.issuer}`);
    } else {
      lookup.used.push(crl);
    }
  }
  return accept(lookup);
}

/** The client's issuer among the links, and that issuer's signature on it. */
function authenticate(
  state: TrustState,
  certificateDer: Buffer,
  intermediateDer: Buffer | undefined,
): Decoded<{ client: ParsedCertificate; link: IssuerLink }, TrustReason> {
  const parsed = parseCertificate(certificateDer);
  if (!parsed.ok) return parsed;
  const client = parsed.value;
  const links = issuerLinks(state, intermediateDer);
  if (!links.ok) return links;
  const { named, signing } = findIssuers(client, links.value);
  if (named.length === 0) {
    const where = intermediateDer === undefined ? 'a configured CA' : "the knock's intermediate";
    return reject('untrusted-issuer', `issuer ${client.issuer} of ${client.subject} is not ${where}`);
  }
  const link = signing[0];
  if (!link) return reject('bad-certificate-signature', `${client.subject} does not verify with the key of ${named[0]!.issuer.subject}`);
  return accept({ client, link });
}

const outsideValidity: Record<ChainRole, { early: TrustReason; late: TrustReason }> = {
  client: { early: 'certificate-not-yet-valid', late: 'certificate-expired' },
  intermediate: { early: 'bad-intermediate', late: 'bad-intermediate' },
  anchor: { early: 'untrusted-issuer', late: 'untrusted-issuer' },
};

function validityProblem(validity: VerifiedChain['validity'], nowMs: number): Decoded<undefined, TrustReason> {
  for (const { role, subject, notBeforeMs, notAfterMs } of validity) {
    if (nowMs < notBeforeMs) {
      return reject(outsideValidity[role].early, `${role} ${subject} is valid from ${new Date(notBeforeMs).toISOString()}`);
    }
    if (nowMs > notAfterMs) {
      return reject(outsideValidity[role].late, `${role} ${subject} expired at ${new Date(notAfterMs).toISOString()}`);
    }
  }
  return accept(undefined);
}

/**
 * Verifies a certificate not seen before, in the order a log reader wants the
 * reason: authenticity, then time, revocation, profile, authorization.
 * The result holds no clock-dependent decision, so it can be cached.
 */
function verifyChain(
  state: TrustState,
  certificateDer: Buffer,
  certificateSha256: string,
  intermediateDer: Buffer | undefined,
  nowMs: number,
): Decoded<VerifiedChain, TrustReason> {
  const authentic = authenticate(state, certificateDer, intermediateDer);
  if (!authentic.ok) return authentic;
  const { client, link } = authentic.value;
  const chain = [
    { role: 'client' as const, certificate: client },
    ...(link.intermediate ? [{ role: 'intermediate' as const, certificate: link.intermediate }] : []),
    { role: 'anchor' as const, certificate: link.anchor },
  ];
  const validity = chain.map(({ role, certificate }) => ({
    role,
    subject: certificate.subject,
    notBeforeMs: certificate.notBeforeMs,
    notAfterMs: certificate.notAfterMs,
  }));
  const inTime = validityProblem(validity, nowMs);
  if (!inTime.ok) return inTime;
  const revocation = revocationProblem(state.crls, client, link);
  if (!revocation.ok) return revocation;
  const profile = profileProblem(client);
  if (!profile.ok) return profile;
  const permittedPorts = readAuthorization(client);
  if (!permittedPorts.ok) return permittedPorts;
  return accept({
    identity: Object.freeze({
      subject: client.subject,
      issuer: client.issuer,
      serialHex: serialHex(client.serial),
      signingKey: profile.value,
      permittedPorts: Object.freeze(permittedPorts.value),
      certificateSha256,
      notBeforeMs: client.notBeforeMs,
      notAfterMs: client.notAfterMs,
    }),
    validity,
    uncoveredIssuers: revocation.value.uncovered,
    crlsUsed: revocation.value.used,
  });
}

/** What depends on the time: validity periods and the CRL's freshness, against the policy. */
function checkAtTime(state: TrustState, chain: VerifiedChain, nowMs: number): TrustVerdict {
  const inTime = validityProblem(chain.validity, nowMs);
  if (!inTime.ok) return inTime;
  const concerns: { reason: 'no-crl' | 'crl-stale'; warning: TrustWarning; detail: string }[] = [];
  if (chain.uncoveredIssuers.length > 0) {
    concerns.push({ reason: 'no-crl', warning: 'no-crl', detail: `no CRL configured for certificates of ${chain.uncoveredIssuers.join('; ')}` });
  }
  for (const crl of chain.crlsUsed) {
    const freshness = crlFreshness(crl, nowMs);
    if (freshness === 'fresh') continue;
    const warning = freshness === 'stale' ? 'crl-stale' : 'crl-not-yet-valid';
    concerns.push({ reason: 'crl-stale', warning, detail: `CRL of ${crl.issuer} is ${freshness}` });
  }
  const first = concerns[0];
  if (state.crlPolicy === 'require' && first) return reject(first.reason, first.detail);
  return { ok: true, value: chain.identity, warnings: [...new Set(concerns.map((concern) => concern.warning))] };
}

/**
 * Judges the certificate (and optional intermediate) a knock carries, at
 * `nowMs`. Never throws. Cached by the SHA-256 of the DER: a hit skips the
 * parsing and the signature check, never the clock-dependent checks.
 */
export function checkClientCertificate(
  state: TrustState,
  certificateDer: Buffer,
  intermediateDer: Buffer | undefined,
  nowMs: number,
): TrustVerdict {
  const certificateSha256 = sha256Hex(certificateDer);
  const key = intermediateDer === undefined ? certificateSha256 : `${certificateSha256}/${sha256Hex(intermediateDer)}`;
  let chain = state.cache.get(key);
  if (!chain) {
    const verified = verifyChain(state, certificateDer, certificateSha256, intermediateDer, nowMs);
    if (!verified.ok) return verified;
    chain = verified.value;
    // Only fully verified chains are cached, so junk certificates cannot evict real clients.
    state.cache.set(key, chain);
  }
  return checkAtTime(state, chain, nowMs);
}
