import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { validateDetailed as validateCronExpression } from 'node-cron';
import { SknockError } from '../client-lib/errors.js';
import { formatPortList, isValidPort, parsePortList, type PortRequest } from '../client-lib/protocol/ports.js';
import { ADDRESS_PLACEHOLDER_REQUIRED } from './firewall/command-hooks.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from './log.js';

/**
 * The server's configuration: config.ini (section [DEFAULT], Python
 * configparser syntax like the original sKnock) plus command-line overrides,
 * turned once into a typed, frozen ServerConfig. Every key's default and check
 * live in KEY_SPECS below; the rest of the server never sees ini strings.
 */

export const FIREWALL_MODES = ['none', 'reject', 'drop'] as const;
export type FirewallMode = (typeof FIREWALL_MODES)[number];

export const FIREWALL_BACKENDS = ['nftables', 'iptables', 'command'] as const;
export type FirewallBackendName = (typeof FIREWALL_BACKENDS)[number];

export const CRL_POLICIES = ['warn', 'require'] as const;
export type CrlPolicy = (typeof CRL_POLICIES)[number];

/** Placeholders an openCommand/closeCommand word may contain; substituted per word, never through a shell. */
export const COMMAND_PLACEHOLDERS = ['address', 'protocol', 'port', 'seconds'] as const;

/** An argv template: the program, then its arguments, each possibly holding placeholders. */
export type CommandTemplate = readonly string[];

export const MEBIBYTE = 1024 * 1024;

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

export type CrlRefreshSchedule =
  | { readonly kind: 'interval'; readonly minutes: number; readonly intervalMs: number }
  | { readonly kind: 'cron'; readonly expression: string };

export interface ServerConfig {
  /** Absolute path of the file this was read from. */
  readonly file: string;
  readonly capture: {
    /** Interface names, or just `any`. */
    readonly interfaces: readonly string[];
    /** UDP destination ports a knock may arrive on. */
    readonly knockPorts: PortRange;
    /** KNOCKPACKET_MIN_LENGTH: smallest frame (IP length + 14) looked at. */
    readonly minFrameLength: number;
    /** The kernel capture ring per interface, in bytes: what absorbs a flood while the main thread is busy. */
    readonly bufferBytes: number;
  };
  readonly knocks: {
    /** Accept the original sKnock 1.0.0 packet. */
    readonly legacyKnocks: boolean;
    /** v2 knocks may open for the packet's source address instead of the signed one (clients behind NAT). */
    readonly allowSourceAddressMode: boolean;
    readonly timestampWindowSeconds: number;
    readonly timestampWindowMs: number;
    /** How long a grant stays open unless a v2 knock asks for another duration. */
    readonly grantDurationSeconds: number;
    readonly grantDurationMs: number;
    /** Cap on a duration requested by a v2 knock. */
    readonly maxGrantDurationSeconds: number;
    readonly maxGrantDurationMs: number;
    /** Live replay-cache entries one client certificate may hold: one client cannot fill the cache for all. */
    readonly replayEntriesPerClient: number;
  };
  readonly identity: {
    readonly pfxFile: string;
    readonly pfxPassword: string;
    /** Where the password was read from, or null when it was given inline (PFXPasswd). */
    readonly pfxPasswordFile: string | null;
  };
  readonly crl: {
    /** Null: no CRL configured (only allowed under crlPolicy warn). */
    readonly file: string | null;
    /** Tried in order when refreshing. */
    readonly urls: readonly string[];
    readonly policy: CrlPolicy;
    readonly refresh: CrlRefreshSchedule;
  };
  readonly firewall: {
    readonly backend: FirewallBackendName;
    readonly mode: FirewallMode;
    /** Set exactly when backend is `command`. */
    readonly openCommand: CommandTemplate | null;
    readonly closeCommand: CommandTemplate | null;
    readonly publicPorts: readonly PortRequest[];
    /** TCP port always accepted so a broken setup cannot lock the administrator out; null = off. */
    readonly emergencySshPort: number | null;
  };
  readonly runtime: {
    /** Unprivileged user the daemon drops to once capture is open. */
    readonly user: string;
    readonly replayCacheFile: string;
    /** Verification threads; 0 = one per core. */
    readonly workers: number;
  };
  readonly log: {
    readonly level: LogLevel;
    readonly format: LogFormat;
  };
}

