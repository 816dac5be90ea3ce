/**
 * sknock-server's wiring: configuration, identity, trust, firewall helper,
 * capture, privilege drop, then one verdict per captured datagram. The
 * decisions live in verify/pipeline.ts; this file only connects the edges.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SknockError } from '../client-lib/errors.js';
import { caCertificatesOf, loadPkcs12File } from '../client-lib/pkcs12.js';
import { createServerContext } from '../client-lib/protocol/index.js';
import { buildCaptureFilter, decodeFrame, openCapture } from './capture/index.js';
import type { ServerConfig } from './config.js';
import { describeCrl, readCrlFile, type CrlFileState } from './crl-file.js';
import { FirewallHelperClient, type BackendOptions, type FirewallBackend } from './firewall/index.js';
import { GrantBatcher } from './grant-batcher.js';
import type { Logger } from './log.js';
import { dropPrivileges, lookupUser } from './privileges.js';
import { ReplayCache, ReplayJournal } from './replay-cache.js';
import { createTrustState, type TrustState } from './trust/index.js';
import { verifyKnock, type Verdict, type VerifierState } from './verify/pipeline.js';

/** Knocks remembered at most: with a 7 s window this is > 10k accepted knocks per second. */
const REPLAY_CACHE_CAPACITY = 200_000;

const privilegedHelperScript = fileURLToPath(new URL('./firewall/privileged-helper.js', import.meta.url));

export interface RunningServer {
  /** Resolves when the server has stopped. */
  readonly stopped: Promise<void>;
  stop(reason: string): Promise<void>;
}

function backendOptionsOf(config: ServerConfig): BackendOptions {
  const { firewall } = config;
  switch (firewall.backend) {
    case 'nftables':
      return { kind: 'nftables' };
    case 'iptables':
      return { kind: 'iptables', ipset: 'auto' };
    case 'command':
      return { kind: 'command', openCommand: firewall.openCommand ?? [], closeCommand: firewall.closeCommand ?? [] };
  }
}

function crlStateFields(state: CrlFileState): Record<string, unknown> {
  return state.kind === 'loaded' ? { crl: 'loaded', freshness: state.freshness, ...describeCrl(state.crl) } : { crl: state.kind, detail: state.detail };
}

/** Builds the trust state from the bundle's CA certificates and the CRL file, logging what a CRL problem means. */
export function loadTrust(config: ServerConfig, caCertificates: readonly Buffer[], logger: Logger, nowMs: number): TrustState {
  const policy = config.crl.policy;
  const consequence = policy === 'require' ? 'every knock is refused until a valid CRL is in force (crlPolicy = require)' : 'knocks are accepted without revocation checks (crlPolicy = warn)';
  let crlState: CrlFileState | undefined;
  if (config.crl.file === null) {
    logger.warn('crl-missing', { detail: 'no crlFile configured', consequence });
  } else {
    crlState = readCrlFile(config.crl.file, caCertificates, nowMs);
    if (crlState.kind !== 'loaded') logger.warn(`crl-${crlState.kind}`, { ...crlStateFields(crlState), consequence });
    else if (crlState.freshness !== 'fresh') logger.warn('crl-stale', { ...crlStateFields(crlState), consequence });
    else logger.info('crl-loaded', crlStateFields(crlState));
  }
  return createTrustState({
    caCertificates,
    crl: crlState?.kind === 'loaded' ? crlState.crl : null,
    crlPolicy: policy,
  });
}

function openReplayCache(file: string, nowMs: number): ReplayCache {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const journal = new ReplayJournal(file);
  const cache = new ReplayCache(REPLAY_CACHE_CAPACITY, journal);
  cache.restore(journal.read(), nowMs);
  // Compacted and opened while still root; appends go through the open descriptor afterwards.
  journal.compact(cache.entries());
  return cache;
}

function logVerdict(logger: Logger, source: string, verdict: Verdict): void {
  logger.decision({
    source,
    subject: verdict.client?.subject,
    serial: verdict.client?.serialHex,
    ports: verdict.ports ?? [],
    verdict: verdict.accepted ? 'granted' : 'rejected',
    reason: verdict.accepted ? undefined : verdict.reason,
    format: verdict.format,
  });
  if (verdict.accepted && verdict.warnings.length > 0) {
    logger.warn('accepted-without-revocation-check', { source, subject: verdict.client.subject, warnings: verdict.warnings.join(',') });
  }
}

