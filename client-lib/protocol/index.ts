/**
 * The knock formats, as the server and the client import them: build a knock
 * (client), open one of either format (server), and the format-specific
 * reading of a knock's address. Specification: docs/PROTOCOL.md.
 */
import { LEGACY_REJECT_REASONS, isLegacy, legacyAddressMatches, openLegacyKnock, type LegacyRejectReason } from './legacy.js';
import type { OpenedKnock, ServerContext } from './crypto.js';
import { reject, type Decoded } from './result.js';
import { V2_REJECT_REASONS, checkV2Envelope, isV2, openV2Knock, type V2RejectReason } from './v2.js';

export {
  MIN_CERTIFICATE_LENGTH,
  SIGNATURE_MAX_LENGTH,
  SIGNATURE_MIN_LENGTH,
  createServerContext,
  verifyKnockSignature,
  type KnockFormat,
  type KnockInputErrorCode,
  type KnockSigner,
  type OpenedKnock,
  type ServerContext,
  type ServerKeyErrorCode,
  type SignedKnock,
} from './crypto.js';
export {
  LEGACY_KNOCK_ID,
  LEGACY_REJECT_REASONS,
  LEGACY_MAX_DATAGRAM,
  LEGACY_MIN_DATAGRAM,
  buildLegacyKnock,
  isLegacy,
  legacyAddressMatches,
  legacyDatagramLength,
  openLegacyKnock,
  type LegacyKnockInput,
  type LegacyRejectReason,
} from './legacy.js';
export {
  DEFAULT_MIN_DATAGRAM,
  V2_MAX_DATAGRAM,
  V2_MAX_DURATION_SECONDS,
  V2_MAX_PORTS,
  V2_MIN_DATAGRAM,
  V2_NONCE_LENGTH,
  V2_REJECT_REASONS,
  V2_OVERHEAD,
  buildV2Knock,
  checkV2Envelope,
  isV2,
  openV2Knock,
  type V2KnockInput,
  type V2RejectReason,
} from './v2.js';

export type KnockRejectReason = LegacyRejectReason | V2RejectReason;
export const KNOCK_REJECT_REASONS: readonly KnockRejectReason[] = [...new Set([...V2_REJECT_REASONS, ...LEGACY_REJECT_REASONS])];

/**
 * The cheap checks that need no secret and no public-key work (v2: length,
 * header, mac1; legacy: the header only — 1.0.0 has no pre-check). Returns
 * the refusal, or undefined when the knock is worth opening.
 */
export function precheckKnock(packet: Buffer, mac1Key: Buffer): Extract<Decoded<OpenedKnock, KnockRejectReason>, { ok: false }> | undefined {
  if (isV2(packet)) return checkV2Envelope(packet, mac1Key);
  if (isLegacy(packet)) return undefined;
  return reject('bad-magic');
}

/** Opens a knock of either format, told apart by its first byte. Never throws. */
export function openKnock(packet: Buffer, context: ServerContext): Decoded<OpenedKnock, KnockRejectReason> {
  if (isV2(packet)) return openV2Knock(packet, context);
  if (isLegacy(packet)) return openLegacyKnock(packet, context);
  return reject('bad-magic');
}

/**
 * Whether the knock may open for a packet from `source` (4 or 16 bytes):
 * NAT mode always, a v2 address when equal, a legacy one by 1.0.0's rule.
 */
export function addressMatchesSource(opened: OpenedKnock, source: Buffer): boolean {
  if (opened.clientAddress === null) return true;
  if (opened.format === 'legacy') return legacyAddressMatches(opened.clientAddress, source);
  return opened.clientAddress.equals(source);
}
