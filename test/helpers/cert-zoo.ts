/**
 * A certificate factory for tests: CAs, clients in the sKnock profile, the
 * ways a client certificate can be wrong, and CRLs, all made at test time
 * with @peculiar/x509 over node's WebCrypto. The clock is always a parameter.
 *
 *   const zoo = await createCertificateZoo(new Date('2026-01-01T00:00:00Z'));
 *   zoo.ca.der, zoo.clients.valid.der, zoo.clients.valid.keys.privateKey, zoo.crls.current
 *
 * or the primitives: createAuthority, issueCertificate, issueCrl, tamperSignature.
 * No vitest import here: benchmarks reuse it.
 */
import 'reflect-metadata';
import { KeyObject, randomBytes, sign, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  Certificate,
  CertificateList,
  Extension,
  Extensions,
  GeneralName,
  Name,
  OtherName,
  RevokedCertificate,
  SubjectAlternativeName,
  TBSCertList,
  Time,
  Version,
} from '@peculiar/asn1-x509';
import * as asn1js from 'asn1js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** @peculiar/x509, loaded after its Reflect polyfill and wired to node's WebCrypto: import it from here. */
export { x509 };

type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const authorizationOid = '1.3.6.1.4.1.19518';
export const clientAuthOid = '1.3.6.1.5.5.7.3.2';
export const serverAuthOid = '1.3.6.1.5.5.7.3.1';

const dayMs = 86_400_000;

export type ZooKeyAlgorithm = 'P-256' | 'P-384' | 'RSA-2048';

export interface ZooKeys {
  readonly algorithm: ZooKeyAlgorithm;
  readonly pair: CryptoKeyPair;
  /** node:crypto handles, e.g. to sign a knock with crypto.sign. */
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export interface ZooCertificate {
  readonly der: Buffer;
  readonly certificate: x509.X509Certificate;
  readonly keys: ZooKeys;
  readonly subject: string;
  /** INTEGER content octets of the serial, as encoded in the certificate. */
  readonly serialHex: string;
}

/** A CA (anchor or intermediate) that can issue certificates and CRLs. */
export type ZooAuthority = ZooCertificate;

export type KeyUsageName = keyof typeof x509.KeyUsageFlags;

/** The subjectAltName otherName 1.3.6.1.4.1.19518 as a UTF8String (current form) or an OCTET STRING (old dev PKI). */
export type ZooAuthorization = { readonly utf8: string } | { readonly octetString: string };

export interface CertificateOptions {
  /** Validity defaults are relative to it: notBefore = now - 1 day, notAfter = now + 365 days. */
  readonly now: Date;
  readonly subject?: string;
  readonly serialHex?: string;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly key?: ZooKeyAlgorithm | ZooKeys;
  /** null: no keyUsage extension. */
  readonly keyUsage?: readonly KeyUsageName[] | null;
  /** OIDs; null: no extendedKeyUsage extension. */
  readonly extendedKeyUsage?: readonly string[] | null;
  /** null: no basicConstraints extension. */
  readonly basicConstraints?: { readonly ca: boolean; readonly pathLength?: number } | null;
  /** null: no subjectAltName. */
  readonly authorization?: ZooAuthorization | null;
  readonly extraExtensions?: readonly x509.Extension[];
}

/** The sKnock client profile; options override any part of it. */
export const clientProfile = {
  keyUsage: ['digitalSignature', 'keyAgreement'],
  extendedKeyUsage: [clientAuthOid],
  basicConstraints: { ca: false },
  authorization: { utf8: '1.22,0.53' },
} as const satisfies Partial<CertificateOptions>;

/** The sKnock server profile. */
export const serverProfile = {
  keyUsage: ['keyAgreement'],
  extendedKeyUsage: [serverAuthOid],
  basicConstraints: { ca: false },
  authorization: null,
} as const satisfies Partial<CertificateOptions>;

const authorityProfile = {
  keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
  extendedKeyUsage: null,
  authorization: null,
} as const satisfies Partial<CertificateOptions>;

export async function generateKeys(algorithm: ZooKeyAlgorithm): Promise<ZooKeys> {
  const parameters =
    algorithm === 'RSA-2048'
      ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: algorithm };
  const pair = (await webcrypto.subtle.generateKey(parameters, true, ['sign', 'verify'])) as CryptoKeyPair;
  return { algorithm, pair, privateKey: KeyObject.from(pair.privateKey), publicKey: KeyObject.from(pair.publicKey) };
}

