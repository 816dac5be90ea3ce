/**
 * SIGHUP: the configuration and trust material are read again and checked
 * completely before anything running is replaced. The CRL settings, the CRL
 * file and the CA certificates (if the bundle is still readable) are
 * applied; every other changed key keeps its old value and is named in the
 * log as needing a restart.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SknockError } from '../client-lib/errors.js';
import { caCertificatesOf } from '../client-lib/pkcs12-bundle.js';
import { describeConfig, parseServerConfig, type LoadedServerConfig, type ServerConfig } from './config.js';
import { loadPkcs12FileOffThread } from './pkcs12-off-thread.js';

/**
 * Keys a running daemon applies on SIGHUP; every other changed key waits for
 * a restart (the knock settings and the server key live in the verifier
 * threads, set up at start).
 */
export const LIVE_KEYS: ReadonlySet<string> = new Set(['crlFile', 'crlUrl', 'crlPolicy', 'CRL_UPDATE_INTERVAL_IN_MINUTES', 'crlRefreshCron']);

function keyValues(config: ServerConfig): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of describeConfig(config).split('\n')) {
    const match = /^(\S+) = ?(.*)$/.exec(line);
    if (match) values.set(match[1]!, match[2]!);
  }
  return values;
}

/** Keys whose effective value differs (the masked inline password is compared by value). */
export function changedKeys(running: ServerConfig, next: ServerConfig): string[] {
  const before = keyValues(running);
  const after = keyValues(next);
  const changed = [...new Set([...before.keys(), ...after.keys()])].filter((key) => before.get(key) !== after.get(key));
  if (running.identity.pfxPassword !== next.identity.pfxPassword && !changed.includes('PFXPasswdFile')) changed.push('PFXPasswd');
  return changed;
}

export interface ReloadPlan {
  /** The configuration to run with: the running one with the live keys of the new one. */
  readonly config: ServerConfig;
  readonly applied: readonly string[];
  readonly needsRestart: readonly string[];
}

export function planReload(running: ServerConfig, next: ServerConfig): ReloadPlan {
  const changed = changedKeys(running, next);
  return {
    config: { ...running, crl: next.crl },
    applied: changed.filter((key) => LIVE_KEYS.has(key)),
    needsRestart: changed.filter((key) => !LIVE_KEYS.has(key)),
  };
}

/**
 * Reads the configuration again as the running (unprivileged) process. The
 * bundle in use counts as present and a password file it may no longer read
 * as holding the password read at start. Throws SknockError('SKNOCK_CONFIG_INVALID') like loadServerConfig.
 */
export function rereadServerConfig(running: ServerConfig, overrides: Readonly<Record<string, string>>): LoadedServerConfig {
  let text: string;
  try {
    text = readFileSync(running.file, 'utf8');
  } catch (error) {
    throw new SknockError('SKNOCK_CONFIG_INVALID', `${running.file}: cannot read the configuration file: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  return parseServerConfig(text, {
    file: running.file,
    baseDir: path.dirname(running.file),
    overrides,
    overridesBaseDir: process.cwd(),
    // The bundle was loaded at start; a folder the dropped user cannot enter must not make it "missing".
    fileExists: (file) => file === running.identity.pfxFile || existsSync(file),
    readFile: (file) => {
      try {
        return readFileSync(file, 'utf8');
      } catch (error) {
        if (file === running.identity.pfxPasswordFile && (error as NodeJS.ErrnoException).code === 'EACCES') return running.identity.pfxPassword;
        throw error;
      }
    },
  });
}

export type CaReload = { readonly kind: 'reloaded'; readonly caCertificates: readonly Buffer[] } | { readonly kind: 'kept'; readonly detail: string };

/**
 * The CA certificates from the bundle again, when this process can read it.
 * After the privilege drop it usually cannot (0600 root): then the ones read
 * at start stay. A bundle that now holds another server certificate is not
 * half-applied: its key is in use by the verifiers until a restart.
 */
export async function reloadCaCertificates(config: ServerConfig, serverCertificateDer: Buffer): Promise<CaReload> {
  const file = config.identity.pfxFile;
  try {
    accessSync(file, constants.R_OK);
  } catch {
    return { kind: 'kept', detail: `${file} is not readable after the privilege drop: the CA certificates read at start stay in use (restart to reload them)` };
  }
  const bundle = await loadPkcs12FileOffThread(file, config.identity.pfxPassword);
  if (!bundle.certificateDer.equals(serverCertificateDer)) {
    throw new SknockError('SKNOCK_RELOAD_NEEDS_RESTART', `${file} now holds another server certificate: restart sknock-server to use it`);
  }
  return { kind: 'reloaded', caCertificates: caCertificatesOf(bundle, file).map((certificate) => certificate.raw) };
}
