import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SknockError } from '../../client-lib/errors.js';
import { FirewallHelperClient } from '../../server/firewall/helper-client.js';
import {
  formatHelperArguments,
  HelperSession,
  MAX_REQUEST_LENGTH,
  parseBackendOptions,
  parseHelperArguments,
  parseHelperRequest,
  serveHelper,
} from '../../server/firewall/helper-protocol.js';
import { CommandHooksBackend } from '../../server/firewall/command-hooks.js';
import type { ActiveGrant, FirewallBackend, FirewallPolicy, Grant } from '../../server/firewall/types.js';

const policy: FirewallPolicy = { mode: 'drop', emergencySshPort: 22, publicPorts: [] };
const grant: Grant = { address: '198.18.0.2', protocol: 'tcp', port: 22, seconds: 15 };

describe('helper requests', () => {
  it('accepts the four operations with checked fields', () => {
    expect(parseHelperRequest('{"id":1,"op":"start"}')).toEqual({ id: 1, request: { ok: true, value: { id: 1, op: 'start' } } });
    expect(parseHelperRequest(JSON.stringify({ id: 2, op: 'grant', grants: [{ ...grant, address: 'FD00:18::2' }] })).request).toEqual({
      ok: true,
      value: { id: 2, op: 'grant', grants: [{ ...grant, address: 'fd00:18::2' }] },
    });
    expect(parseHelperRequest('{"id":3,"op":"list"}').request).toEqual({ ok: true, value: { id: 3, op: 'list' } });
    expect(parseHelperRequest('{"id":4,"op":"stop"}').request).toEqual({ ok: true, value: { id: 4, op: 'stop' } });
  });

  it.each([
    ['not json', null, 'not-json'],
    ['[1,2]', null, 'not-an-object'],
    ['{"op":"list"}', null, 'bad-id'],
    ['{"id":-1,"op":"list"}', null, 'bad-id'],
    ['{"id":1.5,"op":"list"}', null, 'bad-id'],
    ['{"id":5,"op":"exec","argv":["/bin/sh"]}', 5, 'unknown-op'],
    ['{"id":5,"op":"constructor"}', 5, 'unknown-op'],
    ['{"id":6,"op":"list","command":"nft flush ruleset"}', 6, 'unknown-field'],
    // The policy comes from the helper's argv only: the daemon cannot pick another one.
    ['{"id":7,"op":"start","policy":{"mode":"none","emergencySshPort":22,"publicPorts":[]}}', 7, 'unknown-field'],
    ['{"id":8,"op":"grant","grants":[{"address":"1.2.3.4; rm -rf /","protocol":"tcp","port":22,"seconds":15}]}', 8, 'bad-address'],
    ['{"id":9,"op":"grant","grants":[{"address":"1.2.3.4","protocol":"tcp","port":70000,"seconds":15}]}', 9, 'bad-port'],
    ['{"id":10,"op":"grant","grants":{"address":"1.2.3.4"}}', 10, 'not-an-object'],
  ])('refuses %s', (line, id, reason) => {
    const parsed = parseHelperRequest(line);
    expect(parsed.id).toBe(id);
    expect(parsed.request).toMatchObject({ ok: false, reason });
  });

  it('refuses an oversized line without parsing it', () => {
    expect(parseHelperRequest(' '.repeat(MAX_REQUEST_LENGTH + 1)).request).toMatchObject({ ok: false, reason: 'too-long' });
  });
});

describe('helper backend options (argv)', () => {
  it('accepts each backend kind', () => {
    expect(parseBackendOptions('{"kind":"nftables"}')).toEqual({ ok: true, value: { kind: 'nftables' } });
    expect(parseBackendOptions('{"kind":"iptables"}')).toEqual({ ok: true, value: { kind: 'iptables', ipset: 'auto' } });
    expect(parseBackendOptions('{"kind":"iptables","ipset":"no"}')).toEqual({ ok: true, value: { kind: 'iptables', ipset: 'no' } });
    const hooks = { kind: 'command', openCommand: ['/sbin/open', '{address}'], closeCommand: ['/sbin/close', '{address}'] };
    expect(parseBackendOptions(JSON.stringify(hooks))).toEqual({ ok: true, value: hooks });
  });

  it.each([
    ['', 'not-json'],
    ['"nftables"', 'not-an-object'],
    ['{"kind":"pf"}', 'bad-kind'],
    ['{"kind":"nftables","table":"filter"}', 'unknown-field'],
    ['{"kind":"iptables","ipset":true}', 'bad-ipset'],
    ['{"kind":"command","openCommand":"/sbin/open {address}","closeCommand":["/sbin/close"]}', 'bad-template'],
    ['{"kind":"command","openCommand":["{address}"],"closeCommand":["/sbin/close"]}', 'bad-template'],
  ])('refuses %s', (text, reason) => {
    expect(parseBackendOptions(text)).toMatchObject({ ok: false, reason });
  });
});

