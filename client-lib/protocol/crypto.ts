/**
 * The cryptography both knock formats share: P-256 key checks, ECDH, the two
 * key schedules, ECDSA signing and verification, and the framing check of the
 * certificates a knock carries. Byte layouts live in legacy.ts and v2.ts.
 * Everything here is node:crypto; nothing per packet parses keys again.
 */
import {
  X509Certificate,
  createDecipheriv,
  createECDH,
  createHash,
  createHmac,
  hkdfSync,
  sign,
  timingSafeEqual,
  verify,
  type KeyObject,
} from 'node:crypto';
import { P256Key } from '../certificate/p256-key.js';
import { SknockError } from '../errors.js';
import { p256Engine } from '../native-p256.js';
import type { PortRequest } from './ports.js';

/** Uncompressed SEC1 P-256 point: 0x04 || X || Y. */
export const P256_POINT_LENGTH = 65;
const P256_POINT_PREFIX = 0x04;
const P256_PRIVATE_KEY_LENGTH = 32;

/** DER ECDSA-P256 signatures are at most 72 bytes; 8 is the least a DER SEQUENCE of two INTEGERs can be. */
export const SIGNATURE_MIN_LENGTH = 8;
export const SIGNATURE_MAX_LENGTH = 72;

/**
 * A certificate that holds a P-256 key (its SubjectPublicKeyInfo alone is 91
 * bytes) and an ECDSA signature is never this short; anything shorter is junk.
 */
export const MIN_CERTIFICATE_LENGTH = 128;

export type KnockInputErrorCode = 'SKNOCK_BAD_KNOCK_INPUT' | 'SKNOCK_KNOCK_TOO_LARGE';
export type ServerKeyErrorCode = 'SKNOCK_SERVER_KEY_NOT_P256' | 'SKNOCK_SERVER_CERT_MALFORMED' | 'SKNOCK_SERVER_KEY_MISMATCH';

export function badKnockInput(message: string, cause?: unknown): SknockError<KnockInputErrorCode> {
  return new SknockError('SKNOCK_BAD_KNOCK_INPUT', message, cause === undefined ? undefined : { cause });
}

export function knockTooLarge(message: string): SknockError<KnockInputErrorCode> {
  return new SknockError('SKNOCK_KNOCK_TOO_LARGE', message);
}

export function sha256(...parts: readonly Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
}

/** The raw 32-byte scalar of a P-256 private KeyObject (what ECDH.setPrivateKey takes). */
function rawPrivateScalar(key: KeyObject): Buffer {
  const d = key.export({ format: 'jwk' }).d;
  if (d === undefined) throw badKnockInput('the key has no private part');
  return Buffer.from(d, 'base64url');
}

function publicPointOf(key: KeyObject): Buffer {
  const { x, y } = key.export({ format: 'jwk' });
  if (x === undefined || y === undefined) throw badKnockInput('the key is not an elliptic-curve key');
  return Buffer.concat([Buffer.of(P256_POINT_PREFIX), Buffer.from(x, 'base64url'), Buffer.from(y, 'base64url')]);
}

// ---------------------------------------------------------------------------
// The server's side: built once, used for every packet.

const V2_MAC1_LABEL = Buffer.from('sKnock v2 mac1', 'ascii');

/** The 32-byte ECDH x-coordinate shared with the sender of a SEC 1 point, or undefined when it is not on P-256. */
export type SecretAgreement = (point: Buffer) => Buffer | undefined;

/** What opening a knock needs, prepared once per server so that no packet parses a key. */
export interface ServerContext {
  /** ECDH with the server's private key, set up once. */
  readonly agree: SecretAgreement;
  /** SHA-256 of the server certificate's DER: v2's HKDF salt and server binding. */
  readonly certificateHash: Buffer;
  /** v2 mac1 key = SHA-256("sKnock v2 mac1" || certificateHash). */
  readonly mac1Key: Buffer;
}

function v2Mac1Key(certificateHash: Buffer): Buffer {
  return sha256(V2_MAC1_LABEL, certificateHash);
}

/**
 * Prepares a server to open knocks. Throws SknockError when the key is not
 * P-256, the certificate does not parse, or the two do not belong together.
 */
