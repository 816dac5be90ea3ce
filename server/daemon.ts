/**
 * sknock-server's wiring: configuration, identity, trust, firewall helper,
 * capture, privilege drop, then one verdict per captured datagram. The
 * decisions live in verify/pipeline.ts; this file only connects the edges.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SknockError } from '../client-lib/errors.js';
import { p256Engine } from '../client-lib/native-p256.js';
import { caCertificatesOf } from '../client-lib/pkcs12-bundle.js';
import { createServerContext } from '../client-lib/protocol/index.js';
import { buildCaptureFilter, decodeFrame, openCapture, type RingStatistics } from './capture/index.js';
import { MEBIBYTE, type ServerConfig } from './config.js';
import { describeCrlAt, readCrlFile } from './crl-file.js';
import { CrlRefresher, prepareCrlFile, type CrlSources } from './crl-refresh.js';
import { crlStatusFileFor, crlStatusRecord, openCrlStatusWriter } from './crl-status.js';
import { FirewallHelperClient, formatHelperArguments, type BackendOptions, type FirewallPolicy } from './firewall/index.js';
import { GrantBatcher } from './grant-batcher.js';
import type { Logger } from './log.js';
import { loadPkcs12FileOffThread } from './pkcs12-off-thread.js';
import { dropPrivileges, lookupUser } from './privileges.js';
import { ReplayCache, ReplayJournal } from './replay-cache.js';
import { planReload, reloadCaCertificates, rereadServerConfig } from './reload.js';
import { createTrustState, crlFreshness, type TrustState, type VerifiedCrl } from './trust/index.js';
import { KnockHold } from './verify/held-knocks.js';
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
  /** SIGUSR2: the verify-stats line now (it also comes every minute when knocks arrived). */
  logStats(): void;
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

function firewallPolicyOf(config: ServerConfig): FirewallPolicy {
  const { firewall } = config;
  return { mode: firewall.mode, emergencySshPort: firewall.emergencySshPort, publicPorts: firewall.publicPorts };
}

/** Builds the trust state from the bundle's CA certificates and the CRL file, logging what a CRL problem means. */
export function loadTrust(config: ServerConfig, caCertificates: readonly Buffer[], logger: Logger, nowMs: number): TrustState {
  const policy = config.crl.policy;
  const consequenceFor = (whose: string) =>
    policy === 'require' ? `${whose} refused until a valid CRL is in force (crlPolicy = require)` : `${whose} accepted without revocation checks (crlPolicy = warn)`;
  const consequence = consequenceFor(policy === 'require' ? 'every knock is' : 'knocks are');
  let crls: readonly VerifiedCrl[] = [];
  if (config.crl.file === null) {
    logger.warn('crl-missing', { detail: 'no crlFile configured', consequence });
  } else {
    const crlState = readCrlFile(config.crl.file, caCertificates);
    if (crlState.kind !== 'loaded') logger.warn(`crl-${crlState.kind}`, { crl: crlState.kind, detail: crlState.detail, consequence });
    else {
      crls = crlState.crls;
      // One line per issuing CA: each CRL speaks for that CA's clients only.
      for (const crl of crls) {
        const fields = { crl: 'loaded', ...describeCrlAt(crl, nowMs) };
        if (crlFreshness(crl, nowMs) === 'fresh') logger.info('crl-loaded', fields);
        else logger.warn('crl-stale', { ...fields, consequence: consequenceFor(`knocks of clients of ${crl.issuer} are`) });
      }
      for (const ignored of crlState.ignored) logger.warn('crl-ignored', { detail: ignored, consequence: 'a CRL of a CA that is not configured speaks for no client' });
    }
  }
  return createTrustState({ caCertificates, crls, crlPolicy: policy });
}

