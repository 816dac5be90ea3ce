/**
 * The optional native path for the server's per-packet cryptography
 * (native/sknock_p256.c): P-256 ECDH and ECDSA-SHA256 verification, HMAC,
 * HKDF and AES-256-GCM through the OpenSSL inside node — the library
 * node:crypto uses — without the per-call costs of node's wrappers
 * (ECDH.computeSecret re-checks the server key pair each call; a KeyObject
 * import costs more than the verification it serves; hkdfSync builds key
 * objects). Built by `npm ci` / scripts/setup.sh; when it
 * is missing, or SKNOCK_NATIVE_P256=off, everything runs on node:crypto.
 */
import { loadNativeAddon } from './native-addon.js';

export interface NativeP256 {
  /** An opaque public key for verify(), or null when the bytes are not a SEC 1 point (65 uncompressed or 33 compressed) on P-256. */
  createVerifier(point: Uint8Array): object | null;
  /**
   * The same for a CA's key, with a precomputed table for its point: ≈40 ms
   * and ≈150 KB once, then each signature it made verifies in about a third
   * of the time. For configured CA keys only, never for keys a packet brings.
   */
  createIssuerVerifier(point: Uint8Array): object | null;
  /** An opaque server key; throws for a scalar outside 1..n−1. */
  createAgreement(privateScalar: Uint8Array): object;
  /** The 32-byte shared x-coordinate, or null when `point` is not on P-256. */
  derive(agreement: object, point: Uint8Array): Buffer | null;
  /** ECDSA-SHA256 over message by the key of either kind of verifier; false for a wrong or malformed signature, never throws for bad bytes. */
  verify(verifier: object, message: Uint8Array, signature: Uint8Array): boolean;
  hmacSha256(key: Uint8Array, data: Uint8Array): Buffer;
  /** Whether the last tagLength (1..32) bytes of `bytes` begin HMAC-SHA256(key, the bytes before them); constant time, no allocation. */
  hmacSha256TagMatches(key: Uint8Array, bytes: Uint8Array, tagLength: number): boolean;
  /** RFC 5869; length 1..8160. */
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer;
  /** The plaintext, or null when the tag does not match; throws for a key, IV or tag of the wrong size. */
  aes256GcmOpen(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Buffer | null;
  opensslVersion(): string;
}

const NATIVE_FUNCTIONS = ['createVerifier', 'createIssuerVerifier', 'createAgreement', 'derive', 'verify', 'hmacSha256', 'hmacSha256TagMatches', 'hkdfSha256', 'aes256GcmOpen', 'opensslVersion'] as const satisfies readonly (keyof NativeP256)[];

export interface P256Engine {
  readonly native: NativeP256 | undefined;
  /** For logs and benchmarks: which path runs, and why when it is not the native one. */
  readonly description: string;
}

// From client-lib/ (sources under vitest) or dist/client-lib/ (the build).
const addonCandidates = ['../native/build/Release/sknock_p256.node', '../../native/build/Release/sknock_p256.node'];

/** The loaded addon as the engine, if it has every function: one built from older sources falls back to node:crypto rather than failing every certificate. */
export function engineOf(addon: Partial<NativeP256>): P256Engine {
  const missing = NATIVE_FUNCTIONS.filter((name) => typeof addon[name] !== 'function');
  if (missing.length > 0) return { native: undefined, description: `node:crypto (native addon outdated, lacks ${missing.join(', ')}: npm run build:native)` };
  const native = addon as NativeP256;
  return { native, description: `native P-256 on node's ${native.opensslVersion()}` };
}

function loadEngine(): P256Engine {
  if (process.env['SKNOCK_NATIVE_P256'] === 'off') return { native: undefined, description: 'node:crypto (SKNOCK_NATIVE_P256=off)' };
  const load = loadNativeAddon<NativeP256>(import.meta.url, addonCandidates);
  if (load.loaded) return engineOf(load.addon);
  if (load.problem === 'not-built') return { native: undefined, description: 'node:crypto (native/ addon not built: npm run build:native)' };
  return { native: undefined, description: `node:crypto (native addon failed to load: ${load.detail})` };
}

/** Loaded once per thread (each worker loads its own instance). */
export const p256Engine: P256Engine = loadEngine();
