/**
 * The original sKnock 1.0.0 knock, byte for byte (docs/PROTOCOL.md, part 1):
 *
 *   'a' || 01 00 00 || AES-128-CBC(request || certificate || trailer) || ephemeral P-256 point
 *
 * Kept so that existing sKnock clients can knock this server and this
 * client can knock existing servers. One port per knock, no replay
 * protection of its own, no server binding: see v2.ts for the fixes.
 */
import { createCipheriv, createDecipheriv, type KeyObject } from 'node:crypto';
import { isValidPort, type PortRequest } from './ports.js';
import { accept, reject, type Decoded } from './result.js';
import {
  MIN_CERTIFICATE_LENGTH,
  P256_POINT_LENGTH,
  SIGNATURE_MAX_LENGTH,
  SIGNATURE_MIN_LENGTH,
  agreeEphemeralKey,
  badKnockInput,
  isAllZero,
  isCertificateShaped,
  knockTargetOf,
  knockTooLarge,
  legacyCipherKeys,
  requireCertificateDer,
  requireClientAddress,
  requireTimestampMs,
  serverSharedSecret,
  sha256,
  signKnock,
  type KnockSigner,
  type OpenedKnock,
  type ServerContext,
} from './crypto.js';

/** 'a': the knock id byte of every sKnock 1.x packet. */
export const LEGACY_KNOCK_ID = 0x61;
/** Version 1.0.0, the only one accepted (0.0.1 carried a DER public key instead of the point). */
const LEGACY_VERSION = Buffer.of(0x01, 0x00, 0x00);
export const LEGACY_HEADER_LENGTH = 4;
export const LEGACY_REQUEST_LENGTH = 24;
/** sigLen byte || zero fill || signature: always 1 + 72 bytes. */
export const LEGACY_TRAILER_LENGTH = 1 + SIGNATURE_MAX_LENGTH;
const AES_BLOCK_LENGTH = 16;
const IPV4_FILL = Buffer.alloc(12);
const PROTOCOL_TCP = 0x01;
const PROTOCOL_UDP = 0x00;

/** UDP payload length of a legacy knock whose client certificate has this many bytes (PKCS#7 always adds 1..16). */
export function legacyDatagramLength(certificateLength: number): number {
  const plaintextLength = LEGACY_REQUEST_LENGTH + certificateLength + LEGACY_TRAILER_LENGTH;
  const ciphertextLength = (Math.floor(plaintextLength / AES_BLOCK_LENGTH) + 1) * AES_BLOCK_LENGTH;
  return LEGACY_HEADER_LENGTH + ciphertextLength + P256_POINT_LENGTH;
}

export const LEGACY_MIN_DATAGRAM = legacyDatagramLength(MIN_CERTIFICATE_LENGTH);
/**
 * The largest UDP payload that crosses a 1500-byte Ethernet MTU unfragmented:
 * the original captured single frames and never reassembled fragments.
 */
export const LEGACY_MAX_DATAGRAM = 1472;
const LEGACY_MAX_TIMESTAMP_MS = 0xffffffff * 1000 + 999;

/** Every reason the decoder gives, for metrics and logs that count by name. */
export const LEGACY_REJECT_REASONS = [
  'too-short',
  'too-long',
  'bad-magic',
  'unsupported-version',
  'bad-ciphertext-length',
  'bad-ephemeral-key',
  'decrypt-failed',
  'malformed-plaintext',
  'bad-protocol',
  'bad-port',
  'bad-signature-length',
  'bad-certificate-length',
] as const;
export type LegacyRejectReason = (typeof LEGACY_REJECT_REASONS)[number];

type LegacyDecoded = Decoded<OpenedKnock, LegacyRejectReason>;

export function isLegacy(packet: Uint8Array): boolean {
  return packet[0] === LEGACY_KNOCK_ID;
}

