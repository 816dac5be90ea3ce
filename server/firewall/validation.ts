import { isIP } from 'node:net';
import { SknockError } from '../../client-lib/errors.js';
import { canonicalAddress } from '../../client-lib/protocol/address.js';
import { isValidPort, type PortRequest, type TransportProtocol } from '../../client-lib/protocol/ports.js';
import { accept, reject, type Decoded } from '../../client-lib/protocol/result.js';
import type { FirewallMode, FirewallPolicy, Grant } from './types.js';

/**
 * Every value that reaches an nft/iptables/ipset/hook command passes through
 * here first, so nothing a packet or a peer process supplies can become a
 * command word of its choosing.
 */
export type FirewallInputReason =
  | 'not-an-object'
  | 'unknown-field'
  | 'bad-address'
  | 'bad-protocol'
  | 'bad-port'
  | 'bad-seconds'
  | 'bad-mode'
  | 'bad-emergency-port'
  | 'bad-public-ports'
  | 'too-many-grants';

export const MAX_GRANT_SECONDS = 86_400;
export const MAX_GRANTS_PER_CALL = 10_000;
export const MAX_PUBLIC_PORTS = 1_024;

const FIREWALL_MODES: readonly FirewallMode[] = ['none', 'reject', 'drop'];
const PROTOCOLS: readonly TransportProtocol[] = ['tcp', 'udp'];

/**
 * The canonical text (the project's one form, see client-lib/protocol/address.ts)
 * of an IPv4 or IPv6 address, or null for anything else, zone indexes included.
 */
export function parseGrantAddress(value: unknown): string | null {
  // node:net's parser must agree too: two independent checks before a value reaches a command.
  if (typeof value !== 'string' || isIP(value) === 0) return null;
  return canonicalAddress(value) ?? null;
}

export function addressFamily(address: string): 4 | 6 {
  return isIP(address) === 6 ? 6 : 4;
}

/** Identity of a grant: the same source, protocol and port is one grant, whatever its seconds. */
export function grantKey(grant: { readonly address: string; readonly protocol: TransportProtocol; readonly port: number }): string {
  return `${grant.address}|${grant.protocol}|${grant.port}`;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The name of a field outside `allowed`, if any: requests are a closed shape. */
export function unknownField(record: Record<string, unknown>, allowed: readonly string[]): string | undefined {
  return Object.keys(record).find((key) => !allowed.includes(key));
}

function isProtocol(value: unknown): value is TransportProtocol {
  return PROTOCOLS.includes(value as TransportProtocol);
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && isValidPort(value);
}

export function parseGrant(value: unknown): Decoded<Grant, FirewallInputReason> {
  if (!isRecord(value)) return reject('not-an-object', 'a grant is an object {address, protocol, port, seconds}');
  const extra = unknownField(value, ['address', 'protocol', 'port', 'seconds']);
  if (extra !== undefined) return reject('unknown-field', `unknown grant field "${extra.slice(0, 40)}"`);
  const address = parseGrantAddress(value.address);
  if (address === null) return reject('bad-address', `not an IPv4 or IPv6 address: ${JSON.stringify(value.address)?.slice(0, 60)}`);
  if (!isProtocol(value.protocol)) return reject('bad-protocol', `protocol must be tcp or udp, not ${JSON.stringify(value.protocol)?.slice(0, 20)}`);
  if (!isPort(value.port)) return reject('bad-port', `port must be an integer 1-65535, not ${JSON.stringify(value.port)?.slice(0, 20)}`);
  const seconds = value.seconds;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > MAX_GRANT_SECONDS) {
    return reject('bad-seconds', `seconds must be an integer 1-${MAX_GRANT_SECONDS}, not ${JSON.stringify(seconds)?.slice(0, 20)}`);
  }
  return accept({ address, protocol: value.protocol, port: value.port, seconds });
}

export function parseGrants(value: unknown): Decoded<Grant[], FirewallInputReason> {
  if (!Array.isArray(value)) return reject('not-an-object', 'grants must be an array');
  if (value.length > MAX_GRANTS_PER_CALL) return reject('too-many-grants', `at most ${MAX_GRANTS_PER_CALL} grants per call`);
  const grants: Grant[] = [];
  for (const [index, item] of value.entries()) {
    const parsed = parseGrant(item);
    if (!parsed.ok) return reject(parsed.reason, `grant ${index}: ${parsed.detail ?? parsed.reason}`);
    grants.push(parsed.value);
  }
  return accept(grants);
}

function parsePortRequest(value: unknown): PortRequest | null {
  if (!isRecord(value) || unknownField(value, ['protocol', 'port']) !== undefined) return null;
  return isProtocol(value.protocol) && isPort(value.port) ? { protocol: value.protocol, port: value.port } : null;
}

export function parsePolicy(value: unknown): Decoded<FirewallPolicy, FirewallInputReason> {
  if (!isRecord(value)) return reject('not-an-object', 'a policy is an object {mode, emergencySshPort, publicPorts}');
  const extra = unknownField(value, ['mode', 'emergencySshPort', 'publicPorts']);
  if (extra !== undefined) return reject('unknown-field', `unknown policy field "${extra.slice(0, 40)}"`);
  if (!FIREWALL_MODES.includes(value.mode as FirewallMode)) return reject('bad-mode', 'mode must be none, reject or drop');
  const emergencySshPort = value.emergencySshPort;
  if (emergencySshPort !== null && !isPort(emergencySshPort)) {
    return reject('bad-emergency-port', 'emergencySshPort must be null or an integer 1-65535');
  }
  if (!Array.isArray(value.publicPorts) || value.publicPorts.length > MAX_PUBLIC_PORTS) {
    return reject('bad-public-ports', `publicPorts must be an array of at most ${MAX_PUBLIC_PORTS} {protocol, port}`);
  }
  const publicPorts: PortRequest[] = [];
  for (const item of value.publicPorts) {
    const port = parsePortRequest(item);
    if (port === null) return reject('bad-public-ports', 'each public port is {protocol: tcp|udp, port: 1-65535}');
    publicPorts.push(port);
  }
  return accept({ mode: value.mode as FirewallMode, emergencySshPort, publicPorts });
}

/** For the backends' public methods: bad input from the caller is an operator error. */
export function requireGrants(grants: readonly Grant[]): Grant[] {
  const parsed = parseGrants(grants);
  if (!parsed.ok) throw new SknockError('SKNOCK_FIREWALL_INVALID_GRANT', `refused grant: ${parsed.detail ?? parsed.reason}`);
  return parsed.value;
}

export function requirePolicy(policy: FirewallPolicy): FirewallPolicy {
  const parsed = parsePolicy(policy);
  if (!parsed.ok) throw new SknockError('SKNOCK_FIREWALL_INVALID_POLICY', `refused firewall policy: ${parsed.detail ?? parsed.reason}`);
  return parsed.value;
}
