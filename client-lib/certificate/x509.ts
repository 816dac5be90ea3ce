/**
 * The one facade over the PKI libraries on the server side. node:crypto
 * parses certificates (names, validity, the public key) and checks every
 * signature; der.ts finds the byte ranges node:crypto does not expose and
 * reads the four small extension values a knock needs (keyUsage,
 * basicConstraints, extendedKeyUsage, subjectAltName otherNames): on this
 * per-packet path asn1-schema cost ≈ 150 µs per certificate, a fifth of a
 * new client's check. @peculiar/asn1-x509 decodes CRL times (once per CRL).
 * Callers get plain, typed facts and never see a library object or exception.
 */
import { X509Certificate, createHash, verify as verifySignatureBytes, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Time } from '@peculiar/asn1-x509';
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
  type DerElement,
} from './der.js';

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
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
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

/** A certificate as facts. Absent extensions are `undefined`, never a default. */
export interface ParsedCertificate {
  readonly der: Buffer;
  readonly sha256: string;
  readonly subject: string;
  readonly issuer: string;
  readonly subjectNameDer: Buffer;
  readonly issuerNameDer: Buffer;
  readonly serial: bigint;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly publicKey: KeyObject;
  /** From the SubjectPublicKeyInfo; the curve when the parameters name one. */
  readonly publicKeyAlgorithm: { readonly algorithm: string; readonly curve: string | undefined };
  readonly basicConstraints: { readonly ca: boolean; readonly pathLength: number | undefined } | undefined;
  readonly keyUsage: ReadonlySet<KeyUsageName> | undefined;
  readonly extendedKeyUsage: readonly string[] | undefined;
  readonly otherNames: readonly OtherName[];
  readonly unsupportedCriticalExtensions: readonly string[];
  /** node:crypto's handle, kept for the OpenSSL issuer and signature checks. */
  readonly handle: X509Certificate;
}

