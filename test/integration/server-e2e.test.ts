/**
 * sknock-server from the outside: a real daemon in one namespace, real
 * knocks and TCP connects from another, real nftables / iptables rules.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKnock } from '../../client-lib/knock.js';
import { parseAddress } from '../../client-lib/protocol/address.js';
import { loadPkcs12File } from '../../client-lib/pkcs12.js';
import { parseServerCertificate } from '../../client-lib/server-certificate.js';
import { describeWithNamespaces, TestNetwork } from '../helpers/netns.js';
import {
  ServerProcess,
  alice,
  bob,
  devPki,
  knockFromClient,
  mallory,
  probeFromClient,
  sendFromClient,
  startTcpService,
  waitUntilClosed,
} from '../helpers/server-harness.js';

const SERVICE_PORT = 2000;
const GRANT_SECONDS = 2;
/** Legacy (1.0.0) knocks cannot be padded: the dev PKI's certificates make ~620-byte frames. */
const MIN_FRAME = 600;

const baseSettings = {
  PORT_OPEN_DURATION_IN_SECONDS: GRANT_SECONDS,
  KNOCKPACKET_MIN_LENGTH: MIN_FRAME,
  emergencySshPort: 'off',
};

function craftedKnock(options: { at?: number; address?: string }) {
  return buildKnock({
    identity: loadPkcs12File(path.join(devPki, 'client', 'alice.pfx'), 'portknocking'),
    serverCertificate: parseServerCertificate(readFileSync(path.join(devPki, 'server', 'devserver.cer'))),
    ports: [{ protocol: 'tcp', port: SERVICE_PORT }],
    clientAddress: Buffer.from(parseAddress(options.address ?? TestNetwork.clientIPv4)!),
    now: () => options.at ?? Date.now(),
  });
}

const knockArgs = (who: readonly string[], host: string, ...extra: string[]) => [...who, '-p', `tcp/${SERVICE_PORT}`, '--retries', '0', '--timeout', '1500', ...extra, host];

