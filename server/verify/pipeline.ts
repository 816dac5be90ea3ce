/**
 * The verification pipeline: one pure function of (datagram, source, time,
 * trust state, replay cache) to a verdict with a reason. Cheapest checks
 * first, so that junk costs as little as possible: no public-key operation
 * before the length, format and mac1 checks, and no certificate work before
 * the AEAD tag, server binding, timestamp and replay checks.
 */
import {
  addressMatchesSource,
  isLegacy,
  openKnock,
  verifyKnockSignature,
  type KnockFormat,
  type KnockRejectReason,
  type OpenedKnock,
  type ServerContext,
} from '../../client-lib/protocol/index.js';
import { parseAddress } from '../../client-lib/protocol/address.js';
import type { PortRequest } from '../../client-lib/protocol/ports.js';
import type { ReplayCache } from '../replay-cache.js';
import { authorizePorts, checkClientCertificate, type TrustReason, type TrustState, type TrustWarning } from '../trust/index.js';

export const PIPELINE_REJECT_REASONS = [
  'frame-too-short',
  'legacy-disabled',
  'wrong-server',
  'timestamp-window',
  'replay',
  'bad-signature',
  'nat-not-allowed',
  'address-mismatch',
  'unauthorized-port',
  'replay-cache-full',
] as const;
export type PipelineRejectReason = (typeof PIPELINE_REJECT_REASONS)[number];

/** Every reason a knock can be refused for: codec, trust, or pipeline. Logs, metrics and tests use these. */
export type RejectReason = KnockRejectReason | TrustReason | PipelineRejectReason;

export interface VerifierSettings {
  /** KNOCKPACKET_MIN_LENGTH: the frame (IP packet + 14) must be at least this long. */
  readonly minFrameLength: number;
  readonly legacyKnocks: boolean;
  readonly allowSourceAddressMode: boolean;
  readonly timestampWindowMs: number;
  readonly grantDurationSeconds: number;
  readonly maxGrantDurationSeconds: number;
}

export interface VerifierState {
  readonly server: ServerContext;
  readonly trust: TrustState;
  readonly replay: ReplayCache;
  readonly settings: VerifierSettings;
}

export interface CapturedKnock {
  /** The UDP payload. */
  readonly datagram: Buffer;
  /** Canonical address text of the packet's source. */
  readonly source: string;
  /** IP packet length + 14: what KNOCKPACKET_MIN_LENGTH is compared with. */
  readonly frameLength: number;
}

export interface Grant {
  readonly address: string;
  readonly protocol: PortRequest['protocol'];
  readonly port: number;
  readonly seconds: number;
}

export interface ClientSummary {
  readonly subject: string;
  readonly serialHex: string;
}

export type Verdict =
  | {
      readonly accepted: true;
      readonly format: KnockFormat;
      readonly client: ClientSummary;
      readonly ports: readonly PortRequest[];
      readonly grants: readonly Grant[];
      /** Accepted despite these (crlPolicy warn): log loudly. */
      readonly warnings: readonly TrustWarning[];
    }
  | {
      readonly accepted: false;
      readonly reason: RejectReason;
      readonly detail?: string;
      readonly format?: KnockFormat;
      readonly client?: ClientSummary;
      readonly ports?: readonly PortRequest[];
    };

function refuse(
  reason: RejectReason,
  detail: string | undefined,
  known: { format?: KnockFormat; client?: ClientSummary; ports?: readonly PortRequest[] } = {},
): Verdict {
  return { accepted: false, reason, ...(detail === undefined ? {} : { detail }), ...known };
}

function grantSeconds(opened: OpenedKnock, settings: VerifierSettings): number {
  if (opened.requestedDurationSeconds === 0) return settings.grantDurationSeconds;
  return Math.min(opened.requestedDurationSeconds, settings.maxGrantDurationSeconds);
}

/**
 * Judges one captured datagram at `nowMs`. Never throws. On acceptance the
 * knock's replay key is recorded in `state.replay` before the verdict is
 * returned, so the same bytes can never be accepted twice.
 */
export function verifyKnock(knock: CapturedKnock, nowMs: number, state: VerifierState): Verdict {
  const { settings } = state;
  if (knock.frameLength < settings.minFrameLength) {
    return refuse('frame-too-short', `${knock.frameLength} < KNOCKPACKET_MIN_LENGTH ${settings.minFrameLength}`);
  }
  if (!settings.legacyKnocks && isLegacy(knock.datagram)) return refuse('legacy-disabled', undefined, { format: 'legacy' });

  const opening = openKnock(knock.datagram, state.server);
  if (!opening.ok) return refuse(opening.reason, opening.detail);
  const opened = opening.value;
  const seen = { format: opened.format, ports: opened.ports };

  // A knock sealed for another server of the same CA must not open this one.
  if (opened.serverBinding !== null && !opened.serverBinding.equals(state.server.certificateHash)) {
    return refuse('wrong-server', 'the knock is bound to another server certificate', seen);
  }
  const skewMs = opened.timestampMs - nowMs;
  if (Math.abs(skewMs) > settings.timestampWindowMs) {
    return refuse('timestamp-window', `client clock ${skewMs > 0 ? 'ahead' : 'behind'} by ${Math.abs(skewMs)} ms`, seen);
  }
  if (state.replay.has(opened.replayKey, nowMs)) return refuse('replay', 'this knock was accepted before', seen);

  const trust = checkClientCertificate(state.trust, opened.certificateDer, opened.intermediateCertificateDer ?? undefined, nowMs);
  if (!trust.ok) return refuse(trust.reason, trust.detail, seen);
  const identity = trust.value;
  const known = { ...seen, client: { subject: identity.subject, serialHex: identity.serialHex } };

  if (!verifyKnockSignature(opened, identity.publicKey)) return refuse('bad-signature', undefined, known);

  if (opened.clientAddress === null) {
    // NAT mode binds the knock to no address: only where the administrator allows it.
    if (!settings.allowSourceAddressMode) return refuse('nat-not-allowed', 'allowSourceAddressMode is off', known);
  } else {
    const sourceBytes = parseAddress(knock.source);
    // Stops a captured knock being replayed from another address inside the window.
    if (!sourceBytes || !addressMatchesSource(opened, Buffer.from(sourceBytes))) {
      return refuse('address-mismatch', `signed for another address than ${knock.source}`, known);
    }
  }

  const authorized = authorizePorts(identity, opened.ports);
  if (!authorized.ok) return refuse('unauthorized-port', authorized.detail, known);

  // Full means refuse: forgetting an entry would reopen a replay window.
  if (state.replay.isFull(nowMs)) return refuse('replay-cache-full', `${state.replay.capacity} knocks in the window`, known);
  state.replay.add(opened.replayKey, opened.timestampMs + settings.timestampWindowMs + 1);

  const seconds = grantSeconds(opened, settings);
  return {
    accepted: true,
    format: opened.format,
    client: known.client,
    ports: opened.ports,
    grants: opened.ports.map((port) => ({ address: knock.source, protocol: port.protocol, port: port.port, seconds })),
    warnings: trust.warnings,
  };
}
