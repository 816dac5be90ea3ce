/**
 * Revocation end to end: a CA publishes CRLs with `sknock-ca serve` in a
 * namespace of its own, reachable from two sites (two TestNetworks) at one
 * URL; the real daemons refresh every 2 s (six-field cron). A revocation
 * refuses the client at both sites, another client is unaffected, a broken
 * CRL server never loosens anything, and a restart without the CRL server
 * uses the cached crlFile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithNamespaces, run, TestNetwork } from '../helpers/netns.js';
import { dist, knockFromClient, probeFromClient, ServerProcess, startTcpService, waitUntilClosed, type LogLine } from '../helpers/server-harness.js';
import { runCaOk, temporaryDirectories, testPassword } from '../unit/ca-harness.js';

const SERVICE_PORT = 2000;
/** On the CA namespace's loopback; each site routes to it over a veth of its own. */
const CRL_HOST = '198.19.0.1';
const CRL_URL = `http://${CRL_HOST}:8080/crl.der`;

const directories = temporaryDirectories();
/** The daemon drops to nobody: its crlFile folders live under a folder it may traverse. */
let siteRoot: string;
let caDir: string;
let caNamespace: string;
let sites: TestNetwork[] = [];
let services: { stop(): Promise<void> }[] = [];
let crlServer: ChildProcess | undefined;
let crlOne: Buffer;
const daemons: ServerProcess[] = [];

/** The CA uses the real clock: the daemons judge with it. */
const ca = (args: string[]) => runCaOk([...args, '--dir', caDir], { now: new Date() });

async function mustRun(command: string, args: string[]): Promise<void> {
  const result = await run(command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
}

/** A namespace holding CRL_HOST, joined to each site's server namespace by a veth and a host route. */
async function connectCaNamespace(networks: readonly TestNetwork[]): Promise<void> {
  await mustRun('ip', ['netns', 'add', caNamespace]);
  await mustRun('ip', ['-n', caNamespace, 'link', 'set', 'lo', 'up']);
  await mustRun('ip', ['-n', caNamespace, 'addr', 'add', `${CRL_HOST}/32`, 'dev', 'lo']);
  for (const [index, network] of networks.entries()) {
    const link = `ca${index}`;
    const subnet = `198.19.${index + 1}`;
    await mustRun('ip', ['-n', caNamespace, 'link', 'add', link, 'type', 'veth', 'peer', 'name', 'crl0', 'netns', network.server]);
    await mustRun('ip', ['-n', caNamespace, 'addr', 'add', `${subnet}.1/24`, 'dev', link]);
    await mustRun('ip', ['-n', caNamespace, 'link', 'set', link, 'up']);
    await mustRun('ip', ['-n', network.server, 'addr', 'add', `${subnet}.2/24`, 'dev', 'crl0']);
    await mustRun('ip', ['-n', network.server, 'link', 'set', 'crl0', 'up']);
    await mustRun('ip', ['-n', network.server, 'route', 'add', `${CRL_HOST}/32`, 'via', `${subnet}.1`]);
  }
}

async function startCrlServer(): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', caNamespace, process.execPath, dist('certificates', 'ca', 'sknock-ca.js'), 'serve', '--dir', caDir, '--port', '8080', '--host', CRL_HOST], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`sknock-ca serve exited (${code})`)));
  });
  crlServer = child;
}

