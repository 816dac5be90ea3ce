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
  'replay-quota',
  'replay-journal-failed',
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

/**
 * A copy of a knock's datagram that owns exactly its bytes, for whatever keeps
 * a knock past the call that brought it: capture hands out views of a buffer
 * it reuses, and a view into one of Buffer's pooled 8 KB slabs would keep the
 * whole slab alive while the knock waits (under a flood, megabytes).
 */
export function ownedDatagram(knock: CapturedKnock): Buffer {
  const datagram = Buffer.allocUnsafeSlow(knock.datagram.length);
  knock.datagram.copy(datagram);
  return datagram;
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

type Refusal = Extract<Verdict, { readonly accepted: false }>;

export function refuse(
  reason: RejectReason,
  detail: string | undefined,
  known: { format?: KnockFormat; client?: ClientSummary; ports?: readonly PortRequest[] } = {},
): Refusal {
  return { accepted: false, reason, ...(detail === undefined ? {} : { detail }), ...known };
}

function grantSeconds(opened: OpenedKnock, settings: VerifierSettings): number {
  if (opened.requestedDurationSeconds === 0) return settings.grantDurationSeconds;
  return Math.min(opened.requestedDurationSeconds, settings.maxGrantDurationSeconds);
}

const REPLAY_DETAIL = 'this knock was accepted before';

/** What a replay check needs to see; the authoritative ReplayCache has it, and so may an advisory copy. */
export interface ReplayView {
  has(key: Buffer, nowMs: number): boolean;
}

/** The state everything before the replay decision needs: no authoritative replay cache. */
export type ExaminerState = Omit<VerifierState, 'replay'> & { readonly replay: ReplayView };

/**
 * A knock judged up to the replay decision. An acceptable one carries the
 * replay key it must record; only decideReplay turns it into an acceptance.
 */
export type Examination =
  | { readonly verdict: Refusal }
  | {
      readonly verdict: Exclude<Verdict, Refusal>;
      readonly replayKey: Buffer;
      readonly replayExpiresAtMs: number;
      /** The client certificate's SHA-256: whose replay quota the entry counts against. */
      readonly replayOwner: string;
    };

/**
 * Judges one captured datagram at `nowMs`, everything but recording its
 * replay key. Never throws. Pure apart from the trust state's cache: worker
 * threads run it with their own state and an advisory replay view.
 */
export function examineKnock(knock: CapturedKnock, nowMs: number, state: ExaminerState): Examination {
  const { settings } = state;
  const refused = (...args: Parameters<typeof refuse>): Examination => ({ verdict: refuse(...args) });
  if (knock.frameLength < settings.minFrameLength) {
    return refused('frame-too-short', `${knock.frameLength} < KNOCKPACKET_MIN_LENGTH ${settings.minFrameLength}`);
  }
  if (!settings.legacyKnocks && isLegacy(knock.datagram)) return refused('legacy-disabled', undefined, { format: 'legacy' });

  const opening = openKnock(knock.datagram, state.server);
  if (!opening.ok) return refused(opening.reason, opening.detail);
  const opened = opening.value;
  const seen = { format: opened.format, ports: opened.ports };

  // A knock sealed for another server of the same CA must not open this one.
  if (opened.serverBinding !== null && !opened.serverBinding.equals(state.server.certificateHash)) {
    return refused('wrong-server', 'the knock is bound to another server certificate', seen);
  }
  const skewMs = opened.timestampMs - nowMs;
  if (Math.abs(skewMs) > settings.timestampWindowMs) {
    return refused('timestamp-window', `client clock ${skewMs > 0 ? 'ahead' : 'behind'} by ${Math.abs(skewMs)} ms`, seen);
  }
  // Early and cheap: a replayed knock costs no certificate or signature work.
  if (state.replay.has(opened.replayKey, nowMs)) return refused('replay', REPLAY_DETAIL, seen);

  const trust = checkClientCertificate(state.trust, opened.certificateDer, opened.intermediateCertificateDer ?? undefined, nowMs);
  if (!trust.ok) return refused(trust.reason, trust.detail, seen);
  const identity = trust.value;
  const known = { ...seen, client: { subject: identity.subject, serialHex: identity.serialHex } };

  if (!verifyKnockSignature(opened, identity.signingKey)) return refused('bad-signature', undefined, known);

  if (opened.clientAddress === null) {
    // NAT mode binds the knock to no address: only where the administrator allows it.
    if (!settings.allowSourceAddressMode) return refused('nat-not-allowed', 'allowSourceAddressMode is off', known);
  } else {
    const sourceBytes = parseAddress(knock.source);
    // Stops a captured knock being replayed from another address inside the window.
    if (!sourceBytes || !addressMatchesSource(opened, Buffer.from(sourceBytes))) {
      return refused('address-mismatch', `signed for another address than ${knock.source}`, known);
    }
  }

  const authorized = authorizePorts(identity, opened.ports);
  if (!authorized.ok) return refused('unauthorized-port', authorized.detail, known);

  const seconds = grantSeconds(opened, settings);
  return {
    verdict: {
      accepted: true,
      format: opened.format,
      client: known.client,
      ports: opened.ports,
      grants: opened.ports.map((port) => ({ address: knock.source, protocol: port.protocol, port: port.port, seconds })),
      warnings: trust.warnings,
    },
    replayKey: opened.replayKey,
    replayExpiresAtMs: opened.timestampMs + settings.timestampWindowMs + 1,
    replayOwner: identity.certificateSha256,
  };
}

/**
 * The one place a knock becomes accepted: its replay key is checked and
 * recorded in the authoritative cache, so the same knock is never accepted
 * twice, however many threads examined copies of it.
 */
export function decideReplay(examination: Examination, replay: ReplayCache, nowMs: number): Verdict {
  const { verdict } = examination;
  if (!('replayKey' in examination)) return verdict;
  const known = { format: verdict.format, client: verdict.client, ports: verdict.ports };
  // A knock that waited in a queue past its window: its replay entry would already be gone.
  if (examination.replayExpiresAtMs <= nowMs) return refuse('timestamp-window', 'the window closed while the knock waited', known);
  if (replay.has(examination.replayKey, nowMs)) return refuse('replay', REPLAY_DETAIL, known);
  // Per certificate: one valid client flooding fresh knocks must not fill the cache for everyone.
  if (replay.isOverQuota(examination.replayOwner, nowMs)) {
    return refuse('replay-quota', `this certificate already has ${replay.entriesPerClient} knocks in the window`, known);
  }
  // Full means refuse: forgetting an entry would reopen a replay window.
  if (replay.isFull(nowMs)) return refuse('replay-cache-full', `${replay.capacity} knocks in the window`, known);
  try {
    replay.add(examination.replayKey, examination.replayExpiresAtMs, { owner: examination.replayOwner, nowMs });
  } catch (error) {
    // Not persisted, so not accepted: after a restart the same knock would pass the replay check.
    return refuse('replay-journal-failed', error instanceof Error ? error.message : String(error), known);
  }
  return verdict;
}

/**
 * Judges one captured datagram at `nowMs`. Never throws. On acceptance the
 * knock's replay key is recorded in `state.replay` before the verdict is
 * returned, so the same bytes can never be accepted twice.
 */
export function verifyKnock(knock: CapturedKnock, nowMs: number, state: VerifierState): Verdict {
  return decideReplay(examineKnock(knock, nowMs, state), state.replay, nowMs);
}