export interface LoadedServerConfig {
  readonly config: ServerConfig;
  /** Ready-to-log lines, each naming the file and the key. */
  readonly warnings: readonly string[];
}

export interface ParseServerConfigOptions {
  /** Shown in every message; also ServerConfig.file (resolved against baseDir). */
  readonly file: string;
  /** Relative paths in the file resolve against this folder. */
  readonly baseDir: string;
  /** KEY → value, winning over the file (command line). */
  readonly overrides?: Readonly<Record<string, string>>;
  /** Relative paths in overrides resolve against this folder (the working directory of the command line). */
  readonly overridesBaseDir?: string;
  readonly readFile?: (file: string) => string;
  readonly fileExists?: (file: string) => boolean;
}

export const DEFAULT_REPLAY_CACHE_FILE = '/var/lib/sknock/replay-cache';
const MAX_GRANT_SECONDS = 86_400;
/** The daemon's replay cache holds 200,000 entries: a quota above this would only be as good as none. */
const MAX_REPLAY_ENTRIES_PER_CLIENT = 100_000;
// Legacy sKnock clients send to a random port in this range.
const LEGACY_CLIENT_PORTS: PortRange = { from: 10_000, to: 60_000 };
const MASKED_PASSWORD = '********';

/** Reads the file and the overrides; throws SknockError('SKNOCK_CONFIG_INVALID') listing every problem. */
export function loadServerConfig(file: string, overrides: Readonly<Record<string, string>> = {}): LoadedServerConfig {
  const absoluteFile = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absoluteFile, 'utf8');
  } catch (error) {
    throw new SknockError('SKNOCK_CONFIG_INVALID', `${absoluteFile}: cannot read the configuration file: ${describeFsError(error)}`, {
      cause: error,
    });
  }
  return parseServerConfig(text, {
    file: absoluteFile,
    baseDir: path.dirname(absoluteFile),
    overrides,
    overridesBaseDir: process.cwd(),
  });
}

export function parseServerConfig(text: string, options: ParseServerConfigOptions): LoadedServerConfig {
  const problems: string[] = [];
  const warnings: string[] = [];
  const ini = parseIni(text);
  for (const problem of ini.problems) problems.push(`${options.file}: ${problem}`);
  const entries = mergeOverrides(ini.entries, options.overrides ?? {});

  const describeOrigin = (entry: ConfigEntry | undefined): string =>
    entry === undefined ? '' : entry.line === null ? ' (from the command line)' : ` (line ${entry.line})`;
  const report = (list: string[], key: string, message: string): void => {
    list.push(`${options.file}: ${key}: ${message}${describeOrigin(entries.get(key))}`);
  };

  for (const entry of entries.values()) {
    if (!isKeyName(entry.key)) report(problems, entry.key, `unknown key${didYouMean(entry.key, KEY_NAMES)}`);
  }
  for (const group of EXCLUSIVE_KEYS) {
    const present = group.filter((key) => entries.has(key));
    if (present.length > 1) report(problems, present[1]!, `set only one of ${present.join(' and ')}`);
  }

  const readFile = options.readFile ?? ((file: string) => readFileSync(file, 'utf8'));
  const fileExists = options.fileExists ?? existsSync;
  const values: Partial<Record<KeyName, unknown>> = {};
  for (const key of KEY_NAMES) {
    const entry = entries.get(key);
    const context: ReadContext = {
      resolvePath: (file) => path.resolve(entry?.line === null ? options.overridesBaseDir ?? options.baseDir : options.baseDir, file),
      readFile,
      fileExists,
      warn: (message) => report(warnings, key, message),
    };
    try {
      values[key] = KEY_SPECS[key].read(entry?.value, context);
    } catch (error) {
      if (!(error instanceof BadValue)) throw error;
      report(problems, key, error.message);
    }
  }
  throwProblems(problems);

  const config = assemble(values as KeyValues, path.resolve(options.baseDir, options.file), {
    problem: (key, message) => report(problems, key, message),
    warn: (key, message) => report(warnings, key, message),
    fileExists,
  });
  throwProblems(problems);
  return { config: deepFreeze(config), warnings };
}

