import { createHash, sign, verify } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import {
  authorizePorts,
  checkClientCertificate,
  createTrustState,
  crlFreshness,
  parseCrl,
  trustCacheStats,
  type TrustOptions,
  type TrustReason,
  type TrustState,
  type TrustVerdict,
  type VerifiedCrl,
} from '../../server/trust/index.js';
import {
  createAuthority,
  createCertificateZoo,
  issueCertificate,
  issueCrl,
  type CertificateZoo,
  x509,
} from '../helpers/cert-zoo.js';

const now = new Date('2026-01-01T00:00:00Z');
const nowMs = now.getTime();
const dayMs = 86_400_000;

let zoo: CertificateZoo;
let currentCrl: VerifiedCrl;
let staleCrl: VerifiedCrl;

function verifiedCrl(bytes: Buffer, issuers: readonly Buffer[]): VerifiedCrl {
  const parsed = parseCrl(bytes, issuers);
  if (!parsed.ok) throw new Error(`CRL fixture rejected: ${parsed.reason} ${parsed.detail}`);
  return parsed.value;
}

function state(options: Partial<TrustOptions> = {}): TrustState {
  return createTrustState({ caCertificates: [zoo.ca.der], crl: currentCrl, crlPolicy: 'warn', ...options });
}

function reasonOf(verdict: TrustVerdict): TrustReason | 'accepted' {
  return verdict.ok ? 'accepted' : verdict.reason;
}

function expectThrowsCode(action: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(isSknockError(thrown, code), `expected SknockError ${code}, got ${String(thrown)}`).toBe(true);
}

beforeAll(async () => {
  zoo = await createCertificateZoo(now);
  currentCrl = verifiedCrl(zoo.crls.current, [zoo.ca.der]);
  staleCrl = verifiedCrl(zoo.crls.stale, [zoo.ca.der]);
});

