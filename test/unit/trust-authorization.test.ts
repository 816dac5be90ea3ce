import { beforeAll, describe, expect, it } from 'vitest';
import { parseCertificate, readAuthorization, type ParsedCertificate } from '../../server/trust/index.js';
import {
  authorizationOid,
  authorizationValueDer,
  createAuthority,
  issueCertificate,
  otherNamesExtension,
  type CertificateOptions,
  type ZooAuthority,
  x509,
} from '../helpers/cert-zoo.js';

const now = new Date('2026-01-01T00:00:00Z');
let ca: ZooAuthority;

beforeAll(async () => {
  ca = await createAuthority({ now });
});

async function parsedClient(options: Partial<CertificateOptions>): Promise<ParsedCertificate> {
  const parsed = parseCertificate((await issueCertificate(ca, { now, ...options })).der);
  if (!parsed.ok) throw new Error(`${parsed.reason} ${parsed.detail}`);
  return parsed.value;
}

/** A client whose subjectAltName holds exactly these otherNames. */
function withOtherNames(...otherNames: { typeId: string; valueDer: Buffer }[]): Promise<ParsedCertificate> {
  return parsedClient({ authorization: null, extraExtensions: [otherNamesExtension(otherNames)] });
}

const utf8 = (text: string) => authorizationValueDer({ utf8: text });

describe('readAuthorization', () => {
  it('reads the UTF8String form into port requests', async () => {
    expect(readAuthorization(await parsedClient({ authorization: { utf8: '1.2000,1.3000,0.8000' } }))).toEqual({
      ok: true,
      value: [
        { protocol: 'tcp', port: 2000 },
        { protocol: 'tcp', port: 3000 },
        { protocol: 'udp', port: 8000 },
      ],
    });
  });

  it('finds it among other otherNames', async () => {
    const upn = { typeId: '1.3.6.1.4.1.311.20.2.3', valueDer: utf8('someone@example.org') };
    expect(readAuthorization(await withOtherNames(upn, { typeId: authorizationOid, valueDer: utf8('1.22') }))).toEqual({
      ok: true,
      value: [{ protocol: 'tcp', port: 22 }],
    });
  });

  it('reports a missing authorization', async () => {
    expect(readAuthorization(await parsedClient({ authorization: null }))).toMatchObject({ ok: false, reason: 'no-authorization' });
    const dnsOnly = new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'client.example' }]);
    expect(readAuthorization(await parsedClient({ authorization: null, extraExtensions: [dnsOnly] }))).toMatchObject({
      ok: false,
      reason: 'no-authorization',
    });
  });

  it.each([
    ['two authorization values', () => withOtherNames({ typeId: authorizationOid, valueDer: utf8('1.22') }, { typeId: authorizationOid, valueDer: utf8('1.23') }), /2 authorization/],
    ['invalid UTF-8', () => withOtherNames({ typeId: authorizationOid, valueDer: Buffer.from([0x0c, 0x02, 0xff, 0xfe]) }), /not valid UTF-8/],
    ['an IA5String', () => withOtherNames({ typeId: authorizationOid, valueDer: Buffer.from([0x16, 0x04, ...Buffer.from('1.22')]) }), /not a UTF8String/],
    ['the old TCP2000 form', () => parsedClient({ authorization: { utf8: 'TCP2000,TCP3000' } }), /TCP2000/],
    ['an empty string', () => parsedClient({ authorization: { utf8: '' } }), /empty/],
    ['port 0', () => parsedClient({ authorization: { utf8: '1.0' } }), /1\.0/],
    [
      'an OCTET STRING wrapping a UTF8String',
      () => withOtherNames({ typeId: authorizationOid, valueDer: Buffer.concat([Buffer.from([0x04, 0x06]), utf8('1.22')]) }),
      /OCTET STRING \("1\.22"\)/,
    ],
  ])('refuses %s as malformed-authorization', async (_name, certificate, detail) => {
    const verdict = readAuthorization(await certificate());
    expect(verdict).toMatchObject({ ok: false, reason: 'malformed-authorization' });
    expect(verdict.ok ? '' : verdict.detail).toMatch(detail);
  });

  it('refuses a certificate with two subjectAltName extensions before reading either', async () => {
    const second = otherNamesExtension([{ typeId: authorizationOid, valueDer: utf8('1.23') }]);
    const client = await issueCertificate(ca, { now, extraExtensions: [second] });
    expect(parseCertificate(client.der)).toMatchObject({ ok: false, reason: 'certificate-malformed' });
  });
});
