/**
 * What one CRL input can make the server do: a download holds at most one
 * distinct CRL per configured CA, counted from the issuer names before
 * anything is parsed or verified; identical blocks are verified once; a CRL
 * of a CA that is not configured is set aside unparsed, while a forged CRL of
 * a configured CA refuses the input.
 */
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import * as x509Module from '../../client-lib/certificate/x509.js';
import { parseCrl, parseCrlBlocks, parseCrlBundle } from '../../server/trust/crl.js';
import { createAuthority, issueCrl, tamperSignature, type ZooAuthority } from '../helpers/cert-zoo.js';

// Counts the parsing and signature work the CRL module asks for.
vi.mock('../../client-lib/certificate/x509.js', async (importOriginal) => {
  const original = await importOriginal<typeof x509Module>();
  return { ...original, parseCertificateList: vi.fn(original.parseCertificateList), verifySignedBytes: vi.fn(original.verifySignedBytes) };
});

const parsedLists = vi.mocked(x509Module.parseCertificateList);
const signatureChecks = vi.mocked(x509Module.verifySignedBytes);

const now = new Date('2026-01-01T00:00:00Z');

let caA: ZooAuthority;
let caB: ZooAuthority;
/** A CA whose keyUsage lacks cRLSign: it issues clients but may not sign CRLs. */
let caWithoutCrlSign: ZooAuthority;
let unrelatedCa: ZooAuthority;
let crlOfA: Buffer;
let otherCrlOfA: Buffer;
let crlOfCaWithoutCrlSign: Buffer;
let crlOfB: Buffer;
let crlOfUnrelated: Buffer;
let otherCrlOfUnrelated: Buffer;

function pem(...ders: readonly Buffer[]): Buffer {
  return Buffer.from(ders.map((der) => `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END X509 CRL-----\n`).join(''), 'latin1');
}

const bothCas = (): Buffer[] => [caA.der, caB.der];

beforeAll(async () => {
  caA = await createAuthority({ now, name: 'CN=Bounds CA A' });
  caB = await createAuthority({ now, name: 'CN=Bounds CA B' });
  caWithoutCrlSign = await createAuthority({ now, name: 'CN=Bounds CA without cRLSign', keyUsage: ['digitalSignature', 'keyCertSign'] });
  unrelatedCa = await createAuthority({ now, name: 'CN=Unrelated CA' });
  crlOfA = await issueCrl(caA, { now, crlNumber: 5n });
  otherCrlOfA = await issueCrl(caA, { now, crlNumber: 6n });
  crlOfCaWithoutCrlSign = await issueCrl(caWithoutCrlSign, { now, crlNumber: 1n });
  crlOfB = await issueCrl(caB, { now, crlNumber: 9n });
  crlOfUnrelated = await issueCrl(unrelatedCa, { now, crlNumber: 1n });
  otherCrlOfUnrelated = await issueCrl(unrelatedCa, { now, crlNumber: 2n });
});

beforeEach(() => {
  parsedLists.mockClear();
  signatureChecks.mockClear();
});

