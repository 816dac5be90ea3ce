import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { prefixedRunner } from '../../server/firewall/runner.js';
import type { CommandRunner, Grant } from '../../server/firewall/types.js';
import { describeWithNamespaces, TestNetwork } from '../helpers/netns.js';

const grantFrom = (host: number): Grant => ({ address: `198.18.0.${host}`, protocol: 'tcp', port: 22, seconds: 60 });

describeWithNamespaces('nftables grants through the long-running nft session', () => {
  let net: TestNetwork;
  const spawned: ChildProcessWithoutNullStreams[] = [];
  const ran: string[] = [];

  beforeAll(async () => {
    net = await TestNetwork.create('nfts');
  });

  afterAll(async () => {
    for (const child of spawned) child.kill();
    await net?.destroy();
  });

  /** The namespace's runner, recording what it runs. */
  function recordingRunner(): CommandRunner {
    const inner = prefixedRunner(['ip', 'netns', 'exec', net.server]);
    return {
      run: (command, args, stdin) => {
        ran.push([command, ...args].join(' '));
        return inner.run(command, args, stdin);
      },
      spawn: (command, args) => {
        const child = inner.spawn(command, args);
        spawned.push(child);
        return child;
      },
    };
  }

  it('sends small batches to one nft -i, and survives that nft being killed', async () => {
    const backend = new NftablesBackend({ runner: recordingRunner() });
    await backend.start({ mode: 'drop', emergencySshPort: 22, publicPorts: [] });
    ran.length = 0;
    for (let host = 10; host < 15; host++) await backend.grant([grantFrom(host)]);
    await Promise.all([backend.grant([grantFrom(20)]), backend.grant([grantFrom(21)])]);
    expect(ran).toEqual([]);
    expect(spawned).toHaveLength(1);
    expect((await backend.list()).map((grant) => grant.address).sort()).toEqual(
      ['198.18.0.10', '198.18.0.11', '198.18.0.12', '198.18.0.13', '198.18.0.14', '198.18.0.20', '198.18.0.21'].sort(),
    );

    const exited = new Promise((resolve) => spawned[0]!.once('exit', resolve));
    spawned[0]!.kill();
    await exited;
    await backend.grant([grantFrom(30)]);
    expect((await backend.list()).some((grant) => grant.address === '198.18.0.30')).toBe(true);

    // A failed transaction in the session is reported, not mistaken for success.
    const removed = await net.exec(net.server, 'nft', ['delete', 'table', 'inet', 'sknock']);
    expect(removed.code).toBe(0);
    ran.length = 0;
    await expect(backend.grant([grantFrom(40)])).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_COMMAND_FAILED', message: expect.stringContaining('nft transaction failed') });
    expect(ran).toEqual([]);
    await backend.stop();
  });
});