function signingAlgorithmFor(keys: ZooKeys): { name: string; hash: string } {
  return { name: keys.algorithm === 'RSA-2048' ? 'RSASSA-PKCS1-v1_5' : 'ECDSA', hash: 'SHA-256' };
}

function randomSerialHex(): string {
  const bytes = randomBytes(8);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function keyUsageFlags(names: readonly KeyUsageName[]): x509.KeyUsageFlags {
  let flags = 0;
  for (const name of names) flags |= x509.KeyUsageFlags[name];
  return flags;
}

/** A subjectAltName of otherNames, each value given as its DER element (@peculiar/x509 drops unknown otherNames). */
export function otherNamesExtension(otherNames: readonly { readonly typeId: string; readonly valueDer: Buffer }[]): x509.Extension {
  const names = otherNames.map(
    ({ typeId, valueDer }) => new GeneralName({ otherName: new OtherName({ typeId, value: new Uint8Array(valueDer).buffer }) }),
  );
  return new x509.Extension('2.5.29.17', false, AsnConvert.serialize(new SubjectAlternativeName(names)));
}

/** The authorization otherName's value element. */
export function authorizationValueDer(authorization: ZooAuthorization): Buffer {
  const element =
    'utf8' in authorization
      ? new asn1js.Utf8String({ value: authorization.utf8 })
      : new asn1js.OctetString({ valueHex: new Uint8Array(Buffer.from(authorization.octetString, 'utf8')) });
  return Buffer.from(element.toBER(false));
}

async function keysFor(key: ZooKeyAlgorithm | ZooKeys | undefined): Promise<ZooKeys> {
  return typeof key === 'object' ? key : generateKeys(key ?? 'P-256');
}

/**
 * Issues a certificate signed by `issuer`, or self-signed with 'self-signed'.
 * Defaults to the client profile.
 */
export async function issueCertificate(issuer: ZooAuthority | 'self-signed', options: CertificateOptions): Promise<ZooCertificate> {
  const keys = await keysFor(options.key);
  const signer = issuer === 'self-signed' ? keys : issuer.keys;
  const subject = options.subject ?? 'CN=Zoo Client';
  const serialHex = options.serialHex ?? randomSerialHex();
  const keyUsage = options.keyUsage === undefined ? clientProfile.keyUsage : options.keyUsage;
  const extendedKeyUsage = options.extendedKeyUsage === undefined ? clientProfile.extendedKeyUsage : options.extendedKeyUsage;
  const basicConstraints: CertificateOptions['basicConstraints'] =
    options.basicConstraints === undefined ? clientProfile.basicConstraints : options.basicConstraints;
  const authorization = options.authorization === undefined ? clientProfile.authorization : options.authorization;

  const extensions: x509.Extension[] = [await x509.SubjectKeyIdentifierExtension.create(keys.pair.publicKey)];
  if (issuer !== 'self-signed') extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.pair.publicKey));
  if (basicConstraints) extensions.push(new x509.BasicConstraintsExtension(basicConstraints.ca, basicConstraints.pathLength, true));
  if (keyUsage) extensions.push(new x509.KeyUsagesExtension(keyUsageFlags(keyUsage), true));
  if (extendedKeyUsage) extensions.push(new x509.ExtendedKeyUsageExtension([...extendedKeyUsage]));
  if (authorization) extensions.push(otherNamesExtension([{ typeId: authorizationOid, valueDer: authorizationValueDer(authorization) }]));
  extensions.push(...(options.extraExtensions ?? []));

  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex,
    subject,
    issuer: issuer === 'self-signed' ? subject : issuer.subject,
    notBefore: options.notBefore ?? new Date(options.now.getTime() - dayMs),
    notAfter: options.notAfter ?? new Date(options.now.getTime() + 365 * dayMs),
    publicKey: keys.pair.publicKey,
    signingKey: signer.pair.privateKey,
    signingAlgorithm: signingAlgorithmFor(signer),
    extensions,
  });
  // The serial as encoded (the generator adds a 00 before a high bit), to list it in a CRL verbatim.
  const encodedSerial = Buffer.from(AsnConvert.parse(certificate.rawData, Certificate).tbsCertificate.serialNumber).toString('hex');
  return { der: Buffer.from(certificate.rawData), certificate, keys, subject, serialHex: encodedSerial };
}

