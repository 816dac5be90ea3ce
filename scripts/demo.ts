/**
 * npm run demo: the whole story on one machine, as root. Two hosts in
 * network namespaces; sknock-server with a drop policy hides a TCP service
 * on one; the other shows: closed -> knock -> open -> closed again, and a
 * client without permission refused. Cleans up after itself, even on Ctrl-C.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ServerProcess, devPki, knockFromClient, probeFromClient, startTcpService, waitUntilClosed, type ProbeOutcome } from './lab.js';
import { TestNetwork } from './netns.js';

const SERVICE_PORT = 2000;
const OPEN_SECONDS = 5;
const serverCertificate = path.join(devPki, 'server', 'devserver.cer');
const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const say = (text = '') => process.stdout.write(`${text}\n`);

function explain(outcome: ProbeOutcome): string {
  switch (outcome) {
    case 'open':
      return 'connected';
    case 'timeout':
      return 'no answer (dropped by the firewall)';
    case 'refused':
      return 'refused';
    case 'error':
      return 'failed';
  }
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    say('npm run demo needs root: it creates network namespaces and firewall rules inside them (never on this host).');
    return 2;
  }
  let network: TestNetwork | undefined;
  let server: ServerProcess | undefined;
  let service: { stop(): Promise<void> } | undefined;
  const stateDir = mkdtempSync(path.join(tmpdir(), 'sknock-demo-'));
  const cleanUp = async () => {
    await server?.stop().catch(() => undefined);
    await service?.stop().catch(() => undefined);
    await network?.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  };
  const interrupted = async () => {
    say('\ninterrupted: cleaning up');
    await cleanUp();
    process.exit(130);
  };
  process.once('SIGINT', () => void interrupted());
  process.once('SIGTERM', () => void interrupted());

  try {
    say(bold('sKnock demo: a service hidden behind a closed firewall, opened by one signed UDP knock'));
    network = await TestNetwork.create('demo');
    const host = TestNetwork.serverIPv4;
    say(`1. two hosts in network namespaces: server ${host} (${network.server}), client ${TestNetwork.clientIPv4}`);

    service = await startTcpService(network, SERVICE_PORT);
    server = await ServerProcess.start({
      namespace: network.server,
      stateDir,
      settings: { firewallPolicy: 'drop', PORT_OPEN_DURATION_IN_SECONDS: OPEN_SECONDS, logLevel: 'info' },
    });
    say(`2. sknock-server runs with the development PKI (config.ini), nftables, policy drop; a TCP service listens on ${SERVICE_PORT}`);
    say(`   the server captures knocks with libpcap: no port is open, not even for knocks`);

    say(`3. client connects to tcp/${SERVICE_PORT} before knocking: ${explain(await probeFromClient(network, host, SERVICE_PORT, 1000))}`);

    const aliceKnock = await knockFromClient(network, ['--pfx', path.join(devPki, 'client', 'alice.pfx'), '--server-cert', serverCertificate, '-p', `tcp/${SERVICE_PORT}`, host]);
    const report = aliceKnock.report;
    say(`4. alice (allowed tcp/22,tcp/2000) knocks: ${report.packetLength} bytes of v2 knock to UDP port ${report.knockPort}`);
    say(`   ${report.outcome === 'open' ? `port open ${Number(report.openAfterMs).toFixed(1)} ms after the knock was sent` : `not opened: ${JSON.stringify(report)}`}`);
    const decision = await server.decision(1);
    say(`   server log: ${decision.verdict} ${decision.subject} for ${decision.ports} (${decision.format})`);
    say(`   client connects again: ${explain(await probeFromClient(network, host, SERVICE_PORT))}`);

    say(`5. the grant is an nftables set element with a ${OPEN_SECONDS} s kernel timeout; waiting for it to expire...`);
    const started = Date.now();
    const after = await waitUntilClosed(network, host, SERVICE_PORT, (OPEN_SECONDS + 5) * 1000);
    say(`   after ${((Date.now() - started) / 1000).toFixed(1)} s the client's connect gets: ${explain(after)}`);

    const bobKnock = await knockFromClient(network, ['--pfx', path.join(devPki, 'client', 'bob.pfx'), '--server-cert', serverCertificate, '-p', `tcp/${SERVICE_PORT}`, '--retries', '0', '--timeout', '1000', host]);
    const refusal = await server.decision(2);
    say(`6. bob (allowed tcp/8080 only) knocks for tcp/${SERVICE_PORT}: server says ${refusal.verdict} (${refusal.reason}); client sees the port ${bobKnock.report.outcome}`);

    say();
    say(bold('Done.') + ' Try it yourself: sknock-server --help, knock-client --help, sknock-ca --help (see README.md).');
    return report.outcome === 'open' && after === 'timeout' && refusal.reason === 'unauthorized-port' ? 0 : 1;
  } finally {
    await cleanUp();
  }
}

process.exitCode = await main();
