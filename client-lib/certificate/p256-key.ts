/**
 * A P-256 public key as the packet path uses it: the SEC 1 point, checked on
 * the curve once, and ECDSA-SHA256 verification through the native path when
 * it is built, with OpenSSL's key made once per certificate rather than per
 * signature. node:crypto's KeyObject (≈ 135 µs to import) is made only when
 * something asks for it — always at once when there is no native path, so
 * that a point off the curve is refused at parse time either way.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { p256Engine } from '../native-p256.js';

/**
 * Issuer tables by point, per thread: a CRL refresh builds a new trust state
 * but keeps the CAs, so their tables are built once. Only configured CA keys
 * come here; the bound is a safety net against a reload loop of new CAs.
 */
const issuerVerifiers = new Map<string, object>();
const MAX_ISSUER_TABLES = 32;

/** SubjectPublicKeyInfo for a compressed P-256 point, up to the point: ecPublicKey, prime256v1, a 34-byte BIT STRING. */
const compressedSpkiPrefix = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');

export class P256Key {
  private keyObject: KeyObject | undefined;
  /** The native path's key (createVerifier), when that path runs. */
  private nativeVerifier: object | undefined;

  /**
   * SEC 1 (65 bytes uncompressed or 33 compressed) as latin1 text: a copy on
   * the V8 heap. A view into the certificate would keep the whole datagram,
   * or the whole batch of datagrams a worker received, alive in the cache.
   */
  private readonly pointText: string;

  private constructor(point: Buffer) {
    this.pointText = point.toString('latin1');
  }

  /** The key at `point`, or undefined when it is not on P-256. */
  static decode(point: Buffer): P256Key | undefined {
    // The SEC 1 forms both paths take: OpenSSL's decoders would also read the hybrid 0x06/0x07 form, the native path does not.
    const uncompressed = point.length === 65 && point[0] === 0x04;
    const compressed = point.length === 33 && (point[0] === 0x02 || point[0] === 0x03);
    if (!uncompressed && !compressed) return undefined;
    const key = new P256Key(point);
    const native = p256Engine.native;
    if (native) {
      key.nativeVerifier = native.createVerifier(point) ?? undefined;
      return key.nativeVerifier === undefined ? undefined : key;
    }
    try {
      key.keyObject = key.importKeyObject();
      return key;
    } catch {
      return undefined;
    }
  }

  /**
   * Verifies with a precomputed table for this key from now on (native path
   * only): for a configured CA, whose key checks every new client's
   * certificate. Never for a key a packet brings: a table costs ≈40 ms.
   */
  useIssuerTable(): void {
    const native = p256Engine.native;
    if (!native) return;
    const id = this.pointText;
    let verifier = issuerVerifiers.get(id);
    if (verifier === undefined) {
      verifier = native.createIssuerVerifier(this.point) ?? undefined;
      if (verifier === undefined) return;
      if (issuerVerifiers.size >= MAX_ISSUER_TABLES) issuerVerifiers.clear();
      issuerVerifiers.set(id, verifier);
    }
    this.nativeVerifier = verifier;
  }

  /** The SEC 1 point, a fresh copy. */
  get point(): Buffer {
    return Buffer.from(this.pointText, 'latin1');
  }

  /** node:crypto's form, for anything outside the packet path. */
  get nodeKey(): KeyObject {
    this.keyObject ??= this.importKeyObject();
    return this.keyObject;
  }

  /** ECDSA-SHA256 (DER signature) over message; false for any failure, never throws. */
  verifySha256(message: Uint8Array, signature: Uint8Array): boolean {
    const native = p256Engine.native;
    if (native && this.nativeVerifier) return native.verify(this.nativeVerifier, message, signature);
    try {
      return verify('sha256', message, this.nodeKey, signature);
    } catch {
      return false;
    }
  }

  /** JWK for uncompressed points: OpenSSL 3's SPKI decoders cost ≈ 314 µs against ≈ 135 µs. */
  private importKeyObject(): KeyObject {
    const point = this.point;
    if (point.length !== 65) return createPublicKey({ key: Buffer.concat([compressedSpkiPrefix, point]), format: 'der', type: 'spki' });
    const x = point.subarray(1, 33).toString('base64url');
    const y = point.subarray(33).toString('base64url');
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
  }
}
