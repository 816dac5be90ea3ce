/**
 * The committed knock vectors (JSON beside this file) as ready-to-use keys
 * and builder inputs, plus independent sealing of arbitrary plaintexts
 * (node:crypto only, not the codec) so tests can hand the decoders
 * well-encrypted packets with any content.
 */
import {
  X509Certificate,
  createCipheriv,
  createECDH,
  createHash,
  createHmac,
  createPrivateKey,
  hkdfSync,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServerContext, type LegacyKnockInput, type ServerContext, type V2KnockInput } from '../../client-lib/protocol/index.js';
import { parsePortList } from '../../client-lib/protocol/ports.js';

const vectorsFolder = path.dirname(fileURLToPath(import.meta.url));

export interface KnockVector {
  readonly description: string;
  readonly format: 'v2' | 'legacy';
  readonly pki: {
    readonly serverCertificateDerHex: string;
    readonly serverPrivateKeyPem: string;
    readonly clientCertificateDerHex: string;
    readonly clientPrivateKeyPem: string;
    readonly intermediateCertificateDerHex: string | null;
    readonly caCertificateDerHex: string;
  };
  readonly input: {
    readonly ports: string;
    readonly clientAddress: string | null;
    readonly clientAddressHex: string | null;
    readonly timestampMs: number;
    readonly requestedDurationSeconds?: number;
    readonly minDatagramLength?: number;
    readonly nonceHex?: string;
    readonly ephemeralPrivateKeyHex: string;
    readonly signatureHex: string;
  };
  readonly derived: {
    readonly ephemeralPublicPointHex: string;
    readonly sharedSecretHex: string;
    readonly serverCertificateHashHex?: string;
    readonly mac1KeyHex?: string;
    readonly aesKeyHex: string;
    readonly ivHex: string;
    readonly plaintextHex: string;
    readonly signedMessageHex: string;
    readonly replayKeyHex: string;
  };
  readonly datagramLength: number;
  readonly datagramHex: string;
}

export const V2_VECTOR_FILES = ['v2-ipv4-one-port.json', 'v2-ipv6-three-ports.json', 'v2-nat-intermediate.json'] as const;
export const LEGACY_VECTOR_FILE = 'legacy-ipv4-tcp2000.json';

export const hex = (text: string): Buffer => Buffer.from(text, 'hex');

/** A vector with its keys and certificates decoded, and the server context to open it. */
export interface LoadedVector {
  readonly vector: KnockVector;
  readonly datagram: Buffer;
  readonly serverKey: KeyObject;
  readonly serverCertificateDer: Buffer;
  readonly clientKey: KeyObject;
  readonly clientCertificateDer: Buffer;
  readonly clientPublicKey: KeyObject;
  readonly intermediateCertificateDer: Buffer | null;
  readonly context: ServerContext;
}

export function loadVector(file: string): LoadedVector {
  const vector = JSON.parse(readFileSync(path.join(vectorsFolder, file), 'utf8')) as KnockVector;
  const serverKey = createPrivateKey(vector.pki.serverPrivateKeyPem);
  const serverCertificateDer = hex(vector.pki.serverCertificateDerHex);
  const clientCertificateDer = hex(vector.pki.clientCertificateDerHex);
  return {
    vector,
    datagram: hex(vector.datagramHex),
    serverKey,
    serverCertificateDer,
    clientKey: createPrivateKey(vector.pki.clientPrivateKeyPem),
    clientCertificateDer,
    clientPublicKey: new X509Certificate(clientCertificateDer).publicKey,
    intermediateCertificateDer: vector.pki.intermediateCertificateDerHex === null ? null : hex(vector.pki.intermediateCertificateDerHex),
    context: createServerContext(serverKey, serverCertificateDer),
  };
}

/** The vector's inputs with its recorded signature injected, so the build is deterministic. */
export function v2InputOf(loaded: LoadedVector): V2KnockInput {
  const { input } = loaded.vector;
  return {
    serverCertificateDer: loaded.serverCertificateDer,
    ports: parsePortList(input.ports),
    clientAddress: input.clientAddressHex === null ? null : hex(input.clientAddressHex),
    timestampMs: input.timestampMs,
    requestedDurationSeconds: input.requestedDurationSeconds ?? 0,
    certificateDer: loaded.clientCertificateDer,
    intermediateCertificateDer: loaded.intermediateCertificateDer,
    signer: () => hex(input.signatureHex),
    minDatagramLength: input.minDatagramLength ?? 800,
    nonce: hex(input.nonceHex ?? ''),
    ephemeralPrivateKey: hex(input.ephemeralPrivateKeyHex),
  };
}

export function legacyInputOf(loaded: LoadedVector): LegacyKnockInput {
  const { input } = loaded.vector;
  return {
    serverCertificateDer: loaded.serverCertificateDer,
    port: parsePortList(input.ports)[0]!,
    clientAddress: hex(input.clientAddressHex ?? ''),
    timestampMs: input.timestampMs,
    certificateDer: loaded.clientCertificateDer,
    signer: () => hex(input.signatureHex),
    ephemeralPrivateKey: hex(input.ephemeralPrivateKeyHex),
  };
}