/**
 * The address of the 16-byte request field: IPv4 when its last 12 bytes are
 * zero (how 1.0.0 writes IPv4), else IPv6. An IPv6 address ending in 12 zero
 * bytes reads as IPv4 here; legacyAddressMatches still compares it correctly.
 */
function addressOfField(field: Buffer): Buffer {
  return isAllZero(field.subarray(4)) ? field.subarray(0, 4) : field;
}

/**
 * The original's address rule: an IPv4 source must equal the field's first 4
 * bytes (the rest zero), an IPv6 source all 16.
 */
export function legacyAddressMatches(clientAddress: Buffer, source: Buffer): boolean {
  const field = clientAddress.length === 4 ? Buffer.concat([clientAddress, IPV4_FILL]) : clientAddress;
  return source.length === 4 ? field.equals(Buffer.concat([source, IPV4_FILL])) : field.equals(source);
}

/**
 * Decrypts and parses a legacy knock. Never throws: any defect is a reason.
 * Verifying it (signature, certificate, time, address) is the caller's job.
 */
export function openLegacyKnock(packet: Buffer, context: ServerContext): LegacyDecoded {
  if (packet.length < LEGACY_MIN_DATAGRAM) return reject('too-short');
  if (packet.length > LEGACY_MAX_DATAGRAM) return reject('too-long');
  if (packet[0] !== LEGACY_KNOCK_ID) return reject('bad-magic');
  if (!LEGACY_VERSION.equals(packet.subarray(1, LEGACY_HEADER_LENGTH))) {
    return reject('unsupported-version', `version ${[...packet.subarray(1, LEGACY_HEADER_LENGTH)].join('.')}`);
  }
  const ciphertext = packet.subarray(LEGACY_HEADER_LENGTH, packet.length - P256_POINT_LENGTH);
  if (ciphertext.length % AES_BLOCK_LENGTH !== 0) return reject('bad-ciphertext-length');

  const sharedSecret = serverSharedSecret(context, packet.subarray(packet.length - P256_POINT_LENGTH));
  if (sharedSecret === undefined) return reject('bad-ephemeral-key');
  const { key, iv } = legacyCipherKeys(sharedSecret);
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv('aes-128-cbc', key, iv);
    plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    // Bad PKCS#7 padding: 1.0.0 has no MAC, so this is the only integrity signal before the signature.
    return reject('decrypt-failed');
  }
  return parseLegacyPlaintext(plaintext);
}

function parseLegacyPlaintext(plaintext: Buffer): LegacyDecoded {
  const certificateEnd = plaintext.length - LEGACY_TRAILER_LENGTH;
  if (certificateEnd - LEGACY_REQUEST_LENGTH < MIN_CERTIFICATE_LENGTH) return reject('bad-certificate-length');
  // 1.0.0's own post-decryption check: a wrong key almost never yields a zero here.
  if (plaintext[0] !== 0) return reject('malformed-plaintext', 'the must-be-zero byte is not zero');
  const protocolByte = plaintext[1];
  if (protocolByte !== PROTOCOL_TCP && protocolByte !== PROTOCOL_UDP) return reject('bad-protocol');
  const port = plaintext.readUInt16BE(2);
  if (!isValidPort(port)) return reject('bad-port');

  const signatureLength = plaintext[certificateEnd] ?? 0;
  if (signatureLength < SIGNATURE_MIN_LENGTH || signatureLength > SIGNATURE_MAX_LENGTH) return reject('bad-signature-length');
  const signatureStart = plaintext.length - signatureLength;
  if (!isAllZero(plaintext.subarray(certificateEnd + 1, signatureStart))) {
    return reject('malformed-plaintext', 'the signature fill is not zero');
  }
  const certificateDer = plaintext.subarray(LEGACY_REQUEST_LENGTH, certificateEnd);
  if (!isCertificateShaped(certificateDer)) return reject('bad-certificate-length');

  const signedMessage = plaintext.subarray(0, certificateEnd);
  return accept({
    format: 'legacy',
    ports: [{ protocol: protocolByte === PROTOCOL_TCP ? 'tcp' : 'udp', port }],
    clientAddress: addressOfField(plaintext.subarray(4, 20)),
    timestampMs: plaintext.readUInt32BE(20) * 1000,
    requestedDurationSeconds: 0,
    nonce: null,
    serverBinding: null,
    certificateDer,
    intermediateCertificateDer: null,
    signature: plaintext.subarray(signatureStart),
    signedMessage,
    // 1.0.0 has no nonce: the signed content identifies a knock, whatever its encryption or signature encoding.
    replayKey: sha256(signedMessage),
  });
}