describe('helper arguments (argv)', () => {
  const hooks = { kind: 'command', openCommand: ['/sbin/open', '{address}'], closeCommand: ['/sbin/close', '{address}'] } as const;

  it('round-trips the backend and the policy the root parent fixes', () => {
    expect(parseHelperArguments(formatHelperArguments({ backend: hooks, policy }))).toEqual({ ok: true, value: { backend: hooks, policy } });
  });

  it.each([
    [['{"kind":"nftables"}'], 'bad-argument-count'],
    [['{"kind":"nftables"}', JSON.stringify(policy), 'extra'], 'bad-argument-count'],
    [['{"kind":"nftables"}', 'drop'], 'not-json'],
    [['{"kind":"nftables"}', '{"mode":"open","emergencySshPort":22,"publicPorts":[]}'], 'bad-mode'],
    [['{"kind":"pf"}', JSON.stringify(policy)], 'bad-kind'],
  ])('refuses %j', (argv, reason) => {
    expect(parseHelperArguments(argv)).toMatchObject({ ok: false, reason });
  });

  it('refuses hook commands without {address}, with the config loader\'s words', () => {
    const withoutAddress = { ...hooks, closeCommand: ['/sbin/close', '{port}'] };
    expect(parseHelperArguments(formatHelperArguments({ backend: withoutAddress, policy }))).toEqual({
      ok: false,
      reason: 'bad-template',
      detail: 'closeCommand: must contain {address}: the command has to know whom to open for',
    });
    // The backend the helper builds checks it too, whoever constructs it.
    expect(() => new CommandHooksBackend({ openCommand: ['/sbin/open', '--all'], closeCommand: hooks.closeCommand })).toThrowError(
      expect.objectContaining({ code: 'SKNOCK_FIREWALL_BAD_TEMPLATE', message: 'openCommand: must contain {address}: the command has to know whom to open for' }),
    );
  });
});

/** Records calls; grant fails for port 666 as a real firewall command might. */
class FakeBackend implements FirewallBackend {
  readonly calls: string[] = [];
  async start(given: FirewallPolicy): Promise<void> {
    this.calls.push(`start ${given.mode}`);
  }
  async grant(grants: readonly Grant[]): Promise<void> {
    this.calls.push(`grant ${grants.map((item) => item.address).join(',')}`);
    if (grants.some((item) => item.port === 666)) throw new SknockError('SKNOCK_FIREWALL_COMMAND_FAILED', 'nft: no such table');
  }
  async list(): Promise<ActiveGrant[]> {
    this.calls.push('list');
    return [{ address: grant.address, protocol: 'tcp', port: 22, expiresInMs: 1000 }];
  }
  async stop(): Promise<void> {
    this.calls.push('stop');
  }
}