/**
 * Starts the server as root: everything that needs root is opened first
 * (capture handles, the firewall helper, the replay journal), then the
 * process drops to the unprivileged user before it judges any packet.
 */
export async function startServer(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  if (process.getuid?.() !== 0) {
    throw new SknockError('SKNOCK_NOT_ROOT', 'sknock-server must start as root (it opens capture handles and the firewall, then drops privileges)');
  }
  const user = lookupUser(config.runtime.user);
  const bundle = loadPkcs12File(config.identity.pfxFile, config.identity.pfxPassword);
  const caCertificates = caCertificatesOf(bundle, config.identity.pfxFile).map((certificate) => certificate.raw);
  const serverContext = createServerContext(bundle.privateKey, bundle.certificateDer);
  const trust = loadTrust(config, caCertificates, logger, Date.now());
  const replay = openReplayCache(config.runtime.replayCacheFile, Date.now());
  const state: VerifierState = {
    server: serverContext,
    trust,
    replay,
    settings: {
      minFrameLength: config.capture.minFrameLength,
      legacyKnocks: config.knocks.legacyKnocks,
      allowSourceAddressMode: config.knocks.allowSourceAddressMode,
      timestampWindowMs: config.knocks.timestampWindowMs,
      grantDurationSeconds: config.knocks.grantDurationSeconds,
      maxGrantDurationSeconds: config.knocks.maxGrantDurationSeconds,
    },
  };

  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));

  const firewall: FirewallBackend & { close(): Promise<void> } = FirewallHelperClient.spawn([
    process.execPath,
    privilegedHelperScript,
    JSON.stringify(backendOptionsOf(config)),
  ]);
  await firewall.start({
    mode: config.firewall.mode,
    emergencySshPort: config.firewall.emergencySshPort,
    publicPorts: config.firewall.publicPorts,
  });

  const grants = new GrantBatcher(
    (batch) => firewall.grant(batch),
    (error, batch) => {
      logger.error('grant-failed', { grants: batch.length, error: error instanceof Error ? error.message : String(error) });
      // A firewall that cannot be changed is no port knocker: stop loudly rather than pretend.
      if (error instanceof SknockError && error.code === 'SKNOCK_FIREWALL_HELPER_DEAD') void stop('the firewall helper died');
    },
  );

  const frameRejections = new Map<string, number>();
  const capture = openCapture({
    interfaces: config.capture.interfaces,
    filter: buildCaptureFilter({ knockPorts: config.capture.knockPorts, minFrameLength: config.capture.minFrameLength }),
    onPacket: (linkType, frame) => {
      const decoded = decodeFrame(linkType, frame);
      if (!decoded.ok) {
        frameRejections.set(decoded.reason, (frameRejections.get(decoded.reason) ?? 0) + 1);
        return;
      }
      const datagram = decoded.value;
      const verdict = verifyKnock(
        { datagram: Buffer.from(datagram.payload), source: datagram.source, frameLength: datagram.originalFrameLength },
        Date.now(),
        state,
      );
      logVerdict(logger, datagram.source, verdict);
      if (verdict.accepted) grants.add(verdict.grants);
    },
    onError: (error) => logger.error('capture-error', { error: error.message }),
  });
  if (!capture.immediateMode) {
    logger.warn('capture-not-immediate', { detail: 'libpcap immediate mode unavailable (is libpcap-dev installed?): knocks may wait up to 1 s' });
  }

  dropPrivileges(user);

  async function stop(reason: string): Promise<void> {
    stopping ??= (async () => {
      logger.info('stopping', { reason });
      capture.close();
      await grants.settled();
      try {
        await firewall.stop();
      } catch (error) {
        logger.error('firewall-stop-failed', { error: error instanceof Error ? error.message : String(error) });
      }
      await firewall.close();
      logger.info('stopped', { frameRejections: Object.fromEntries(frameRejections) });
      logger.flush();
      resolveStopped();
    })();
    return stopping;
  }

  logger.info('ready', {
    message: 'ready to judge knocks',
    interfaces: config.capture.interfaces.join(','),
    knockPorts: `${config.capture.knockPorts.from}-${config.capture.knockPorts.to}`,
    firewall: `${config.firewall.backend}/${config.firewall.mode}`,
    legacyKnocks: config.knocks.legacyKnocks,
    crlPolicy: config.crl.policy,
    user: user.name,
    pid: process.pid,
  });
  return { stopped, stop };
}