export interface LegacyKnockInput {
  /** The server's certificate (DER): the knock is encrypted to its P-256 key. */
  readonly serverCertificateDer: Buffer;
  readonly port: PortRequest;
  /** The client's own address, 4 or 16 bytes: 1.0.0 servers require it to equal the packet's source. */
  readonly clientAddress: Buffer;
  /** Sent as whole seconds. */
  readonly timestampMs: number;
  /** The client certificate (DER) whose key signs. */
  readonly certificateDer: Buffer;
  readonly signer: KnockSigner;
  /** Injected only for test vectors; a fresh random key otherwise. */
  readonly ephemeralPrivateKey?: KeyObject | Buffer;
}

/**
 * Builds a knock that an original sKnock 1.0.0 server accepts. Throws
 * SknockError SKNOCK_BAD_KNOCK_INPUT or SKNOCK_KNOCK_TOO_LARGE. Nothing is
 * padded: the client certificate's size alone must carry the datagram past
 * the server's KNOCKPACKET_MIN_LENGTH (see legacyDatagramLength).
 */
export function buildLegacyKnock(input: LegacyKnockInput): Buffer {
  const { port } = input;
  if ((port.protocol !== 'tcp' && port.protocol !== 'udp') || !isValidPort(port.port)) {
    throw badKnockInput('the port must be tcp or udp and 1..65535');
  }
  const address = requireClientAddress(input.clientAddress);
  const timestampMs = requireTimestampMs(input.timestampMs, LEGACY_MAX_TIMESTAMP_MS);
  const certificateDer = requireCertificateDer(input.certificateDer, 'client certificate');
  const length = legacyDatagramLength(certificateDer.length);
  if (length > LEGACY_MAX_DATAGRAM) {
    throw knockTooLarge(`a legacy knock with this ${certificateDer.length}-byte certificate is ${length} bytes, over ${LEGACY_MAX_DATAGRAM}`);
  }

  const request = Buffer.alloc(LEGACY_REQUEST_LENGTH);
  request[1] = port.protocol === 'tcp' ? PROTOCOL_TCP : PROTOCOL_UDP;
  request.writeUInt16BE(port.port, 2);
  address.copy(request, 4);
  request.writeUInt32BE(Math.floor(timestampMs / 1000), 20);
  const signedMessage = Buffer.concat([request, certificateDer]);
  const signature = signKnock(input.signer, signedMessage);
  const trailer = Buffer.alloc(LEGACY_TRAILER_LENGTH);
  trailer[0] = signature.length;
  signature.copy(trailer, LEGACY_TRAILER_LENGTH - signature.length);

  const ephemeral = agreeEphemeralKey(knockTargetOf(input.serverCertificateDer), input.ephemeralPrivateKey);
  const { key, iv } = legacyCipherKeys(ephemeral.sharedSecret);
  const cipher = createCipheriv('aes-128-cbc', key, iv);
  return Buffer.concat([
    Buffer.of(LEGACY_KNOCK_ID),
    LEGACY_VERSION,
    cipher.update(Buffer.concat([signedMessage, trailer])),
    cipher.final(),
    ephemeral.publicPoint,
  ]);
}
