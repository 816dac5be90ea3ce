/** SIGHUP planning (what applies live, what needs a restart) and the crl-status record. */
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseServerConfig, type ServerConfig } from '../../server/config.js';
import { crlFileBytes, readCrlFile } from '../../server/crl-file.js';
import {
  crlPolicyState,
  crlStatusRecord,
  formatCrlStatus,
  issuerCrlStates,
  openCrlStatusWriter,
  readCrlStatus,
  type CrlStatusRecord,
} from '../../server/crl-status.js';
import { changedKeys, planReload, rereadServerConfig } from '../../server/reload.js';
import { parseAnchors } from '../../server/trust/index.js';
import { makeSampleCa, runCaOk, temporaryDirectories, testNow } from './ca-harness.js';

const directories = temporaryDirectories();
afterAll(() => directories.removeAll());

const baseText = ['[DEFAULT]', 'serverPFXFile = server.pfx', 'PFXPasswd = secret', 'crlFile = crl.der', 'crlPolicy = require', 'user = nobody'];

function configOf(lines: readonly string[], baseDir = '/etc/sknock'): ServerConfig {
  return parseServerConfig(lines.join('\n'), { file: 'config.ini', baseDir, fileExists: () => true }).config;
}

describe('planReload', () => {
  const running = configOf(baseText);

  it('applies the CRL keys and names the rest as needing a restart', () => {
    const next = configOf([...baseText, 'crlUrl = http://198.18.0.9/crl.der', 'crlRefreshCron = */2 * * * * *', 'firewallPolicy = drop', 'TIMESTAMP_THRESHOLD_IN_SECONDS = 9']);
    const plan = planReload(running, next);
    expect(plan.applied).toEqual(expect.arrayContaining(['crlUrl', 'crlRefreshCron', 'CRL_UPDATE_INTERVAL_IN_MINUTES']));
    expect(plan.needsRestart).toEqual(expect.arrayContaining(['firewallPolicy', 'TIMESTAMP_THRESHOLD_IN_SECONDS']));
    expect(plan.config.crl).toEqual(next.crl);
    // What needs a restart keeps its running value.
    expect(plan.config.firewall.mode).toBe(running.firewall.mode);
    expect(plan.config.knocks.timestampWindowSeconds).toBe(7);
  });

  it('sees a changed inline password although describeConfig masks it', () => {
    expect(changedKeys(running, configOf(baseText.map((line) => line.replace('secret', 'other'))))).toEqual(['PFXPasswd']);
    expect(changedKeys(running, configOf(baseText))).toEqual([]);
  });

  it('re-reads the file with the command-line overrides, and rejects an invalid one', async () => {
    const folder = await directories.make();
    const file = path.join(folder, 'config.ini');
    writeFileSync(file, baseText.join('\n'));
    writeFileSync(path.join(folder, 'server.pfx'), 'x');
    const started = parseServerConfig(baseText.join('\n'), { file, baseDir: folder }).config;
    expect(rereadServerConfig(started, { crlPolicy: 'warn' }).config.crl.policy).toBe('warn');
    writeFileSync(file, baseText.map((line) => line.replace('crlPolicy = require', 'crlPolicy = sometimes')).join('\n'));
    expect(() => rereadServerConfig(started, {})).toThrow(/crlPolicy: expected one of warn, require/);
  });
});

