/**
 * CRLs per issuer: a trust state holds at most one CRL per issuing CA (name
 * and key), and every certificate is looked up in the CRL of the CA that
 * signed it, never in another CA's.
 */
import { MessageChannel } from 'node:worker_threads';
import { beforeAll, describe, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import {
  checkClientCertificate,
  compareCrlAge,
  createTrustState,
  crlsToPem,
  newestPerIssuer,
  parseCrl,
  parseCrlBlocks,
  type TrustOptions,
  type TrustVerdict,
  type VerifiedCrl,
} from '../../server/trust/index.js';
import { reviveTrustOptions, trustOptionsOf } from '../../server/verify/examiner.js';
import { createAuthority, createCertificateZoo, issueCertificate, issueCrl, type CertificateZoo, type ZooAuthority, type ZooCertificate } from '../helpers/cert-zoo.js';

const now = new Date('2026-01-01T00:00:00Z');
const nowMs = now.getTime();
const dayMs = 86_400_000;

let zoo: CertificateZoo;
/** By zoo.ca, revokes zoo.clients.revoked. */
let crlOfA: VerifiedCrl;
/** By zoo.otherCa, newer in every way than crlOfA, revokes otherRevoked. */
let crlOfB: VerifiedCrl;
let otherRevoked: ZooCertificate;

function verified(bytes: Buffer, issuers: readonly Buffer[]): VerifiedCrl {
  const parsed = parseCrl(bytes, issuers);
  if (!parsed.ok) throw new Error(`CRL fixture rejected: ${parsed.reason} ${parsed.detail}`);
  return parsed.value;
}

function outcome(verdict: TrustVerdict): string {
  return verdict.ok ? `accepted${verdict.warnings.length > 0 ? ` ${verdict.warnings.join(',')}` : ''}` : verdict.reason;
}

const bothCas = (): Buffer[] => [zoo.ca.der, zoo.otherCa.der];

function judge(options: Partial<TrustOptions>, client: ZooCertificate, intermediate?: ZooAuthority): string {
  const trust = createTrustState({ caCertificates: bothCas(), crlPolicy: 'require', ...options });
  return outcome(checkClientCertificate(trust, client.der, intermediate?.der, nowMs));
}

beforeAll(async () => {
  zoo = await createCertificateZoo(now);
  otherRevoked = await issueCertificate(zoo.otherCa, { now, subject: 'CN=revoked client of the other CA' });
  crlOfA = verified(zoo.crls.current, bothCas());
  crlOfB = verified(
    await issueCrl(zoo.otherCa, { now, revokedSerials: [otherRevoked.serialHex], crlNumber: 99n, thisUpdate: new Date(nowMs - 1_000) }),
    bothCas(),
  );
});

describe('a trust state with the CRLs of two CAs', () => {
  it('looks each client up in the CRL of its own CA', () => {
    const crls = [crlOfA, crlOfB];
    expect(judge({ crls }, zoo.clients.revoked)).toBe('revoked');
    expect(judge({ crls }, zoo.clients.valid)).toBe('accepted');
    expect(judge({ crls }, otherRevoked)).toBe('revoked');
    expect(judge({ crls }, zoo.clients.ofOtherCa)).toBe('accepted');
  });

  it("never lets one CA's CRL speak for another's clients: B's newer CRL does not un-revoke A's client", () => {
    // B's CRL is "newer" by number and time; under one CRL per state it could replace A's.
    expect(compareCrlAge(crlOfB, crlOfA)).toBe('other-issuer');
    expect(judge({ crls: [crlOfB] }, zoo.clients.revoked)).toBe('no-crl');
    expect(judge({ crls: [crlOfB], crlPolicy: 'warn' }, zoo.clients.revoked)).toBe('accepted no-crl');
    expect(judge({ crls: [crlOfA, crlOfB] }, zoo.clients.revoked)).toBe('revoked');
  });

  it('under require refuses only the clients of a CA without a CRL in force', () => {
    expect(judge({ crls: [crlOfA] }, zoo.clients.valid)).toBe('accepted');
    expect(judge({ crls: [crlOfA] }, zoo.clients.ofOtherCa)).toBe('no-crl');
    expect(judge({ crls: [crlOfB] }, zoo.clients.ofOtherCa)).toBe('accepted');
    expect(judge({ crls: [crlOfB] }, zoo.clients.valid)).toBe('no-crl');
  });

  it("judges freshness per CA: a stale CRL of B refuses B's clients only", async () => {
    const staleB = verified(await issueCrl(zoo.otherCa, { now, thisUpdate: new Date(nowMs - 9 * dayMs), nextUpdate: new Date(nowMs - dayMs) }), bothCas());
    expect(judge({ crls: [crlOfA, staleB] }, zoo.clients.valid)).toBe('accepted');
    expect(judge({ crls: [crlOfA, staleB] }, zoo.clients.ofOtherCa)).toBe('crl-stale');
    expect(judge({ crls: [crlOfA, staleB], crlPolicy: 'warn' }, zoo.clients.ofOtherCa)).toBe('accepted crl-stale');
  });

  it('takes the one-CRL shorthand beside the list', () => {
    expect(judge({ crl: crlOfA, crls: [crlOfB] }, zoo.clients.revoked)).toBe('revoked');
    expect(judge({ crl: crlOfA, crls: [crlOfB] }, otherRevoked)).toBe('revoked');
  });

  it('refuses two CRLs of one issuer, and a CRL of a CA it does not trust', () => {
    const codeOf = (options: Partial<TrustOptions>): string | undefined => {
      try {
        createTrustState({ caCertificates: [zoo.ca.der], crlPolicy: 'require', ...options });
        return undefined;
      } catch (error) {
        return isSknockError(error) ? error.code : String(error);
      }
    };
    expect(codeOf({ crls: [crlOfA, crlOfA] })).toBe('SKNOCK_TRUST_CRL_DUPLICATE');
    expect(codeOf({ crls: [crlOfA, crlOfB] })).toBe('SKNOCK_TRUST_CRL_MISMATCH');
  });
});

describe('a re-keyed CA of the same name is another issuer', () => {
  it("keeps both CRLs, and each speaks only for the clients its key signed", async () => {
    const rekeyed = await createAuthority({ now, name: 'CN=Zoo CA, O=sKnock tests' });
    const clientOfRekeyed = await issueCertificate(rekeyed, { now, subject: 'CN=client of the re-keyed CA' });
    const caCertificates = [zoo.ca.der, rekeyed.der];
    // The new key's CRL lists the old key's revoked client's serial too: it must not matter for the old key's clients, nor un-revoke them.
    const crlOfRekeyed = verified(await issueCrl(rekeyed, { now, crlNumber: 100n, revokedSerials: [clientOfRekeyed.serialHex] }), caCertificates);
    expect(compareCrlAge(crlOfRekeyed, crlOfA)).toBe('other-issuer');
    expect(newestPerIssuer([crlOfA, crlOfRekeyed])).toHaveLength(2);
    const trust = createTrustState({ caCertificates, crls: [crlOfA, crlOfRekeyed], crlPolicy: 'require' });
    expect(outcome(checkClientCertificate(trust, zoo.clients.revoked.der, undefined, nowMs))).toBe('revoked');
    expect(outcome(checkClientCertificate(trust, zoo.clients.valid.der, undefined, nowMs))).toBe('accepted');
    expect(outcome(checkClientCertificate(trust, clientOfRekeyed.der, undefined, nowMs))).toBe('revoked');
    const onlyRekeyed = createTrustState({ caCertificates, crls: [crlOfRekeyed], crlPolicy: 'require' });
    expect(outcome(checkClientCertificate(onlyRekeyed, zoo.clients.revoked.der, undefined, nowMs))).toBe('no-crl');
  });
});

describe('intermediates under crlPolicy require', () => {
  it("lets a client of an intermediate pass once the anchor's and the intermediate's CRLs are in force", async () => {
    const authorities = [zoo.ca.der, zoo.intermediate.der];
    const ofIntermediate = verified(await issueCrl(zoo.intermediate, { now }), authorities);
    const options = { caCertificates: [zoo.ca.der], intermediates: [zoo.intermediate.der], crlPolicy: 'require' } as const;
    const client = zoo.clients.viaIntermediate.der;
    const withBoth = createTrustState({ ...options, crls: [crlOfA, ofIntermediate] });
    expect(outcome(checkClientCertificate(withBoth, client, undefined, nowMs))).toBe('accepted');
    expect(outcome(checkClientCertificate(withBoth, client, zoo.intermediate.der, nowMs))).toBe('accepted');
    expect(outcome(checkClientCertificate(createTrustState({ ...options, crls: [crlOfA] }), client, undefined, nowMs))).toBe('no-crl');
    expect(outcome(checkClientCertificate(createTrustState({ ...options, crls: [ofIntermediate] }), client, undefined, nowMs))).toBe('no-crl');
  });

  it("refuses a client that the intermediate's CRL revokes, and an intermediate the anchor's CRL revokes", async () => {
    const authorities = [zoo.ca.der, zoo.intermediate.der];
    const revokesClient = verified(await issueCrl(zoo.intermediate, { now, revokedSerials: [zoo.clients.viaIntermediate.serialHex] }), authorities);
    const revokesIntermediate = verified(await issueCrl(zoo.ca, { now, crlNumber: 8n, revokedSerials: [zoo.intermediate.serialHex] }), authorities);
    const options = { caCertificates: [zoo.ca.der], intermediates: [zoo.intermediate.der], crlPolicy: 'require' } as const;
    const client = zoo.clients.viaIntermediate.der;
    expect(outcome(checkClientCertificate(createTrustState({ ...options, crls: [crlOfA, revokesClient] }), client, undefined, nowMs))).toBe('revoked');
    const fine = verified(await issueCrl(zoo.intermediate, { now }), authorities);
    expect(outcome(checkClientCertificate(createTrustState({ ...options, crls: [revokesIntermediate, fine] }), client, undefined, nowMs))).toBe('revoked');
  });
});

describe('several CRLs in one input', () => {
  it('parses concatenated PEM blocks one by one, and a single DER or PEM CRL as before', () => {
    const pem = crlsToPem([crlOfA, crlOfB]);
    expect(pem.toString('latin1').match(/-----BEGIN X509 CRL-----/g)).toHaveLength(2);
    const blocks = parseCrlBlocks(pem, bothCas());
    expect(blocks.map((block) => block.ok && block.value.der.toString('hex'))).toEqual([crlOfA.der.toString('hex'), crlOfB.der.toString('hex')]);
    expect(parseCrlBlocks(zoo.crls.current, bothCas())).toHaveLength(1);
    expect(parseCrl(crlsToPem([crlOfA]), bothCas())).toMatchObject({ ok: true, value: { crlNumber: 7n } });
    // parseCrl means one CRL: several are a mistake, not "take the first".
    expect(parseCrl(pem, bothCas())).toMatchObject({ ok: false, reason: 'crl-malformed' });
  });

  it('reports each block on its own: a foreign or forged one does not hide the good ones', () => {
    // crlsToPem writes only the DER of what it is given.
    const pemOf = (der: Buffer) => crlsToPem([{ ...crlOfA, der }]);
    const pem = Buffer.concat([pemOf(zoo.crls.current), pemOf(zoo.crls.badSignature), pemOf(crlOfB.der)]);
    expect(parseCrlBlocks(pem, [zoo.ca.der]).map((block) => (block.ok ? 'ok' : block.reason))).toEqual(['ok', 'crl-bad-signature', 'crl-untrusted-issuer']);
  });

  it('keeps the newest CRL of each issuer', async () => {
    const older = verified(await issueCrl(zoo.ca, { now, crlNumber: 3n, thisUpdate: new Date(nowMs - 2 * 60_000) }), bothCas());
    expect(newestPerIssuer([older, crlOfB, crlOfA]).map((crl) => crl.crlNumber)).toEqual([7n, 99n]);
    expect(newestPerIssuer([crlOfA, older]).map((crl) => crl.crlNumber)).toEqual([7n]);
  });
});

describe('trust options sent to a verify worker', () => {
  it('keep every CRL through a structured clone (postMessage)', async () => {
    const trust = createTrustState({ caCertificates: bothCas(), crls: [crlOfA, crlOfB], crlPolicy: 'require' });
    const { port1, port2 } = new MessageChannel();
    const cloned = await new Promise<TrustOptions>((resolve) => {
      port2.once('message', resolve);
      port1.postMessage(trustOptionsOf(trust));
    });
    port1.close();
    const revived = reviveTrustOptions(cloned);
    expect(revived.crls?.map((crl) => Buffer.isBuffer(crl.der) && Buffer.isBuffer(crl.issuerNameDer))).toEqual([true, true]);
    const inWorker = createTrustState(revived);
    expect(inWorker.crls).toHaveLength(2);
    expect(outcome(checkClientCertificate(inWorker, zoo.clients.revoked.der, undefined, nowMs))).toBe('revoked');
    expect(outcome(checkClientCertificate(inWorker, otherRevoked.der, undefined, nowMs))).toBe('revoked');
    expect(outcome(checkClientCertificate(inWorker, zoo.clients.ofOtherCa.der, undefined, nowMs))).toBe('accepted');
  });
});