describe('blocks per download: at most one distinct CRL per CA that may sign CRLs', () => {
  it('refuses more distinct CRLs of configured CAs than CAs as a whole, before parsing or verifying any', () => {
    const outcomes = parseCrlBlocks(pem(crlOfA, crlOfB, otherCrlOfA), bothCas(), { capBlocksAtCas: true });
    expect(outcomes).toEqual([
      { ok: false, reason: 'crl-malformed', detail: 'the input holds 3 distinct CRLs of configured CAs, more than the 2 configured CAs that may sign CRLs' },
    ]);
    expect(parsedLists).not.toHaveBeenCalled();
    expect(signatureChecks).not.toHaveBeenCalled();
  });

  it('takes as many blocks as there are CAs', () => {
    const outcomes = parseCrlBlocks(pem(crlOfA, crlOfB), bothCas(), { capBlocksAtCas: true });
    expect(outcomes.map((outcome) => outcome.ok && outcome.value.crlNumber)).toEqual([5n, 9n]);
  });

  it('does not count copies or CRLs of other CAs, and sets the latter aside unparsed', () => {
    const outcomes = parseCrlBlocks(pem(crlOfUnrelated, crlOfA, crlOfA, otherCrlOfUnrelated, crlOfB), bothCas(), { capBlocksAtCas: true });
    expect(outcomes).toMatchObject([
      { ok: false, reason: 'crl-untrusted-issuer' },
      { ok: true, value: { crlNumber: 5n } },
      { ok: false, reason: 'crl-untrusted-issuer' },
      { ok: true, value: { crlNumber: 9n } },
    ]);
    expect(parsedLists).toHaveBeenCalledTimes(2);
    expect(signatureChecks).toHaveBeenCalledTimes(2);
  });

  it('counts only the CAs allowed to sign CRLs, and at least one', () => {
    const withoutCrlSign = [caA.der, caWithoutCrlSign.der];
    expect(parseCrlBlocks(pem(crlOfA, otherCrlOfA), withoutCrlSign, { capBlocksAtCas: true })).toMatchObject([
      { ok: false, reason: 'crl-malformed', detail: expect.stringContaining('holds 2 distinct CRLs of configured CAs, more than the 1 configured CAs') },
    ]);
    // A CRL naming the CA without cRLSign is refused by name, with no signature check.
    expect(parseCrlBlocks(pem(crlOfA, crlOfCaWithoutCrlSign), withoutCrlSign, { capBlocksAtCas: true })).toMatchObject([
      { ok: true, value: { crlNumber: 5n } },
      { ok: false, reason: 'crl-untrusted-issuer', detail: expect.stringContaining('may not sign CRLs') },
    ]);
    expect(signatureChecks).toHaveBeenCalledTimes(1);
    expect(parseCrlBlocks(pem(crlOfCaWithoutCrlSign), [caWithoutCrlSign.der], { capBlocksAtCas: true })).toMatchObject([{ ok: false, reason: 'crl-untrusted-issuer' }]);
  });

  it('leaves a file (no cap asked for) as it was: every block is read', () => {
    expect(parseCrlBlocks(pem(crlOfA, crlOfB, crlOfUnrelated), [caA.der])).toHaveLength(3);
  });
});

describe('identical blocks', () => {
  it('are parsed and verified once', () => {
    const outcomes = parseCrlBlocks(pem(crlOfB, crlOfB), bothCas(), { capBlocksAtCas: true });
    expect(outcomes).toMatchObject([{ ok: true, value: { crlNumber: 9n } }]);
    expect(parsedLists).toHaveBeenCalledTimes(1);
    expect(signatureChecks).toHaveBeenCalledTimes(1);
  });

  it('still make parseCrl refuse: one CRL means one block', () => {
    expect(parseCrl(pem(crlOfA, crlOfA), bothCas())).toMatchObject({ ok: false, reason: 'crl-malformed', detail: 'input holds 2 CRLs where one was expected' });
    expect(signatureChecks).not.toHaveBeenCalled();
  });
});

describe('parseCrlBundle: which blocks refuse the input', () => {
  it('sets a CRL of a CA that is not configured aside with a note, and keeps the others', () => {
    const bundle = parseCrlBundle(pem(crlOfA, crlOfUnrelated), bothCas(), { capBlocksAtCas: true });
    expect(bundle).toMatchObject({ ok: true, value: { ignored: ['CRL 2 of 2: CRL issuer is none of the configured CAs'] } });
    expect(bundle.ok && bundle.value.crls.map((crl) => crl.issuer)).toEqual(['CN=Bounds CA A']);
  });

  it('refuses a lone CRL of another CA, as before', () => {
    expect(parseCrlBundle(crlOfUnrelated, bothCas())).toEqual({ ok: false, reason: 'crl-untrusted-issuer', detail: 'CRL issuer is none of the configured CAs' });
  });

  it('refuses the whole input for a forged, malformed or unsupported CRL of a configured CA', () => {
    expect(parseCrlBundle(pem(crlOfB, tamperSignature(crlOfA)), bothCas())).toEqual({
      ok: false,
      reason: 'crl-bad-signature',
      detail: 'CRL 2 of 2: CRL signature does not verify with the key of CN=Bounds CA A',
    });
    expect(parseCrlBundle(pem(crlOfB, Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])), bothCas())).toMatchObject({ ok: false, reason: 'crl-malformed', detail: expect.stringMatching(/^CRL 2 of 2: /) });
  });

  it('names blocks with the label given', () => {
    const label = (index: number, count: number) => `crl.pem (CRL ${index + 1} of ${count})`;
    expect(parseCrlBundle(pem(crlOfUnrelated, otherCrlOfUnrelated), bothCas(), { label })).toEqual({
      ok: true,
      value: { crls: [], ignored: ['crl.pem (CRL 1 of 2): CRL issuer is none of the configured CAs', 'crl.pem (CRL 2 of 2): CRL issuer is none of the configured CAs'] },
    });
  });
});