/** The effective configuration as ini lines with the original key names; the password is masked. */
export function describeConfig(config: ServerConfig): string {
  const lines = [`# effective configuration of ${config.file}`, '[DEFAULT]'];
  for (const key of KEY_NAMES) {
    const shown = KEY_SPECS[key].show(config);
    if (shown !== null) lines.push(`${key} = ${shown}`.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}

/** ` (did you mean X?)` for the closest candidate, or '' when none is close. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const normalize = (name: string): string => name.toLowerCase().replace(/[-_\s]/g, '');
  const wanted = normalize(word);
  let best: { name: string; distance: number } | null = null;
  for (const name of candidates) {
    const distance = editDistance(wanted, normalize(name));
    if (best === null || distance < best.distance) best = { name, distance };
  }
  if (best === null || best.distance > Math.max(2, Math.floor(wanted.length / 4))) return '';
  const caseOnly = best.name.toLowerCase() === word.toLowerCase();
  return ` (did you mean ${best.name}?${caseOnly ? ' keys are case-sensitive' : ''})`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

// ---------------------------------------------------------------------------
// Keys: each one's default, check and display, side by side.

interface ReadContext {
  resolvePath(file: string): string;
  readFile(file: string): string;
  fileExists(file: string): boolean;
  warn(message: string): void;
}

/** `text` is undefined when the key is absent; throws BadValue with the reason. */
type Reader<T> = (text: string | undefined, context: ReadContext) => T;
/** Reads a value that is present (possibly empty). */
type ValueReader<T> = (text: string, context: ReadContext) => T;

interface KeySpec<T> {
  readonly read: Reader<T>;
  /** Text for describeConfig; null leaves the key out. */
  readonly show: (config: ServerConfig) => string | null;
}

class BadValue extends Error {}

const KEY_SPECS = {
  // --- keys of the original sKnock ---------------------------------------
  KNOCKPACKET_MIN_LENGTH: {
    read: withDefault('800', integer(1, 65_535)),
    show: (config) => String(config.capture.minFrameLength),
  },
  PORT_OPEN_DURATION_IN_SECONDS: {
    read: withDefault('15', integer(1, MAX_GRANT_SECONDS)),
    show: (config) => String(config.knocks.grantDurationSeconds),
  },
  TIMESTAMP_THRESHOLD_IN_SECONDS: {
    read: withDefault('7', integer(1, 3_600)),
    show: (config) => String(config.knocks.timestampWindowSeconds),
  },
  CRL_UPDATE_INTERVAL_IN_MINUTES: {
    read: withDefault('30', integer(1, 10_080)),
    show: (config) => (config.crl.refresh.kind === 'interval' ? String(config.crl.refresh.minutes) : null),
  },
  SIGNATURE_SIZE: {
    read: noEffect('the signature length is carried in each knock'),
    show: () => null,
  },
  RECV_BUFFER: {
    read: noEffect('frames are captured whole'),
    show: () => null,
  },
  crlFile: {
    // Empty like absent: no CRL (sKnock configs without a CA revocation list).
    read: optional((text, context) => (text === '' ? null : filePath(text, context))),
    show: (config) => config.crl.file ?? '',
  },
  crlUrl: {
    read: withDefault('', urlList),
    show: (config) => config.crl.urls.join(' '),
  },
  serverPFXFile: {
    read: required(existingFile),
    show: (config) => config.identity.pfxFile,
  },
  PFXPasswd: {
    read: optional((text) => text),
    show: (config) => (config.identity.pfxPasswordFile === null ? MASKED_PASSWORD : null),
  },
  firewallPolicy: {
    read: withDefault('none', oneOf(FIREWALL_MODES)),
    show: (config) => config.firewall.mode,
  },
  // --- keys added by this implementation ---------------------------------
  PFXPasswdFile: {
    read: optional(passwordFile),
    show: (config) => config.identity.pfxPasswordFile,
  },
  crlPolicy: {
    read: withDefault('warn', oneOf(CRL_POLICIES)),
    show: (config) => config.crl.policy,
  },
  crlRefreshCron: {
    read: optional(cronExpression),
    show: (config) => (config.crl.refresh.kind === 'cron' ? config.crl.refresh.expression : null),
  },
  interfaces: {
    read: withDefault('any', interfaceList),
    show: (config) => config.capture.interfaces.join(','),
  },
  captureBufferMB: {
    read: withDefault('8', integer(1, 1_024)),
    show: (config) => String(config.capture.bufferBytes / MEBIBYTE),
  },
  knockPorts: {
    read: withDefault(`${LEGACY_CLIENT_PORTS.from}-${LEGACY_CLIENT_PORTS.to}`, portRange),
    show: (config) => formatPortRange(config.capture.knockPorts),
  },
  legacyKnocks: {
    read: withDefault('true', boolean),
    show: (config) => String(config.knocks.legacyKnocks),
  },
  allowSourceAddressMode: {
    read: withDefault('false', boolean),
    show: (config) => String(config.knocks.allowSourceAddressMode),
  },
  maxOpenDurationInSeconds: {
    read: withDefault('3600', integer(1, MAX_GRANT_SECONDS)),
    show: (config) => String(config.knocks.maxGrantDurationSeconds),
  },
  firewallBackend: {
    read: withDefault('nftables', oneOf(FIREWALL_BACKENDS)),
    show: (config) => config.firewall.backend,
  },
  openCommand: {
    read: optional(commandTemplate),
    show: (config) => (config.firewall.openCommand === null ? null : formatCommandTemplate(config.firewall.openCommand)),
  },
  closeCommand: {
    read: optional(commandTemplate),
    show: (config) => (config.firewall.closeCommand === null ? null : formatCommandTemplate(config.firewall.closeCommand)),
  },
  publicPorts: {
    read: withDefault('', portList),
    show: (config) => formatPortList(config.firewall.publicPorts),
  },
  emergencySshPort: {
    read: withDefault('22', portOrOff),
    show: (config) => (config.firewall.emergencySshPort === null ? 'off' : String(config.firewall.emergencySshPort)),
  },
  user: {
    read: withDefault('nobody', userName),
    show: (config) => config.runtime.user,
  },
  replayCacheFile: {
    read: withDefault(DEFAULT_REPLAY_CACHE_FILE, filePath),
    show: (config) => config.runtime.replayCacheFile,
  },
  replayEntriesPerClient: {
    read: withDefault('64', integer(1, MAX_REPLAY_ENTRIES_PER_CLIENT)),
    show: (config) => String(config.knocks.replayEntriesPerClient),
  },
  workers: {
    read: withDefault('0', integer(0, 1_024)),
    show: (config) => String(config.runtime.workers),
  },
  logLevel: {
    read: withDefault('info', oneOf(LOG_LEVELS)),
    show: (config) => config.log.level,
  },
  logFormat: {
    read: withDefault('text', oneOf(LOG_FORMATS)),
    show: (config) => config.log.format,
  },
} satisfies Record<string, KeySpec<unknown>>;

type KeyName = keyof typeof KEY_SPECS;
type KeyValues = { readonly [K in KeyName]: ReturnType<(typeof KEY_SPECS)[K]['read']> };

/** Every key the server reads, in the order of the shipped config.ini. */
export const KEY_NAMES = Object.keys(KEY_SPECS) as readonly KeyName[];

function isKeyName(key: string): key is KeyName {
  return Object.hasOwn(KEY_SPECS, key);
}

/** Pairs that say the same thing two ways; a command-line override of one replaces the file's other. */
const EXCLUSIVE_KEYS: readonly (readonly KeyName[])[] = [
  ['PFXPasswd', 'PFXPasswdFile'],
  ['CRL_UPDATE_INTERVAL_IN_MINUTES', 'crlRefreshCron'],
];

interface AssembleContext {
  problem(key: KeyName, message: string): void;
  warn(key: KeyName, message: string): void;
  fileExists(file: string): boolean;
}

/** Builds the typed config and applies the checks that involve more than one key. */
function assemble(values: KeyValues, file: string, context: AssembleContext): ServerConfig {
  if (values.maxOpenDurationInSeconds < values.PORT_OPEN_DURATION_IN_SECONDS) {
    context.problem(
      'maxOpenDurationInSeconds',
      `${values.maxOpenDurationInSeconds} is less than PORT_OPEN_DURATION_IN_SECONDS (${values.PORT_OPEN_DURATION_IN_SECONDS})`,
    );
  }

  const password = values.PFXPasswdFile?.password ?? values.PFXPasswd;
  if (password === null) context.problem('PFXPasswd', 'no password for serverPFXFile: set PFXPasswd or PFXPasswdFile');

  if (values.crlFile === null) {
    if (values.crlPolicy === 'require') context.problem('crlFile', 'required when crlPolicy = require');
    else context.warn('crlFile', 'not set: client certificates are not checked for revocation');
  } else if (!context.fileExists(values.crlFile) && values.crlUrl.length === 0) {
    const message = `${values.crlFile} does not exist and no crlUrl is set to fetch it`;
    // Not a refusal to start: the file may be published later (SIGHUP reloads it).
    if (values.crlPolicy === 'require') context.warn('crlFile', `${message}: crlPolicy = require refuses every knock until a valid CRL is in force`);
    else context.warn('crlFile', `${message}: revocation is not checked until it appears`);
  }

  if (values.firewallBackend === 'command') {
    if (values.openCommand === null) context.problem('openCommand', 'required when firewallBackend = command');
    if (values.closeCommand === null) context.problem('closeCommand', 'required when firewallBackend = command');
    if (values.firewallPolicy !== 'none') {
      context.warn('firewallPolicy', `${values.firewallPolicy} is not applied by firewallBackend = command: your own firewall must close the ports`);
    }
  } else {
    if (values.openCommand !== null) context.warn('openCommand', `ignored: firewallBackend is ${values.firewallBackend}`);
    if (values.closeCommand !== null) context.warn('closeCommand', `ignored: firewallBackend is ${values.firewallBackend}`);
  }

  if (values.legacyKnocks && (values.knockPorts.from > LEGACY_CLIENT_PORTS.from || values.knockPorts.to < LEGACY_CLIENT_PORTS.to)) {
    context.warn(
      'knockPorts',
      `${formatPortRange(values.knockPorts)} does not cover ${formatPortRange(LEGACY_CLIENT_PORTS)}, where legacy sKnock clients send: some of their knocks will be missed`,
    );
  }

  const refresh: CrlRefreshSchedule =
    values.crlRefreshCron === null
      ? {
          kind: 'interval',
          minutes: values.CRL_UPDATE_INTERVAL_IN_MINUTES,
          intervalMs: values.CRL_UPDATE_INTERVAL_IN_MINUTES * 60_000,
        }
      : { kind: 'cron', expression: values.crlRefreshCron };

  const useCommands = values.firewallBackend === 'command';
  return {
    file,
    capture: {
      interfaces: values.interfaces,
      knockPorts: values.knockPorts,
      minFrameLength: values.KNOCKPACKET_MIN_LENGTH,
      bufferBytes: values.captureBufferMB * MEBIBYTE,
    },
    knocks: {
      legacyKnocks: values.legacyKnocks,
      allowSourceAddressMode: values.allowSourceAddressMode,
      timestampWindowSeconds: values.TIMESTAMP_THRESHOLD_IN_SECONDS,
      timestampWindowMs: values.TIMESTAMP_THRESHOLD_IN_SECONDS * 1000,
      grantDurationSeconds: values.PORT_OPEN_DURATION_IN_SECONDS,
      grantDurationMs: values.PORT_OPEN_DURATION_IN_SECONDS * 1000,
      maxGrantDurationSeconds: values.maxOpenDurationInSeconds,
      maxGrantDurationMs: values.maxOpenDurationInSeconds * 1000,
      replayEntriesPerClient: values.replayEntriesPerClient,
    },
    identity: {
      pfxFile: values.serverPFXFile,
      pfxPassword: password ?? '',
      pfxPasswordFile: values.PFXPasswdFile?.file ?? null,
    },
    crl: { file: values.crlFile, urls: values.crlUrl, policy: values.crlPolicy, refresh },
    firewall: {
      backend: values.firewallBackend,
      mode: values.firewallPolicy,
      openCommand: useCommands ? values.openCommand : null,
      closeCommand: useCommands ? values.closeCommand : null,
      publicPorts: values.publicPorts,
      emergencySshPort: values.emergencySshPort,
    },
    runtime: { user: values.user, replayCacheFile: values.replayCacheFile, workers: values.workers },
    log: { level: values.logLevel, format: values.logFormat },
  };
}

// ---------------------------------------------------------------------------
// Readers: one per kind of value. Each throws BadValue with what was expected.

function withDefault<T>(fallback: string, read: ValueReader<T>): Reader<T> {
  return (text, context) => read(text ?? fallback, context);
}

function optional<T>(read: ValueReader<T>): Reader<T | null> {
  return (text, context) => (text === undefined ? null : read(text, context));
}

function required<T>(read: ValueReader<T>): Reader<T> {
  return (text, context) => {
    if (text === undefined) throw new BadValue('required but not set');
    return read(text, context);
  };
}

function nonEmpty(text: string, expected: string): string {
  if (text === '') throw new BadValue(`empty value; expected ${expected} (remove the line to use the default)`);
  return text;
}

/** configparser keeps inline comments as part of the value: say so when that is the likely mistake. */
function commentHint(text: string): string {
  return /\s[#;]/.test(text) ? ' (comments must be on lines of their own)' : '';
}

function integer(min: number, max: number): ValueReader<number> {
  return (text) => {
    const expected = `an integer from ${min} to ${max}`;
    const value = nonEmpty(text, expected);
    const number = /^\+?\d{1,10}$/.test(value) ? Number(value) : NaN;
    if (!Number.isInteger(number) || number < min || number > max) {
      throw new BadValue(`expected ${expected}, got "${value}"${commentHint(value)}`);
    }
    return number;
  };
}

function oneOf<const Choice extends string>(choices: readonly Choice[]): ValueReader<Choice> {
  return (text) => {
    const expected = `one of ${choices.join(', ')}`;
    const value = nonEmpty(text, expected);
    const choice = choices.find((candidate) => candidate === value.toLowerCase());
    if (choice === undefined) throw new BadValue(`expected ${expected}, got "${value}"${didYouMean(value, choices)}${commentHint(value)}`);
    return choice;
  };
}

const BOOLEAN_WORDS: Readonly<Record<string, boolean>> = { true: true, yes: true, on: true, 1: true, false: false, no: false, off: false, 0: false };

function boolean(text: string): boolean {
  const expected = 'true/false, yes/no, on/off or 1/0';
  const value = nonEmpty(text, expected);
  const parsed = BOOLEAN_WORDS[value.toLowerCase()];
  if (parsed === undefined) throw new BadValue(`expected ${expected}, got "${value}"${commentHint(value)}`);
  return parsed;
}

function noEffect(why: string): Reader<null> {
  return (text, context) => {
    if (text !== undefined) context.warn(`accepted for compatibility with sKnock but has no effect (${why}); it can be removed`);
    return null;
  };
}

function filePath(text: string, context: ReadContext): string {
  return context.resolvePath(nonEmpty(text, 'a file path'));
}

function existingFile(text: string, context: ReadContext): string {
  const file = filePath(text, context);
  if (!context.fileExists(file)) throw new BadValue(`${file} does not exist`);
  return file;
}

function passwordFile(text: string, context: ReadContext): { readonly file: string; readonly password: string } {
  const file = filePath(text, context);
  let content: string;
  try {
    content = context.readFile(file);
  } catch (error) {
    throw new BadValue(`cannot read the password file ${file}: ${describeFsError(error)}`);
  }
  // Editors add a final newline; the password itself is everything before it.
  return { file, password: content.replace(/\r?\n$/, '') };
}

function urlList(text: string): readonly string[] {
  const urls = text.split(/[\s,]+/).filter((item) => item !== '');
  for (const url of urls) {
    let protocol: string;
    try {
      protocol = new URL(url).protocol;
    } catch {
      throw new BadValue(`"${url}" is not a URL`);
    }
    if (protocol !== 'http:' && protocol !== 'https:') throw new BadValue(`"${url}": only http and https URLs can be fetched`);
  }
  return urls;
}

function cronExpression(text: string): string {
  const expression = nonEmpty(text, 'a cron expression').trim().replace(/\s+/g, ' ');
  const fields = expression.split(' ').length;
  if (fields !== 5 && fields !== 6) {
    throw new BadValue(`expected a cron expression of 5 fields (minute hour day month weekday) or 6 (seconds first), got ${fields}: "${expression}"`);
  }
  const validation = validateCronExpression(expression);
  if (!validation.valid) {
    throw new BadValue(`invalid cron expression "${expression}": ${validation.errors.map((error) => error.message).join('; ')}`);
  }
  return expression;
}

function interfaceList(text: string): readonly string[] {
  const names = [...new Set(text.split(',').map((name) => name.trim()))];
  if (names.includes('')) throw new BadValue(`"${text}": empty interface name (expected e.g. eth0,eth1 or any)`);
  for (const name of names) {
    // Linux interface names: at most 15 bytes, no slash or whitespace.
    if (!/^[^\s/,]{1,15}$/.test(name)) throw new BadValue(`"${name}" is not an interface name`);
  }
  if (names.includes('any') && names.length > 1) throw new BadValue(`"any" already captures on every interface: list it alone`);
  return names;
}

function portRange(text: string): PortRange {
  const value = nonEmpty(text, 'a port or a range such as 10000-60000');
  const match = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(value);
  const from = match ? Number(match[1]) : NaN;
  const to = match ? Number(match[2] ?? match[1]) : NaN;
  if (!isValidPort(from) || !isValidPort(to) || from > to) {
    throw new BadValue(`expected a port or a range such as 10000-60000 with ports 1-65535, low to high, got "${value}"`);
  }
  return { from, to };
}

function formatPortRange(range: PortRange): string {
  return range.from === range.to ? String(range.from) : `${range.from}-${range.to}`;
}

function portList(text: string): readonly PortRequest[] {
  if (text.trim() === '') return [];
  try {
    return parsePortList(text);
  } catch (error) {
    throw new BadValue(error instanceof Error ? error.message : String(error));
  }
}

function portOrOff(text: string): number | null {
  const value = nonEmpty(text, 'a TCP port or off');
  if (value.toLowerCase() === 'off') return null;
  const port = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!isValidPort(port)) throw new BadValue(`expected a TCP port 1-65535 or off, got "${value}"${commentHint(value)}`);
  return port;
}

function userName(text: string): string {
  const value = nonEmpty(text, 'a user name');
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(value)) throw new BadValue(`"${value}" is not a user name`);
  // Packets from the network are parsed by this user: root would defeat the privilege drop.
  if (value === 'root') throw new BadValue('must not be root: the process that parses packets runs as this user');
  return value;
}

/** Splits into words like a shell would (spaces, '…', "…", backslash), without running one. */
function commandTemplate(text: string, context: ReadContext): CommandTemplate {
  const words = splitWords(nonEmpty(text, 'a command, e.g. /usr/local/sbin/open-port {address} {protocol} {port}'));
  for (const word of words) {
    for (const [, name] of word.matchAll(/\{([^}]*)\}/g)) {
      if (!(COMMAND_PLACEHOLDERS as readonly string[]).includes(name!)) {
        throw new BadValue(`unknown placeholder {${name}}: use ${COMMAND_PLACEHOLDERS.map((placeholder) => `{${placeholder}}`).join(' ')}`);
      }
    }
  }
  if (!words.some((word) => word.includes('{address}'))) throw new BadValue(ADDRESS_PLACEHOLDER_REQUIRED);
  const [program, ...args] = words as [string, ...string[]];
  if (program.includes('{')) throw new BadValue('the program itself cannot be a placeholder');
  return [program.includes('/') ? context.resolvePath(program) : program, ...args];
}