export interface ParsedCertificateList {
  readonly tbs: Buffer;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
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
  if (!element || (element.tag !== derTag.utcTime && element.tag !== derTag.generalizedTime)) throw new Malformed(what);
  let ms = NaN;
  try {
    ms = AsnConvert.parse(encodingOf(bytes, element), Time).getTime().getTime();
  } catch {
    // reported below
  }
  if (Number.isNaN(ms)) throw new Malformed(what);
  return ms;
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

function decodePublicKeyAlgorithm(bytes: Buffer, spki: DerElement): { algorithm: string; curve: string | undefined } {
  const [algorithmIdentifier] = required(readChildrenOf(bytes, spki, derTag.sequence), 'subjectPublicKeyInfo');
  const [algorithm, parameters] = required(readChildrenOf(bytes, algorithmIdentifier, derTag.sequence), 'public key algorithm');
  if (algorithm?.tag !== derTag.objectIdentifier) throw new Malformed('public key algorithm');
  return {
    algorithm: required(objectIdentifierText(contentOf(bytes, algorithm)), 'public key algorithm'),
    curve: parameters?.tag === derTag.objectIdentifier ? objectIdentifierText(contentOf(bytes, parameters)) : undefined,
  };
}

/** One line, as in logs: `CN=sKnock Test Client, O=TUM i8` (node escapes control characters). */
function oneLineName(multiline: string): string {
  return multiline.split('\n').join(', ');
}

function parseValidity(text: string, what: string): number {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new Malformed(what);
  return ms;
}

function decodeCertificate(der: Buffer): ParsedCertificate {
  const outer = required(readWhole(der), 'not a single DER structure');
  const [tbsElement] = required(readChildrenOf(der, outer, derTag.sequence), 'certificate');
  const tbs = required(readChildrenOf(der, tbsElement, derTag.sequence), 'tbsCertificate');
  const fields = tbs[0]?.tag === derTag.contextConstructed0 ? tbs.slice(1) : tbs;
  const [serialElement, , issuerElement, , subjectElement, spkiElement, ...optional] = fields;
  if (
    serialElement?.tag !== derTag.integer ||
    issuerElement?.tag !== derTag.sequence ||
    subjectElement?.tag !== derTag.sequence ||
    !spkiElement
  ) {
    throw new Malformed('tbsCertificate fields');
  }
  const extensionsWrapper = optional.find((element) => element.tag === derTag.contextConstructed3);
  const extensions = extensionsWrapper ? decodeExtensions(der, required(readChildren(der, extensionsWrapper), 'extensions')[0]) : [];
  const extension = (id: string): Buffer | undefined => extensions.find((candidate) => candidate.oid === id)?.value;

  let handle: X509Certificate;
  try {
    handle = new X509Certificate(der);
  } catch (error) {
    throw new Malformed(`rejected by OpenSSL (${error instanceof Error ? error.message : String(error)})`);
  }
  const basicConstraintsValue = extension(oid.basicConstraints);
  const keyUsageValue = extension(oid.keyUsage);
  const extendedKeyUsageValue = extension(oid.extendedKeyUsage);
  const subjectAltNameValue = extension(oid.subjectAltName);
  return {
    der,
    sha256: sha256Hex(der),
    subject: oneLineName(handle.subject),
    issuer: oneLineName(handle.issuer),
    subjectNameDer: encodingOf(der, subjectElement),
    issuerNameDer: encodingOf(der, issuerElement),
    serial: required(integerValue(contentOf(der, serialElement)), 'serial number'),
    notBeforeMs: parseValidity(handle.validFrom, 'notBefore'),
    notAfterMs: parseValidity(handle.validTo, 'notAfter'),
    publicKey: handle.publicKey,
    publicKeyAlgorithm: decodePublicKeyAlgorithm(der, spkiElement),
    basicConstraints: basicConstraintsValue && decodeBasicConstraints(basicConstraintsValue),
    keyUsage: keyUsageValue && decodeKeyUsage(keyUsageValue),
    extendedKeyUsage: extendedKeyUsageValue && decodeExtendedKeyUsage(extendedKeyUsageValue),
    otherNames: subjectAltNameValue ? decodeOtherNames(subjectAltNameValue) : [],
    unsupportedCriticalExtensions: unsupportedCritical(extensions, understoodCertificateExtensions),
    handle,
  };
}

/** Parses a DER certificate; every failure is a reason, never an exception. */
export function parseCertificate(der: Buffer): Decoded<ParsedCertificate, 'certificate-malformed'> {
  return decodeTotally(der, decodeCertificate, 'certificate-malformed', 'certificate');
}

/** Issuer name, authority key identifier and the issuer's keyUsage all fit (OpenSSL's X509_check_issued). */
export function isIssuedBy(certificate: ParsedCertificate, issuer: ParsedCertificate): boolean {
  try {
    return certificate.handle.checkIssued(issuer.handle);
  } catch {
    return false;
  }
}

export function isSignedBy(certificate: ParsedCertificate, issuerKey: KeyObject): boolean {
  try {
    return certificate.handle.verify(issuerKey);
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
  // The signed and the unsigned algorithm must agree, or a verifier could be steered to the weaker one.
  if (!encodingOf(der, innerAlgorithm).equals(encodingOf(der, algorithmElement))) throw new Malformed('signature algorithm mismatch');
  const [algorithmOid] = required(readChildrenOf(der, algorithmElement, derTag.sequence), 'signature algorithm');
  const signatureBits = contentOf(der, signatureElement);
  if (algorithmOid?.tag !== derTag.objectIdentifier || signatureBits[0] !== 0) throw new Malformed('signature');

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
    tbs: encodingOf(der, tbsElement),
    signatureAlgorithm: required(objectIdentifierText(contentOf(der, algorithmOid)), 'signature algorithm'),
    signature: signatureBits.subarray(1),
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

/** Digest per signature algorithm; null = the algorithm hashes by itself (Ed25519). SHA-1 is not accepted. */
const signatureDigests = new Map<string, string | null>([
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.3.101.112', null],
]);

export function verifySignedBytes(
  signed: { readonly tbs: Buffer; readonly signatureAlgorithm: string; readonly signature: Buffer },
  key: KeyObject,
): 'valid' | 'invalid' | 'unsupported-algorithm' {
  const digest = signatureDigests.get(signed.signatureAlgorithm);
  if (digest === undefined) return 'unsupported-algorithm';
  try {
    return verifySignatureBytes(digest, signed.tbs, key, signed.signature) ? 'valid' : 'invalid';
  } catch {
    return 'invalid';
  }
}
