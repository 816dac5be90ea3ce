/**
 * A certificate's SubjectPublicKeyInfo as a node:crypto KeyObject. Clients'
 * P-256 keys are imported through JWK (≈ 135 µs) rather than SPKI DER
 * (≈ 314 µs: OpenSSL 3 tries its decoders in turn); OpenSSL checks the point
 * lies on the curve either way. Other keys (anchors, refused clients) take
 * the DER path. Total: malformed input gives undefined.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { contentOf, derTag, encodingOf, objectIdentifierText, readChildrenOf, type DerElement } from './der.js';

export const publicKeyOid = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
} as const;

export interface SubjectPublicKey {
  readonly key: KeyObject;
  /** The algorithm OID, and the curve OID when the parameters name one. */
  readonly algorithm: { readonly algorithm: string; readonly curve: string | undefined };
}

/** 0 unused bits, 0x04 (uncompressed), then x and y of 32 octets each (SEC 1 §2.3.3). */
const uncompressedP256Length = 1 + 1 + 2 * 32;

function importKey(bytes: Buffer, spki: DerElement, algorithm: SubjectPublicKey['algorithm'], point: Buffer): KeyObject {
  const isP256 = algorithm.algorithm === publicKeyOid.ecPublicKey && algorithm.curve === publicKeyOid.prime256v1;
  if (isP256 && point.length === uncompressedP256Length && point[1] === 0x04) {
    const x = point.subarray(2, 34).toString('base64url');
    const y = point.subarray(34).toString('base64url');
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
  }
  return createPublicKey({ key: encodingOf(bytes, spki), format: 'der', type: 'spki' });
}

/** SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }. */
export function decodeSubjectPublicKey(bytes: Buffer, spki: DerElement): SubjectPublicKey | undefined {
  const fields = readChildrenOf(bytes, spki, derTag.sequence);
  if (fields?.length !== 2 || fields[1]!.tag !== derTag.bitString) return undefined;
  const [algorithmOid, parameters, ...extra] = readChildrenOf(bytes, fields[0], derTag.sequence) ?? [];
  if (algorithmOid?.tag !== derTag.objectIdentifier || extra.length > 0) return undefined;
  const algorithmText = objectIdentifierText(contentOf(bytes, algorithmOid));
  if (algorithmText === undefined) return undefined;
  const algorithm = {
    algorithm: algorithmText,
    curve: parameters?.tag === derTag.objectIdentifier ? objectIdentifierText(contentOf(bytes, parameters)) : undefined,
  };
  const bits = contentOf(bytes, fields[1]!);
  // Every key type here is whole octets; OpenSSL would let unused bits through.
  if (bits[0] !== 0) return undefined;
  try {
    return { key: importKey(bytes, spki, algorithm, bits), algorithm };
  } catch {
    // OpenSSL refused the key: off the curve, unknown algorithm, bad encoding.
    return undefined;
  }
}
