/**
 * A certificate's SubjectPublicKeyInfo: P-256 keys as a P256Key (checked on
 * the curve; verified natively when the native path is built), every other
 * key as a node:crypto KeyObject imported from the SPKI DER (anchors, refused
 * clients). Total: malformed input gives undefined.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { contentOf, derTag, encodingOf, objectIdentifierText, readChildrenOf, type DerElement } from './der.js';
import { P256Key } from './p256-key.js';

export const publicKeyOid = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
} as const;

export interface SubjectPublicKey {
  /** node:crypto's form; for P-256 keys made on first use. */
  readonly key: KeyObject;
  /** Present for P-256 keys. */
  readonly p256: P256Key | undefined;
  /** The algorithm OID, and the curve OID when the parameters name one. */
  readonly algorithm: { readonly algorithm: string; readonly curve: string | undefined };
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
  if (algorithm.algorithm === publicKeyOid.ecPublicKey && algorithm.curve === publicKeyOid.prime256v1) {
    const p256 = P256Key.decode(bits.subarray(1));
    return p256 && {
      get key() {
        return p256.nodeKey;
      },
      p256,
      algorithm,
    };
  }
  try {
    return { key: createPublicKey({ key: encodingOf(bytes, spki), format: 'der', type: 'spki' }), p256: undefined, algorithm };
  } catch {
    // OpenSSL refused the key: off the curve, unknown algorithm, bad encoding.
    return undefined;
  }
}