export function createServerContext(serverPrivateKey: KeyObject, serverCertificateDer: Buffer): ServerContext {
  if (serverPrivateKey.type !== 'private' || !isP256(serverPrivateKey)) {
    const found = serverPrivateKey.asymmetricKeyDetails?.namedCurve ?? serverPrivateKey.asymmetricKeyType ?? serverPrivateKey.type;
    throw new SknockError<ServerKeyErrorCode>(
      'SKNOCK_SERVER_KEY_NOT_P256',
      `the server key is ${found}; knocks need a P-256 (prime256v1) private key`,
    );
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(serverCertificateDer);
  } catch (error) {
    throw new SknockError<ServerKeyErrorCode>('SKNOCK_SERVER_CERT_MALFORMED', 'the server certificate is not X.509 DER', {
      cause: error,
    });
  }
  if (!certificate.checkPrivateKey(serverPrivateKey)) {
    throw new SknockError<ServerKeyErrorCode>(
      'SKNOCK_SERVER_KEY_MISMATCH',
      `the server key does not belong to the server certificate ${certificate.subject.replace(/\n/g, ', ')}`,
    );
  }
  const certificateHash = sha256(serverCertificateDer);
  return { agree: secretAgreement(rawPrivateScalar(serverPrivateKey)), certificateHash, mac1Key: v2Mac1Key(certificateHash) };
}

/**
 * The native path when it is built; else node's ECDH, whose computeSecret
 * also re-checks the server's own key pair on every call (twice the work).
 */
function secretAgreement(privateScalar: Buffer): SecretAgreement {
  const native = p256Engine.native;
  if (native) {
    const agreement = native.createAgreement(privateScalar);
    return (point) => native.derive(agreement, point) ?? undefined;
  }
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(privateScalar);
  return (point) => {
    try {
      // OpenSSL rejects points that are not on the curve; P-256 has cofactor 1, so no small subgroups.
      return ecdh.computeSecret(point);
    } catch {
      return undefined;
    }
  };
}

/** The 32-byte x-coordinate shared with the sender of `ephemeralPoint`, or undefined for an invalid point. */
export function serverSharedSecret(context: ServerContext, ephemeralPoint: Buffer): Buffer | undefined {
  if (ephemeralPoint.length !== P256_POINT_LENGTH || ephemeralPoint[0] !== P256_POINT_PREFIX) return undefined;
  return context.agree(ephemeralPoint);
}

// ---------------------------------------------------------------------------
// The client's side: the server it knocks and a fresh ephemeral key.

/** What a client needs about the server it knocks. */
export interface KnockTarget {
  readonly publicPoint: Buffer;
  readonly certificateHash: Buffer;
  readonly mac1Key: Buffer;
}

export function knockTargetOf(serverCertificateDer: Buffer): KnockTarget {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(serverCertificateDer);
  } catch (error) {
    throw badKnockInput('the server certificate is not X.509 DER', error);
  }
  if (!isP256(certificate.publicKey)) throw badKnockInput('the server certificate does not hold a P-256 key');
  const certificateHash = sha256(serverCertificateDer);
  return { publicPoint: publicPointOf(certificate.publicKey), certificateHash, mac1Key: v2Mac1Key(certificateHash) };
}

export interface EphemeralKey {
  readonly publicPoint: Buffer;
  /** The ECDH x-coordinate shared with the target's key. */
  readonly sharedSecret: Buffer;
}

/**
 * An ephemeral P-256 key agreed with the target. A new random key unless one
 * is injected (test vectors): a key must never serve two knocks, because the
 * cipher key and IV derive from it alone.
 */
export function agreeEphemeralKey(target: KnockTarget, privateKey?: KeyObject | Buffer): EphemeralKey {
  const ecdh = createECDH('prime256v1');
  if (privateKey === undefined) {
    ecdh.generateKeys();
  } else {
    if (!Buffer.isBuffer(privateKey) && (privateKey.type !== 'private' || !isP256(privateKey))) {
      throw badKnockInput('the ephemeral key must be a P-256 private key');
    }
    const scalar = Buffer.isBuffer(privateKey) ? privateKey : rawPrivateScalar(privateKey);
    if (scalar.length !== P256_PRIVATE_KEY_LENGTH) throw badKnockInput('a raw ephemeral private key is 32 bytes');
    try {
      ecdh.setPrivateKey(scalar);
    } catch (error) {
      throw badKnockInput('the ephemeral private key is not a valid P-256 scalar', error);
    }
  }
  return { publicPoint: ecdh.getPublicKey(), sharedSecret: ecdh.computeSecret(target.publicPoint) };
}

