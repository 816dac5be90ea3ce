/**
 * This project's knock format, v2 (docs/PROTOCOL.md, part 2):
 *
 *   "sK" 02 01 || ephemeral P-256 point || AES-256-GCM(plaintext) || tag || mac1
 *
 * Fixes 1.0.0's weaknesses: authenticated encryption, a nonce for the replay
 * cache, a binding to one server, up to 32 ports, NAT mode, and a cheap
 * mac1 pre-check so that junk costs an HMAC, not an ECDH.
 */
import { createCipheriv, randomBytes, type KeyObject } from 'node:crypto';
import { isValidPort, samePort, type PortRequest, type TransportProtocol } from './ports.js';
import { accept, reject, type Decoded } from './result.js';
import {
  MIN_CERTIFICATE_LENGTH,
  P256_POINT_LENGTH,
  SIGNATURE_MAX_LENGTH,
  SIGNATURE_MIN_LENGTH,
  V2_MAC1_LENGTH,
  agreeEphemeralKey,
  badKnockInput,
  isAllZero,
  isCertificateShaped,
  knockTargetOf,
  knockTooLarge,
  requireCertificateDer,
  openAes256Gcm,
  requireClientAddress,
  requireTimestampMs,
  serverSharedSecret,
  signKnock,
  v2CipherKeys,
  v2Mac1,
  v2Mac1Matches,
  type KnockSigner,
  type OpenedKnock,
  type ServerContext,
} from './crypto.js';

/** "sK": byte 0 is never 'a' (0x61), so v2 and legacy knocks are told apart by their first byte. */
const V2_MAGIC = Buffer.from('sK', 'ascii');
export const V2_VERSION = 0x02;
/** P-256 ECDH, HKDF-SHA256, AES-256-GCM, ECDSA-P256-SHA256. */
export const V2_SUITE_P256_AES256GCM = 0x01;
/** Magic, version, suite and ephemeral point: the GCM AAD and the start of the signed message. */
export const V2_HEADER_LENGTH = 4 + P256_POINT_LENGTH;
export const V2_TAG_LENGTH = 16;
export { V2_MAC1_LENGTH };
/** Everything but the plaintext: header, GCM tag, mac1. */
export const V2_OVERHEAD = V2_HEADER_LENGTH + V2_TAG_LENGTH + V2_MAC1_LENGTH;
/** IPv6's minimum MTU (1280) less the IPv6 and UDP headers: never fragmented on any path. */
export const V2_MAX_DATAGRAM = 1232;
/** Padding target: the original server's KNOCKPACKET_MIN_LENGTH frame check then passes on any link type. */
export const DEFAULT_MIN_DATAGRAM = 800;
export const V2_MAX_PORTS = 32;
export const V2_NONCE_LENGTH = 16;
export const V2_MAX_DURATION_SECONDS = 0xffffffff;

const V2_SIGNATURE_LABEL = Buffer.from('sKnock v2 knock\0', 'ascii');
const FLAG_USE_SOURCE_ADDRESS = 0x01;
/** Address family byte → address length. */
const ADDRESS_LENGTHS: ReadonlyMap<number, number> = new Map([
  [0, 0],
  [4, 4],
  [6, 16],
]);
const PROTOCOL_NUMBERS: Readonly<Record<TransportProtocol, number>> = { tcp: 6, udp: 17 };
const PROTOCOLS_BY_NUMBER: ReadonlyMap<number, TransportProtocol> = new Map([
  [6, 'tcp'],
  [17, 'udp'],
]);

/** flags, timestamp, nonce, server binding, address family. */
const FIXED_BODY_LENGTH = 1 + 8 + V2_NONCE_LENGTH + 32 + 1;
/** NAT mode, one port, the smallest certificate, no intermediate, the shortest signature. */
const MIN_PLAINTEXT_LENGTH = FIXED_BODY_LENGTH + 4 + 1 + 3 + 2 + MIN_CERTIFICATE_LENGTH + 2 + 1 + SIGNATURE_MIN_LENGTH;
export const V2_MIN_DATAGRAM = V2_OVERHEAD + MIN_PLAINTEXT_LENGTH;

/** Every reason the decoder gives, for metrics and logs that count by name. */
export const V2_REJECT_REASONS = [
  'too-short',
  'too-long',
  'bad-magic',
  'unsupported-version',
  'unsupported-suite',
  'bad-mac1',
  'bad-ephemeral-key',
  'decrypt-failed',
  'malformed-plaintext',
  'bad-flags',
  'bad-address-family',
  'bad-port-count',
  'bad-protocol',
  'bad-port',
  'duplicate-port',
  'bad-certificate-length',
  'bad-signature-length',
  'bad-padding',
] as const;
export type V2RejectReason = (typeof V2_REJECT_REASONS)[number];

