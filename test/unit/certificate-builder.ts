/**
 * Hand-assembled DER certificates for the certificate decoder tests: any
 * name, time, key, algorithm or field order, including the ones
 * @peculiar/x509 will not produce. Signed with node:crypto.
 */
import { sign, type KeyObject, type SignKeyObjectInput } from 'node:crypto';

function lengthOctets(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Buffer.from([0x80 | octets.length, ...octets]);
}

/** One DER element: tag, length, then the parts as content. */
export function derElement(tag: number, ...parts: readonly Buffer[]): Buffer {
  const content = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), lengthOctets(content.length), content]);
}

/** OBJECT IDENTIFIER content octets (base-128 arcs, the first two folded). */
export function oidContent(dotted: string): Buffer {
  const [first, second, ...rest] = dotted.split('.').map(BigInt);
  const octets: number[] = [];
  for (const arc of [first! * 40n + second!, ...rest]) {
    const groups = [Number(arc & 0x7fn)];
    for (let value = arc >> 7n; value > 0n; value >>= 7n) groups.unshift(Number(value & 0x7fn) | 0x80);
    octets.push(...groups);
  }
  return Buffer.from(octets);
}

export const oidElement = (dotted: string): Buffer => derElement(0x06, oidContent(dotted));

export interface AttributeSpec {
  readonly type: string;
  readonly tag: number;
  readonly value: Buffer | string;
}

/** A Name: each inner array is one RDN (several entries make it multi-valued). */
export function nameDer(relativeNames: readonly (readonly AttributeSpec[])[]): Buffer {
  return derElement(
    0x30,
    ...relativeNames.map((attributes) =>
      derElement(
        0x31,
        ...attributes.map(({ type, tag, value }) =>
          derElement(0x30, oidElement(type), derElement(tag, typeof value === 'string' ? Buffer.from(value, 'utf8') : value)),
        ),
      ),
    ),
  );
}

export const cn = (value: string): Buffer => nameDer([[{ type: '2.5.4.3', tag: 0x0c, value }]]);

export const algorithms = {
  ecdsaSha256: derElement(0x30, oidElement('1.2.840.10045.4.3.2')),
  ecdsaSha1: derElement(0x30, oidElement('1.2.840.10045.4.1')),
  rsaSha256: derElement(0x30, oidElement('1.2.840.113549.1.1.11'), derElement(0x05)),
  ed25519: derElement(0x30, oidElement('1.3.101.112')),
  /** RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32 (RFC 4055). */
  rsaPssSha256: derElement(
    0x30,
    oidElement('1.2.840.113549.1.1.10'),
    derElement(
      0x30,
      derElement(0xa0, derElement(0x30, oidElement('2.16.840.1.101.3.4.2.1'))),
      derElement(0xa1, derElement(0x30, oidElement('1.2.840.113549.1.1.8'), derElement(0x30, oidElement('2.16.840.1.101.3.4.2.1')))),
      derElement(0xa2, derElement(0x02, Buffer.from([32]))),
    ),
  ),
} as const;

export const utcTime = (text: string): Buffer => derElement(0x17, Buffer.from(text, 'latin1'));
export const generalizedTime = (text: string): Buffer => derElement(0x18, Buffer.from(text, 'latin1'));

export function extensionDer(oid: string, value: Buffer, critical = false): Buffer {
  return derElement(0x30, oidElement(oid), ...(critical ? [derElement(0x01, Buffer.from([0xff]))] : []), derElement(0x04, value));
}

export interface CertificateSpec {
  readonly subjectKey: KeyObject;
  readonly signingKey: KeyObject;
  readonly subject?: Buffer;
  readonly issuer?: Buffer;
  readonly serial?: Buffer;
  readonly notBefore?: Buffer;
  readonly notAfter?: Buffer;
  /** The algorithm in the signed part and (unless outerAlgorithm) outside it. */
  readonly algorithm?: Buffer;
  readonly outerAlgorithm?: Buffer;
  /** The digest and options crypto.sign gets; defaults to SHA-256 (null for EdDSA keys). */
  readonly digest?: string | null;
  readonly signOptions?: Omit<SignKeyObjectInput, 'key'>;
  readonly extensions?: readonly Buffer[];
  /** Raw fields placed after subjectPublicKeyInfo instead of the extensions wrapper. */
  readonly trailingFields?: readonly Buffer[];
  readonly version?: Buffer;
}

/** A signed certificate, valid 2025-01-01 to 2027-01-01 unless told otherwise. */
export function buildCertificate(spec: CertificateSpec): Buffer {
  const algorithm = spec.algorithm ?? algorithms.ecdsaSha256;
  const optional = spec.trailingFields ?? (spec.extensions ? [derElement(0xa3, derElement(0x30, ...spec.extensions))] : []);
  const tbs = derElement(
    0x30,
    spec.version ?? derElement(0xa0, derElement(0x02, Buffer.from([2]))),
    spec.serial ?? derElement(0x02, Buffer.from([0x05])),
    algorithm,
    spec.issuer ?? cn('Builder CA'),
    derElement(0x30, spec.notBefore ?? utcTime('250101000000Z'), spec.notAfter ?? utcTime('270101000000Z')),
    spec.subject ?? cn('Builder Client'),
    spec.subjectKey.export({ format: 'der', type: 'spki' }),
    ...optional,
  );
  const digest = spec.digest === undefined ? (spec.signingKey.asymmetricKeyType?.startsWith('ed') ? null : 'sha256') : spec.digest;
  const signature = sign(digest, tbs, { key: spec.signingKey, ...spec.signOptions });
  return derElement(0x30, tbs, spec.outerAlgorithm ?? algorithm, derElement(0x03, Buffer.from([0]), signature));
}