describe('crl-status record', () => {
  it('is rewritten in place and read back whole', async () => {
    const file = path.join(await directories.make(), 'state', 'crl-status.json');
    const writer = openCrlStatusWriter(file);
    const record = (lastAttempt: CrlStatusRecord['lastAttempt']): CrlStatusRecord => ({
      pid: 1,
      writtenAt: testNow.toISOString(),
      crl: null,
      policy: 'require',
      policyState: 'missing',
      lastAttempt,
    });
    const failed = {
      trigger: 'schedule' as const,
      startedAt: testNow.toISOString(),
      finishedAt: testNow.toISOString(),
      result: 'failed' as const,
      failures: [{ source: 'http://198.18.0.9/crl.der', reason: 'timeout' as const, detail: 'no complete answer within the deadline' }],
    };
    writer.write(record(failed));
    writer.write(record(null));
    writer.close();
    // The shorter second record leaves no tail of the first.
    expect(readFileSync(file, 'utf8')).toBe(`${JSON.stringify(record(null))}\n`);
    expect(await readCrlStatus(file)).toEqual({ ok: true, record: record(null) });
    writeFileSync(file, '{"pid":1,"writ');
    expect(await readCrlStatus(file, 2)).toMatchObject({ ok: false, detail: expect.stringContaining('no complete record') });
    expect(await readCrlStatus(path.join(file, 'none'))).toMatchObject({ ok: false, detail: expect.stringContaining('is the daemon running?') });
  });

  it('formats the file, the CRL in force and the last attempt', async () => {
    const caDir = await makeSampleCa(await directories.make());
    await runCaOk(['crl', '--dir', caDir]);
    const caCertificate = await readFile(path.join(caDir, 'ca.cer'));
    const crlFile = path.join(caDir, 'crl.der');
    const fileState = readCrlFile(crlFile, [caCertificate]);
    expect(fileState.kind).toBe('loaded');
    const config = configOf([...baseText.map((line) => line.replace('crlFile = crl.der', `crlFile = ${crlFile}`)), 'crlUrl = http://198.18.0.9/crl.der']);
    const text = formatCrlStatus(config, fileState, {
      ok: true,
      record: {
        pid: 42,
        writtenAt: testNow.toISOString(),
        crl: { issuer: 'CN=Test CA', crlNumber: '1', revoked: 0 },
        policy: 'require',
        policyState: fileState.kind === 'loaded' ? crlPolicyState(issuerCrlStates(parseAnchors([caCertificate]), fileState.crls, testNow.getTime())) : 'missing',
        lastAttempt: {
          trigger: 'sighup',
          startedAt: testNow.toISOString(),
          finishedAt: testNow.toISOString(),
          result: 'failed',
          failures: [{ source: 'http://198.18.0.9/crl.der', reason: 'unreachable', detail: 'ECONNREFUSED' }],
        },
      },
    }, testNow.getTime());
    expect(text).toContain(`file: ${crlFile}`);
    expect(text).toContain('  issuer: CN=Test CA');
    expect(text).toContain('  revoked: 0');
    expect(text).toContain('daemon: pid 42');
    expect(text).toContain('  state: fresh');
    expect(text).toContain('last refresh: 2026-01-01T00:00:00.000Z (sighup): failed\n  http://198.18.0.9/crl.der: unreachable: ECONNREFUSED');
  });

  it('shows each CA with its CRL in force, and the file\'s CRLs one by one', async () => {
    const caDir = await makeSampleCa(await directories.make());
    const secondDir = path.join(await directories.make(), 'ca');
    const thirdDir = path.join(await directories.make(), 'ca');
    await runCaOk(['crl', '--dir', caDir]);
    await runCaOk(['init', '--dir', secondDir, '--cn', 'Second CA']);
    await runCaOk(['init', '--dir', thirdDir, '--cn', 'Third CA']);
    // Issued eight days ago with the default lifetime of seven: stale now.
    await runCaOk(['crl', '--dir', secondDir], { now: new Date(testNow.getTime() - 8 * 86_400_000) });
    const caCertificates = await Promise.all([caDir, secondDir, thirdDir].map((dir) => readFile(path.join(dir, 'ca.cer'))));
    const crlFile = path.join(await directories.make(), 'crl.pem');
    const first = readCrlFile(path.join(caDir, 'crl.der'), caCertificates);
    const second = readCrlFile(path.join(secondDir, 'crl.der'), caCertificates);
    if (first.kind !== 'loaded' || second.kind !== 'loaded') throw new Error('CRL fixtures do not load');
    const crls = [...first.crls, ...second.crls];
    writeFileSync(crlFile, crlFileBytes(crls));
    const nowMs = testNow.getTime();
    const issuers = issuerCrlStates(parseAnchors(caCertificates), crls, nowMs);
    expect(issuers.map(({ issuer, state }) => `${issuer}: ${state}`)).toEqual(['CN=Test CA: fresh', 'CN=Second CA: stale', 'CN=Third CA: missing']);
    const record = crlStatusRecord({ crls, issuers, policyState: crlPolicyState(issuers), lastAttempt: null }, 'require', 42, testNow);
    // The old fields stay: `crl` is the CRL that goes stale first, policyState the worst of any CA's.
    expect(record).toMatchObject({ pid: 42, policy: 'require', policyState: 'missing', crl: { issuer: 'CN=Second CA', crlNumber: '1' } });
    expect(record.issuers?.map((issuer) => issuer.crl?.issuer ?? null)).toEqual(['CN=Test CA', 'CN=Second CA', null]);
    const config = configOf([...baseText.map((line) => line.replace('crlFile = crl.der', `crlFile = ${crlFile}`))]);
    const text = formatCrlStatus(config, readCrlFile(crlFile, caCertificates), { ok: true, record: JSON.parse(JSON.stringify(record)) as CrlStatusRecord }, nowMs);
    expect(text).toContain(`file: ${crlFile} (2 CRLs, one per CA)`);
    expect(text).toMatch(/ {2}issuer: CN=Test CA\n(?: {2}\w+: .*\n)* {2}freshness: fresh\n {2}issuer: CN=Second CA\n(?: {2}\w+: .*\n)* {2}freshness: stale/);
    expect(text).toContain('  in force, per CA (2 CRLs for 3 CAs):');
    expect(text).toMatch(/ {4}CN=Test CA: fresh, issuerKey [0-9a-f]{16}, thisUpdate \S+, nextUpdate \S+, crlNumber 1, revoked 0\n/);
    expect(text).toContain('    CN=Second CA: stale, issuerKey');
    expect(text).toContain('    CN=Third CA: missing (no CRL)');
    expect(text).toContain('  state: missing');
  });
});