// ---------------------------------------------------------------------------
// Key schedules.

/**
 * sKnock 1.0.0's HKDF salt: the 206 ASCII characters of this hex string
 * (the characters themselves, not the 103 bytes they spell).
 */
const LEGACY_SALT = Buffer.from(
  '54686579206c6976696e272069742075702061742074686520486f74656c2043616c69666f726e69610a576861742061206e6963652073757270726973652028776861742061206e696365207375727072697365290a4272696e6720796f757220616c69626973',
  'ascii',
);

export interface CipherKeys {
  readonly key: Buffer;
  readonly iv: Buffer;
}

function hkdf(ikm: Buffer, salt: Buffer, info: Buffer | string, length: number): Buffer {
  const native = p256Engine.native;
  if (native) return native.hkdfSha256(ikm, salt, typeof info === 'string' ? Buffer.from(info, 'ascii') : info, length);
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/** 1.0.0: two HKDF-SHA256 expansions, AES-128 key (info "knock") and CBC IV (info "iv0AES128CBC"). */
export function legacyCipherKeys(sharedSecret: Buffer): CipherKeys {
  return { key: hkdf(sharedSecret, LEGACY_SALT, 'knock', 16), iv: hkdf(sharedSecret, LEGACY_SALT, 'iv0AES128CBC', 16) };
}

const V2_CIPHER_LABEL = Buffer.from('sKnock v2 aes-256-gcm', 'ascii');

/** v2: one HKDF-SHA256 of 44 bytes = AES-256 key || 96-bit GCM IV, bound to the server and the ephemeral key. */
export function v2CipherKeys(sharedSecret: Buffer, certificateHash: Buffer, ephemeralPoint: Buffer): CipherKeys {
  const okm = hkdf(sharedSecret, certificateHash, Buffer.concat([V2_CIPHER_LABEL, ephemeralPoint]), 44);
  return { key: okm.subarray(0, 32), iv: okm.subarray(32, 44) };
}

/** v2's mac1 ends every v2 datagram: the first 16 bytes of HMAC-SHA256(mac1Key, what precedes it). */
export const V2_MAC1_LENGTH = 16;

/** v2 mac1: the first 16 bytes of HMAC-SHA256(mac1Key, data). */
export function v2Mac1(mac1Key: Buffer, data: Uint8Array): Buffer {
  const mac = p256Engine.native?.hmacSha256(mac1Key, data) ?? createHmac('sha256', mac1Key).update(data).digest();
  return mac.subarray(0, V2_MAC1_LENGTH);
}

/**
 * Whether `packet` ends with the v2 mac1 of the bytes before it (false when
 * it is shorter than one). On the native path nothing is allocated: this
 * runs for every captured packet.
 */
export function v2Mac1Matches(mac1Key: Buffer, packet: Buffer): boolean {
  if (packet.length < V2_MAC1_LENGTH) return false;
  const native = p256Engine.native;
  if (native) return native.hmacSha256TagMatches(mac1Key, packet, V2_MAC1_LENGTH);
  const dataLength = packet.length - V2_MAC1_LENGTH;
  return timingSafeEqual(v2Mac1(mac1Key, packet.subarray(0, dataLength)), packet.subarray(dataLength));
}

/** AES-256-GCM with a 96-bit IV and 128-bit tag: the plaintext, or undefined when the tag does not match. */
export function openAes256Gcm(keys: CipherKeys, aad: Buffer, ciphertext: Buffer, tag: Buffer): Buffer | undefined {
  const native = p256Engine.native;
  if (native) return native.aes256GcmOpen(keys.key, keys.iv, aad, ciphertext, tag) ?? undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keys.key, keys.iv, { authTagLength: tag.length });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Signatures.

/** The client's private key (signs with node:crypto, DER) or a function that signs (injected in vectors). */
export type KnockSigner = KeyObject | ((message: Buffer) => Buffer);

export function signKnock(signer: KnockSigner, message: Buffer): Buffer {
  let signature: Buffer;
  try {
    signature = typeof signer === 'function' ? signer(message) : sign('sha256', message, signer);
  } catch (error) {
    throw badKnockInput('signing the knock failed (is the client key a P-256 private key?)', error);
  }
  if (signature.length < SIGNATURE_MIN_LENGTH || signature.length > SIGNATURE_MAX_LENGTH) {
    throw badKnockInput(`a knock signature is ${SIGNATURE_MIN_LENGTH}..${SIGNATURE_MAX_LENGTH} bytes of DER, got ${signature.length}`);
  }
  return signature;
}

/** The parts of an opened knock that a signature check needs. */
export interface SignedKnock {
  /** Exactly the bytes the client signed. */
  readonly signedMessage: Buffer;
  /** ECDSA-P256-SHA256, DER. */
  readonly signature: Buffer;
}

export type KnockFormat = 'legacy' | 'v2';

/**
 * A decrypted, well-formed knock of either format. Nothing in it is verified
 * yet (signature, certificate, timestamp, binding, replay, address: the
 * server's pipeline does that). It never shares memory with the packet.
 */
export interface OpenedKnock extends SignedKnock {
  readonly format: KnockFormat;
  /** One for legacy; 1..32 distinct ones for v2. */
  readonly ports: readonly PortRequest[];
  /** The address the client signed, 4 or 16 bytes; null = use the packet's source address (v2 NAT mode). */
  readonly clientAddress: Buffer | null;
  /** When the client built the knock, ms since the Unix epoch (legacy: whole seconds). */
  readonly timestampMs: number;
  /** Requested open duration; 0 = the server's default (always 0 for legacy). */
  readonly requestedDurationSeconds: number;
  /** v2's 16 random bytes; null for legacy. */
  readonly nonce: Buffer | null;
  /** v2's SHA-256 of the server certificate the client meant; null for legacy. */
  readonly serverBinding: Buffer | null;
  readonly certificateDer: Buffer;
  /** v2 only, optional: the certificate that issued the client's. */
  readonly intermediateCertificateDer: Buffer | null;
  /** What a replay cache remembers: v2 the nonce, legacy SHA-256(request || certificate). */
  readonly replayKey: Buffer;
}

/** ECDSA-SHA256 verification with the client certificate's key; false for any failure, never throws. */
export function verifyKnockSignature(opened: SignedKnock, publicKey: KeyObject | P256Key): boolean {
  if (publicKey instanceof P256Key) return publicKey.verifySha256(opened.signedMessage, opened.signature);
  try {
    return verify('sha256', opened.signedMessage, publicKey, opened.signature);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Certificate framing.

/**
 * True when `der` is one DER SEQUENCE filling it exactly and long enough to
 * be a certificate: a cheap structural check before anything parses it.
 */
export function isCertificateShaped(der: Uint8Array): boolean {
  if (der.length < MIN_CERTIFICATE_LENGTH || der[0] !== 0x30) return false;
  const lengthByte = der[1] ?? 0;
  if (lengthByte < 0x80) return der.length === 2 + lengthByte;
  // DER forbids non-minimal lengths; two length bytes cover anything a datagram can hold.
  if (lengthByte === 0x81) return (der[2] ?? 0) >= 0x80 && der.length === 3 + (der[2] ?? 0);
  if (lengthByte === 0x82) {
    const contentLength = ((der[2] ?? 0) << 8) | (der[3] ?? 0);
    return contentLength >= 0x100 && der.length === 4 + contentLength;
  }
  return false;
}

export function isAllZero(bytes: Uint8Array): boolean {
  for (const byte of bytes) if (byte !== 0) return false;
  return true;
}

/** A client address as a knock carries it: 4 bytes (IPv4) or 16 (IPv6). */
export function requireClientAddress(address: Buffer): Buffer {
  if (!Buffer.isBuffer(address) || (address.length !== 4 && address.length !== 16)) {
    throw badKnockInput('the client address must be 4 (IPv4) or 16 (IPv6) bytes');
  }
  return address;
}

export function requireTimestampMs(timestampMs: number, maximumMs: number): number {
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0 || timestampMs > maximumMs) {
    throw badKnockInput(`the timestamp must be whole milliseconds since the Unix epoch, 0..${maximumMs}`);
  }
  return timestampMs;
}

export function requireCertificateDer(der: Buffer, what: string): Buffer {
  if (!Buffer.isBuffer(der) || !isCertificateShaped(der)) {
    throw badKnockInput(`the ${what} must be one DER certificate of at least ${MIN_CERTIFICATE_LENGTH} bytes`);
  }
  return der;
}