export function sha256(...parts: readonly Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function ephemeralAgreement(serverCertificateDer: Buffer, ephemeralPrivateKey: Buffer): { point: Buffer; shared: Buffer } {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(ephemeralPrivateKey);
  const serverPoint = new X509Certificate(serverCertificateDer).publicKey.export({ format: 'der', type: 'spki' }).subarray(-65);
  return { point: ecdh.getPublicKey(), shared: ecdh.computeSecret(serverPoint) };
}

/** v2 mac1 over `sealed`, from the specification: HMAC-SHA256(SHA-256("sKnock v2 mac1" || SHA-256(cert)), sealed)[0..16]. */
export function v2Mac1Of(serverCertificateDer: Buffer, sealed: Buffer): Buffer {
  const mac1Key = sha256(Buffer.from('sKnock v2 mac1'), sha256(serverCertificateDer));
  return createHmac('sha256', mac1Key).update(sealed).digest().subarray(0, 16);
}

export function v2KeysOf(shared: Buffer, serverCertificateDer: Buffer, point: Buffer): { key: Buffer; iv: Buffer } {
  const info = Buffer.concat([Buffer.from('sKnock v2 aes-256-gcm'), point]);
  const okm = Buffer.from(hkdfSync('sha256', shared, sha256(serverCertificateDer), info, 44));
  return { key: okm.subarray(0, 32), iv: okm.subarray(32) };
}

/** A v2 datagram around any plaintext: header, AES-256-GCM, tag and a valid mac1. */
export function sealV2(plaintext: Buffer, serverCertificateDer: Buffer, ephemeralPrivateKey: Buffer): Buffer {
  const { point, shared } = ephemeralAgreement(serverCertificateDer, ephemeralPrivateKey);
  const header = Buffer.concat([Buffer.from('sK'), Buffer.of(2, 1), point]);
  const { key, iv } = v2KeysOf(shared, serverCertificateDer, point);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(header);
  const sealed = Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([sealed, v2Mac1Of(serverCertificateDer, sealed)]);
}

const LEGACY_SALT = Buffer.from(
  '54686579206c6976696e272069742075702061742074686520486f74656c2043616c69666f726e69610a576861742061206e6963652073757270726973652028776861742061206e696365207375727072697365290a4272696e6720796f757220616c69626973',
  'ascii',
);

export function legacyKeysOf(shared: Buffer): { key: Buffer; iv: Buffer } {
  return {
    key: Buffer.from(hkdfSync('sha256', shared, LEGACY_SALT, 'knock', 16)),
    iv: Buffer.from(hkdfSync('sha256', shared, LEGACY_SALT, 'iv0AES128CBC', 16)),
  };
}

/** A 1.0.0 datagram around any plaintext: 'a' 1.0.0, AES-128-CBC (PKCS#7), ephemeral point. */
export function sealLegacy(plaintext: Buffer, serverCertificateDer: Buffer, ephemeralPrivateKey: Buffer, version = Buffer.of(1, 0, 0)): Buffer {
  const { point, shared } = ephemeralAgreement(serverCertificateDer, ephemeralPrivateKey);
  const { key, iv } = legacyKeysOf(shared);
  const cipher = createCipheriv('aes-128-cbc', key, iv);
  return Buffer.concat([Buffer.from('a'), version, cipher.update(plaintext), cipher.final(), point]);
}

/** A structurally valid DER SEQUENCE of exactly `length` bytes (the codec checks certificate framing only). */
export function certificateShaped(length: number, fill = 0xab): Buffer {
  const shaped = Buffer.alloc(length, fill);
  shaped[0] = 0x30;
  if (length - 2 < 0x80) {
    shaped[1] = length - 2;
  } else if (length - 3 < 0x100) {
    shaped[1] = 0x81;
    shaped[2] = length - 3;
  } else {
    shaped[1] = 0x82;
    shaped.writeUInt16BE(length - 4, 2);
  }
  return shaped;
}

/** `bytes` with 1..4 bytes changed (never equal to it): plaintext edits that tests re-encrypt. */
export function editedBytes(bytes: Buffer): fc.Arbitrary<Buffer> {
  const edit = fc.record({ offset: fc.nat({ max: bytes.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) });
  return fc
    .array(edit, { minLength: 1, maxLength: 4 })
    .map((edits) => {
      const edited = Buffer.from(bytes);
      for (const { offset, xor } of edits) edited[offset]! ^= xor;
      return edited;
    })
    .filter((edited) => !edited.equals(bytes));
}

/** `packet` with up to 8 bytes replaced or inserted and up to `maxTail` bytes appended (never equal to it). */
export function damagedPacket(packet: Buffer, maxTail: number): fc.Arbitrary<Buffer> {
  const change = fc.record({ offset: fc.nat(), value: fc.integer({ min: 0, max: 255 }), insert: fc.boolean() });
  return fc
    .tuple(fc.array(change, { minLength: 1, maxLength: 8 }), fc.uint8Array({ maxLength: maxTail }))
    .map(([changes, tail]) => {
      let damaged = packet;
      for (const { offset, value, insert } of changes) {
        const at = offset % damaged.length;
        damaged = Buffer.concat([damaged.subarray(0, at), Buffer.of(value), damaged.subarray(insert ? at : at + 1)]);
      }
      return Buffer.concat([damaged, tail]);
    })
    .filter((damaged) => !damaged.equals(packet));
}

/** Calls `check` with `packet` after flipping each of its bits in turn, then restores it. */
export function forEveryBitFlip(packet: Buffer, check: (flipped: Buffer) => void): void {
  for (let bit = 0; bit < packet.length * 8; bit++) {
    packet[bit >> 3]! ^= 1 << (bit & 7);
    check(packet);
    packet[bit >> 3]! ^= 1 << (bit & 7);
  }
}