describe('checkClientCertificate with the certificate zoo', () => {
  it('accepts the valid client with its identity, ready for the knock signature check', () => {
    const client = zoo.clients.valid;
    const verdict = checkClientCertificate(state(), client.der, undefined, nowMs);
    if (!verdict.ok) throw new Error(`rejected: ${verdict.reason} ${verdict.detail}`);
    expect(verdict.warnings).toEqual([]);
    const identity = verdict.value;
    expect(identity.subject).toBe('CN=valid client');
    expect(identity.issuer).toBe('CN=Zoo CA, O=sKnock tests');
    expect(identity.serialHex).toBe(client.serialHex);
    expect(identity.permittedPorts).toEqual([
      { protocol: 'tcp', port: 22 },
      { protocol: 'udp', port: 53 },
    ]);
    expect(identity.certificateSha256).toBe(createHash('sha256').update(client.der).digest('hex'));
    expect(identity.notBeforeMs).toBe(client.certificate.notBefore.getTime());
    expect(identity.notAfterMs).toBe(client.certificate.notAfter.getTime());
    const signed = Buffer.from('request || certificate');
    expect(verify('sha256', signed, identity.signingKey.nodeKey, sign('sha256', signed, client.keys.privateKey))).toBe(true);
    expect(Object.isFrozen(identity)).toBe(true);
  });

  it.each([
    ['expired', 'certificate-expired'],
    ['notYetValid', 'certificate-not-yet-valid'],
    ['ofOtherCa', 'untrusted-issuer'],
    ['selfSigned', 'untrusted-issuer'],
    ['caAsClient', 'ca-certificate'],
    ['serverAsClient', 'wrong-extended-key-usage'],
    ['noKeyUsage', 'missing-key-usage'],
    ['wrongKeyUsage', 'missing-key-usage'],
    ['revoked', 'revoked'],
    ['malformedAuthorization', 'malformed-authorization'],
    ['octetStringAuthorization', 'malformed-authorization'],
    ['noAuthorization', 'no-authorization'],
    ['rsa', 'not-p256'],
    ['badSignature', 'bad-certificate-signature'],
  ] as const)('rejects the %s client: %s', (name, reason) => {
    const verdict = checkClientCertificate(state(), zoo.clients[name].der, undefined, nowMs);
    expect(reasonOf(verdict)).toBe(reason);
    expect(verdict.ok ? '' : verdict.detail).not.toBe('');
  });

  it('explains the old OCTET STRING authorization form in the detail', () => {
    const verdict = checkClientCertificate(state(), zoo.clients.octetStringAuthorization.der, undefined, nowMs);
    expect(verdict.ok ? '' : verdict.detail).toMatch(/OCTET STRING \("TCP2000,TCP3000"\).*UTF8String/);
  });

  it('rejects a certificate that is not DER at all as certificate-malformed', () => {
    expect(reasonOf(checkClientCertificate(state(), Buffer.from('not a certificate'), undefined, nowMs))).toBe('certificate-malformed');
    const trailing = Buffer.concat([zoo.clients.valid.der, Buffer.from([0])]);
    expect(reasonOf(checkClientCertificate(state(), trailing, undefined, nowMs))).toBe('certificate-malformed');
  });

  it('rejects a certificate with a critical extension it does not enforce', async () => {
    const client = await issueCertificate(zoo.ca, { now, extraExtensions: [new x509.Extension('1.2.3.4.5', true, Buffer.from([5, 0]))] });
    const verdict = checkClientCertificate(state(), client.der, undefined, nowMs);
    expect(reasonOf(verdict)).toBe('certificate-malformed');
    expect(verdict.ok ? '' : verdict.detail).toContain('1.2.3.4.5');
  });

  it('checks the validity period at its edges, inclusive', () => {
    const notBeforeMs = zoo.clients.valid.certificate.notBefore.getTime();
    const notAfterMs = zoo.clients.valid.certificate.notAfter.getTime();
    const trust = state({ crl: null });
    expect(reasonOf(checkClientCertificate(trust, zoo.clients.valid.der, undefined, notBeforeMs - 1))).toBe('certificate-not-yet-valid');
    expect(reasonOf(checkClientCertificate(trust, zoo.clients.valid.der, undefined, notBeforeMs))).toBe('accepted');
    expect(reasonOf(checkClientCertificate(trust, zoo.clients.valid.der, undefined, notAfterMs))).toBe('accepted');
    expect(reasonOf(checkClientCertificate(trust, zoo.clients.valid.der, undefined, notAfterMs + 1))).toBe('certificate-expired');
  });

  it('refuses clients whose CA has expired', async () => {
    const oldCa = await createAuthority({ now, name: 'CN=Short-lived CA', notAfter: new Date(nowMs + dayMs) });
    const client = await issueCertificate(oldCa, { now, notAfter: new Date(nowMs + 10 * dayMs) });
    const trust = createTrustState({ caCertificates: [oldCa.der], crlPolicy: 'warn' });
    expect(reasonOf(checkClientCertificate(trust, client.der, undefined, nowMs))).toBe('accepted');
    expect(reasonOf(checkClientCertificate(trust, client.der, undefined, nowMs + 2 * dayMs))).toBe('untrusted-issuer');
  });

  it('matches CRL entries on the serial integer value, whatever the encoding', async () => {
    const client = await issueCertificate(zoo.ca, { now, serialHex: '05' });
    expect(client.serialHex).toBe('05');
    const padded = verifiedCrl(await issueCrl(zoo.ca, { now, revokedSerials: ['000005', 'ff', '00'] }), [zoo.ca.der]);
    expect([...padded.revokedSerials]).toEqual([5n, -1n, 0n]);
    expect(reasonOf(checkClientCertificate(state({ crl: padded }), client.der, undefined, nowMs))).toBe('revoked');
    // 0x85 alone is -123, not 133: the value, not the bytes, decides.
    const negative = verifiedCrl(await issueCrl(zoo.ca, { now, revokedSerials: ['85'] }), [zoo.ca.der]);
    const positive = await issueCertificate(zoo.ca, { now, serialHex: '85' });
    expect(positive.serialHex).toBe('0085');
    expect(reasonOf(checkClientCertificate(state({ crl: negative }), positive.der, undefined, nowMs))).toBe('accepted');
  });
});

describe('authorizePorts', () => {
  it('allows a subset of the permitted ports and names the others', () => {
    const verdict = checkClientCertificate(state(), zoo.clients.otherPort.der, undefined, nowMs);
    if (!verdict.ok) throw new Error(verdict.reason);
    expect(authorizePorts(verdict.value, [{ protocol: 'tcp', port: 2222 }])).toEqual({ ok: true, value: [{ protocol: 'tcp', port: 2222 }] });
    const refused = authorizePorts(verdict.value, [
      { protocol: 'tcp', port: 2222 },
      { protocol: 'tcp', port: 22 },
    ]);
    expect(refused).toMatchObject({ ok: false, reason: 'unauthorized-port' });
    expect(refused.ok ? '' : refused.detail).toContain('tcp/22 not in tcp/2222');
    expect(authorizePorts(verdict.value, [{ protocol: 'udp', port: 2222 }]).ok).toBe(false);
  });
});

