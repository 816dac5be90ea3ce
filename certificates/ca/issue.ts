/**
 * Builds the CA, server and client certificates: P-256 keys, ECDSA-SHA256
 * signatures, and the extensions the sKnock server and OpenSSL expect.
 * Keys, serials and dates are parameters; nothing here touches the disk.
 */
import { generateKeyPair, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, OtherName, SubjectAlternativeName, id_ce_subjectAltName } from '@peculiar/asn1-x509';
import { Utf8String } from 'asn1js';
import { SknockError } from '../../client-lib/errors.js';
import { encodeAuthorization, type PortRequest } from '../../client-lib/protocol/ports.js';
import { ecdsaP256WithSha256, x509 } from './x509-setup.js';

/** subjectAltName otherName type-id that carries a client's permitted ports, as in the original sKnock. */
export const authorizationOid = '1.3.6.1.4.1.19518';

export type CertificateKind = 'server' | 'client';

/** What the subject of a leaf certificate may do. */
export type LeafProfile =
  | { readonly kind: 'server'; readonly dnsName: string }
  | { readonly kind: 'client'; readonly permittedPorts: readonly PortRequest[] };

export interface KeyPair {
  readonly privateKey: KeyObject;
  /** DER SubjectPublicKeyInfo. */
  readonly publicKey: Buffer;
}

export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The issuing CA: its certificate and its key, as node:crypto and as WebCrypto (for @peculiar/x509) use it. */
export interface SigningCa {
  readonly certificate: x509.X509Certificate;
  readonly privateKey: KeyObject;
  readonly signingKey: webcrypto.CryptoKey;
}

const generateEcKeyPair = promisify(generateKeyPair);
const dayMilliseconds = 86_400_000;
/** notBefore lies this far back so that a server whose clock lags the CA's accepts a fresh certificate. */
const clockSkewAllowanceMilliseconds = 3_600_000;

export async function generateP256KeyPair(): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateEcKeyPair('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKey: publicKey.export({ format: 'der', type: 'spki' }) };
}

export function importSigningKey(privateKey: KeyObject): Promise<webcrypto.CryptoKey> {
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

/**
 * A random positive serial of 16 bytes (RFC 5280: positive, at most 20
 * octets; CA/B Forum: at least 64 random bits), as lower-case hex.
 */
export function newSerialNumber(randomBytes: (size: number) => Buffer): string {
  const serial = Buffer.from(randomBytes(16));
  // Top bit clear keeps the INTEGER positive; a non-zero first byte keeps its DER minimal and the value non-zero.
  serial[0] = (serial[0]! & 0x7f) || 0x01;
  return serial.toString('hex');
}

/** Serial numbers as people type them (`0x`, colons, upper case, leading zeros) in one canonical form. */
export function normalizeSerialNumber(text: string): string | undefined {
  const hex = text.trim().toLowerCase().replace(/^0x/, '').replaceAll(':', '');
  if (!/^[0-9a-f]{1,40}$/.test(hex)) return undefined;
  const significant = hex.replace(/^0+(?=.)/, '');
  return significant.length % 2 === 0 ? significant : `0${significant}`;
}

/** Whole seconds: X.509 times carry no fractions, and the index should say what the certificate says. */
export function wholeSeconds(time: Date | number): Date {
  return new Date(Math.floor(new Date(time).getTime() / 1000) * 1000);
}

export function addDays(time: Date, days: number): Date {
  return new Date(time.getTime() + days * dayMilliseconds);
}

/** `days` of validity from `now`, never past `notAfterLimit` (the CA's own end). */
export function validityFrom(now: Date, days: number, notAfterLimit?: Date): Validity & { readonly clamped: boolean } {
  const wanted = addDays(now, days);
  const clamped = notAfterLimit !== undefined && wanted.getTime() > notAfterLimit.getTime();
  return {
    notBefore: wholeSeconds(now.getTime() - clockSkewAllowanceMilliseconds),
    notAfter: wholeSeconds(clamped ? notAfterLimit : wanted),
    clamped,
  };
}

function commonNameOnly(commonName: string): x509.Name {
  return new x509.Name([{ CN: [commonName] }]);
}

/** The CA's key identifier, which every certificate and CRL it signs names in its AKI. */
export function caKeyIdentifier(certificate: x509.X509Certificate): string {
  const extension = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!extension) {
    throw new SknockError('SKNOCK_CA_BAD_CA_CERTIFICATE', 'the CA certificate has no subjectKeyIdentifier extension');
  }
  return extension.keyId;
}

/** subjectAltName with the original sKnock authorization: otherName 1.3.6.1.4.1.19518 = UTF8String `1.22,0.53`. */
function authorizationExtension(permittedPorts: readonly PortRequest[]): x509.Extension {
  const value = new Utf8String({ value: encodeAuthorization(permittedPorts) }).toBER(false);
  const names = new SubjectAlternativeName([new GeneralName({ otherName: new OtherName({ typeId: authorizationOid, value }) })]);
  return new x509.Extension(id_ce_subjectAltName, false, AsnConvert.serialize(names));
}

function leafExtensions(profile: LeafProfile): x509.Extension[] {
  const usage = new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true);
  if (profile.kind === 'server') {
    return [
      usage,
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: profile.dnsName }]),
    ];
  }
  return [usage, new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]), authorizationExtension(profile.permittedPorts)];
}

async function toDer(certificate: Promise<x509.X509Certificate>): Promise<Buffer> {
  return Buffer.from((await certificate).rawData);
}

/** A self-signed CA certificate that may sign leaf certificates and CRLs only. */
export async function buildCaCertificate(params: {
  readonly commonName: string;
  readonly keys: KeyPair;
  readonly serialNumber: string;
  readonly validity: Validity;
}): Promise<Buffer> {
  const keyIdentifier = await x509.SubjectKeyIdentifierExtension.create(params.keys.publicKey);
  const name = commonNameOnly(params.commonName);
  return toDer(
    x509.X509CertificateGenerator.create({
      serialNumber: params.serialNumber,
      subject: name,
      issuer: name,
      ...params.validity,
      publicKey: params.keys.publicKey,
      signingKey: await importSigningKey(params.keys.privateKey),
      signingAlgorithm: ecdsaP256WithSha256,
      extensions: [
        // pathLength 0: this CA signs end entities only, never another CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        keyIdentifier,
        new x509.AuthorityKeyIdentifierExtension(keyIdentifier.keyId),
      ],
    }),
  );
}

/** A server or client certificate for `commonName`, signed by `ca`. */
export async function buildLeafCertificate(params: {
  readonly commonName: string;
  readonly profile: LeafProfile;
  readonly publicKey: Buffer;
  readonly ca: SigningCa;
  readonly serialNumber: string;
  readonly validity: Validity;
}): Promise<Buffer> {
  return toDer(
    x509.X509CertificateGenerator.create({
      serialNumber: params.serialNumber,
      subject: commonNameOnly(params.commonName),
      issuer: params.ca.certificate.subjectName,
      ...params.validity,
      publicKey: params.publicKey,
      signingKey: params.ca.signingKey,
      signingAlgorithm: ecdsaP256WithSha256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        ...leafExtensions(params.profile),
        await x509.SubjectKeyIdentifierExtension.create(params.publicKey),
        new x509.AuthorityKeyIdentifierExtension(caKeyIdentifier(params.ca.certificate)),
      ],
    }),
  );
}
