#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=10
/** sknock-server: run the daemon, check a configuration, or show the CRL state. */
import { SknockError } from '../client-lib/errors.js';
import { isEntryPoint } from '../client-lib/entry-point.js';
import { caCertificatesOf } from '../client-lib/pkcs12-bundle.js';
import { createServerContext } from '../client-lib/protocol/index.js';
import { SERVER_USAGE, parseServerArgs } from './cli-args.js';
import { describeConfig, loadServerConfig, type ServerConfig } from './config.js';
import { readCrlFile, type CrlFileState } from './crl-file.js';
import { crlStatusFileFor, formatCrlStatus, readCrlStatus } from './crl-status.js';
import { startServer, type RunningServer } from './daemon.js';
import { createLogger } from './log.js';
import { loadPkcs12FileOffThread } from './pkcs12-off-thread.js';
import { lookupUser } from './privileges.js';

interface Output {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** Loads what the daemon would load at start, so check-config finds what start would trip on. */
async function checkTrustMaterial(config: ServerConfig): Promise<string[]> {
  const bundle = await loadPkcs12FileOffThread(config.identity.pfxFile, config.identity.pfxPassword);
  const authorities = caCertificatesOf(bundle, config.identity.pfxFile);
  createServerContext(bundle.privateKey, bundle.certificateDer);
  lookupUser(config.runtime.user);
  const notes = [
    `server certificate: ${bundle.certificate.subject.replace(/\n/g, ', ')} (expires ${new Date(bundle.certificate.validTo).toISOString()})`,
    ...authorities.map((authority) => `trusted CA: ${authority.subject.replace(/\n/g, ', ')}`),
  ];
  return notes;
}

/** The CRL file as this command reads it, and the running daemon's CRL in force and last refresh. */
async function crlReport(config: ServerConfig): Promise<string> {
  let fileState: CrlFileState | null = null;
  if (config.crl.file !== null) {
    const bundle = await loadPkcs12FileOffThread(config.identity.pfxFile, config.identity.pfxPassword);
    const caCertificates = caCertificatesOf(bundle, config.identity.pfxFile).map((certificate) => certificate.raw);
    fileState = readCrlFile(config.crl.file, caCertificates);
  }
  return formatCrlStatus(config, fileState, await readCrlStatus(crlStatusFileFor(config)), Date.now());
}

function waitForSignals(server: RunningServer): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => void server.stop(signal));
  }
}

export async function runSknockServer(argv: readonly string[], output: Output): Promise<number> {
  try {
    const args = parseServerArgs(argv);
    if (args.command === 'help') {
      output.stdout(SERVER_USAGE);
      return 0;
    }
    const { config, warnings } = loadServerConfig(args.configFile, args.overrides);
    if (args.command === 'check-config') {
      const notes = await checkTrustMaterial(config);
      output.stdout(`${describeConfig(config)}\n`);
      for (const warning of warnings) output.stderr(`warning: ${warning}\n`);
      output.stdout(`${notes.map((note) => `# ${note}`).join('\n')}\n# configuration OK (${args.configFile})\n`);
      return 0;
    }
    if (args.command === 'crl-status') {
      output.stdout(`${await crlReport(config)}\n`);
      return 0;
    }
    const logger = createLogger({ level: config.log.level, format: config.log.format });
    for (const warning of warnings) logger.warn('config-warning', { detail: warning });
    // Registered before the start: SIGHUP's default action would end the process.
    let server: RunningServer | undefined;
    process.on('SIGHUP', () => (server === undefined ? logger.info('sighup-during-start', { detail: 'the start loads everything anyway' }) : void server.reload()));
    // Likewise for SIGUSR2 (stats on demand), whose default action ends the process too.
    process.on('SIGUSR2', () => server?.logStats());
    server = await startServer(config, logger, args.overrides);
    waitForSignals(server);
    await server.stopped;
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    output.stderr(`sknock-server: ${message}\n`);
    return error instanceof SknockError ? 2 : 1;
  }
}

if (isEntryPoint(import.meta.url)) {
  const status = await runSknockServer(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  });
  // Capture handles and timers would keep the process alive after a stop.
  process.exit(status);
}
