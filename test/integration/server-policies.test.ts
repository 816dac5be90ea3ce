/**
 * Policies seen from the client (reject answers fast, drop times out, none
 * lets everything through) and what survives a killed daemon.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithNamespaces, TestNetwork } from '../helpers/netns.js';
import { ServerProcess, alice, knockFromClient, probeFromClient, startTcpService, waitUntilClosed } from '../helpers/server-harness.js';

const SERVICE_PORT = 2000;
const settings = { emergencySshPort: 'off' };
const knock = (host: string) => knockFromClient(net, [...alice, '-p', `tcp/${SERVICE_PORT}`, '--retries', '0', '--timeout', '1500', host]);

let net: TestNetwork;
let service: { stop(): Promise<void> };

/** The project's own firewall objects in the server namespace, counted. */
async function ownObjects(backend: 'nftables' | 'iptables'): Promise<Record<string, number>> {
  const count = async (command: string, args: string[], pattern: RegExp) =>
    ((await net.exec(net.server, command, args)).stdout.match(pattern) ?? []).length;
  if (backend === 'nftables') return { tables: await count('nft', ['list', 'tables'], /sknock/g) };
  return {
    jumps4: await count('iptables', ['-S', 'INPUT'], /-j SKNOCK/g),
    jumps6: await count('ip6tables', ['-S', 'INPUT'], /-j SKNOCK/g),
    chains4: await count('iptables', ['-S'], /^-N SKNOCK/gm),
    sets: await count('ipset', ['list', '-n'], /sknock/g),
  };
}

describeWithNamespaces('firewall policies and crashes, seen from the client', () => {
  beforeAll(async () => {
    net = await TestNetwork.create('pol');
    service = await startTcpService(net, SERVICE_PORT);
  });
  afterAll(async () => {
    await service?.stop();
    await net?.destroy();
  });

  for (const backend of ['nftables', 'iptables'] as const) {
    it(`${backend}: reject refuses at once before the knock and opens after it (IPv4 and IPv6)`, async () => {
      const server = await ServerProcess.start({ namespace: net.server, settings: { ...settings, firewallBackend: backend, firewallPolicy: 'reject' } });
      try {
        for (const host of [TestNetwork.serverIPv4, TestNetwork.serverIPv6]) {
          expect(await probeFromClient(net, host, SERVICE_PORT, 400)).toBe('refused');
          expect((await knock(host)).report).toMatchObject({ outcome: 'open' });
        }
      } finally {
        await server.stop();
      }
    });

    it(`${backend}: none lets everything through without a knock`, async () => {
      const server = await ServerProcess.start({ namespace: net.server, settings: { ...settings, firewallBackend: backend, firewallPolicy: 'none' } });
      try {
        expect(await probeFromClient(net, TestNetwork.serverIPv4, SERVICE_PORT)).toBe('open');
        expect(await probeFromClient(net, TestNetwork.serverIPv6, SERVICE_PORT)).toBe('open');
      } finally {
        await server.stop();
      }
    });

    it(`${backend}: after kill -9 an open grant still closes on time; a restart leaves one set of objects; stop removes them`, async () => {
      const host = TestNetwork.serverIPv4;
      const dropSettings = { ...settings, firewallBackend: backend, firewallPolicy: 'drop', PORT_OPEN_DURATION_IN_SECONDS: 3 };
      const first = await ServerProcess.start({ namespace: net.server, settings: dropSettings });
      expect((await knock(host)).report).toMatchObject({ outcome: 'open' });
      const objects = await ownObjects(backend);
      await first.stop('SIGKILL');
      expect(await probeFromClient(net, host, SERVICE_PORT)).toBe('open');
      // Kernel timeouts (nft set elements, ipset entries) close it with no daemon left.
      expect(await waitUntilClosed(net, host, SERVICE_PORT, 6000)).toBe('timeout');

      const second = await ServerProcess.start({ namespace: net.server, stateDir: first.stateDir, settings: dropSettings });
      expect(await ownObjects(backend)).toEqual(objects);
      expect(Object.values(objects).every((count) => count === 1 || count === 2)).toBe(true);
      await second.stop();
      expect(Object.values(await ownObjects(backend)).every((count) => count === 0)).toBe(true);
      expect(await probeFromClient(net, host, SERVICE_PORT)).toBe('open');
    });
  }
});