async function stopCrlServer(): Promise<void> {
  const child = crlServer;
  crlServer = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

function siteSettings(site: number): Record<string, string | number> {
  return {
    serverPFXFile: path.join(caDir, 'server', 'gate.pfx'),
    PFXPasswd: testPassword,
    crlFile: path.join(siteRoot, `site-${site}`, 'crl.der'),
    crlUrl: CRL_URL,
    crlPolicy: 'require',
    crlRefreshCron: '*/2 * * * * *',
    firewallPolicy: 'reject',
    emergencySshPort: 'off',
    PORT_OPEN_DURATION_IN_SECONDS: 3,
  };
}

async function startSite(site: number, stateDir?: string): Promise<ServerProcess> {
  const daemon = await ServerProcess.start({ namespace: sites[site]!.server, settings: siteSettings(site), ...(stateDir === undefined ? {} : { stateDir }) });
  daemons.push(daemon);
  return daemon;
}

function knock(site: number, client: 'alice' | 'bob') {
  return knockFromClient(sites[site]!, [
    '--pfx', path.join(caDir, 'client', `${client}.pfx`),
    '--server-cert', path.join(caDir, 'server', 'gate.cer'),
    '--password', testPassword,
    '-p', `tcp/${SERVICE_PORT}`,
    '--retries', '0',
    '--timeout', '1500',
    TestNetwork.serverIPv4,
  ]);
}

/** The first log line after `mark` lines that matches. */
function after(daemon: ServerProcess, mark: number, match: (line: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
  return daemon.waitFor((line) => daemon.lines.indexOf(line) >= mark && match(line), timeoutMs);
}

const crlInForce = (number: number) => (line: LogLine) => line.event === 'crl-updated' && line.crlNumber === String(number);

/** Knocks, then reads the daemon's decision for it. */
async function knockAndDecision(site: number, daemon: ServerProcess, client: 'alice' | 'bob') {
  const seen = daemon.decisions().length;
  const result = await knock(site, client);
  return { outcome: result.report.outcome, decision: await daemon.decision(seen + 1) };
}

describeWithNamespaces('CRL distribution: revocation end to end, at two sites', () => {
  beforeAll(async () => {
    siteRoot = await directories.make();
    chmodSync(siteRoot, 0o755);
    caDir = path.join(await mkdtemp(path.join(tmpdir(), 'sknock-crl-ca-')), 'ca');
    await ca(['init', '--cn', 'CRL Test CA']);
    await ca(['server', '--name', 'gate']);
    await ca(['client', '--name', 'alice', '--allow', `tcp/${SERVICE_PORT}`]);
    await ca(['client', '--name', 'bob', '--allow', `tcp/${SERVICE_PORT}`]);
    await ca(['crl']);
    crlOne = await readFile(path.join(caDir, 'crl.der'));
    sites = [await TestNetwork.create('crla'), await TestNetwork.create('crlb')];
    caNamespace = `sk-crlca-${process.pid}`;
    await connectCaNamespace(sites);
    for (const site of sites) services.push(await startTcpService(site, SERVICE_PORT));
    await startCrlServer();
  }, 120_000);

  afterAll(async () => {
    for (const daemon of daemons) await daemon.stop();
    await stopCrlServer();
    for (const service of services) await service.stop();
    for (const site of sites) await site.destroy();
    await run('ip', ['netns', 'del', caNamespace]);
    rmSync(path.dirname(caDir), { recursive: true, force: true });
    await directories.removeAll();
    services = [];
    sites = [];
  });

  it('a revocation published once refuses the client at both sites within one refresh; the other client is unaffected', async () => {
    const [siteA, siteB] = [await startSite(0), await startSite(1)];
    for (const [index, daemon] of [siteA, siteB].entries()) {
      // The start refresh ran before the first knock could be judged, and wrote the cache file.
      await daemon.waitFor(crlInForce(1));
      expect(readFileSync(siteSettings(index).crlFile as string).equals(crlOne)).toBe(true);
      expect(await knockAndDecision(index, daemon, 'alice')).toMatchObject({ outcome: 'open', decision: { verdict: 'granted' } });
    }

    const marks = [siteA.lines.length, siteB.lines.length];
    await ca(['revoke', '--name', 'alice']);
    await ca(['crl']);
    for (const [index, daemon] of [siteA, siteB].entries()) {
      // */2 s: the new CRL is in force within one interval (plus the download).
      await after(daemon, marks[index]!, crlInForce(2), 5_000);
      // alice's earlier grant lapses first, so that "closed" below can only mean "nothing opened".
      expect(await waitUntilClosed(sites[index]!, TestNetwork.serverIPv4, SERVICE_PORT, 6_000)).toBe('refused');
      expect(await knockAndDecision(index, daemon, 'alice')).toMatchObject({ outcome: 'closed', decision: { verdict: 'rejected', reason: 'revoked' } });
      expect(await probeFromClient(sites[index]!, TestNetwork.serverIPv4, SERVICE_PORT)).toBe('refused');
      expect(await knockAndDecision(index, daemon, 'bob')).toMatchObject({ outcome: 'open', decision: { verdict: 'granted' } });
    }
  });

  it('crl-status shows the CRL in force and the last refresh; SIGHUP reloads and refreshes at once', async () => {
    const daemon = daemons[0]!;
    const mark = daemon.lines.length;
    process.kill(daemon.pid, 'SIGHUP');
    await after(daemon, mark, (line) => line.event === 'reloaded');
    await after(daemon, mark, (line) => line.event === 'crl-unchanged' && line.trigger === 'sighup');
    const args = ['--config', path.join(process.cwd(), 'config.ini'), '--set', `replayCacheFile=${path.join(daemon.stateDir, 'replay.journal')}`];
    for (const [key, value] of Object.entries(siteSettings(0))) args.push('--set', `${key}=${value}`);
    const status = await run(process.execPath, [dist('server', 'sknock-server.js'), 'crl-status', ...args]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('crlNumber: 2');
    expect(status.stdout).toMatch(/revoked: 1/);
    expect(status.stdout).toContain('issuer: CN=CRL Test CA');
    expect(status.stdout).toMatch(/last refresh: \S+ \((schedule|sighup)\): (not-modified|unchanged) from http:\/\/198\.19\.0\.1:8080\/crl\.der/);
  });

  it('a broken CRL server (garbage, older, other key, 404, down) never loosens anything: one warning each, knocks still served', async () => {
    const daemon = daemons[0]!;
    const published = path.join(caDir, 'crl.der');
    const good = readFileSync(published);
    const impostorDir = path.join(await directories.make(), 'ca');
    await runCaOk(['init', '--dir', impostorDir, '--cn', 'CRL Test CA'], { now: new Date() });
    await runCaOk(['crl', '--dir', impostorDir], { now: new Date() });
    const cases: [string, () => Promise<void> | void][] = [
      ['crl-malformed', () => writeFileSync(published, 'garbage, not a CRL')],
      ['crl-older', () => writeFileSync(published, crlOne)],
      ['crl-bad-signature', () => writeFileSync(published, readFileSync(path.join(impostorDir, 'crl.der')))],
      ['http-status', () => rmSync(published)],
      ['unreachable', () => stopCrlServer()],
    ];
    for (const [reason, breakIt] of cases) {
      // bob's grant from the previous round shares alice's address: let it lapse.
      await waitUntilClosed(sites[0]!, TestNetwork.serverIPv4, SERVICE_PORT, 6_000);
      const mark = daemon.lines.length;
      await breakIt();
      const warning = await after(daemon, mark, (line) => line.event === 'crl-refresh-failed' && line.reason === reason, 6_000);
      expect(warning).toMatchObject({ level: 'warn', crlNumber: '2', consequence: 'the CRL in force stays' });
      // Outcomes only: identical rejection lines are rate-limited in the log (3 a minute).
      expect((await knock(0, 'alice')).report.outcome).toBe('closed');
      expect((await knock(0, 'bob')).report.outcome).toBe('open');
    }
    writeFileSync(published, good);
  });

  it('a restart with the CRL server unreachable uses the cached crlFile', async () => {
    expect(crlServer).toBeUndefined();
    const old = daemons.shift()!;
    await old.stop();
    const daemon = await startSite(0);
    expect(daemon.lines.find((line) => line.event === 'crl-loaded')).toMatchObject({ crlNumber: '2', revoked: 1 });
    expect(daemon.lines.find((line) => line.event === 'crl-refresh-failed')).toMatchObject({ trigger: 'start', reason: 'unreachable' });
    expect(await knockAndDecision(0, daemon, 'alice')).toMatchObject({ outcome: 'closed', decision: { reason: 'revoked' } });
    expect(await knockAndDecision(0, daemon, 'bob')).toMatchObject({ outcome: 'open' });
  });
});