function openReplayCache(config: ServerConfig, logger: Logger, nowMs: number): ReplayCache {
  const file = config.runtime.replayCacheFile;
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const journal = new ReplayJournal(file);
  const cache = new ReplayCache(REPLAY_CACHE_CAPACITY, {
    journal,
    entriesPerClient: config.knocks.replayEntriesPerClient,
    onCompactionError: (error) =>
      logger.warn('replay-journal-compaction-failed', {
        error: error instanceof Error ? error.message : String(error),
        consequence: 'the journal keeps growing; nothing accepted is forgotten',
      }),
  });
  cache.restore(journal.read(), nowMs);
  // Compacted and both files opened while still root; the dropped process appends and compacts through the descriptors.
  cache.compactJournal(nowMs);
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
 * One line of verification counters: drops by reason, rejections by reason,
 * the queue's high-water mark, and what the kernel's capture rings took and
 * dropped when full (before the server saw it), when that can be counted.
 */
function logVerifyStats(logger: Logger, stats: PoolStats, ring: RingStatistics | undefined): void {
  const ringCounts = ring === undefined ? {} : { ringPackets: ring.packets, ringDropped: ring.dropped };
  logger.info('verify-stats', { ...stats, rejected: JSON.stringify(stats.rejected), dropped: JSON.stringify(stats.dropped), ...ringCounts });
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
  const bundle = await loadPkcs12FileOffThread(config.identity.pfxFile, config.identity.pfxPassword);
  let caCertificates: readonly Buffer[] = caCertificatesOf(bundle, config.identity.pfxFile).map((certificate) => certificate.raw);
  // Checked here, so that a wrong key fails the start with its own error before any worker starts.
  const { mac1Key } = createServerContext(bundle.privateKey, bundle.certificateDer);
  const trust = loadTrust(config, caCertificates, logger, Date.now());
  const replay = openReplayCache(config, logger, Date.now());
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

  // The backend and the policy are fixed in the root helper's argv: the dropped process can only say when.
  const firewall = FirewallHelperClient.spawn([
    process.execPath,
    privilegedHelperScript,
    ...formatHelperArguments({ backend: backendOptionsOf(config), policy: firewallPolicyOf(config) }),
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
  const frameRejections = new Map<string, number>();
  // Until the start refresh of the CRL is done, knocks that pass the cheap checks wait here: none is judged with an outdated CRL.
  const held = new KnockHold(verifiers, mac1Key, KNOCKS_HELD_AT_START);
  const capture = openCapture({
    interfaces: config.capture.interfaces,
    filter: buildCaptureFilter({ knockPorts: config.capture.knockPorts, minFrameLength: config.capture.minFrameLength }),
    bufferSize: config.capture.bufferBytes,
    onPacket: (linkType, frame) => {
      const decoded = decodeFrame(linkType, frame);
      if (!decoded.ok) {
        frameRejections.set(decoded.reason, (frameRejections.get(decoded.reason) ?? 0) + 1);
        return;
      }
      const datagram = decoded.value;
      // A view of capture's reused buffer: the hold and the pool copy what they keep.
      const { payload } = datagram;
      const knock = { datagram: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), source: datagram.source, frameLength: datagram.originalFrameLength };
      held.submit(knock, Date.now());
    },
    onError: (error) => logger.error('capture-error', { error: error.message }),
  });
  if (!capture.immediateMode) {
    logger.warn('capture-not-immediate', { detail: 'libpcap immediate mode unavailable (is libpcap-dev installed?): knocks may wait up to 1 s' });
  }
  let loggedStats: PoolStats | undefined;
  let warnedRingDrops = 0;
  const logStats = (always: boolean): void => {
    const ring = capture.ringStatistics();
    if (ring !== undefined && ring.dropped > warnedRingDrops) {
      logger.warn('capture-ring-full', {
        dropped: ring.dropped - warnedRingDrops,
        captureBufferMB: config.capture.bufferBytes / MEBIBYTE,
        consequence: 'the kernel dropped these packets, legitimate knocks among them, before the server saw them: raise captureBufferMB if floods are expected',
      });
      warnedRingDrops = ring.dropped;
    }
    const stats = verifiers.stats();
    if (!always && stats.received === loggedStats?.received) return;
    loggedStats = stats;
    logVerifyStats(logger, stats, ring);
  };
  const statsTimer = setInterval(() => logStats(false), VERIFY_STATS_INTERVAL_MS);
  statsTimer.unref();

  dropPrivileges(user);
  // The policy goes in only once everything that can fail at start has succeeded:
  // a failed start must not leave a closed firewall with no knock server behind it.
  await firewall.start();

  const putCrlsInForce = (crls: readonly VerifiedCrl[]): void => {
    const failed = (error: unknown) => logger.error('trust-update-failed', { error: error instanceof Error ? error.message : String(error) });
    try {
      verifiers.updateTrust(createTrustState({ caCertificates, crls, crlPolicy: config.crl.policy })).catch(failed);
    } catch (error) {
      failed(error);
    }
  };
  const crlRefresher = new CrlRefresher({
    sources: crlSourcesOf(config, caCertificates),
    initial: trust.crls,
    logger,
    onUpdate: putCrlsInForce,
    onStatus: (status) => {
      try {
        crlStatus.write(crlStatusRecord(status, config.crl.policy, process.pid, new Date()));
      } catch (error) {
        logger.warn('crl-status-write-failed', { error: error instanceof Error ? error.message : String(error) });
      }
    },
  });
  // Downloads are parsed after the drop: a hostile CRL server only ever meets the unprivileged user.
  await crlRefresher.refresh('start');
  crlRefresher.start(config.crl.refresh);
  const { held: released, dropped, refusedEarly } = held.release();
  if (released + dropped + refusedEarly > 0) {
    const fields = { released, dropped, refusedEarly, detail: `at most ${KNOCKS_HELD_AT_START} knocks wait for the start refresh of the CRL` };
    if (dropped > 0) logger.warn('start-knocks-dropped', fields);
    else logger.info('start-knocks-released', fields);
  }

  async function reload(): Promise<void> {
    logger.info('reloading', { file: config.file });
    try {
      const { config: next, warnings } = rereadServerConfig(config, overrides);
      const plan = planReload(config, next);
      const authorities = await reloadCaCertificates(plan.config, bundle.certificateDer);
      for (const warning of warnings) logger.warn('config-warning', { detail: warning });
      if (authorities.kind === 'kept') logger.info('reload-kept-ca-certificates', { detail: authorities.detail });
      else caCertificates = authorities.caCertificates;
      const scheduleChanged = JSON.stringify(plan.config.crl.refresh) !== JSON.stringify(config.crl.refresh);
      config = plan.config;
      const fromFile = config.crl.file === null ? null : readCrlFile(config.crl.file, caCertificates);
      crlRefresher.reconfigure(crlSourcesOf(config, caCertificates), fromFile?.kind === 'loaded' ? fromFile.crls : []);
      putCrlsInForce(crlRefresher.current());
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
      const ring = capture.ringStatistics();
      capture.close();
      clearInterval(statsTimer);
      await verifiers.close();
      // No knock is decided any more: a compaction still scheduled finds the journal closed and does nothing.
      replay.close();
      logVerifyStats(logger, verifiers.stats(), ring);
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
    crypto: p256Engine.description,
    captureRingDrops: capture.ringStatistics() === undefined ? 'not counted (native/ addon not built: npm run build:native)' : 'counted',
    user: user.name,
    pid: process.pid,
  });
  return { stopped, stop, replaceTrust: (next) => verifiers.updateTrust(next), reload, logStats: () => (stopping === undefined ? logStats(true) : undefined) };
}
