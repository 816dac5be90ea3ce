/**
 * Which ports a client certificate may open: the subjectAltName otherName
 * 1.3.6.1.4.1.19518 holding a UTF8String such as `1.22,0.53` (1 = TCP, 0 = UDP).
 */
import { decodeAuthorization, formatPortList, samePort, type PortRequest } from '../protocol/ports.js';
import { accept, reject, type Decoded } from '../protocol/result.js';
import { contentOf, derTag, readWhole } from './der.js';
import type { ParsedCertificate } from './x509.js';

export const authorizationOid = '1.3.6.1.4.1.19518';

export type AuthorizationReason = 'no-authorization' | 'malformed-authorization';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Printable ASCII, shortened: certificate contents end up in logs. */
function printable(bytes: Buffer): string {
  return bytes.subarray(0, 32).toString('latin1').replace(/[^\x20-\x7e]/g, '?');
}

export function readAuthorization(certificate: ParsedCertificate): Decoded<PortRequest[], AuthorizationReason> {
  const values = certificate.otherNames.filter((name) => name.typeId === authorizationOid);
  if (values.length === 0) {
    return reject('no-authorization', `certificate has no subjectAltName otherName ${authorizationOid}`);
  }
  // Two values would leave it to chance which one is honoured.
  if (values.length > 1) return reject('malformed-authorization', `certificate has ${values.length} authorization otherNames`);
  const value = values[0]!.value;
  const element = readWhole(value);
  if (element?.tag === derTag.octetString) {
    // The old dev PKI wrapped the text, sometimes a whole UTF8String, in an OCTET STRING.
    const content = contentOf(value, element);
    const nested = readWhole(content);
    const text = nested?.tag === derTag.utf8String ? contentOf(content, nested) : content;
    return reject(
      'malformed-authorization',
      `authorization is an OCTET STRING ("${printable(text)}"), the old sKnock dev-PKI encoding; ` +
        're-issue the certificate with a UTF8String such as "1.22,0.53"',
    );
  }
  if (element?.tag !== derTag.utf8String) {
    return reject('malformed-authorization', 'authorization is not a UTF8String such as "1.22,0.53"');
  }
  let text: string;
  try {
    text = strictUtf8.decode(contentOf(value, element));
  } catch {
    return reject('malformed-authorization', 'authorization UTF8String is not valid UTF-8');
  }
  return decodeAuthorization(text);
}

/** Every requested port must be among the permitted ones. */
export function authorizePorts(
  identity: { readonly permittedPorts: readonly PortRequest[] },
  requested: readonly PortRequest[],
): Decoded<readonly PortRequest[], 'unauthorized-port'> {
  const refused = requested.filter((request) => !identity.permittedPorts.some((permitted) => samePort(permitted, request)));
  if (refused.length > 0) {
    return reject('unauthorized-port', `${formatPortList(refused)} not in ${formatPortList(identity.permittedPorts) || 'nothing'}`);
  }
  return accept(requested);
}
