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
import { CrlRefresher, prepareCrlFile, type CrlSources } from './crl-refresh.js';
import { crlStatusFileFor, openCrlStatusWriter } from './crl-status.js';
import { FirewallHelperClient, type BackendOptions, type FirewallBackend } from './firewall/index.js';
import { GrantBatcher } from './grant-batcher.js';
import type { Logger } from './log.js';
import { dropPrivileges, lookupUser } from './privileges.js';
import { ReplayCache, ReplayJournal } from './replay-cache.js';
import { planReload, reloadCaCertificates, rereadServerConfig } from './reload.js';
import { createTrustState, type TrustState, type VerifiedCrl } from './trust/index.js';
import type { Verdict, VerifierSettings } from './verify/pipeline.js';
import { createVerificationPool, type PoolStats } from './verify/worker-pool.js';

/** Knocks remembered at most: with a 7 s window this is > 10k accepted knocks per second. */
const REPLAY_CACHE_CAPACITY = 200_000;
/** Knocks held while the start refresh of the CRL runs; beyond this they are dropped (clients retry). */
const KNOCKS_HELD_AT_START = 1_024;
/** How often the verification counters are logged (only when something happened). */
const VERIFY_STATS_INTERVAL_MS = 60_000;

const privilegedHelperScript = fileURLToPath(new URL('./firewall/privileged-helper.js', import.meta.url));

export interface RunningServer {
  /** Resolves when the server has stopped. */
  readonly stopped: Promise<void>;
  stop(reason: string): Promise<void>;
  /** Puts a new trust state (new CRL or CAs) in force in every verifier; resolves when all judge with it. */
  replaceTrust(trust: TrustState): Promise<void>;
  /** SIGHUP: reload the configuration's CRL settings and the trust material, then refresh the CRL at once. */
  reload(): Promise<void>;
}

