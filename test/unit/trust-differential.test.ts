/**
 * A second opinion on chain decisions: pkijs's certificate chain validation
 * engine (pure JavaScript, independent of node:crypto's X.509 code) must
 * agree with the trust module on every zoo certificate whose fate depends
 * on the chain alone (signature, issuer, validity period, revocation).
 * pkijs is given the CRL explicitly: without one it would call everything
 * unrevoked.
 */
import { webcrypto } from 'node:crypto';
import * as pkijs from 'pkijs';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkClientCertificate, createTrustState, parseCrl, prepareIssuerTables, type TrustState } from '../../server/trust/index.js';
import { createCertificateZoo, type CertificateZoo } from '../helpers/cert-zoo.js';

const chainCases = ['valid', 'expired', 'notYetValid', 'ofOtherCa', 'selfSigned', 'revoked', 'badSignature'] as const;

let zoo: CertificateZoo;
let trust: TrustState;
/** The same state as the verifiers use it: the CA's key with its precomputed table (native path). */
let trustWithTables: TrustState;

beforeAll(async () => {
  pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as pkijs.CryptoEngineParameters['crypto'] }));
  zoo = await createCertificateZoo(new Date('2026-06-01T12:00:00Z'));
  const crl = parseCrl(zoo.crls.current, [zoo.ca.der]);
  if (!crl.ok) throw new Error(crl.reason);
  trust = createTrustState({ caCertificates: [zoo.ca.der], crl: crl.value, crlPolicy: 'require' });
  trustWithTables = createTrustState({ caCertificates: [zoo.ca.der], crl: crl.value, crlPolicy: 'require' });
  prepareIssuerTables(trustWithTables);
});

async function pkijsAccepts(der: Buffer): Promise<{ result: boolean; resultMessage: string }> {
  const engine = new pkijs.CertificateChainValidationEngine({
    trustedCerts: [pkijs.Certificate.fromBER(zoo.ca.der)],
    certs: [pkijs.Certificate.fromBER(der)],
    crls: [pkijs.CertificateRevocationList.fromBER(zoo.crls.current)],
    checkDate: zoo.now,
  });
  const verdict = await engine.verify();
  return { result: verdict.result, resultMessage: verdict.resultMessage };
}

describe('trust module vs pkijs chain validation', () => {
  for (const name of chainCases) {
    it(`agrees on the "${name}" client certificate`, async () => {
      const ours = checkClientCertificate(trust, zoo.clients[name].der, undefined, zoo.now.getTime());
      const oursWithTables = checkClientCertificate(trustWithTables, zoo.clients[name].der, undefined, zoo.now.getTime());
      const theirs = await pkijsAccepts(zoo.clients[name].der);
      expect({ ours: ours.ok, theirs: theirs.result }).toEqual({ ours: name === 'valid', theirs: name === 'valid' });
      expect(oursWithTables).toEqual(ours);
    });
  }

  it('agrees that the revoked certificate is revoked by the CRL, not refused for another reason', async () => {
    const ours = checkClientCertificate(trust, zoo.clients.revoked.der, undefined, zoo.now.getTime());
    expect(ours).toMatchObject({ ok: false, reason: 'revoked' });
    expect((await pkijsAccepts(zoo.clients.revoked.der)).resultMessage).toMatch(/revoked/i);
  });
});