/** A CA: self-signed anchor, or an intermediate when `issuer` is given. */
export async function createAuthority(
  options: Omit<CertificateOptions, 'subject' | 'basicConstraints'> & {
    readonly name?: string;
    readonly issuer?: ZooAuthority;
    readonly pathLength?: number;
  },
): Promise<ZooAuthority> {
  return issueCertificate(options.issuer ?? 'self-signed', {
    ...authorityProfile,
    notBefore: new Date(options.now.getTime() - 30 * dayMs),
    notAfter: new Date(options.now.getTime() + 10 * 365 * dayMs),
    ...options,
    subject: options.name ?? 'CN=Zoo CA',
    basicConstraints: { ca: true, ...(options.pathLength === undefined ? {} : { pathLength: options.pathLength }) },
  });
}

export interface CrlOptions {
  readonly now: Date;
  /**
   * Serial numbers to list as revoked: the INTEGER content octets in hex, used
   * verbatim, so tests can write leading zeros ('000005') or negative values ('ff').
   */
  readonly revokedSerials?: readonly string[];
  readonly thisUpdate?: Date;
  /** Default now + 7 days; null: omit nextUpdate. */
  readonly nextUpdate?: Date | null;
  readonly crlNumber?: bigint;
  /** Signs with this key instead of the issuer's (a forged CRL). */
  readonly signingKeys?: ZooKeys;
  readonly extraExtensions?: readonly x509.Extension[];
}

/** SHA-256 throughout, as signingAlgorithmFor uses for certificates. */
const signatureAlgorithmOids: Record<ZooKeyAlgorithm, string> = {
  'P-256': '1.2.840.10045.4.3.2',
  'P-384': '1.2.840.10045.4.3.2',
  'RSA-2048': '1.2.840.113549.1.1.11',
};

function extensionOf(extension: x509.Extension): Extension {
  return AsnConvert.parse(extension.rawData, Extension);
}

/**
 * A CRL (DER) issued by `issuer`, assembled from the ASN.1 schema and signed
 * with node:crypto (@peculiar/x509's generator rewrites serial numbers).
 */
export async function issueCrl(issuer: ZooAuthority, options: CrlOptions): Promise<Buffer> {
  const thisUpdate = options.thisUpdate ?? new Date(options.now.getTime() - 60_000);
  const nextUpdate = options.nextUpdate === undefined ? new Date(options.now.getTime() + 7 * dayMs) : options.nextUpdate;
  const signer = options.signingKeys ?? issuer.keys;
  const signatureAlgorithm = new AlgorithmIdentifier({ algorithm: signatureAlgorithmOids[signer.algorithm] });
  const crlNumber = asn1js.Integer.fromBigInt(options.crlNumber ?? 1n).toBER(false);
  const tbsCertList = new TBSCertList({
    version: Version.v2,
    signature: signatureAlgorithm,
    issuer: AsnConvert.parse(issuer.certificate.subjectName.toArrayBuffer(), Name),
    thisUpdate: new Time(thisUpdate),
    ...(nextUpdate ? { nextUpdate: new Time(nextUpdate) } : {}),
    ...(options.revokedSerials?.length
      ? {
          revokedCertificates: options.revokedSerials.map(
            (serialHex) => new RevokedCertificate({ userCertificate: new Uint8Array(Buffer.from(serialHex, 'hex')).buffer, revocationDate: new Time(thisUpdate) }),
          ),
        }
      : {}),
    crlExtensions: new Extensions([
      extensionOf(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.pair.publicKey)),
      extensionOf(new x509.Extension('2.5.29.20', false, crlNumber)),
      ...(options.extraExtensions ?? []).map(extensionOf),
    ]),
  });
  const signature = sign('sha256', Buffer.from(AsnConvert.serialize(tbsCertList)), signer.privateKey);
  const crl = new CertificateList({ tbsCertList, signatureAlgorithm, signature: new Uint8Array(signature).buffer });
  return Buffer.from(AsnConvert.serialize(crl));
}

/** A copy with one bit of the signature flipped: structurally fine, cryptographically wrong. */
export function tamperSignature(der: Buffer): Buffer {
  const copy = Buffer.from(der);
  copy[copy.length - 1] = copy[copy.length - 1]! ^ 0x01;
  return copy;
}

