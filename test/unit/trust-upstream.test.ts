import { readFileSync } from 'node:fs';
import { beforeAll, expect, it } from 'vitest';
import { loadPkcs12 } from '../../client-lib/pkcs12.js';
import {
  authorizePorts,
  checkClientCertificate,
  createTrustState,
  crlFreshness,
  parseCrl,
  type CrlPolicy,
  type TrustVerdict,
  type VerifiedCrl,
} from '../../server/trust/index.js';
import { describeWithUpstreamFixtures, upstreamFixture } from '../helpers/fixtures.js';

const in2026 = Date.parse('2026-01-01T00:00:00Z');
const in2016 = Date.parse('2016-06-01T00:00:00Z');
const password = 'portknocking';

function bundle(...parts: string[]) {
  return loadPkcs12(readFileSync(upstreamFixture(...parts)), password);
}

function outcome(verdict: TrustVerdict): string {
  return verdict.ok ? `accepted ${verdict.warnings.join(',')}`.trim() : verdict.reason;
}

describeWithUpstreamFixtures('trust with the original sKnock test PKI', () => {
  let clientDer: Buffer;
  let caDers: Buffer[];

  beforeAll(() => {
    const client = bundle('test-pki', 'devclient.pfx');
    clientDer = client.certificateDer;
    caDers = client.otherCertificates.map((certificate) => certificate.raw);
  });

  it('accepts the test client for tcp/2000 and refuses tcp/22, warning that there is no CRL', () => {
    const trust = createTrustState({ caCertificates: caDers, crlPolicy: 'warn' });
    const verdict = checkClientCertificate(trust, clientDer, undefined, in2026);
    if (!verdict.ok) throw new Error(`rejected: ${verdict.reason} ${verdict.detail}`);
    expect(verdict.warnings).toEqual(['no-crl']);
    expect(verdict.value.subject).toContain('CN=sKnock Test Client');
    expect(verdict.value.serialHex).toBe('02');
    expect(verdict.value.permittedPorts).toEqual([
      { protocol: 'tcp', port: 2000 },
      { protocol: 'tcp', port: 3000 },
      { protocol: 'udp', port: 8000 },
    ]);
    expect(authorizePorts(verdict.value, [{ protocol: 'tcp', port: 2000 }]).ok).toBe(true);
    expect(authorizePorts(verdict.value, [{ protocol: 'tcp', port: 22 }])).toMatchObject({ ok: false, reason: 'unauthorized-port' });
  });

  it("refuses it under crlPolicy 'require' without a CRL", () => {
    const trust = createTrustState({ caCertificates: caDers, crlPolicy: 'require' });
    expect(checkClientCertificate(trust, clientDer, undefined, in2026)).toMatchObject({ ok: false, reason: 'no-crl' });
  });

  it('refuses the test server certificate as a client', () => {
    const trust = createTrustState({ caCertificates: caDers, crlPolicy: 'warn' });
    const serverDer = readFileSync(upstreamFixture('test-pki', 'devserver.cer'));
    expect(outcome(checkClientCertificate(trust, serverDer, undefined, in2026))).toBe('missing-key-usage');
  });
});

describeWithUpstreamFixtures('trust with the original sKnock old dev PKI', () => {
  let caDer: Buffer;
  let crl: VerifiedCrl;
  const crlBytes = () => readFileSync(upstreamFixture('old-dev-pki', 'devca.crl'));

  beforeAll(() => {
    caDer = readFileSync(upstreamFixture('old-dev-pki', 'devca.cer'));
    const parsed = parseCrl(crlBytes(), [caDer]);
    if (!parsed.ok) throw new Error(`devca.crl rejected: ${parsed.reason} ${parsed.detail}`);
    crl = parsed.value;
  });

  it('parses devca.crl and verifies it against devca.cer', () => {
    expect(crl.issuer).toBe('O=Daniel Sel, CN=Dev CA ECDSA');
    expect(crl.crlNumber).toBe(4n);
    expect(crl.thisUpdateMs).toBe(Date.parse('2016-01-19T01:38:23Z'));
    expect(crl.nextUpdateMs).toBe(Date.parse('2016-01-26T13:58:23Z'));
    expect(crl.count).toBe(4);
    expect(crl.revokedSerials).toEqual(
      new Set([
        0x24000000035982711679ce15c1000000000003n,
        0x2400000007a1955144f2606fb0000000000007n,
        0x240000000626eed4f44f5ce59f000000000006n,
        0x2400000005bff2bbde100d27df000000000005n,
      ]),
    );
    expect(crlFreshness(crl, in2016)).toBe('stale');
  });

  it('does not verify devca.crl against another CA', () => {
    const otherCa = bundle('test-pki', 'devclient.pfx').otherCertificates.map((certificate) => certificate.raw);
    expect(parseCrl(crlBytes(), otherCa)).toMatchObject({ ok: false, reason: 'crl-untrusted-issuer' });
  });

  it('refuses devclient1.cer with clear reasons at every clock and policy', () => {
    const clientDer = readFileSync(upstreamFixture('old-dev-pki', 'devclient1.cer'));
    const verdict = (policy: CrlPolicy, nowMs: number, withCrl = true) =>
      checkClientCertificate(createTrustState({ caCertificates: [caDer], crl: withCrl ? crl : null, crlPolicy: policy }), clientDer, undefined, nowMs);
    const in2016Verdict = verdict('warn', in2016);
    expect(outcome(in2016Verdict)).toBe('malformed-authorization');
    expect(in2016Verdict.ok ? '' : in2016Verdict.detail).toContain('OCTET STRING ("TCP2000,TCP3000")');
    expect(outcome(verdict('require', in2016))).toBe('malformed-authorization');
    expect(outcome(verdict('warn', in2026))).toBe('certificate-expired');
    expect(outcome(verdict('require', in2026, false))).toBe('certificate-expired');
  });

  it.each([
    ['devclient2.pfx', 'warn', '2016-06-01', 'revoked'],
    ['devclient3.pfx', 'warn', '2016-06-01', 'malformed-authorization'],
    ['devclient4.pfx', 'warn', '2016-06-01', 'accepted crl-stale'],
    ['devclient4.pfx', 'require', '2016-06-01', 'crl-stale'],
    ['devclient4.pfx', 'warn', '2026-01-01', 'certificate-expired'],
    ['devserver.pfx', 'warn', '2016-06-01', 'missing-key-usage'],
  ] as const)('judges %s under %s on %s: %s', (file, policy, day, expected) => {
    const trust = createTrustState({ caCertificates: [caDer], crl, crlPolicy: policy });
    const verdict = checkClientCertificate(trust, bundle('old-dev-pki', file).certificateDer, undefined, Date.parse(`${day}T00:00:00Z`));
    expect(outcome(verdict)).toBe(expected);
  });

  it('refuses the old clients under the test PKI CA as untrusted', () => {
    const testCa = bundle('test-pki', 'devclient.pfx').otherCertificates.map((certificate) => certificate.raw);
    const trust = createTrustState({ caCertificates: testCa, crlPolicy: 'warn' });
    const clientDer = readFileSync(upstreamFixture('old-dev-pki', 'devclient1.cer'));
    expect(outcome(checkClientCertificate(trust, clientDer, undefined, in2016))).toBe('untrusted-issuer');
  });
});