describe('the verified-certificate cache', () => {
  it('hits on the second check of a valid client and still applies the clock', () => {
    const trust = state();
    checkClientCertificate(trust, zoo.clients.valid.der, undefined, nowMs);
    expect(trustCacheStats(trust)).toMatchObject({ hits: 0, misses: 1, size: 1 });
    expect(reasonOf(checkClientCertificate(trust, zoo.clients.valid.der, undefined, nowMs))).toBe('accepted');
    expect(trustCacheStats(trust)).toMatchObject({ hits: 1, misses: 1, size: 1 });
    const afterExpiry = zoo.clients.valid.certificate.notAfter.getTime() + 1;
    expect(reasonOf(checkClientCertificate(trust, zoo.clients.valid.der, undefined, afterExpiry))).toBe('certificate-expired');
    expect(trustCacheStats(trust).hits).toBe(2);
  });

  it('applies CRL freshness on a hit', () => {
    const trust = state({ crlPolicy: 'require' });
    expect(reasonOf(checkClientCertificate(trust, zoo.clients.valid.der, undefined, nowMs))).toBe('accepted');
    const afterNextUpdate = (currentCrl.nextUpdateMs ?? 0) + 1;
    expect(reasonOf(checkClientCertificate(trust, zoo.clients.valid.der, undefined, afterNextUpdate))).toBe('crl-stale');
    expect(trustCacheStats(trust).hits).toBe(1);
  });

  it('never caches a rejected certificate', () => {
    const trust = state();
    checkClientCertificate(trust, zoo.clients.revoked.der, undefined, nowMs);
    checkClientCertificate(trust, zoo.clients.revoked.der, undefined, nowMs);
    checkClientCertificate(trust, zoo.clients.expired.der, undefined, nowMs);
    expect(trustCacheStats(trust)).toMatchObject({ hits: 0, misses: 3, size: 0 });
  });

  it('is bounded and evicts the least recently used entry', async () => {
    const trust = state({ cacheSize: 2 });
    const third = await issueCertificate(zoo.ca, { now, subject: 'CN=third client' });
    for (const der of [zoo.clients.valid.der, zoo.clients.otherPort.der, zoo.clients.valid.der, third.der]) {
      expect(reasonOf(checkClientCertificate(trust, der, undefined, nowMs))).toBe('accepted');
    }
    expect(trustCacheStats(trust)).toMatchObject({ size: 2, capacity: 2, evictions: 1, hits: 1, misses: 3 });
    checkClientCertificate(trust, zoo.clients.valid.der, undefined, nowMs);
    expect(trustCacheStats(trust).hits).toBe(2);
    checkClientCertificate(trust, zoo.clients.otherPort.der, undefined, nowMs);
    expect(trustCacheStats(trust).misses).toBe(4);
  });

  it('starts empty for every new state', () => {
    const first = state();
    checkClientCertificate(first, zoo.clients.valid.der, undefined, nowMs);
    expect(trustCacheStats(state()).size).toBe(0);
    expect(Object.isFrozen(first)).toBe(true);
  });
});

