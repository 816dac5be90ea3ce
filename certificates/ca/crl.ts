/**
 * Builds the CA's certificate revocation list: version 2, with a CRL number,
 * the CA's key identifier and a reason per entry, signed ECDSA-SHA256.
 * Assembled from @peculiar/asn1-x509 types rather than X509CrlGenerator,
 * which writes an empty (invalid) crlEntryExtensions for an entry without a
 * reason; written as DER, since OpenSSL rejects @peculiar/x509's CRL PEM header.
 */
import { sign } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AuthorityKeyIdentifier,
  CRLNumber,
  CRLReason,
  CRLReasons,
  CertificateList,
  Extension,
  KeyIdentifier,
  Name,
  RevokedCertificate,
  TBSCertList,
  Time,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
} from '@peculiar/asn1-x509';
import { caKeyIdentifier, type SigningCa } from './issue.js';

/**
 * The RFC 5280 reasons that fit an end-entity certificate of this CA.
 * certificateHold is left out on purpose: a hold is meant to be lifted, and
 * the server treats every listed serial as revoked for good.
 */
export const revocationReasons = {
  unspecified: CRLReasons.unspecified,
  keyCompromise: CRLReasons.keyCompromise,
  affiliationChanged: CRLReasons.affiliationChanged,
  superseded: CRLReasons.superseded,
  cessationOfOperation: CRLReasons.cessationOfOperation,
  privilegeWithdrawn: CRLReasons.privilegeWithdrawn,
} as const;

export type RevocationReason = keyof typeof revocationReasons;

export function isRevocationReason(text: string): text is RevocationReason {
  return Object.hasOwn(revocationReasons, text);
}

export interface RevokedEntry {
  /** Lower-case hex, as the index keeps it. */
  readonly serialNumber: string;
  readonly revocationDate: Date;
  readonly reason: RevocationReason;
}

const ecdsaWithSha256 = new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' });

function arrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return Uint8Array.from(bytes).buffer;
}

function extension(id: string, value: object): Extension {
  return new Extension({ extnID: id, critical: false, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** The serial as a DER INTEGER's content octets: a leading zero keeps a set top bit positive. */
function serialInteger(hex: string): ArrayBuffer {
  const bytes = Buffer.from(hex, 'hex');
  return arrayBuffer(bytes[0]! >= 0x80 ? Buffer.concat([Buffer.of(0), bytes]) : bytes);
}

function revokedCertificate(entry: RevokedEntry): RevokedCertificate {
  return new RevokedCertificate({
    userCertificate: serialInteger(entry.serialNumber),
    revocationDate: new Time(entry.revocationDate),
    // RFC 5280 5.3.1: an unspecified reason is left out rather than written as 0.
    ...(entry.reason === 'unspecified'
      ? {}
      : { crlEntryExtensions: [extension(id_ce_cRLReasons, new CRLReason(revocationReasons[entry.reason]))] }),
  });
}

/** Returns the DER of a CRL signed by `ca`. */
export function buildCrl(params: {
  readonly ca: SigningCa;
  readonly crlNumber: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly revoked: readonly RevokedEntry[];
}): Buffer {
  const authorityKeyIdentifier = new AuthorityKeyIdentifier({
    keyIdentifier: new KeyIdentifier(Buffer.from(caKeyIdentifier(params.ca.certificate), 'hex')),
  });
  const tbsCertList = new TBSCertList({
    version: Version.v2,
    signature: ecdsaWithSha256,
    issuer: AsnConvert.parse(params.ca.certificate.subjectName.toArrayBuffer(), Name),
    thisUpdate: new Time(params.thisUpdate),
    nextUpdate: new Time(params.nextUpdate),
    // An empty list is left out altogether, as RFC 5280 asks.
    ...(params.revoked.length > 0 ? { revokedCertificates: params.revoked.map(revokedCertificate) } : {}),
    crlExtensions: [
      extension(id_ce_authorityKeyIdentifier, authorityKeyIdentifier),
      extension(id_ce_cRLNumber, new CRLNumber(params.crlNumber)),
    ],
  });
  const tbs = Buffer.from(AsnConvert.serialize(tbsCertList));
  // node:crypto's ECDSA signature is already the DER ECDSA-Sig-Value X.509 wants.
  const signature = sign('sha256', tbs, params.ca.privateKey);
  const crl = new CertificateList({ tbsCertList, signatureAlgorithm: ecdsaWithSha256, signature: arrayBuffer(signature) });
  return Buffer.from(AsnConvert.serialize(crl));
}
