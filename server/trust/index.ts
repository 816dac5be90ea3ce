/** The server's trust decisions: which client certificates may knock, and for which ports. */
export {
  checkClientCertificate,
  createTrustState,
  defaultCacheSize,
  prepareIssuerTables,
  trustCacheStats,
  trustReasons,
  type ClientIdentity,
  type CrlPolicy,
  type TrustOptions,
  type TrustReason,
  type TrustState,
  type TrustVerdict,
  type TrustWarning,
} from './trust-state.js';
export {
  crlFreshness,
  crlsToPem,
  parseCrl,
  parseCrlBlocks,
  parseCrlBundle,
  type CrlBlockLabel,
  type CrlBundle,
  type CrlFreshness,
  type CrlInputOptions,
  type CrlReason,
  type VerifiedCrl,
} from './crl.js';
export { compareCrlAge, crlCovering, crlOfIssuer, crlsIssuedBy, newestPerIssuer, sameCrlIssuer, withCrl, type CrlAge } from './crl-set.js';
export { parseAnchors } from './authorities.js';
export { authorizationOid, authorizePorts, readAuthorization, type AuthorizationReason } from '../../client-lib/certificate/authorization.js';
export { parseCertificate, type ParsedCertificate } from '../../client-lib/certificate/x509.js';
export type { TrustConfigErrorCode } from './authorities.js';
export type { CacheStats } from './verified-cache.js';