describe('parseCrl and crlFreshness', () => {
  it('exposes the verified CRL', () => {
    expect(currentCrl.issuer).toBe('CN=Zoo CA, O=sKnock tests');
    expect(currentCrl.crlNumber).toBe(7n);
    expect(currentCrl.count).toBe(1);
    expect(currentCrl.revokedSerials.has(BigInt(`0x${zoo.clients.revoked.serialHex}`))).toBe(true);
  });

  it('reads PEM as well as DER', () => {
    const pem = `-----BEGIN X509 CRL-----\n${zoo.crls.current.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END X509 CRL-----\n`;
    const parsed = parseCrl(Buffer.from(pem), [zoo.ca.der]);
    expect(parsed.ok && parsed.value.revokedSerials).toEqual(currentCrl.revokedSerials);
  });

  it('rejects a CRL with a bad signature, from another CA, or not a CRL at all', () => {
    expect(parseCrl(zoo.crls.badSignature, [zoo.ca.der])).toMatchObject({ ok: false, reason: 'crl-bad-signature' });
    expect(parseCrl(zoo.crls.ofOtherCa, [zoo.ca.der])).toMatchObject({ ok: false, reason: 'crl-untrusted-issuer' });
    expect(parseCrl(zoo.crls.ofOtherCa, state())).toMatchObject({ ok: false, reason: 'crl-untrusted-issuer' });
    expect(parseCrl(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), [zoo.ca.der])).toMatchObject({ ok: false, reason: 'crl-malformed' });
    expect(parseCrl(Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), [zoo.ca.der])).toMatchObject({
      ok: false,
      reason: 'crl-malformed',
    });
  });

  it('refuses a delta CRL: a critical extension it does not process changes what the list means', async () => {
    const deltaIndicator = new x509.Extension('2.5.29.27', true, Buffer.from([0x02, 0x01, 0x06]));
    const delta = await issueCrl(zoo.ca, { now, extraExtensions: [deltaIndicator] });
    const parsed = parseCrl(delta, [zoo.ca.der]);
    expect(parsed).toMatchObject({ ok: false, reason: 'crl-unsupported' });
    expect(parsed.ok ? '' : parsed.detail).toContain('2.5.29.27');
  });

  it('refuses a CRL that was verified against a CA the state does not trust', () => {
    const foreign = verifiedCrl(zoo.crls.ofOtherCa, [zoo.ca.der, zoo.otherCa.der]);
    expectThrowsCode(() => state({ crl: foreign }), 'SKNOCK_TRUST_CRL_MISMATCH');
  });

  it('tells fresh, stale and not-yet-valid apart', async () => {
    expect(crlFreshness(currentCrl, nowMs)).toBe('fresh');
    expect(crlFreshness(currentCrl, currentCrl.thisUpdateMs - 1)).toBe('not-yet-valid');
    expect(crlFreshness(staleCrl, nowMs)).toBe('stale');
    const withoutNextUpdate = verifiedCrl(await issueCrl(zoo.ca, { now, nextUpdate: null }), [zoo.ca.der]);
    expect(withoutNextUpdate.nextUpdateMs).toBeUndefined();
    expect(crlFreshness(withoutNextUpdate, nowMs)).toBe('stale');
  });

  it('under warn accepts with a warning; under require refuses', () => {
    const client = zoo.clients.valid.der;
    const cases: [Partial<TrustOptions>, object][] = [
      [{ crl: null, crlPolicy: 'warn' }, { ok: true, warnings: ['no-crl'] }],
      [{ crl: null, crlPolicy: 'require' }, { ok: false, reason: 'no-crl' }],
      [{ crl: staleCrl, crlPolicy: 'warn' }, { ok: true, warnings: ['crl-stale'] }],
      [{ crl: staleCrl, crlPolicy: 'require' }, { ok: false, reason: 'crl-stale' }],
      [{ crl: currentCrl, crlPolicy: 'require' }, { ok: true, warnings: [] }],
    ];
    for (const [options, expected] of cases) {
      expect(checkClientCertificate(state(options), client, undefined, nowMs)).toMatchObject(expected);
    }
    const early = currentCrl.thisUpdateMs - 1;
    expect(checkClientCertificate(state(), client, undefined, early)).toMatchObject({ ok: true, warnings: ['crl-not-yet-valid'] });
    expect(checkClientCertificate(state({ crlPolicy: 'require' }), client, undefined, early)).toMatchObject({ ok: false, reason: 'crl-stale' });
  });

  it('still honours the revocations of a stale CRL', () => {
    expect(reasonOf(checkClientCertificate(state({ crl: staleCrl }), zoo.clients.revoked.der, undefined, nowMs))).toBe('revoked');
  });
});

