import { describe, expect, it } from 'vitest';
import { SknockError } from '../../client-lib/errors.js';
import { createLogger, isSecretFieldName, type LoggerOptions } from '../../server/log.js';

const START_MS = Date.parse('2026-01-01T00:00:00.000Z');

/** A logger writing into an array, with a clock the test moves. */
function capture(options: LoggerOptions = {}) {
  const lines: string[] = [];
  const clock = { nowMs: START_MS };
  const logger = createLogger({ sink: { write: (line: string) => lines.push(line) }, now: () => clock.nowMs, ...options });
  return { logger, lines, clock, json: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('text lines', () => {
  it('writes time, level, event and key=value fields, one line per event', () => {
    const { logger, lines } = capture();
    logger.info('crl-loaded', { file: '/etc/sknock/crl.der', revoked: 3, fresh: true, nextUpdate: new Date(START_MS + 3_600_000) });
    expect(lines).toEqual([
      '2026-01-01T00:00:00.000Z INFO  crl-loaded file=/etc/sknock/crl.der revoked=3 fresh=true nextUpdate=2026-01-01T01:00:00.000Z\n',
    ]);
  });

  it('quotes values that hold spaces, quotes, equals signs or line breaks so they cannot fake a line or a field', () => {
    const { logger, lines } = capture();
    logger.warn('odd', { subject: 'CN=alice, O=x', detail: 'a\nFAKE 2026 INFO granted', empty: '' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      '2026-01-01T00:00:00.000Z WARN  odd subject="CN=alice, O=x" detail="a\\nFAKE 2026 INFO granted" empty=""\n',
    );
  });

  it('writes lists joined by commas, objects as JSON, errors with their code and cause', () => {
    const { logger, lines } = capture();
    const error = new SknockError('SKNOCK_CONFIG_INVALID', 'bad', { cause: new Error('root cause') });
    logger.error('failed', { interfaces: ['eth0', 'eth1'], limits: { max: 2 }, error });
    expect(lines[0]).toBe(
      '2026-01-01T00:00:00.000Z ERROR failed interfaces=eth0,eth1 limits={"max":2} ' +
        'error={"name":"SknockError","message":"bad","code":"SKNOCK_CONFIG_INVALID","cause":{"name":"Error","message":"root cause"}}\n',
    );
  });
});

describe('JSON lines', () => {
  it('writes one object per line with time, level, event and the fields', () => {
    const { logger, lines, json } = capture({ format: 'json' });
    logger.info('started', { interfaces: ['any'], workers: 2, serial: 10n });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('}\n')).toBe(true);
    expect(json()).toEqual([{ time: '2026-01-01T00:00:00.000Z', level: 'info', event: 'started', interfaces: ['any'], workers: 2, serial: '10' }]);
  });

  it('keeps fields from overwriting time, level and event', () => {
    const { logger, json } = capture({ format: 'json' });
    logger.info('real', { level: 'error', event: 'fake', time: 'then' });
    expect(json()[0]).toEqual({ time: '2026-01-01T00:00:00.000Z', level: 'info', event: 'real', _level: 'error', _event: 'fake', _time: 'then' });
  });
});

describe('redaction', () => {
  it('never writes passwords, keys or raw bytes', () => {
    const { logger, lines } = capture({ format: 'json' });
    logger.info('loaded', {
      PFXPasswd: 'portknocking',
      password: 'hunter2',
      privateKey: 'PEM...',
      key: 'k',
      nested: { sharedSecret: 's3', apiToken: 't', keep: 'visible' },
      payload: Buffer.from('secret key material'),
    });
    const line = lines.join('');
    for (const secret of ['portknocking', 'hunter2', 'PEM...', '"k"', 's3', '"t"', 'secret key material']) expect(line).not.toContain(secret);
    expect(JSON.parse(line)).toMatchObject({
      PFXPasswd: '[redacted]',
      password: '[redacted]',
      privateKey: '[redacted]',
      nested: { sharedSecret: '[redacted]', apiToken: '[redacted]', keep: 'visible' },
      payload: '[19 bytes]',
    });
  });

  it('recognises secret field names and leaves ordinary ones alone', () => {
    for (const name of ['password', 'PFXPasswd', 'passphrase', 'secret', 'privateKey', 'key', 'hmacKeys', 'token']) {
      expect(isSecretFieldName(name), name).toBe(true);
    }
    for (const name of ['serial', 'subject', 'source', 'ports', 'reason', 'file']) expect(isSecretFieldName(name), name).toBe(false);
  });

  it('survives cyclic fields', () => {
    const { logger, lines } = capture({ format: 'json' });
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    logger.info('cycle', { cyclic });
    expect(JSON.parse(lines[0]!)).toMatchObject({ cyclic: { name: 'loop', self: '[…]' } });
  });
});

describe('levels', () => {
  it('drops lines below the threshold', () => {
    const { logger, lines } = capture({ level: 'warn' });
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(lines.map((line) => line.trim().split(/\s+/)[2])).toEqual(['w', 'e']);
    expect(logger.enabled('info')).toBe(false);
    expect(logger.enabled('error')).toBe(true);
  });

  it('writes debug lines at level debug and not at the default info', () => {
    const debug = capture({ level: 'debug' });
    debug.logger.debug('detail');
    expect(debug.lines).toHaveLength(1);
    const info = capture();
    info.logger.debug('detail');
    expect(info.lines).toEqual([]);
  });
});

describe('knock decisions', () => {
  const granted = {
    source: '198.18.0.2',
    subject: 'CN=alice',
    serial: '0a1b',
    ports: [{ protocol: 'tcp', port: 22 } as const, { protocol: 'udp', port: 53 } as const],
    verdict: 'granted' as const,
    format: 'v2',
  };

  it('logs a grant as one info line', () => {
    const { logger, lines } = capture();
    logger.decision(granted);
    expect(lines).toEqual([
      '2026-01-01T00:00:00.000Z INFO  knock verdict=granted source=198.18.0.2 subject="CN=alice" serial=0a1b ports=tcp/22,udp/53 format=v2\n',
    ]);
  });

  it('logs a rejection at warn with its reason, in JSON too', () => {
    const { logger, json } = capture({ format: 'json' });
    logger.decision({ source: 'fd00:18::2', ports: [{ protocol: 'tcp', port: 22 }], verdict: 'rejected', reason: 'replay', format: 'legacy' });
    expect(json()).toEqual([
      { time: '2026-01-01T00:00:00.000Z', level: 'warn', event: 'knock', verdict: 'rejected', reason: 'replay', source: 'fd00:18::2', ports: 'tcp/22', format: 'legacy' },
    ]);
  });
});

describe('repeated warnings', () => {
  const replay = { source: '198.18.0.9', ports: [{ protocol: 'tcp', port: 22 } as const], verdict: 'rejected' as const, reason: 'replay' };

  it('writes the first few identical warnings of a window, then one summary when the window ends', () => {
    const { logger, json, clock } = capture({ format: 'json', repeatLimit: { windowMs: 60_000, linesPerWindow: 2 } });
    for (let index = 0; index < 50; index += 1) logger.decision(replay);
    expect(json()).toHaveLength(2);
    clock.nowMs += 60_000;
    logger.info('tick');
    const lines = json();
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatchObject({ level: 'warn', event: 'repeats-suppressed', repeatedEvent: 'knock', suppressed: 48, windowSeconds: 60, reason: 'replay', source: '198.18.0.9' });
    expect(lines[3]).toMatchObject({ event: 'tick' });
  });

  it('counts different lines separately and never holds back info lines', () => {
    const { logger, lines } = capture({ repeatLimit: { windowMs: 60_000, linesPerWindow: 1 } });
    logger.decision(replay);
    logger.decision({ ...replay, reason: 'revoked' });
    logger.decision(replay);
    for (let index = 0; index < 5; index += 1) logger.decision({ ...replay, verdict: 'granted', reason: undefined });
    expect(lines.filter((line) => line.includes('reason=replay'))).toHaveLength(1);
    expect(lines.filter((line) => line.includes('reason=revoked'))).toHaveLength(1);
    expect(lines.filter((line) => line.includes('verdict=granted'))).toHaveLength(5);
  });

  it('writes pending summaries on flush, and every line when limiting is off', () => {
    const limited = capture({ repeatLimit: { windowMs: 60_000, linesPerWindow: 1 } });
    limited.logger.warn('disk-slow');
    limited.logger.warn('disk-slow');
    limited.logger.warn('disk-slow');
    limited.logger.flush();
    expect(limited.lines).toEqual([
      '2026-01-01T00:00:00.000Z WARN  disk-slow\n',
      '2026-01-01T00:00:00.000Z WARN  repeats-suppressed repeatedEvent=disk-slow suppressed=2 windowSeconds=60\n',
    ]);
    const unlimited = capture({ repeatLimit: false });
    for (let index = 0; index < 10; index += 1) unlimited.logger.warn('disk-slow');
    expect(unlimited.lines).toHaveLength(10);
  });
});

it('a throwing sink never breaks the caller', () => {
  const logger = createLogger({
    sink: {
      write: () => {
        throw new Error('EPIPE');
      },
    },
  });
  expect(() => logger.error('anything')).not.toThrow();
});
