import { formatPortList, type PortRequest } from '../client-lib/protocol/ports.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Readonly<Record<string, unknown>>;

/** One knock decision, logged as one line (event `knock`). */
export interface KnockDecision {
  /** Source address of the packet, canonical text. */
  readonly source: string;
  /** Certificate subject, when the knock got as far as a parsed certificate. */
  readonly subject?: string | undefined;
  /** Certificate serial number in hex. */
  readonly serial?: string | undefined;
  readonly ports: readonly PortRequest[];
  readonly verdict: 'granted' | 'rejected';
  /** Stable reason code of a rejection (e.g. `replay`, `revoked`). */
  readonly reason?: string | undefined;
  /** Knock format, e.g. `legacy` or `v2`. */
  readonly format?: string | undefined;
}

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** Granted knocks log at info, rejected ones at warn (so floods of them are summarised). */
  decision(decision: KnockDecision): void;
  /** Lets a caller skip building expensive fields for a level that is filtered out. */
  enabled(level: LogLevel): boolean;
  /** Writes the summaries of repeats still held back (call at shutdown or periodically). */
  flush(): void;
}

/** Anything with `write(string)`: process.stderr, a file stream, a test collector. */
export interface LogSink {
  write(line: string): unknown;
}

export interface RepeatLimit {
  /** Identical warn/error lines are counted per window of this length... */
  readonly windowMs: number;
  /** ...and only this many of them are written per window; the rest become one summary line. */
  readonly linesPerWindow: number;
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  readonly format?: LogFormat;
  readonly sink?: LogSink;
  readonly now?: () => number;
  /** `false` writes every line. */
  readonly repeatLimit?: RepeatLimit | false;
}

export const DEFAULT_REPEAT_LIMIT: RepeatLimit = { windowMs: 60_000, linesPerWindow: 3 };

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const RESERVED_NAMES = new Set(['time', 'level', 'event']);
const REDACTED = '[redacted]';
const MAX_DEPTH = 6;
// Bounds the limiter's memory when every line differs (e.g. a flood from spoofed sources).
const MAX_TRACKED_REPEATS = 1024;

/** Field names that may carry secrets: their values are never written. */
export function isSecretFieldName(name: string): boolean {
  return /pass|secret|token|credential|private|^key|key$|keys$/i.test(name);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = LEVEL_RANK[options.level ?? 'info'];
  const format = options.format ?? 'text';
  const sink = options.sink ?? process.stderr;
  const now = options.now ?? Date.now;
  const repeats = options.repeatLimit === false ? null : new RepeatLimiter(options.repeatLimit ?? DEFAULT_REPEAT_LIMIT);

  function write(timeMs: number, level: LogLevel, event: string, fields: Record<string, unknown>): void {
    const line = format === 'json' ? jsonLine(timeMs, level, event, fields) : textLine(timeMs, level, event, fields);
    try {
      sink.write(line);
    } catch {
      // A broken log stream must never take the daemon down.
    }
  }

  function writeSummaries(windows: readonly HeldBackRepeats[]): void {
    for (const held of windows) {
      write(held.lastMs, held.level, 'repeats-suppressed', {
        ...held.fields,
        repeatedEvent: held.event,
        suppressed: held.suppressed,
        windowSeconds: held.windowSeconds,
      });
    }
  }

  function log(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (LEVEL_RANK[level] < threshold) return;
    const timeMs = now();
    const safeFields = normalizeFields(fields);
    if (repeats !== null) {
      writeSummaries(repeats.expire(timeMs));
      if (LEVEL_RANK[level] >= LEVEL_RANK.warn && !repeats.admit(timeMs, level, event, safeFields)) return;
    }
    write(timeMs, level, event, safeFields);
  }

  return {
    debug: (event, fields) => log('debug', event, fields),
    info: (event, fields) => log('info', event, fields),
    warn: (event, fields) => log('warn', event, fields),
    error: (event, fields) => log('error', event, fields),
    decision: (decision) =>
      log(decision.verdict === 'granted' ? 'info' : 'warn', 'knock', {
        verdict: decision.verdict,
        reason: decision.reason,
        source: decision.source,
        subject: decision.subject,
        serial: decision.serial,
        ports: formatPortList(decision.ports),
        format: decision.format,
      }),
    enabled: (level) => LEVEL_RANK[level] >= threshold,
    flush: () => {
      if (repeats !== null) writeSummaries(repeats.drain());
    },
  };
}