type V2Decoded = Decoded<OpenedKnock, V2RejectReason>;

export function isV2(packet: Uint8Array): boolean {
  return packet[0] === V2_MAGIC[0] && packet[1] === V2_MAGIC[1];
}

/**
 * Checks, authenticates, decrypts and parses a v2 knock, cheapest check
 * first. Never throws: any defect is a reason. Verifying it (signature,
 * certificate, time, binding, replay, address) is the caller's job.
 */
/**
 * The checks before any public-key work: length, header and mac1. About a
 * microsecond: the server runs it where packets arrive, before queueing.
 * Undefined when the envelope is sound.
 */
export function checkV2Envelope(packet: Buffer, mac1Key: Buffer): Extract<V2Decoded, { ok: false }> | undefined {
  if (packet.length < V2_MIN_DATAGRAM) return reject('too-short');
  if (packet.length > V2_MAX_DATAGRAM) return reject('too-long');
  if (!isV2(packet)) return reject('bad-magic');
  if (packet[2] !== V2_VERSION) return reject('unsupported-version', `version ${packet[2]}`);
  if (packet[3] !== V2_SUITE_P256_AES256GCM) return reject('unsupported-suite', `suite ${packet[3]}`);
  // An HMAC costs ~1/50 of an ECDH: junk from anyone who lacks the server certificate stops here.
  if (!v2Mac1Matches(mac1Key, packet)) return reject('bad-mac1');
  return undefined;
}

export function openV2Knock(packet: Buffer, context: ServerContext): V2Decoded {
  const refusal = checkV2Envelope(packet, context.mac1Key);
  if (refusal) return refusal;
  const mac1Start = packet.length - V2_MAC1_LENGTH;
  const header = packet.subarray(0, V2_HEADER_LENGTH);
  const ephemeralPoint = packet.subarray(4, V2_HEADER_LENGTH);
  const sharedSecret = serverSharedSecret(context, ephemeralPoint);
  if (sharedSecret === undefined) return reject('bad-ephemeral-key');
  const keys = v2CipherKeys(sharedSecret, context.certificateHash, ephemeralPoint);
  const tagStart = mac1Start - V2_TAG_LENGTH;
  const plaintext = openAes256Gcm(keys, header, packet.subarray(V2_HEADER_LENGTH, tagStart), packet.subarray(tagStart, mac1Start));
  if (plaintext === undefined) return reject('decrypt-failed');
  return parseV2Plaintext(plaintext, Buffer.from(header));
}

/** Reads front to back; a read past the end marks it truncated and yields nothing. */
class PlaintextCursor {
  offset = 0;
  truncated = false;

  constructor(private readonly bytes: Buffer) {}

  take(length: number): Buffer {
    const end = this.offset + length;
    if (end > this.bytes.length) {
      this.truncated = true;
      this.offset = this.bytes.length;
      return Buffer.alloc(0);
    }
    const part = this.bytes.subarray(this.offset, end);
    this.offset = end;
    return part;
  }

  uint(byteLength: 1 | 2 | 4): number {
    const part = this.take(byteLength);
    return part.length === byteLength ? part.readUIntBE(0, byteLength) : 0;
  }

  rest(): Buffer {
    return this.take(this.bytes.length - this.offset);
  }
}