function crlSourcesOf(config: ServerConfig, caCertificates: readonly Buffer[]): CrlSources {
  return { urls: config.crl.urls, crlFile: config.crl.file, policy: config.crl.policy, caCertificates };
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

/** One line of verification counters: drops by reason, rejections by reason, the queue's high-water mark. */
function logVerifyStats(logger: Logger, stats: PoolStats): void {
  logger.info('verify-stats', { ...stats, rejected: JSON.stringify(stats.rejected), dropped: JSON.stringify(stats.dropped) });
}

/**
 * Starts the server as root: everything that needs root is opened first
 * (capture handles, the firewall helper, the replay journal), then the
 * process drops to the unprivileged user before it judges any packet.
 */
export async function startServer(
  startConfig: ServerConfig,
  logger: Logger,
  /** Command-line overrides, applied again on reload. */
  overrides: Readonly<Record<string, string>> = {},
): Promise<RunningServer> {
  // A reload replaces the CRL settings; every other part keeps its start value.
  let config = startConfig;
  if (process.getuid?.() !== 0) {
    throw new SknockError('SKNOCK_NOT_ROOT', 'sknock-server must start as root (it opens capture handles and the firewall, then drops privileges)');
  }
  const user = lookupUser(config.runtime.user);
  const bundle = loadPkcs12File(config.identity.pfxFile, config.identity.pfxPassword);
  let caCertificates: readonly Buffer[] = caCertificatesOf(bundle, config.identity.pfxFile).map((certificate) => certificate.raw);
  // Checked here, so that a wrong key fails the start with its own error before any worker starts.
  createServerContext(bundle.privateKey, bundle.certificateDer);
  const trust = loadTrust(config, caCertificates, logger, Date.now());
  const replay = openReplayCache(config.runtime.replayCacheFile, Date.now());
  // While root: the unprivileged side must be able to replace crlFile and write its status.
  prepareCrlFile(config.crl.file, user);
  const crlStatus = openCrlStatusWriter(crlStatusFileFor(config));
  const settings: VerifierSettings = {
    minFrameLength: config.capture.minFrameLength,
    legacyKnocks: config.knocks.legacyKnocks,
    allowSourceAddressMode: config.knocks.allowSourceAddressMode,
    timestampWindowMs: config.knocks.timestampWindowMs,
    grantDurationSeconds: config.knocks.grantDurationSeconds,
    maxGrantDurationSeconds: config.knocks.maxGrantDurationSeconds,
  };

  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));

  const firewall: FirewallBackend & { close(): Promise<void> } = FirewallHelperClient.spawn([
    process.execPath,
    privilegedHelperScript,
    JSON.stringify(backendOptionsOf(config)),
  ]);
  const grants = new GrantBatcher(
    (batch) => firewall.grant(batch),
    (error, batch) => {
      logger.error('grant-failed', { grants: batch.length, error: error instanceof Error ? error.message : String(error) });
      // A firewall that cannot be changed is no port knocker: stop loudly rather than pretend.
      if (error instanceof SknockError && error.code === 'SKNOCK_FIREWALL_HELPER_DEAD') void stop('the firewall helper died');
    },
  );

  // Started while still root (threads share the process's identity, dropped below for all of them).
  const verifiers = createVerificationPool({
    workers: config.runtime.workers,
    serverPrivateKey: bundle.privateKey,
    serverCertificateDer: bundle.certificateDer,
    settings,
    trust,
    replay,
    now: Date.now,
    onVerdict: (knock, verdict) => {
      // Junk that never decrypted (no format) is counted in verify-stats and shown one by one only at
      // logLevel debug: a flood must not become a log flood.
      if (verdict.format !== undefined) logVerdict(logger, knock.source, verdict);
      else if (!verdict.accepted && logger.enabled('debug')) logger.debug('junk', { source: knock.source, reason: verdict.reason });
      if (verdict.accepted) grants.add(verdict.grants);
    },
    onError: (error) => logger.error('verifier-failed', { error: error.message }),
  });
  let loggedStats: PoolStats | undefined;
  const statsTimer = setInterval(() => {
    const stats = verifiers.stats();
    if (stats.received === loggedStats?.received) return;
    loggedStats = stats;
    logVerifyStats(logger, stats);
  }, VERIFY_STATS_INTERVAL_MS);
  statsTimer.unref();

  const frameRejections = new Map<string, number>();
  // Until the start refresh of the CRL is done, knocks wait here: none is judged with an outdated CRL.
  let heldKnocks: { knock: Parameters<typeof verifiers.submit>[0]; atMs: number }[] | null = [];
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
      // The frame is capture's private copy, so the payload needs no copy of its own.
      const { payload } = datagram;
      const knock = { datagram: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), source: datagram.source, frameLength: datagram.originalFrameLength };
      if (heldKnocks === null) verifiers.submit(knock, Date.now());
      else if (heldKnocks.length < KNOCKS_HELD_AT_START) heldKnocks.push({ knock, atMs: Date.now() });
    },
    onError: (error) => logger.error('capture-error', { error: error.message }),
  });
  if (!capture.immediateMode) {
    logger.warn('capture-not-immediate', { detail: 'libpcap immediate mode unavailable (is libpcap-dev installed?): knocks may wait up to 1 s' });
  }

  dropPrivileges(user);
  // The policy goes in only once everything that can fail at start has succeeded:
  // a failed start must not leave a closed firewall with no knock server behind it.
  await firewall.start({
    mode: config.firewall.mode,
    emergencySshPort: config.firewall.emergencySshPort,
    publicPorts: config.firewall.publicPorts,
  });

  const putCrlInForce = (crl: VerifiedCrl | null): void => {
    const failed = (error: unknown) => logger.error('trust-update-failed', { error: error instanceof Error ? error.message : String(error) });
    try {
      verifiers.updateTrust(createTrustState({ caCertificates, crl, crlPolicy: config.crl.policy })).catch(failed);
    } catch (error) {
      failed(error);
    }
  };
  const crlRefresher = new CrlRefresher({
    sources: crlSourcesOf(config, caCertificates),
    initial: trust.crl,
    logger,
    onUpdate: putCrlInForce,
    onStatus: ({ crl, policyState, lastAttempt }) => {
      try {
        const crlInForce = crl === null ? null : describeCrl(crl);
        crlStatus.write({ pid: process.pid, writtenAt: new Date().toISOString(), crl: crlInForce, policy: config.crl.policy, policyState, lastAttempt });
      } catch (error) {
        logger.warn('crl-status-write-failed', { error: error instanceof Error ? error.message : String(error) });
      }
    },
  });
  // Downloads are parsed after the drop: a hostile CRL server only ever meets the unprivileged user.
  await crlRefresher.refresh('start');
  crlRefresher.start(config.crl.refresh);
  const waiting = heldKnocks;
  heldKnocks = null;
  for (const { knock, atMs } of waiting) verifiers.submit(knock, atMs);

  async function reload(): Promise<void> {
    logger.info('reloading', { file: config.file });
    try {
      const { config: next, warnings } = rereadServerConfig(config, overrides);
      const plan = planReload(config, next);
      const authorities = reloadCaCertificates(plan.config, bundle.certificateDer);
      for (const warning of warnings) logger.warn('config-warning', { detail: warning });
      if (authorities.kind === 'kept') logger.info('reload-kept-ca-certificates', { detail: authorities.detail });
      else caCertificates = authorities.caCertificates;
      const scheduleChanged = JSON.stringify(plan.config.crl.refresh) !== JSON.stringify(config.crl.refresh);
      config = plan.config;
      const fromFile = config.crl.file === null ? null : readCrlFile(config.crl.file, caCertificates, Date.now());
      crlRefresher.reconfigure(crlSourcesOf(config, caCertificates), fromFile?.kind === 'loaded' ? fromFile.crl : null);
      putCrlInForce(crlRefresher.current());
      if (scheduleChanged) crlRefresher.start(config.crl.refresh);
      logger.info('reloaded', { applied: plan.applied.join(',') || 'no CRL setting changed' });
      if (plan.needsRestart.length > 0) {
        logger.warn('reload-needs-restart', { keys: plan.needsRestart.join(','), detail: 'these keys keep their old values until sknock-server is restarted' });
      }
    } catch (error) {
      logger.warn('reload-rejected', {
        error: error instanceof Error ? error.message : String(error),
        consequence: 'the running configuration and trust material stay in use',
      });
    }
    await crlRefresher.refresh('sighup');
  }

  async function stop(reason: string): Promise<void> {
    stopping ??= (async () => {
      logger.info('stopping', { reason });
      crlRefresher.stop();
      capture.close();
      clearInterval(statsTimer);
      await verifiers.close();
      logVerifyStats(logger, verifiers.stats());
      await grants.settled();
      try {
        await firewall.stop();
      } catch (error) {
        logger.error('firewall-stop-failed', { error: error instanceof Error ? error.message : String(error) });
      }
      await firewall.close();
      crlStatus.close();
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
    workers: verifiers.stats().lanes,
    user: user.name,
    pid: process.pid,
  });
  return { stopped, stop, replaceTrust: (next) => verifiers.updateTrust(next), reload };
}