describe('intermediate chains', () => {
  const viaIntermediate = () => zoo.clients.viaIntermediate.der;

  it('accepts a client of an intermediate sent in the knock; the client is not covered by the anchor CRL', () => {
    expect(checkClientCertificate(state(), viaIntermediate(), zoo.intermediate.der, nowMs)).toMatchObject({
      ok: true,
      warnings: ['no-crl'],
    });
    expect(checkClientCertificate(state({ crlPolicy: 'require' }), viaIntermediate(), zoo.intermediate.der, nowMs)).toMatchObject({
      ok: false,
      reason: 'no-crl',
    });
  });

  it('accepts it through a configured intermediate, and refuses it without one', () => {
    expect(reasonOf(checkClientCertificate(state(), viaIntermediate(), undefined, nowMs))).toBe('untrusted-issuer');
    const configured = state({ intermediates: [zoo.intermediate.der] });
    expect(reasonOf(checkClientCertificate(configured, viaIntermediate(), undefined, nowMs))).toBe('accepted');
  });

  it('caches per certificate and intermediate pair', () => {
    const trust = state();
    checkClientCertificate(trust, viaIntermediate(), zoo.intermediate.der, nowMs);
    checkClientCertificate(trust, viaIntermediate(), zoo.intermediate.der, nowMs);
    expect(reasonOf(checkClientCertificate(trust, viaIntermediate(), undefined, nowMs))).toBe('untrusted-issuer');
    expect(trustCacheStats(trust)).toMatchObject({ hits: 1, misses: 2, size: 1 });
  });

  it('rejects a client whose issuer is not the intermediate in the knock', () => {
    expect(reasonOf(checkClientCertificate(state(), zoo.clients.valid.der, zoo.intermediate.der, nowMs))).toBe('untrusted-issuer');
  });

  it('refuses an intermediate revoked by the anchor CRL', async () => {
    const crl = verifiedCrl(await issueCrl(zoo.ca, { now, revokedSerials: [zoo.intermediate.serialHex] }), [zoo.ca.der]);
    const verdict = checkClientCertificate(state({ crl }), viaIntermediate(), zoo.intermediate.der, nowMs);
    expect(reasonOf(verdict)).toBe('revoked');
    expect(verdict.ok ? '' : verdict.detail).toContain('Zoo Intermediate CA');
  });

  it("uses the intermediate's own CRL for its clients", async () => {
    const trust = state({ intermediates: [zoo.intermediate.der], crl: null });
    const crlBytes = await issueCrl(zoo.intermediate, { now, revokedSerials: [zoo.clients.viaIntermediate.serialHex] });
    const crl = parseCrl(crlBytes, trust);
    if (!crl.ok) throw new Error(crl.reason);
    const withCrl = state({ intermediates: [zoo.intermediate.der], crl: crl.value });
    expect(reasonOf(checkClientCertificate(withCrl, viaIntermediate(), undefined, nowMs))).toBe('revoked');
  });

  it.each([
    ['garbage', () => Buffer.from('junk')],
    ['a client certificate', () => zoo.clients.valid.der],
    ['a CA certificate of another CA', () => zoo.otherCa.der],
  ])('rejects %s as intermediate', (_name, intermediate) => {
    expect(reasonOf(checkClientCertificate(state(), viaIntermediate(), intermediate(), nowMs))).toBe('bad-intermediate');
  });

  it('rejects an expired intermediate and one below an anchor with pathLenConstraint 0', async () => {
    const expired = await createAuthority({
      now,
      name: 'CN=Expired Intermediate',
      issuer: zoo.ca,
      notBefore: new Date(nowMs - 30 * dayMs),
      notAfter: new Date(nowMs - dayMs),
    });
    const client = await issueCertificate(expired, { now });
    expect(reasonOf(checkClientCertificate(state(), client.der, expired.der, nowMs))).toBe('bad-intermediate');

    const strictCa = await createAuthority({ now, name: 'CN=Strict CA', pathLength: 0 });
    const below = await createAuthority({ now, name: 'CN=Forbidden Intermediate', issuer: strictCa });
    const belowClient = await issueCertificate(below, { now });
    const strict = createTrustState({ caCertificates: [strictCa.der], crlPolicy: 'warn' });
    const verdict = checkClientCertificate(strict, belowClient.der, below.der, nowMs);
    expect(reasonOf(verdict)).toBe('bad-intermediate');
    expect(verdict.ok ? '' : verdict.detail).toContain('pathLenConstraint 0');
  });
});

describe('createTrustState configuration errors', () => {
  it('throws SknockError with a stable code', () => {
    expectThrowsCode(() => createTrustState({ caCertificates: [], crlPolicy: 'warn' }), 'SKNOCK_TRUST_NO_CA');
    expectThrowsCode(() => createTrustState({ caCertificates: [Buffer.from('x')], crlPolicy: 'warn' }), 'SKNOCK_TRUST_BAD_CA');
    expectThrowsCode(() => createTrustState({ caCertificates: [zoo.clients.valid.der], crlPolicy: 'warn' }), 'SKNOCK_TRUST_BAD_CA');
    expectThrowsCode(() => state({ intermediates: [zoo.otherCa.der] }), 'SKNOCK_TRUST_BAD_INTERMEDIATE');
    expectThrowsCode(() => state({ intermediates: [zoo.clients.valid.der] }), 'SKNOCK_TRUST_BAD_INTERMEDIATE');
    expectThrowsCode(() => state({ cacheSize: 0 }), 'SKNOCK_TRUST_BAD_OPTION');
    expectThrowsCode(() => parseCrl(zoo.crls.current, [Buffer.from('x')]), 'SKNOCK_TRUST_BAD_CA');
  });
});
