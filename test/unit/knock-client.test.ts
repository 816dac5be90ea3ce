import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKnockClient } from '../../client-lib/knock-client.js';
import { legacyDatagramLength } from '../../client-lib/protocol/index.js';
import { loadPkcs12File } from '../../client-lib/pkcs12.js';
import { describeWithUpstreamFixtures, repoRoot, upstreamFixture } from '../helpers/fixtures.js';

const devPki = path.join(repoRoot, 'certificates', 'dev');
const alice = ['--pfx', path.join(devPki, 'client', 'alice.pfx'), '--password', 'portknocking', '--server-cert', path.join(devPki, 'server', 'devserver.cer')];

async function cli(argv: string[], environment: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const status = await runKnockClient(argv, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) }, environment);
  return { status, stdout, stderr };
}

describe('knock-client', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sknock-client-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--dry-run --save-packet writes a padded v2 knock of the expected size and sends nothing', async () => {
    const file = path.join(dir, 'v2.bin');
    const result = await cli([...alice, '-p', 'tcp/22,tcp/2000', '--dry-run', '--save-packet', file, '127.0.0.1']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/built a v2 knock for tcp\/22,tcp\/2000 to 127\.0\.0\.1: \d+ bytes, saved to .*\(not sent\)/);
    const packet = readFileSync(file);
    expect(packet.length).toBeGreaterThanOrEqual(800);
    expect(packet.length).toBeLessThanOrEqual(1232);
    expect(packet.subarray(0, 4)).toEqual(Buffer.from([0x73, 0x4b, 0x02, 0x01]));

    const padded = path.join(dir, 'v2-1000.bin');
    expect((await cli([...alice, '-p', 'tcp/22', '--dry-run', '--min-length', '1000', '--save-packet', padded, '127.0.0.1'])).status).toBe(0);
    expect(statSync(padded).size).toBe(1000);
  });

  it('--format legacy builds the sKnock 1.0.0 packet: size fixed by the certificate', async () => {
    const file = path.join(dir, 'legacy.bin');
    const result = await cli([...alice, '-p', 'tcp/22', '--format', 'legacy', '--dry-run', '--save-packet', file, '--json', '127.0.0.1']);
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({ outcome: 'built', format: 'legacy', ports: 'tcp/22' });
    const certificateLength = loadPkcs12File(path.join(devPki, 'client', 'alice.pfx'), 'portknocking').certificateDer.length;
    expect(readFileSync(file).length).toBe(legacyDatagramLength(certificateLength));
    expect(readFileSync(file)[0]).toBe(0x61);
  });

  it('explains wrong passwords, missing files and bad arguments (exit 2)', async () => {
    const wrong = await cli(['--pfx', alice[1]!, '--password', 'nope', '--server-cert', alice[5]!, '-p', 'tcp/22', '--dry-run', '127.0.0.1']);
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toMatch(/wrong password for .*alice\.pfx/);

    const missing = await cli(['--pfx', path.join(dir, 'none.pfx'), '--password', 'x', '--server-cert', alice[5]!, '-p', 'tcp/22', '127.0.0.1', '--json']);
    expect(missing.status).toBe(2);
    expect(JSON.parse(missing.stdout)).toMatchObject({ outcome: 'error', code: 'SKNOCK_FILE_NOT_FOUND' });
    expect(missing.stderr).toMatch(/cannot read PKCS#12 file .*none\.pfx: ENOENT/);

    const noCert = await cli(['--pfx', alice[1]!, '--password', 'portknocking', '--server-cert', path.join(dir, 'none.cer'), '-p', 'tcp/22', '127.0.0.1']);
    expect(noCert.stderr).toMatch(/cannot read server certificate .*none\.cer/);

    expect((await cli([...alice, '-p', 'ssh', '127.0.0.1'])).stderr).toMatch(/invalid port "ssh"/);
    expect((await cli([...alice, '-p', 'tcp/22'])).stderr).toMatch(/the server <host> is missing/);
    expect((await cli([...alice, '-p', 'tcp/22,tcp/23', '--format', 'legacy', '--dry-run', '127.0.0.1'])).stderr).toMatch(/exactly one port/);
    expect((await cli([...alice, '-p', 'tcp/22', '--format', 'legacy', '--client-ip', 'source', '--dry-run', '127.0.0.1'])).stderr).toMatch(/NAT mode/);
    expect((await cli([...alice, '-p', 'tcp/22', '--client-ip', 'nonsense', '--dry-run', '127.0.0.1'])).stderr).toMatch(/invalid client address "nonsense"/);
    expect((await cli([...alice, '-p', 'tcp/22', '--dry-run', 'no-such-host.invalid'])).stderr).toMatch(/cannot resolve no-such-host\.invalid/);
    expect((await cli([...alice, '-p', 'tcp/22', '--retries', 'many', '127.0.0.1'])).status).toBe(2);
    expect((await cli(['--frobnicate'])).status).toBe(2);
  });

  it('warns before sending a request its own certificate does not permit', async () => {
    const bob = ['--pfx', path.join(devPki, 'client', 'bob.pfx'), '--password', 'portknocking', '--server-cert', alice[5]!];
    const refused = await cli([...bob, '-p', 'tcp/22', '--dry-run', '127.0.0.1']);
    expect(refused.status).toBe(0);
    expect(refused.stderr).toMatch(/warning: your certificate permits tcp\/8080, not tcp\/22: the server will refuse the knock/);
    expect((await cli([...bob, '-p', 'tcp/8080', '--dry-run', '127.0.0.1'])).stderr).toBe('');
  });

  it('takes the password from SKNOCK_PFX_PASSWORD', async () => {
    const result = await cli(['--pfx', alice[1]!, '--server-cert', alice[5]!, '-p', 'tcp/22', '--dry-run', '127.0.0.1'], { SKNOCK_PFX_PASSWORD: 'portknocking' });
    expect(result.status).toBe(0);
  });

  describe('sending', () => {
    let service: Server;
    let openPort: number;
    beforeAll(async () => {
      service = createServer((socket) => socket.end());
      await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
      openPort = (service.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => service.close(() => resolve())));

    it('exits 0 with "open after" when the TCP port answers', async () => {
      const result = await cli([...alice, '-p', `tcp/${openPort}`, '--knock-port', '31337', '127.0.0.1']);
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^knocked 127\\.0\\.0\\.1 from 127\\.0\\.0\\.1 for tcp/${openPort} \\(v2, \\d+ bytes, UDP port 31337\\): open after [\\d.]+ ms`));
    });

    it('exits 1 after its retries when the port stays closed, and reports each attempt', async () => {
      const closedPort = openPort === 65535 ? 65534 : openPort + 1;
      const result = await cli([...alice, '-p', `tcp/${closedPort}`, '--retries', '1', '--timeout', '200', '--json', '127.0.0.1']);
      expect(result.status).toBe(1);
      expect(JSON.parse(result.stdout)).toMatchObject({ outcome: 'closed', attempts: 2, portOutcomes: [{ port: `tcp/${closedPort}`, outcome: 'refused' }] });
    });

    it('--no-verify exits 0 once the knock is sent', async () => {
      const result = await cli([...alice, '-p', 'udp/53', '--no-verify', '127.0.0.1']);
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(/sent \(not verified\)/);
    });
  });
});

describeWithUpstreamFixtures('knock-client with the original sKnock test PKI', () => {
  it('builds a legacy knock from devclient.pfx for devserver.cer', async () => {
    const result = await cli([
      '--pfx', upstreamFixture('test-pki', 'devclient.pfx'), '--password', 'portknocking',
      '--server-cert', upstreamFixture('test-pki', 'devserver.cer'),
      '-p', 'tcp/2000', '--format', 'legacy', '--dry-run', '--json', '127.0.0.1',
    ]);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout).packetLength).toBeGreaterThan(700);
  });
});
