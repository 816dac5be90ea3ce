import { SknockError } from '../errors.js';
import { accept, reject, type Decoded } from './result.js';

export type TransportProtocol = 'tcp' | 'udp';

/** One (protocol, port) pair: what a knock requests and a certificate permits. */
export interface PortRequest {
  readonly protocol: TransportProtocol;
  readonly port: number;
}

export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

export function formatPort(request: PortRequest): string {
  return `${request.protocol}/${request.port}`;
}

export function formatPortList(requests: readonly PortRequest[]): string {
  return requests.map(formatPort).join(',');
}

export function samePort(a: PortRequest, b: PortRequest): boolean {
  return a.protocol === b.protocol && a.port === b.port;
}

/** Removes repeated entries, keeping the first occurrence's order. */
export function uniquePorts(requests: readonly PortRequest[]): PortRequest[] {
  const unique: PortRequest[] = [];
  for (const request of requests) {
    if (!unique.some((seen) => samePort(seen, request))) unique.push(request);
  }
  return unique;
}

/**
 * Parses the user-facing form `tcp/22,udp/53` (command lines, config files).
 * Throws SknockError('SKNOCK_BAD_PORT_SPEC') with the offending item.
 */
export function parsePortList(text: string): PortRequest[] {
  const items = text.split(',').map((item) => item.trim());
  if (items.length === 0 || items.every((item) => item === '')) {
    throw new SknockError('SKNOCK_BAD_PORT_SPEC', 'no port given: expected e.g. tcp/22 or tcp/22,udp/53');
  }
  const requests = items.map((item) => {
    const match = /^(tcp|udp)\/(\d{1,5})$/i.exec(item);
    const port = match ? Number(match[2]) : NaN;
    if (!match || !isValidPort(port)) {
      throw new SknockError(
        'SKNOCK_BAD_PORT_SPEC',
        `invalid port "${item}": expected protocol/port with protocol tcp or udp and port 1-65535, e.g. tcp/22`,
      );
    }
    return { protocol: match[1]!.toLowerCase() as TransportProtocol, port };
  });
  return uniquePorts(requests);
}

/**
 * The authorization string of the original sKnock certificates
 * (subjectAltName otherName 1.3.6.1.4.1.19518): `1.2000,1.3000,0.8000`,
 * i.e. comma-separated `protocol.port` with 1 = TCP and 0 = UDP.
 */
export function decodeAuthorization(value: string): Decoded<PortRequest[], 'malformed-authorization'> {
  if (value.length === 0 || value.length > 4096) {
    return reject('malformed-authorization', 'empty or oversized authorization value');
  }
  const requests: PortRequest[] = [];
  for (const item of value.split(',')) {
    const match = /^([01])\.(\d{1,5})$/.exec(item.trim());
    const port = match ? Number(match[2]) : NaN;
    if (!match || !isValidPort(port)) {
      return reject('malformed-authorization', `authorization item "${item.slice(0, 32)}" is not protocol.port (1=TCP, 0=UDP)`);
    }
    requests.push({ protocol: match[1] === '1' ? 'tcp' : 'udp', port });
  }
  return accept(uniquePorts(requests));
}

export function encodeAuthorization(requests: readonly PortRequest[]): string {
  return requests.map((request) => `${request.protocol === 'tcp' ? 1 : 0}.${request.port}`).join(',');
}
