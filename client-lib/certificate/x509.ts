/**
 * The one facade over X.509 on the server side: certificates and CRLs as
 * plain, typed facts, decoded from DER here (der.ts, names.ts,
 * subject-public-key.ts) and signatures checked with node:crypto.verify.
 * A new client's check runs once per unseen certificate on the packet path:
 * node's X509Certificate costs ≈ 230 µs to build and ≈ 110 µs more per
 * checkIssued, asn1-schema ≈ 150 µs, so neither is used there; OpenSSL is
 * consulted only for RSASSA-PSS signatures (see isSignedBy).
 * Callers never see a library object or exception.
 */
import { X509Certificate, createHash, verify as verifySignatureBytes, type KeyObject } from 'node:crypto';
import { accept, reject, type Decoded } from '../protocol/result.js';
import {
  contentOf,
  derTag,
  encodingOf,
  integerValue,
  objectIdentifierText,
  readChildren,
  readChildrenOf,
  readWhole,
  timeValue,
  type DerElement,
} from './der.js';
import { nameText } from './names.js';
import { P256Key } from './p256-key.js';
import { decodeSubjectPublicKey, publicKeyOid } from './subject-public-key.js';

/** keyUsage bits in order (RFC 5280 §4.2.1.3). */
const keyUsageBits = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
export type KeyUsageName = (typeof keyUsageBits)[number];

export const oid = {
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  extendedKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  crlNumber: '2.5.29.20',
  crlReason: '2.5.29.21',
  invalidityDate: '2.5.29.24',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  ...publicKeyOid,
} as const;

/** Critical extensions whose meaning the checks in this folder enforce (RFC 5280 §4.2: reject the others). */
const understoodCertificateExtensions = new Set<string>([
  oid.keyUsage,
  oid.basicConstraints,
  oid.extendedKeyUsage,
  oid.subjectAltName,
  oid.subjectKeyIdentifier,
  oid.authorityKeyIdentifier,
]);
const understoodCrlExtensions = new Set<string>([oid.authorityKeyIdentifier, oid.crlNumber]);
const understoodCrlEntryExtensions = new Set<string>([oid.crlReason, oid.invalidityDate]);

export interface OtherName {
  readonly typeId: string;
  /** The DER element inside otherName's [0] EXPLICIT wrapper. */
  readonly value: Buffer;
}

/** The bytes a signature covers, its algorithm (OID) and the signature value. */
export interface SignedBytes {
  readonly tbs: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
}

/** authorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier, [1] authorityCertIssuer, [2] authorityCertSerialNumber }. */
export interface AuthorityKeyIdentifier {
  readonly keyIdentifier: Buffer | undefined;
  /** The first directoryName among authorityCertIssuer's GeneralNames, as DER. */
  readonly issuerNameDer: Buffer | undefined;
  readonly serial: bigint | undefined;
}

/** A certificate as facts. Absent extensions are `undefined`, never a default. */
export interface ParsedCertificate extends SignedBytes {
  readonly der: Buffer;
  readonly subject: string;
  readonly issuer: string;
  readonly subjectNameDer: Buffer;
  readonly issuerNameDer: Buffer;
  readonly serial: bigint;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** node:crypto's form; for P-256 keys imported on first use (≈ 135 µs), so the packet path uses p256Key. */
  readonly publicKey: KeyObject;
  /** Present for P-256 keys: what knock and certificate signatures are checked with. */
  readonly p256Key: P256Key | undefined;
  /** From the SubjectPublicKeyInfo; the curve when the parameters name one. */
  readonly publicKeyAlgorithm: { readonly algorithm: string; readonly curve: string | undefined };
  readonly basicConstraints: { readonly ca: boolean; readonly pathLength: number | undefined } | undefined;
  readonly keyUsage: ReadonlySet<KeyUsageName> | undefined;
  readonly extendedKeyUsage: readonly string[] | undefined;
  readonly otherNames: readonly OtherName[];
  readonly subjectKeyIdentifier: Buffer | undefined;
  readonly authorityKeyIdentifier: AuthorityKeyIdentifier | undefined;
  readonly unsupportedCriticalExtensions: readonly string[];
}

export interface ParsedCertificateList extends SignedBytes {
  readonly issuerNameDer: Buffer;
  readonly thisUpdateMs: number;
  readonly nextUpdateMs: number | undefined;
  readonly crlNumber: bigint | undefined;
  readonly revokedSerials: readonly bigint[];
  readonly unsupportedCriticalExtensions: readonly string[];
}

interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Buffer;
}

class Malformed extends Error {}

/** Throws Malformed (caught in this module only) to keep the decoders below linear. */
function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Malformed(what);
  return value;
}

/** Runs a decoder that throws Malformed and turns every failure into the reason. */
function decodeTotally<T, Reason extends string>(der: Buffer, decode: (der: Buffer) => T, reason: Reason, what: string): Decoded<T, Reason> {
  try {
    return accept(decode(der));
  } catch (error) {
    const detail = error instanceof Malformed ? error.message : `cannot be decoded (${error instanceof Error ? error.message : String(error)})`;
    return reject(reason, `${what} ${detail}`);
  }
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A whole DER INTEGER (asn1-x509's CRLNumber is a JS number and would round 20-octet values). */
function decodeInteger(value: Buffer, what: string): bigint {
  const element = readWhole(value);
  if (element?.tag !== derTag.integer) throw new Malformed(what);
  return required(integerValue(contentOf(value, element)), what);
}

function decodeTime(bytes: Buffer, element: DerElement | undefined, what: string): number {
  return required(element && timeValue(element.tag, contentOf(bytes, element)), what);
}

function decodeName(bytes: Buffer, element: DerElement | undefined, what: string): { text: string; der: Buffer } {
  if (element?.tag !== derTag.sequence) throw new Malformed(what);
  return { text: required(nameText(bytes, element), what), der: encodingOf(bytes, element) };
}

/**
 * The outer signatureAlgorithm and signatureValue, after the algorithm inside
 * the signed part: they must be the same bytes (RFC 5280 §4.1.1.2), or a
 * verifier could be steered to the unsigned, weaker one.
 */
function decodeSignature(
  bytes: Buffer,
  tbs: DerElement,
  innerAlgorithm: DerElement | undefined,
  outerAlgorithm: DerElement,
  signatureValue: DerElement,
): SignedBytes {
  if (!innerAlgorithm || !encodingOf(bytes, innerAlgorithm).equals(encodingOf(bytes, outerAlgorithm))) {
    throw new Malformed('signature algorithm mismatch');
  }
  const [algorithmOid] = required(readChildrenOf(bytes, outerAlgorithm, derTag.sequence), 'signature algorithm');
  const signatureBits = contentOf(bytes, signatureValue);
  if (algorithmOid?.tag !== derTag.objectIdentifier || signatureValue.tag !== derTag.bitString || signatureBits[0] !== 0) {
    throw new Malformed('signature');
  }
  return {
    tbs: encodingOf(bytes, tbs),
    signatureAlgorithm: required(objectIdentifierText(contentOf(bytes, algorithmOid)), 'signature algorithm'),
    signature: signatureBits.subarray(1),
  };
}

function decodeExtensions(bytes: Buffer, list: DerElement | undefined): Extension[] {
  const extensions: Extension[] = [];
  for (const element of required(readChildrenOf(bytes, list, derTag.sequence), 'extensions')) {
    const parts = required(readChildrenOf(bytes, element, derTag.sequence), 'extension');
    if (parts.length !== 2 && parts.length !== 3) throw new Malformed('extension');
    const [id, second, third] = parts;
    const hasCritical = parts.length === 3;
    const criticalElement = hasCritical ? second : undefined;
    const valueElement = hasCritical ? third : second;
    if (!id || id.tag !== derTag.objectIdentifier || !valueElement || valueElement.tag !== derTag.octetString) {
      throw new Malformed('extension');
    }
    if (criticalElement && (criticalElement.tag !== derTag.boolean || criticalElement.end - criticalElement.contentStart !== 1)) {
      throw new Malformed('extension criticality');
    }
    const extensionOid = required(objectIdentifierText(contentOf(bytes, id)), 'extension identifier');
    // Two copies of one extension would let two parsers disagree on which applies.
    if (extensions.some((seen) => seen.oid === extensionOid)) throw new Malformed(`repeated extension ${extensionOid}`);
    extensions.push({
      oid: extensionOid,
      critical: criticalElement !== undefined && bytes[criticalElement.contentStart] !== 0,
      value: contentOf(bytes, valueElement),
    });
  }
  return extensions;
}

function unsupportedCritical(extensions: readonly Extension[], understood: ReadonlySet<string>): string[] {
  return extensions.filter((extension) => extension.critical && !understood.has(extension.oid)).map((extension) => extension.oid);
}

/** The single DER element an extension value must be, with its children. */
function extensionValue(value: Buffer, tag: number, what: string): DerElement[] {
  return required(readChildrenOf(value, readWhole(value), tag), what);
}

function decodeKeyUsage(value: Buffer): Set<KeyUsageName> {
  const element = readWhole(value);
  if (element?.tag !== derTag.bitString) throw new Malformed('keyUsage');
  const bits = contentOf(value, element);
  const unusedBits = bits[0];
  if (unusedBits === undefined || unusedBits > 7 || (bits.length === 1 && unusedBits !== 0)) throw new Malformed('keyUsage');
  const bitCount = (bits.length - 1) * 8 - unusedBits;
  return new Set(keyUsageBits.filter((_name, bit) => bit < bitCount && (bits[1 + (bit >> 3)]! & (0x80 >> (bit & 7))) !== 0));
}

function decodeBasicConstraints(value: Buffer): { ca: boolean; pathLength: number | undefined } {
  const fields = extensionValue(value, derTag.sequence, 'basicConstraints');
  let cursor = 0;
  let ca = false;
  let pathLength: number | undefined;
  const caElement = fields[cursor];
  if (caElement?.tag === derTag.boolean) {
    if (caElement.end - caElement.contentStart !== 1) throw new Malformed('basicConstraints');
    ca = value[caElement.contentStart] !== 0;
    cursor += 1;
  }
  const pathElement = fields[cursor];
  if (pathElement?.tag === derTag.integer) {
    const length = integerValue(contentOf(value, pathElement));
    if (length === undefined || length < 0n || length > 255n) throw new Malformed('basicConstraints pathLenConstraint');
    pathLength = Number(length);
    cursor += 1;
  }
  if (cursor !== fields.length) throw new Malformed('basicConstraints');
  return { ca, pathLength };
}

function decodeExtendedKeyUsage(value: Buffer): string[] {
  return extensionValue(value, derTag.sequence, 'extendedKeyUsage').map((element) => {
    if (element.tag !== derTag.objectIdentifier) throw new Malformed('extendedKeyUsage');
    return required(objectIdentifierText(contentOf(value, element)), 'extendedKeyUsage');
  });
}

/** otherName ::= [0] { type-id OID, value [0] EXPLICIT ANY }; other GeneralName kinds are not needed. */
function decodeOtherNames(value: Buffer): OtherName[] {
  const otherNames: OtherName[] = [];
  for (const name of extensionValue(value, derTag.sequence, 'subjectAltName')) {
    if (name.tag !== derTag.contextConstructed0) continue;
    const [typeId, wrapper, ...extra] = required(readChildren(value, name), 'subjectAltName otherName');
    const inner = readChildrenOf(value, wrapper, derTag.contextConstructed0);
    if (typeId?.tag !== derTag.objectIdentifier || inner?.length !== 1 || extra.length > 0) throw new Malformed('subjectAltName otherName');
    otherNames.push({
      typeId: required(objectIdentifierText(contentOf(value, typeId)), 'otherName type-id'),
      value: encodingOf(value, inner[0]!),
    });
  }
  return otherNames;
}

function decodeSubjectKeyIdentifier(value: Buffer): Buffer {
  const element = readWhole(value);
  if (element?.tag !== derTag.octetString) throw new Malformed('subjectKeyIdentifier');
  return contentOf(value, element);
}

/** Reads optional fields in their order: `next(tag)` is the next field if it has that tag. */
function inOrder(fields: readonly DerElement[], what: string): { next: (tag: number) => DerElement | undefined; end: () => void } {
  let cursor = 0;
  return {
    next: (tag) => (fields[cursor]?.tag === tag ? fields[cursor++] : undefined),
    end: () => {
      if (cursor !== fields.length) throw new Malformed(what);
    },
  };
}

function decodeAuthorityKeyIdentifier(value: Buffer): AuthorityKeyIdentifier {
  const fields = inOrder(extensionValue(value, derTag.sequence, 'authorityKeyIdentifier'), 'authorityKeyIdentifier');
  const keyIdentifier = fields.next(derTag.contextPrimitive0);
  const issuerNames = fields.next(derTag.contextConstructed1);
  const serial = fields.next(derTag.contextPrimitive2);
  fields.end();
  // directoryName [4] EXPLICIT Name; OpenSSL compares the first one only.
  const directoryName = issuerNames && required(readChildren(value, issuerNames), 'authorityCertIssuer').find((name) => name.tag === derTag.contextConstructed4);
  const names = directoryName && readChildren(value, directoryName);
  if (directoryName && (names?.length !== 1 || names[0]!.tag !== derTag.sequence)) throw new Malformed('authorityCertIssuer');
  return {
    keyIdentifier: keyIdentifier && contentOf(value, keyIdentifier),
    issuerNameDer: names && encodingOf(value, names[0]!),
    serial: serial && required(integerValue(contentOf(value, serial)), 'authorityCertSerialNumber'),
  };
}

/** issuerUniqueID [1] and subjectUniqueID [2] (unused), then extensions [3] EXPLICIT, after subjectPublicKeyInfo. */
function decodeCertificateExtensions(bytes: Buffer, optional: readonly DerElement[]): Extension[] {
  const fields = inOrder(optional, 'tbsCertificate fields');
  fields.next(derTag.contextPrimitive1);
  fields.next(derTag.contextPrimitive2);
  const wrapper = fields.next(derTag.contextConstructed3);
  fields.end();
  if (!wrapper) return [];
  const [list, ...extra] = required(readChildren(bytes, wrapper), 'extensions');
  if (extra.length > 0) throw new Malformed('extensions');
  return decodeExtensions(bytes, list);
}

function decodeVersion(bytes: Buffer, wrapper: DerElement): void {
  const [version, ...extra] = required(readChildren(bytes, wrapper), 'version');
  const value = version?.tag === derTag.integer ? integerValue(contentOf(bytes, version)) : undefined;
  // v1, v2 or v3 (0, 1, 2)
  if (value === undefined || value < 0n || value > 2n || extra.length > 0) throw new Malformed('version');
}

function decodeCertificate(der: Buffer): ParsedCertificate {
  const outer = required(readWhole(der), 'not a single DER structure');
  const [tbsElement, algorithmElement, signatureElement, ...extra] = required(readChildrenOf(der, outer, derTag.sequence), 'certificate');
  if (!tbsElement || !algorithmElement || !signatureElement || extra.length > 0) throw new Malformed('Certificate');
  const tbs = required(readChildrenOf(der, tbsElement, derTag.sequence), 'tbsCertificate');
  const versionElement = tbs[0]?.tag === derTag.contextConstructed0 ? tbs[0] : undefined;
  if (versionElement) decodeVersion(der, versionElement);
  const fields = versionElement ? tbs.slice(1) : tbs;
  const [serialElement, innerAlgorithm, issuerElement, validityElement, subjectElement, spkiElement, ...optional] = fields;
  if (serialElement?.tag !== derTag.integer || !spkiElement) throw new Malformed('tbsCertificate fields');
  const signed = decodeSignature(der, tbsElement, innerAlgorithm, algorithmElement, signatureElement);
  const validity = readChildrenOf(der, validityElement, derTag.sequence);
  if (validity?.length !== 2) throw new Malformed('validity');
  const issuer = decodeName(der, issuerElement, 'issuer');
  const subject = decodeName(der, subjectElement, 'subject');
  const subjectPublicKey = required(decodeSubjectPublicKey(der, spkiElement), 'subjectPublicKeyInfo');

  const extensions = decodeCertificateExtensions(der, optional);
  const extension = <T>(id: string, decode: (value: Buffer) => T): T | undefined => {
    const value = extensions.find((candidate) => candidate.oid === id)?.value;
    return value && decode(value);
  };
  // Listed, not spread: a spread into this many properties cost ≈ 20 µs per certificate (a slow object shape).
  return {
    tbs: signed.tbs,
    signatureAlgorithm: signed.signatureAlgorithm,
    signature: signed.signature,
    der,
    subject: subject.text,
    issuer: issuer.text,
    subjectNameDer: subject.der,
    issuerNameDer: issuer.der,
    serial: required(integerValue(contentOf(der, serialElement)), 'serial number'),
    notBeforeMs: decodeTime(der, validity[0], 'notBefore'),
    notAfterMs: decodeTime(der, validity[1], 'notAfter'),
    get publicKey() {
      return subjectPublicKey.key;
    },
    p256Key: subjectPublicKey.p256,
    publicKeyAlgorithm: subjectPublicKey.algorithm,
    basicConstraints: extension(oid.basicConstraints, decodeBasicConstraints),
    keyUsage: extension(oid.keyUsage, decodeKeyUsage),
    extendedKeyUsage: extension(oid.extendedKeyUsage, decodeExtendedKeyUsage),
    otherNames: extension(oid.subjectAltName, decodeOtherNames) ?? [],
    subjectKeyIdentifier: extension(oid.subjectKeyIdentifier, decodeSubjectKeyIdentifier),
    authorityKeyIdentifier: extension(oid.authorityKeyIdentifier, decodeAuthorityKeyIdentifier),
    unsupportedCriticalExtensions: unsupportedCritical(extensions, understoodCertificateExtensions),
  };
}

/** Parses a DER certificate; every failure is a reason, never an exception. */
export function parseCertificate(der: Buffer): Decoded<ParsedCertificate, 'certificate-malformed'> {
  return decodeTotally(der, decodeCertificate, 'certificate-malformed', 'certificate');
}

/**
 * The name and the authority key identifier fit (what OpenSSL's
 * X509_check_issued checks besides keyUsage, which authorities.ts enforces).
 * Names compare as DER bytes, as a CRL's issuer does in crl.ts, not after
 * OpenSSL's case and space folding: a CA re-encoding its own name is not a
 * case worth a second notion of equality.
 */
export function isIssuedBy(certificate: ParsedCertificate, issuer: ParsedCertificate): boolean {
  if (!certificate.issuerNameDer.equals(issuer.subjectNameDer)) return false;
  const authority = certificate.authorityKeyIdentifier;
  if (!authority) return true;
  // Tells apart two CAs of one name (a re-keyed CA) before any signature is checked.
  if (authority.keyIdentifier && issuer.subjectKeyIdentifier && !authority.keyIdentifier.equals(issuer.subjectKeyIdentifier)) return false;
  if (authority.serial !== undefined && authority.serial !== issuer.serial) return false;
  return authority.issuerNameDer === undefined || authority.issuerNameDer.equals(issuer.issuerNameDer);
}

/** RSASSA-PSS takes its hash, MGF and salt length from parameters: node's X509Certificate (OpenSSL) reads them. */
const rsassaPss = '1.2.840.113549.1.1.10';
const ecdsaWithSha256 = '1.2.840.10045.4.3.2';

/**
 * The issuer's key signed the certificate. Algorithms outside
 * signatureAlgorithms (SHA-1, MD5, DSA, unknown) are refused, as for CRLs.
 * A P-256 issuer's ECDSA-SHA256 signature, the common case on the packet
 * path, is checked through its P256Key.
 */
export function isSignedBy(certificate: ParsedCertificate, issuerKey: KeyObject | P256Key): boolean {
  if (issuerKey instanceof P256Key) {
    if (certificate.signatureAlgorithm === ecdsaWithSha256) return issuerKey.verifySha256(certificate.tbs, certificate.signature);
    return isSignedBy(certificate, issuerKey.nodeKey);
  }
  if (certificate.signatureAlgorithm !== rsassaPss) return verifySignedBytes(certificate, issuerKey) === 'valid';
  try {
    return new X509Certificate(certificate.der).verify(issuerKey);
  } catch {
    return false;
  }
}

/** Read from the certificate: KeyObject.asymmetricKeyDetails costs ≈ 50 µs per call. */
export function isP256(certificate: ParsedCertificate): boolean {
  return certificate.publicKeyAlgorithm.algorithm === oid.ecPublicKey && certificate.publicKeyAlgorithm.curve === oid.prime256v1;
}

function decodeCertificateList(der: Buffer): ParsedCertificateList {
  const outer = required(readWhole(der), 'not a single DER structure');
  const [tbsElement, algorithmElement, signatureElement, ...extra] = required(readChildrenOf(der, outer, derTag.sequence), 'CRL');
  if (!tbsElement || !algorithmElement || signatureElement?.tag !== derTag.bitString || extra.length > 0) {
    throw new Malformed('CertificateList');
  }
  const tbs = required(readChildrenOf(der, tbsElement, derTag.sequence), 'tbsCertList');
  let cursor = tbs[0]?.tag === derTag.integer ? 1 : 0;
  const innerAlgorithm = tbs[cursor++];
  const issuerElement = tbs[cursor++];
  const thisUpdateMs = decodeTime(der, tbs[cursor++], 'thisUpdate');
  const nextElement = tbs[cursor];
  const hasNextUpdate = nextElement?.tag === derTag.utcTime || nextElement?.tag === derTag.generalizedTime;
  const nextUpdateMs = hasNextUpdate ? decodeTime(der, tbs[cursor++], 'nextUpdate') : undefined;
  const entriesElement = tbs[cursor]?.tag === derTag.sequence ? tbs[cursor++] : undefined;
  const extensionsWrapper = tbs[cursor]?.tag === derTag.contextConstructed0 ? tbs[cursor++] : undefined;
  if (cursor !== tbs.length || issuerElement?.tag !== derTag.sequence || !innerAlgorithm) throw new Malformed('tbsCertList fields');
  const signed = decodeSignature(der, tbsElement, innerAlgorithm, algorithmElement, signatureElement);

  const revokedSerials: bigint[] = [];
  const unsupported: string[] = [];
  for (const entry of entriesElement ? required(readChildren(der, entriesElement), 'revokedCertificates') : []) {
    const [serialElement, dateElement, entryExtensions, ...extra] = required(readChildrenOf(der, entry, derTag.sequence), 'CRL entry');
    if (serialElement?.tag !== derTag.integer || !dateElement || extra.length > 0) throw new Malformed('CRL entry');
    revokedSerials.push(required(integerValue(contentOf(der, serialElement)), 'CRL entry serial'));
    const critical = entryExtensions ? unsupportedCritical(decodeExtensions(der, entryExtensions), understoodCrlEntryExtensions) : [];
    unsupported.push(...critical.map((id) => `entry ${id}`));
  }
  const extensions = extensionsWrapper ? decodeExtensions(der, required(readChildren(der, extensionsWrapper), 'crlExtensions')[0]) : [];
  const crlNumberValue = extensions.find((extension) => extension.oid === oid.crlNumber)?.value;
  unsupported.push(...unsupportedCritical(extensions, understoodCrlExtensions));
  return {
    tbs: signed.tbs,
    signatureAlgorithm: signed.signatureAlgorithm,
    signature: signed.signature,
    issuerNameDer: encodingOf(der, issuerElement),
    thisUpdateMs,
    nextUpdateMs,
    crlNumber: crlNumberValue && decodeInteger(crlNumberValue, 'cRLNumber'),
    revokedSerials,
    unsupportedCriticalExtensions: unsupported,
  };
}

/** Parses a DER CRL (no signature check here: see verifySignedBytes). */
export function parseCertificateList(der: Buffer): Decoded<ParsedCertificateList, 'crl-malformed'> {
  return decodeTotally(der, decodeCertificateList, 'crl-malformed', 'CRL');
}

/**
 * Digest and key type per signature algorithm; a null digest: the algorithm
 * hashes by itself (EdDSA). The key type must match, as OpenSSL requires, so
 * that a signature is only ever read the way its issuer made it. SHA-1 and
 * older are not accepted.
 */
const signatureAlgorithms = new Map<string, { readonly digest: string | null; readonly keyType: string }>([
  ['1.2.840.10045.4.3.2', { digest: 'sha256', keyType: 'ec' }],
  ['1.2.840.10045.4.3.3', { digest: 'sha384', keyType: 'ec' }],
  ['1.2.840.10045.4.3.4', { digest: 'sha512', keyType: 'ec' }],
  ['1.2.840.113549.1.1.11', { digest: 'sha256', keyType: 'rsa' }],
  ['1.2.840.113549.1.1.12', { digest: 'sha384', keyType: 'rsa' }],
  ['1.2.840.113549.1.1.13', { digest: 'sha512', keyType: 'rsa' }],
  ['1.3.101.112', { digest: null, keyType: 'ed25519' }],
  ['1.3.101.113', { digest: null, keyType: 'ed448' }],
]);

export function verifySignedBytes(signed: SignedBytes, key: KeyObject): 'valid' | 'invalid' | 'unsupported-algorithm' {
  const algorithm = signatureAlgorithms.get(signed.signatureAlgorithm);
  if (algorithm === undefined) return 'unsupported-algorithm';
  if (key.asymmetricKeyType !== algorithm.keyType) return 'invalid';
  try {
    return verifySignatureBytes(algorithm.digest, signed.tbs, key, signed.signature) ? 'valid' : 'invalid';
  } catch {
    return 'invalid';
  }
}