function parseV2Plaintext(plaintext: Buffer, header: Buffer): V2Decoded {
  // V2_MIN_DATAGRAM guarantees every field up to the last port; later reads check `truncated`.
  const cursor = new PlaintextCursor(plaintext);
  const flags = cursor.uint(1);
  const timestamp = cursor.take(8);
  const nonce = cursor.take(V2_NONCE_LENGTH);
  const serverBinding = cursor.take(32);
  const family = cursor.uint(1);
  if ((flags & ~FLAG_USE_SOURCE_ADDRESS) !== 0) return reject('bad-flags', `flags ${flags}`);
  const timestampMs = Number(timestamp.readBigUInt64BE(0));
  if (!Number.isSafeInteger(timestampMs)) return reject('malformed-plaintext', 'timestamp beyond 2^53 ms');
  const useSourceAddress = (flags & FLAG_USE_SOURCE_ADDRESS) !== 0;
  const addressLength = ADDRESS_LENGTHS.get(family);
  // NAT mode and a signed address exclude each other: exactly one says where to open.
  if (addressLength === undefined || (addressLength === 0) !== useSourceAddress) return reject('bad-address-family');

  const address = cursor.take(addressLength);
  const requestedDurationSeconds = cursor.uint(4);
  const portCount = cursor.uint(1);
  if (portCount < 1 || portCount > V2_MAX_PORTS) return reject('bad-port-count', `${portCount} ports`);
  const ports: PortRequest[] = [];
  for (let index = 0; index < portCount; index++) {
    const protocol = PROTOCOLS_BY_NUMBER.get(cursor.uint(1));
    const port = cursor.uint(2);
    if (protocol === undefined) return reject('bad-protocol');
    if (!isValidPort(port)) return reject('bad-port');
    const request = { protocol, port };
    if (ports.some((seen) => samePort(seen, request))) return reject('duplicate-port');
    ports.push(request);
  }

  const certificateDer = cursor.take(cursor.uint(2));
  const intermediateLength = cursor.uint(2);
  const intermediateCertificateDer = cursor.take(intermediateLength);
  if (cursor.truncated || !isCertificateShaped(certificateDer)) return reject('bad-certificate-length');
  if (intermediateLength !== 0 && !isCertificateShaped(intermediateCertificateDer)) return reject('bad-certificate-length');
  const body = plaintext.subarray(0, cursor.offset);

  const signatureLength = cursor.uint(1);
  const signature = cursor.take(signatureLength);
  if (cursor.truncated || signatureLength < SIGNATURE_MIN_LENGTH || signatureLength > SIGNATURE_MAX_LENGTH) {
    return reject('bad-signature-length');
  }
  if (!isAllZero(cursor.rest())) return reject('bad-padding');

  return accept({
    format: 'v2',
    ports,
    clientAddress: useSourceAddress ? null : address,
    timestampMs,
    requestedDurationSeconds,
    nonce,
    serverBinding,
    certificateDer,
    intermediateCertificateDer: intermediateLength === 0 ? null : intermediateCertificateDer,
    signature,
    signedMessage: Buffer.concat([V2_SIGNATURE_LABEL, header, body]),
    // The nonce is signed, so neither re-encryption nor a re-encoded signature changes it.
    replayKey: nonce,
  });
}

export interface V2KnockInput {
  /** The server's certificate (DER): encryption key, HKDF salt, binding and mac1 key all derive from it. */
  readonly serverCertificateDer: Buffer;
  /** 1..32 distinct ports. */
  readonly ports: readonly PortRequest[];
  /** 4 or 16 bytes, or null for NAT mode: the server opens for the packet's source address. */
  readonly clientAddress: Buffer | null;
  readonly timestampMs: number;
  /** 0 (the default) asks for the server's default; the server caps any value. */
  readonly requestedDurationSeconds?: number;
  /** The client certificate (DER) whose key signs. */
  readonly certificateDer: Buffer;
  /** The certificate that issued the client's, when the server's CA did not issue it directly. */
  readonly intermediateCertificateDer?: Buffer | null;
  readonly signer: KnockSigner;
  /** Pad the datagram with zeros up to this length (0..1232); default 800. */
  readonly minDatagramLength?: number;
  /** Injected only for test vectors; 16 random bytes otherwise. */
  readonly nonce?: Buffer;
  /** Injected only for test vectors; a fresh random key otherwise. */
  readonly ephemeralPrivateKey?: KeyObject | Buffer;
}

/** The plaintext without its signature: what the signature covers after the label and header. */
interface SignedBodyFields {
  readonly ports: readonly PortRequest[];
  readonly clientAddress: Buffer | null;
  readonly timestampMs: number;
  readonly requestedDurationSeconds: number;
  readonly nonce: Buffer;
  readonly certificateDer: Buffer;
  readonly intermediateCertificateDer: Buffer | null;
}