describe('helper session', () => {
  const started = async (backend = new FakeBackend()): Promise<{ backend: FakeBackend; session: HelperSession }> => {
    const session = new HelperSession(backend, policy);
    expect(await session.answer('{"id":0,"op":"start"}')).toEqual({ id: 0, ok: true });
    return { backend, session };
  };

  it('runs valid requests with the fixed policy and maps backend failures to their code', async () => {
    const { backend, session } = await started();
    expect(await session.answer('{"id":2,"op":"list"}')).toEqual({ id: 2, ok: true, result: [{ address: grant.address, protocol: 'tcp', port: 22, expiresInMs: 1000 }] });
    expect(await session.answer(JSON.stringify({ id: 3, op: 'grant', grants: [{ ...grant, port: 666 }] }))).toEqual({
      id: 3,
      ok: false,
      error: { code: 'SKNOCK_FIREWALL_COMMAND_FAILED', message: 'nft: no such table' },
    });
    expect(backend.calls).toEqual(['start drop', 'list', 'grant 198.18.0.2']);
  });

  it('refuses invalid requests without touching the backend', async () => {
    const backend = new FakeBackend();
    const reply = await new HelperSession(backend, policy).answer('{"id":4,"op":"grant","grants":[{"address":"$(reboot)","protocol":"tcp","port":22,"seconds":1}]}');
    expect(reply).toMatchObject({ id: 4, ok: false, error: { code: 'SKNOCK_FIREWALL_HELPER_REFUSED', message: expect.stringContaining('bad-address') } });
    expect(backend.calls).toEqual([]);
  });

  it('installs the policy once: a second start is refused', async () => {
    const { backend, session } = await started();
    expect(await session.answer('{"id":1,"op":"start"}')).toMatchObject({ id: 1, ok: false, error: { code: 'SKNOCK_FIREWALL_HELPER_REFUSED', message: expect.stringContaining('already-started') } });
    expect(backend.calls).toEqual(['start drop']);
  });

  it('refuses a stop before start', async () => {
    const backend = new FakeBackend();
    const session = new HelperSession(backend, policy);
    expect(await session.answer('{"id":1,"op":"stop"}')).toMatchObject({ id: 1, ok: false, error: { message: expect.stringContaining('not-started') } });
    expect(await session.finish()).toBeNull();
    expect(backend.calls).toEqual([]);
  });

  it('runs a stop only when it is the last request: anything after it is refused and the policy stays', async () => {
    const { backend, session } = await started();
    expect(await session.answer('{"id":1,"op":"stop"}')).toBeNull();
    expect(await session.answer(JSON.stringify({ id: 2, op: 'grant', grants: [grant] }))).toMatchObject({ id: 2, ok: false, error: { message: expect.stringContaining('after-stop') } });
    expect(await session.answer('{"id":3,"op":"start"}')).toMatchObject({ id: 3, ok: false, error: { message: expect.stringContaining('after-stop') } });
    expect(await session.finish()).toMatchObject({ id: 1, ok: false, error: { message: expect.stringContaining('stop-not-final') } });
    expect(backend.calls).toEqual(['start drop']);
  });

  it('runs the final stop when the input ends after it', async () => {
    const { backend, session } = await started();
    expect(await session.answer('{"id":1,"op":"stop"}')).toBeNull();
    expect(await session.finish()).toEqual({ id: 1, ok: true });
    expect(backend.calls).toEqual(['start drop', 'stop']);
  });

  it('serves newline-delimited requests until its input ends, then the final stop', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const backend = new FakeBackend();
    const served = serveHelper(new HelperSession(backend, policy), input, output);
    input.end(['{"id":1,"op":"start"}', '', 'garbage', '{"id":2,"op":"list"}', '{"id":3,"op":"stop"}', ''].join('\n'));
    await served;
    const replies = String(output.read()).trim().split('\n').map((line) => JSON.parse(line) as { id: number | null; ok: boolean });
    expect(replies).toHaveLength(4);
    expect(replies).toEqual(expect.arrayContaining([{ id: 1, ok: true }, expect.objectContaining({ id: 2, ok: true }), expect.objectContaining({ id: null, ok: false })]));
    expect(replies.at(-1)).toEqual({ id: 3, ok: true });
    expect(backend.calls.at(-1)).toBe('stop');
  });

  it('leaves the policy in place when the input ends without a stop', async () => {
    const input = new PassThrough();
    const backend = new FakeBackend();
    const served = serveHelper(new HelperSession(backend, policy), input, new PassThrough());
    input.end('{"id":1,"op":"start"}\n');
    await served;
    expect(backend.calls).toEqual(['start drop']);
  });
});

/** A stand-in helper: answers list with one grant, grant with an error, and dies on stop. */
const FAKE_HELPER = `
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const request = JSON.parse(line);
  if (request.op === 'stop') process.exit(7);
  const reply = request.op === 'list' ? { id: request.id, ok: true, result: [{ address: '198.18.0.2', protocol: 'tcp', port: 22, expiresInMs: 5 }] }
    : request.op === 'grant' ? { id: request.id, ok: false, error: { code: 'SKNOCK_FIREWALL_HELPER_REFUSED', message: 'refused (bad-address)' } }
    : { id: request.id, ok: true };
  process.stdout.write(JSON.stringify(reply) + '\\n');
});`;

/** Answers every request only once its input has ended: a stop reply proves the client closed the pipe after it. */
const ECHO_UNTIL_END_HELPER = `
const ids = [];
const lines = require('node:readline').createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const request = JSON.parse(line);
  if (request.op === 'stop') ids.push(request.id);
  else process.stdout.write(JSON.stringify({ id: request.id, ok: true }) + '\\n');
});
lines.on('close', () => { for (const id of ids) process.stdout.write(JSON.stringify({ id, ok: true }) + '\\n'); });`;

describe('FirewallHelperClient', () => {
  it('maps replies to results and error codes', async () => {
    const client = FirewallHelperClient.spawn([process.execPath, '-e', FAKE_HELPER]);
    try {
      await client.start();
      expect(await client.list()).toEqual([{ address: '198.18.0.2', protocol: 'tcp', port: 22, expiresInMs: 5 }]);
      await expect(client.grant([grant])).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_REFUSED' });
    } finally {
      await client.close();
    }
  });

  it('fails every waiting and later call clearly once the helper is dead', async () => {
    const client = FirewallHelperClient.spawn([process.execPath, '-e', FAKE_HELPER]);
    await expect(client.stop()).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_DEAD', message: expect.stringContaining('code 7') });
    await expect(client.list()).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_DEAD' });
    await client.close();
  });

  it('ends the session with stop: the helper sees the end of its input, and later calls fail', async () => {
    const client = FirewallHelperClient.spawn([process.execPath, '-e', ECHO_UNTIL_END_HELPER]);
    await client.start();
    await client.stop();
    await expect(client.list()).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_DEAD', message: expect.stringContaining('ended') });
    await client.close();
  });

  it('reports a helper that cannot be started', async () => {
    const client = FirewallHelperClient.spawn(['/nonexistent/sknock-helper']);
    await expect(client.start()).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_DEAD', message: expect.stringContaining('could not be started') });
  });
});
