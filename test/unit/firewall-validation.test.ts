import { describe, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import { mergeGrants, OperationQueue } from '../../server/firewall/operation-queue.js';
import type { Grant } from '../../server/firewall/types.js';
import {
  parseGrant,
  parseGrants,
  parsePolicy,
  requireGrants,
  requirePolicy,
  MAX_GRANTS_PER_CALL,
  parseGrantAddress,
} from '../../server/firewall/validation.js';

const good: Grant = { address: '198.18.0.2', protocol: 'tcp', port: 22, seconds: 15 };

describe('parseGrantAddress', () => {
  it('keeps IPv4 and writes IPv6 in the project\'s canonical (RFC 5952) form', () => {
    expect(parseGrantAddress('198.18.0.2')).toBe('198.18.0.2');
    expect(parseGrantAddress('FD00:0018:0:0::2')).toBe('fd00:18::2');
    expect(parseGrantAddress('1::2:3:4:5:6:7')).toBe('1:0:2:3:4:5:6:7');
    expect(parseGrantAddress('::FFFF:198.18.0.2')).toBe('::ffff:198.18.0.2');
  });

  it.each([
    '1.2.3.4; rm -rf /',
    '1.2.3.4 ',
    '1.2.3.4\n',
    '01.2.3.4',
    '1.2.3.4/32',
    '$(reboot)',
    'fe80::1%eth0',
    'fe80::1%eth0;x',
    '',
    'localhost',
  ])('refuses %j', (text) => {
    expect(parseGrantAddress(text)).toBeNull();
  });

  it('refuses what is not a string', () => {
    expect(parseGrantAddress(0x01020304)).toBeNull();
    expect(parseGrantAddress(null)).toBeNull();
  });
});

describe('parseGrant', () => {
  it('accepts a well-formed grant and canonicalises the address', () => {
    expect(parseGrant({ ...good, address: 'FD00:18::2' })).toEqual({ ok: true, value: { ...good, address: 'fd00:18::2' } });
  });

  it.each([
    [{ ...good, address: '1.2.3.4; rm -rf /' }, 'bad-address'],
    [{ ...good, address: '1.2.3.4 . tcp . 22 }; flush ruleset; add element {' }, 'bad-address'],
    [{ ...good, protocol: 'icmp' }, 'bad-protocol'],
    [{ ...good, protocol: 'TCP' }, 'bad-protocol'],
    [{ ...good, protocol: 'tcp --dport 1 -j ACCEPT' }, 'bad-protocol'],
    [{ ...good, port: 0 }, 'bad-port'],
    [{ ...good, port: 65536 }, 'bad-port'],
    [{ ...good, port: 22.5 }, 'bad-port'],
    [{ ...good, port: '22' }, 'bad-port'],
    [{ ...good, seconds: 0 }, 'bad-seconds'],
    [{ ...good, seconds: 86_401 }, 'bad-seconds'],
    [{ ...good, seconds: Number.NaN }, 'bad-seconds'],
    [{ ...good, seconds: '15' }, 'bad-seconds'],
    [{ ...good, comment: 'x' }, 'unknown-field'],
    [[good], 'not-an-object'],
    [null, 'not-an-object'],
  ])('refuses %j as %s', (value, reason) => {
    const parsed = parseGrant(value);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toBe(reason);
  });

  it('refuses a batch with one bad grant, naming its index, and oversized batches', () => {
    const parsed = parseGrants([good, { ...good, port: -1 }]);
    expect(parsed).toMatchObject({ ok: false, reason: 'bad-port' });
    if (!parsed.ok) expect(parsed.detail).toContain('grant 1');
    expect(parseGrants(Array.from({ length: MAX_GRANTS_PER_CALL + 1 }, () => good))).toMatchObject({ ok: false, reason: 'too-many-grants' });
  });

  it('throws an operator error with a stable code from requireGrants', () => {
    expect(() => requireGrants([{ ...good, address: '1.2.3.4; rm -rf /' }])).toThrowError(/refused grant/);
    try {
      requireGrants([{ ...good, port: 0 }]);
    } catch (error) {
      expect(isSknockError(error, 'SKNOCK_FIREWALL_INVALID_GRANT')).toBe(true);
    }
  });
});

describe('parsePolicy', () => {
  const policy = { mode: 'drop', emergencySshPort: 22, publicPorts: [{ protocol: 'tcp', port: 443 }] };

  it('accepts each mode, and no emergency port', () => {
    for (const mode of ['none', 'reject', 'drop']) expect(parsePolicy({ ...policy, mode }).ok).toBe(true);
    expect(parsePolicy({ ...policy, emergencySshPort: null }).ok).toBe(true);
  });

  it.each([
    [{ ...policy, mode: 'accept' }, 'bad-mode'],
    [{ ...policy, emergencySshPort: 0 }, 'bad-emergency-port'],
    [{ ...policy, emergencySshPort: undefined }, 'bad-emergency-port'],
    [{ ...policy, publicPorts: [{ protocol: 'tcp', port: '80; drop' }] }, 'bad-public-ports'],
    [{ ...policy, publicPorts: [{ protocol: 'sctp', port: 80 }] }, 'bad-public-ports'],
    [{ ...policy, publicPorts: 'tcp/80' }, 'bad-public-ports'],
    [{ ...policy, extra: true }, 'unknown-field'],
  ])('refuses %j as %s', (value, reason) => {
    expect(parsePolicy(value)).toMatchObject({ ok: false, reason });
  });

  it('throws SKNOCK_FIREWALL_INVALID_POLICY from requirePolicy', () => {
    expect(() => requirePolicy({ mode: 'open' } as never)).toThrowError(expect.objectContaining({ code: 'SKNOCK_FIREWALL_INVALID_POLICY' }));
  });
});

describe('grant batching', () => {
  it('keeps one grant per address, protocol and port, the later one winning', () => {
    const merged = mergeGrants([good, { ...good, port: 80 }, { ...good, seconds: 60 }]);
    expect(merged).toEqual([
      { ...good, port: 80 },
      { ...good, seconds: 60 },
    ]);
  });

  it('merges grants that arrive while an operation runs into one batch, in order after it', async () => {
    const applied: Grant[][] = [];
    const queue = new OperationQueue(async (grants) => {
      applied.push([...grants]);
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const order: string[] = [];
    const blocker = queue.run(() => gate.then(() => void order.push('blocker')));
    const first = queue.grant([good]);
    const second = queue.grant([{ ...good, port: 80 }, { ...good, seconds: 99 }]);
    expect(applied).toEqual([]);
    release();
    await Promise.all([blocker, first, second]);
    expect(order).toEqual(['blocker']);
    expect(applied).toEqual([[{ ...good, port: 80 }, { ...good, seconds: 99 }]]);
    await queue.grant([{ ...good, port: 443 }]);
    expect(applied).toHaveLength(2);
  });

  it('rejects every caller of a failed batch and keeps serving later operations', async () => {
    const queue = new OperationQueue(async () => {
      throw new Error('nft failed');
    });
    await expect(queue.grant([good])).rejects.toThrow('nft failed');
    await expect(queue.run(async () => 'later')).resolves.toBe('later');
  });
});