function splitWords(text: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: "'" | '"' | null = null;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index]!;
    if (quote === "'") {
      if (char === "'") quote = null;
      else word += char;
    } else if (char === '\\') {
      index += 1;
      if (index >= text.length) throw new BadValue('ends with a lone backslash');
      word = (word ?? '') + text[index];
    } else if (quote === '"') {
      if (char === '"') quote = null;
      else word += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      word ??= '';
    } else if (/\s/.test(char)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? '') + char;
    }
  }
  if (quote !== null) throw new BadValue(`unterminated ${quote} quote`);
  if (word !== null) words.push(word);
  if (words.length === 0) throw new BadValue('empty command');
  return words;
}

function formatCommandTemplate(template: CommandTemplate): string {
  return template.map((word) => (/^[^\s'"\\]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)).join(' ');
}

// ---------------------------------------------------------------------------
// The ini text: Python configparser rules as the original used them.

interface ConfigEntry {
  readonly key: string;
  readonly value: string;
  /** Line in the file, or null for a command-line override. */
  readonly line: number | null;
}

/**
 * `key = value` or `key: value` under [DEFAULT]; whole-line `#`/`;` comments;
 * a line indented deeper than its key continues the value; keys are kept as
 * written; inline comments are part of the value (as in configparser).
 */
function parseIni(text: string): { entries: ConfigEntry[]; problems: string[] } {
  const entries: ConfigEntry[] = [];
  const problems: string[] = [];
  let inDefault = false;
  let sawDefault = false;
  let current: { key: string; value: string; line: number; indent: number } | null = null;
  const finish = (): void => {
    if (current === null) return;
    const earlier = entries.find((entry) => entry.key === current!.key);
    if (earlier) problems.push(`${current.key}: set twice (lines ${earlier.line} and ${current.line})`);
    else entries.push({ key: current.key, value: current.value.trim(), line: current.line });
    current = null;
  };

  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNumber = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '') {
      finish();
      return;
    }
    if (trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    const indent = raw.length - raw.trimStart().length;
    if (current !== null && indent > current.indent) {
      current.value += `\n${trimmed}`;
      return;
    }
    finish();
    const section = /^\[(.*)\]$/.exec(trimmed);
    if (section) {
      if (section[1] !== 'DEFAULT') problems.push(`line ${lineNumber}: section [${section[1]}] is not read: all keys belong in [DEFAULT]`);
      else if (sawDefault) problems.push(`line ${lineNumber}: section [DEFAULT] appears twice`);
      inDefault = section[1] === 'DEFAULT';
      sawDefault ||= inDefault;
      return;
    }
    const assignment = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(trimmed);
    if (!assignment) {
      problems.push(`line ${lineNumber}: expected "key = value", got "${trimmed.slice(0, 60)}"`);
      return;
    }
    if (!inDefault) {
      if (!sawDefault) problems.push(`line ${lineNumber}: "${assignment[1]}" comes before the [DEFAULT] section header`);
      return;
    }
    current = { key: assignment[1]!, value: assignment[2]!, line: lineNumber, indent };
  });
  finish();
  return { entries, problems };
}

function mergeOverrides(fileEntries: readonly ConfigEntry[], overrides: Readonly<Record<string, string>>): Map<string, ConfigEntry> {
  const merged = new Map(fileEntries.map((entry) => [entry.key, entry]));
  for (const [key, value] of Object.entries(overrides)) {
    const group = EXCLUSIVE_KEYS.find((keys) => (keys as readonly string[]).includes(key));
    for (const other of group ?? []) {
      if (other !== key && merged.get(other)?.line !== null) merged.delete(other);
    }
    merged.set(key, { key, value: value.trim(), line: null });
  }
  return merged;
}

function throwProblems(problems: readonly string[]): void {
  if (problems.length > 0) throw new SknockError('SKNOCK_CONFIG_INVALID', problems.join('\n'));
}

function describeFsError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  return error instanceof Error ? error.message : String(error);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