interface HeldBackRepeats {
  readonly level: LogLevel;
  readonly event: string;
  readonly fields: Record<string, unknown>;
  readonly windowSeconds: number;
  readonly startMs: number;
  lastMs: number;
  written: number;
  suppressed: number;
}

/** Counts identical lines per fixed window; no timers: windows close when time is next seen. */
class RepeatLimiter {
  // Insertion order = window start order, so expired windows are always at the front.
  private readonly windows = new Map<string, HeldBackRepeats>();

  constructor(private readonly limit: RepeatLimit) {}

  admit(timeMs: number, level: LogLevel, event: string, fields: Record<string, unknown>): boolean {
    const signature = JSON.stringify([level, event, fields]);
    const open = this.windows.get(signature);
    if (open !== undefined) {
      open.lastMs = timeMs;
      if (open.written < this.limit.linesPerWindow) {
        open.written += 1;
        return true;
      }
      open.suppressed += 1;
      return false;
    }
    this.windows.set(signature, {
      level,
      event,
      fields,
      windowSeconds: this.limit.windowMs / 1000,
      startMs: timeMs,
      lastMs: timeMs,
      written: 1,
      suppressed: 0,
    });
    return true;
  }

  /** Closes the windows that ended by `timeMs` (and the oldest ones beyond the bound); returns those that held lines back. */
  expire(timeMs: number): HeldBackRepeats[] {
    const closed: HeldBackRepeats[] = [];
    for (const [signature, held] of this.windows) {
      const overBound = this.windows.size > MAX_TRACKED_REPEATS;
      if (!overBound && timeMs - held.startMs < this.limit.windowMs) break;
      this.windows.delete(signature);
      if (held.suppressed > 0) closed.push(held);
    }
    return closed;
  }

  drain(): HeldBackRepeats[] {
    const held = [...this.windows.values()].filter((window) => window.suppressed > 0);
    this.windows.clear();
    return held;
  }
}

function normalizeFields(fields: LogFields): Record<string, unknown> {
  const normalized: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    // Fields may not overwrite the line's own time, level and event.
    const safeName = RESERVED_NAMES.has(name) ? `_${name}` : name;
    normalized[safeName] = normalizeValue(name, value, 0, new WeakSet());
  }
  return normalized;
}

/** Plain JSON-able data with secrets redacted, bytes summarised and cycles cut. */
function normalizeValue(name: string, value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (isSecretFieldName(name)) return REDACTED;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object') return String(value);
  // Raw bytes may be key material or attacker payload: only their size is logged.
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (depth >= MAX_DEPTH || seen.has(value)) return '[…]';
  seen.add(value);
  if (value instanceof Error) return normalizeError(value, depth, seen);
  if (Array.isArray(value)) return value.map((item) => normalizeValue('', item, depth + 1, seen));
  const normalized: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) normalized[key] = normalizeValue(key, item, depth + 1, seen);
  }
  return normalized;
}

function normalizeError(error: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const normalized: Record<string, unknown> = { name: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') normalized.code = code;
  if (error.cause !== undefined) normalized.cause = normalizeValue('cause', error.cause, depth + 1, seen);
  return normalized;
}

function jsonLine(timeMs: number, level: LogLevel, event: string, fields: Record<string, unknown>): string {
  return `${JSON.stringify({ time: new Date(timeMs).toISOString(), level, event, ...fields })}\n`;
}

function textLine(timeMs: number, level: LogLevel, event: string, fields: Record<string, unknown>): string {
  const parts = [new Date(timeMs).toISOString(), level.toUpperCase().padEnd(5), textValue(event)];
  for (const [name, value] of Object.entries(fields)) parts.push(`${name}=${textValue(value)}`);
  return `${parts.join(' ')}\n`;
}

/** Bare when unambiguous, else JSON-quoted: a value can never start a new line or fake a field. */
function textValue(value: unknown): string {
  if (typeof value === 'string') return /^[\x21-\x7e]+$/.test(value) && !/["=]/.test(value) ? value : JSON.stringify(value);
  if (Array.isArray(value) && value.every((item) => typeof item !== 'object' || item === null)) {
    return textValue(value.map((item) => String(item)).join(','));
  }
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}
