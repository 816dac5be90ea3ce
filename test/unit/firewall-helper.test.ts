import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SknockError } from '../../client-lib/errors.js';
import { FirewallHelperClient } from '../../server/firewall/helper-client.js';
import { answerHelperRequest, parseBackendOptions, parseHelperRequest, serveHelper, MAX_REQUEST_LENGTH } from '../../server/firewall/helper-protocol.js';
import type { ActiveGrant, FirewallBackend, FirewallPolicy, Grant } from '../../server/firewall/types.js';

const policy: FirewallPolicy = { mode: 'drop', emergencySshPort: 22, publicPorts: [] };
const grant: Grant = { address: '198.18.0.2', protocol: 'tcp', port: 22, seconds: 15 };

describe('helper requests', () => {
  it('accepts the four operations with checked fields', () => {
    expect(parseHelperRequest(JSON.stringify({ id: 1, op: 'start', policy }))).toEqual({ id: 1, request: { ok: true, value: { id: 1, op: 'start', policy } } });
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
    ['{"id":7,"op":"start","policy":{"mode":"open","emergencySshPort":22,"publicPorts":[]}}', 7, 'bad-mode'],
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

describe('helper answers', () => {
  it('runs valid requests and maps backend failures to their code', async () => {
    const backend = new FakeBackend();
    expect(await answerHelperRequest(backend, JSON.stringify({ id: 1, op: 'start', policy }))).toEqual({ id: 1, ok: true });
    expect(await answerHelperRequest(backend, '{"id":2,"op":"list"}')).toEqual({ id: 2, ok: true, result: [{ address: grant.address, protocol: 'tcp', port: 22, expiresInMs: 1000 }] });
    expect(await answerHelperRequest(backend, JSON.stringify({ id: 3, op: 'grant', grants: [{ ...grant, port: 666 }] }))).toEqual({
      id: 3,
      ok: false,
      error: { code: 'SKNOCK_FIREWALL_COMMAND_FAILED', message: 'nft: no such table' },
    });
    expect(backend.calls).toEqual(['start drop', 'list', 'grant 198.18.0.2']);
  });

  it('refuses invalid requests without touching the backend', async () => {
    const backend = new FakeBackend();
    const reply = await answerHelperRequest(backend, '{"id":4,"op":"grant","grants":[{"address":"$(reboot)","protocol":"tcp","port":22,"seconds":1}]}');
    expect(reply).toMatchObject({ id: 4, ok: false, error: { code: 'SKNOCK_FIREWALL_HELPER_REFUSED', message: expect.stringContaining('bad-address') } });
    expect(backend.calls).toEqual([]);
  });

  it('serves newline-delimited requests until its input ends', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const served = serveHelper(new FakeBackend(), input, output);
    input.end(['{"id":1,"op":"stop"}', '', 'garbage', '{"id":2,"op":"list"}', ''].join('\n'));
    await served;
    const replies = String(output.read()).trim().split('\n').map((line) => JSON.parse(line) as { id: number | null; ok: boolean });
    expect(replies).toHaveLength(3);
    expect(replies).toEqual(expect.arrayContaining([{ id: 1, ok: true }, expect.objectContaining({ id: 2, ok: true }), expect.objectContaining({ id: null, ok: false })]));
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

describe('FirewallHelperClient', () => {
  it('maps replies to results and error codes', async () => {
    const client = FirewallHelperClient.spawn([process.execPath, '-e', FAKE_HELPER]);
    try {
      await client.start(policy);
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

  it('reports a helper that cannot be started', async () => {
    const client = FirewallHelperClient.spawn(['/nonexistent/sknock-helper']);
    await expect(client.start(policy)).rejects.toMatchObject({ code: 'SKNOCK_FIREWALL_HELPER_DEAD', message: expect.stringContaining('could not be started') });
  });
});