export interface CertificateZoo {
  readonly now: Date;
  readonly ca: ZooAuthority;
  /** Another CA, unrelated to `ca`. */
  readonly otherCa: ZooAuthority;
  /** Issued by `ca`. */
  readonly intermediate: ZooAuthority;
  readonly clients: {
    readonly valid: ZooCertificate;
    readonly expired: ZooCertificate;
    readonly notYetValid: ZooCertificate;
    readonly ofOtherCa: ZooCertificate;
    readonly selfSigned: ZooCertificate;
    readonly caAsClient: ZooCertificate;
    readonly serverAsClient: ZooCertificate;
    readonly noKeyUsage: ZooCertificate;
    readonly wrongKeyUsage: ZooCertificate;
    readonly revoked: ZooCertificate;
    readonly malformedAuthorization: ZooCertificate;
    readonly octetStringAuthorization: ZooCertificate;
    readonly noAuthorization: ZooCertificate;
    /** Valid, but authorized for tcp/2222 only. */
    readonly otherPort: ZooCertificate;
    readonly rsa: ZooCertificate;
    readonly badSignature: ZooCertificate;
    /** Issued by `intermediate`. */
    readonly viaIntermediate: ZooCertificate;
  };
  readonly crls: {
    /** By `ca`, fresh, revokes clients.revoked. */
    readonly current: Buffer;
    /** Claims to be by `ca`, signed by another key. */
    readonly badSignature: Buffer;
    /** By `otherCa`. */
    readonly ofOtherCa: Buffer;
    /** By `ca`, nextUpdate a day before `now`. */
    readonly stale: Buffer;
  };
}

/** The standard set used by the trust tests; each client is wrong in exactly one way. */
export async function createCertificateZoo(now: Date): Promise<CertificateZoo> {
  const ca = await createAuthority({ now, name: 'CN=Zoo CA, O=sKnock tests' });
  const otherCa = await createAuthority({ now, name: 'CN=Other Zoo CA, O=sKnock tests' });
  const intermediate = await createAuthority({ now, name: 'CN=Zoo Intermediate CA, O=sKnock tests', issuer: ca });
  const client = (subject: string, options: Partial<CertificateOptions> = {}, issuer: ZooAuthority | 'self-signed' = ca) =>
    issueCertificate(issuer, { now, subject: `CN=${subject}`, ...options });

  const valid = await client('valid client');
  const revoked = await client('revoked client');
  const forger = await generateKeys('P-256');
  const clients = {
    valid,
    expired: await client('expired client', { notBefore: new Date(now.getTime() - 400 * dayMs), notAfter: new Date(now.getTime() - dayMs) }),
    notYetValid: await client('future client', { notBefore: new Date(now.getTime() + dayMs), notAfter: new Date(now.getTime() + 400 * dayMs) }),
    ofOtherCa: await client('client of another CA', {}, otherCa),
    selfSigned: await client('self-signed client', {}, 'self-signed'),
    caAsClient: await client('CA as client', { basicConstraints: { ca: true } }),
    serverAsClient: await client('server as client', { ...serverProfile, keyUsage: ['digitalSignature', 'keyAgreement'] }),
    noKeyUsage: await client('client without keyUsage', { keyUsage: null }),
    wrongKeyUsage: await client('client with keyAgreement only', { keyUsage: ['keyAgreement'] }),
    revoked,
    malformedAuthorization: await client('client with tcp/22 authorization', { authorization: { utf8: 'tcp/22' } }),
    octetStringAuthorization: await client('client with old authorization', { authorization: { octetString: 'TCP2000,TCP3000' } }),
    noAuthorization: await client('client without authorization', { authorization: null }),
    otherPort: await client('client for tcp/2222', { authorization: { utf8: '1.2222' } }),
    rsa: await client('RSA client', { key: 'RSA-2048' }),
    badSignature: { ...valid, der: tamperSignature(valid.der) },
    viaIntermediate: await client('client of the intermediate', {}, intermediate),
  };
  const crls = {
    current: await issueCrl(ca, { now, revokedSerials: [revoked.serialHex], crlNumber: 7n }),
    badSignature: await issueCrl(ca, { now, revokedSerials: [revoked.serialHex], signingKeys: forger }),
    ofOtherCa: await issueCrl(otherCa, { now, revokedSerials: [revoked.serialHex] }),
    stale: await issueCrl(ca, {
      now,
      revokedSerials: [revoked.serialHex],
      thisUpdate: new Date(now.getTime() - 8 * dayMs),
      nextUpdate: new Date(now.getTime() - dayMs),
    }),
  };
  return { now, ca, otherCa, intermediate, clients, crls };
}