function validateV2Input(input: V2KnockInput): SignedBodyFields & { readonly minDatagramLength: number } {
  const { ports } = input;
  if (!Array.isArray(ports) || ports.length < 1 || ports.length > V2_MAX_PORTS) {
    throw badKnockInput(`a knock requests 1..${V2_MAX_PORTS} ports`);
  }
  ports.forEach((request, index) => {
    if ((request.protocol !== 'tcp' && request.protocol !== 'udp') || !isValidPort(request.port)) {
      throw badKnockInput(`port ${index + 1} must be tcp or udp and 1..65535`);
    }
    if (ports.findIndex((seen) => samePort(seen, request)) !== index) throw badKnockInput('a port is requested twice');
  });
  const requestedDurationSeconds = input.requestedDurationSeconds ?? 0;
  if (!Number.isInteger(requestedDurationSeconds) || requestedDurationSeconds < 0 || requestedDurationSeconds > V2_MAX_DURATION_SECONDS) {
    throw badKnockInput(`the requested duration must be whole seconds, 0..${V2_MAX_DURATION_SECONDS}`);
  }
  const nonce = input.nonce ?? randomBytes(V2_NONCE_LENGTH);
  if (!Buffer.isBuffer(nonce) || nonce.length !== V2_NONCE_LENGTH) throw badKnockInput(`the nonce must be ${V2_NONCE_LENGTH} bytes`);
  const minDatagramLength = input.minDatagramLength ?? DEFAULT_MIN_DATAGRAM;
  if (!Number.isInteger(minDatagramLength) || minDatagramLength < 0 || minDatagramLength > V2_MAX_DATAGRAM) {
    throw badKnockInput(`the minimum datagram length must be 0..${V2_MAX_DATAGRAM}`);
  }
  const intermediate = input.intermediateCertificateDer ?? null;
  return {
    ports,
    clientAddress: input.clientAddress === null ? null : requireClientAddress(input.clientAddress),
    timestampMs: requireTimestampMs(input.timestampMs, Number.MAX_SAFE_INTEGER),
    requestedDurationSeconds,
    nonce,
    certificateDer: requireCertificateDer(input.certificateDer, 'client certificate'),
    intermediateCertificateDer: intermediate === null ? null : requireCertificateDer(intermediate, 'intermediate certificate'),
    minDatagramLength,
  };
}

function encodeSignedBody(fields: SignedBodyFields, serverBinding: Buffer): Buffer {
  const address = fields.clientAddress ?? Buffer.alloc(0);
  const intermediate = fields.intermediateCertificateDer ?? Buffer.alloc(0);
  const body = Buffer.alloc(
    FIXED_BODY_LENGTH + address.length + 4 + 1 + 3 * fields.ports.length + 2 + fields.certificateDer.length + 2 + intermediate.length,
  );
  let offset = body.writeUInt8(fields.clientAddress === null ? FLAG_USE_SOURCE_ADDRESS : 0, 0);
  offset = body.writeBigUInt64BE(BigInt(fields.timestampMs), offset);
  offset += fields.nonce.copy(body, offset);
  offset += serverBinding.copy(body, offset);
  offset = body.writeUInt8(address.length === 16 ? 6 : address.length, offset);
  offset += address.copy(body, offset);
  offset = body.writeUInt32BE(fields.requestedDurationSeconds, offset);
  offset = body.writeUInt8(fields.ports.length, offset);
  for (const request of fields.ports) {
    offset = body.writeUInt8(PROTOCOL_NUMBERS[request.protocol], offset);
    offset = body.writeUInt16BE(request.port, offset);
  }
  offset = body.writeUInt16BE(fields.certificateDer.length, offset);
  offset += fields.certificateDer.copy(body, offset);
  offset = body.writeUInt16BE(intermediate.length, offset);
  intermediate.copy(body, offset);
  return body;
}

/**
 * Builds a v2 knock. Throws SknockError SKNOCK_BAD_KNOCK_INPUT for invalid
 * input and SKNOCK_KNOCK_TOO_LARGE when it cannot fit in 1232 bytes (72
 * bytes are reserved for the signature, so the answer never depends on it).
 */
export function buildV2Knock(input: V2KnockInput): Buffer {
  const validated = validateV2Input(input);
  const target = knockTargetOf(input.serverCertificateDer);
  const body = encodeSignedBody(validated, target.certificateHash);
  const largestLength = V2_OVERHEAD + body.length + 1 + SIGNATURE_MAX_LENGTH;
  if (largestLength > V2_MAX_DATAGRAM) {
    throw knockTooLarge(`the knock would be up to ${largestLength} bytes, over ${V2_MAX_DATAGRAM}: use fewer ports or smaller certificates`);
  }

  const ephemeral = agreeEphemeralKey(target, input.ephemeralPrivateKey);
  const header = Buffer.concat([V2_MAGIC, Buffer.of(V2_VERSION, V2_SUITE_P256_AES256GCM), ephemeral.publicPoint]);
  const signature = signKnock(input.signer, Buffer.concat([V2_SIGNATURE_LABEL, header, body]));
  const unpaddedLength = V2_OVERHEAD + body.length + 1 + signature.length;
  const padding = Buffer.alloc(Math.max(0, validated.minDatagramLength - unpaddedLength));

  const { key, iv } = v2CipherKeys(ephemeral.sharedSecret, target.certificateHash, ephemeral.publicPoint);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: V2_TAG_LENGTH });
  cipher.setAAD(header);
  const sealed = Buffer.concat([
    header,
    cipher.update(Buffer.concat([body, Buffer.of(signature.length), signature, padding])),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  return Buffer.concat([sealed, v2Mac1(target.mac1Key, sealed)]);
}