for (const backend of ['nftables', 'iptables'] as const) {
  describeWithNamespaces(`sknock-server with ${backend}, drop policy`, () => {
    let net: TestNetwork;
    let server: ServerProcess;
    let service: { stop(): Promise<void> };

    beforeAll(async () => {
      net = await TestNetwork.create(backend.slice(0, 3));
      service = await startTcpService(net, SERVICE_PORT);
      server = await ServerProcess.start({ namespace: net.server, settings: { ...baseSettings, firewallBackend: backend, firewallPolicy: 'drop' } });
    });
    afterAll(async () => {
      await server?.stop();
      await service?.stop();
      await net?.destroy();
    });

    for (const [family, host] of [
      [4, TestNetwork.serverIPv4],
      [6, TestNetwork.serverIPv6],
    ] as const) {
      it(`IPv${family}: closed, opened by a v2 knock, closed again after the open duration`, async () => {
        expect(await probeFromClient(net, host, SERVICE_PORT, 400)).toBe('timeout');
        const knocked = await knockFromClient(net, knockArgs(alice, host));
        expect(knocked.report).toMatchObject({ outcome: 'open', format: 'v2' });
        expect(knocked.status).toBe(0);
        expect(await probeFromClient(net, host, SERVICE_PORT)).toBe('open');
        expect(await waitUntilClosed(net, host, SERVICE_PORT, GRANT_SECONDS * 1000 + 3000)).toBe('timeout');
      });

      it(`IPv${family}: a legacy (sKnock 1.0.0) knock opens it too`, async () => {
        const knocked = await knockFromClient(net, knockArgs(alice, host, '--format', 'legacy'));
        expect(knocked.report).toMatchObject({ outcome: 'open', format: 'legacy' });
        expect(await waitUntilClosed(net, host, SERVICE_PORT, GRANT_SECONDS * 1000 + 3000)).toBe('timeout');
      });
    }

    it('refuses an unauthorized port, a revoked client and garbage; the port stays closed', async () => {
      const host = TestNetwork.serverIPv4;
      const before = server.decisions().length;
      expect((await knockFromClient(net, [...bob, '-p', `tcp/${SERVICE_PORT}`, '--no-verify', host])).status).toBe(0);
      expect((await knockFromClient(net, [...mallory, '-p', `tcp/${SERVICE_PORT}`, '--no-verify', host])).status).toBe(0);
      expect(await server.decision(before + 2)).toBeDefined();
      expect(server.decisions().slice(before).map((line) => [line.verdict, line.reason])).toEqual([
        ['rejected', 'unauthorized-port'],
        ['rejected', 'revoked'],
      ]);
      // Junk is logged one by one only at debug level (the harness runs the server at debug).
      const junkBefore = server.lines.filter((line) => line.event === 'junk').length;
      await sendFromClient(net, host, 31337, Buffer.concat([Buffer.of(0), randomBytes(899)]));
      await sendFromClient(net, host, 31338, Buffer.concat([Buffer.from([0x73, 0x4b, 2, 1]), randomBytes(900)]));
      await server.waitFor(() => server.lines.filter((line) => line.event === 'junk').length >= junkBefore + 2);
      expect(server.lines.filter((line) => line.event === 'junk').slice(junkBefore).map((line) => line.reason)).toEqual(['bad-magic', 'bad-mac1']);
      expect(await probeFromClient(net, host, SERVICE_PORT, 400)).toBe('timeout');
    });

    it('refuses a timestamp outside the window and an address other than the signed one', async () => {
      const host = TestNetwork.serverIPv4;
      const before = server.decisions().length;
      await sendFromClient(net, host, 40000, craftedKnock({ at: Date.now() - 60_000 }));
      await sendFromClient(net, host, 40000, craftedKnock({ address: '198.18.0.77' }));
      await server.decision(before + 2);
      expect(server.decisions().slice(before).map((line) => line.reason)).toEqual(['timestamp-window', 'address-mismatch']);
      expect(await probeFromClient(net, host, SERVICE_PORT, 400)).toBe('timeout');
    });

    it('refuses the same bytes sent again (after the grant closed, and after a restart)', async () => {
      const host = TestNetwork.serverIPv4;
      const knock = craftedKnock({});
      let before = server.decisions().length;
      await sendFromClient(net, host, 45000, knock);
      expect(await server.decision(before + 1)).toMatchObject({ verdict: 'granted' });
      expect(await waitUntilClosed(net, host, SERVICE_PORT, GRANT_SECONDS * 1000 + 3000)).toBe('timeout');
      await sendFromClient(net, host, 45001, knock);
      expect(await server.decision(before + 2)).toMatchObject({ verdict: 'rejected', reason: 'replay' });

      const stateDir = server.stateDir;
      await server.stop('SIGKILL');
      server = await ServerProcess.start({ namespace: net.server, stateDir, settings: { ...baseSettings, firewallBackend: backend, firewallPolicy: 'drop' } });
      before = server.decisions().length;
      await sendFromClient(net, host, 45002, knock);
      expect(await server.decision(before + 1)).toMatchObject({ verdict: 'rejected', reason: 'replay' });
      expect(await probeFromClient(net, host, SERVICE_PORT, 400)).toBe('timeout');
    });

    it('the process that parses packets runs unprivileged (nobody)', () => {
      const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
      const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
      expect(uids?.slice(1).map(Number)).toEqual([65534, 65534, 65534, 65534]);
    });

    // Last in this block: it stops the server the tests above share.
    it('counts what its capture ring took and dropped, logs it on SIGUSR2 and when it stops', async () => {
      expect(server.lines.find((line) => line.event === 'ready')).toMatchObject({ captureRingDrops: 'counted' });
      const before = server.decisions().length;
      await sendFromClient(net, TestNetwork.serverIPv4, 45003, craftedKnock({}));
      await server.decision(before + 1);
      const statsBefore = server.lines.filter((line) => line.event === 'verify-stats').length;
      process.kill(server.pid, 'SIGUSR2');
      await server.waitFor(() => server.lines.filter((line) => line.event === 'verify-stats').length > statsBefore);
      expect(server.lines.filter((line) => line.event === 'verify-stats').at(-1)).toMatchObject({ ringDropped: 0 });
      await server.stop();
      const finalStats = server.lines.filter((line) => line.event === 'verify-stats').at(-1);
      expect(finalStats).toMatchObject({ ringDropped: 0 });
      expect(Number(finalStats?.ringPackets)).toBeGreaterThanOrEqual(Number(finalStats?.received));
      expect(Number(finalStats?.received)).toBeGreaterThan(0);
    });
  });
}
