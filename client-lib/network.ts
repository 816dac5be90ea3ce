import { createSocket, type SocketType } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { connect, isIP } from 'node:net';
import { SknockError } from './errors.js';

export type AddressFamily = 4 | 6;

export interface ResolvedHost {
  readonly address: string;
  readonly family: AddressFamily;
}

/** A host name or literal address to one address, optionally of one family (-4 / -6). */
export async function resolveHost(host: string, family?: AddressFamily): Promise<ResolvedHost> {
  const literal = isIP(host);
  if (literal !== 0) {
    if (family !== undefined && literal !== family) {
      throw new SknockError('SKNOCK_UNRESOLVABLE_HOST', `${host} is an IPv${literal} address, but IPv${family} was asked for`);
    }
    return { address: host, family: literal as AddressFamily };
  }
  try {
    const found = await lookup(host, { family: family ?? 0 });
    return { address: found.address, family: found.family as AddressFamily };
  } catch (error) {
    throw new SknockError(
      'SKNOCK_UNRESOLVABLE_HOST',
      `cannot resolve ${host}${family ? ` to an IPv${family} address` : ''}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      { cause: error },
    );
  }
}

function socketType(family: AddressFamily): SocketType {
  return family === 6 ? 'udp6' : 'udp4';
}

/**
 * The local address the OS would use to reach `target`: a connected UDP
 * socket picks the route and source address without sending anything.
 */
export function localAddressToward(target: ResolvedHost): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(socketType(target.family));
    socket.once('error', (error) => {
      socket.close();
      reject(new SknockError('SKNOCK_NO_ROUTE', `no route to ${target.address}: ${error.message}`, { cause: error }));
    });
    socket.connect(9, target.address, () => {
      const { address } = socket.address();
      socket.close();
      resolve(address);
    });
  });
}

/** Sends one datagram; resolves when the kernel has taken it. */
export function sendDatagram(packet: Uint8Array, target: ResolvedHost, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(socketType(target.family));
    socket.once('error', (error) => {
      socket.close();
      reject(new SknockError('SKNOCK_SEND_FAILED', `cannot send the knock to ${target.address}: ${error.message}`, { cause: error }));
    });
    socket.send(packet, port, target.address, (error) => {
      socket.close();
      if (error) reject(new SknockError('SKNOCK_SEND_FAILED', `cannot send the knock to ${target.address}: ${error.message}`, { cause: error }));
      else resolve();
    });
  });
}

export type TcpProbeOutcome = 'open' | 'refused' | 'timeout' | 'unreachable';

/** One TCP connect attempt: was the port open? */
export function probeTcpPort(target: ResolvedHost, port: number, timeoutMs: number): Promise<TcpProbeOutcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.address, port, family: target.family });
    const finish = (outcome: TcpProbeOutcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.once('connect', () => finish('open'));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNREFUSED' ? 'refused' : 'unreachable'));
  });
}

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** The original client's default: a random destination port in 10000-60000. */
export const DEFAULT_KNOCK_PORTS: PortRange = { from: 10000, to: 60000 };

export function chooseKnockPort(range: PortRange, random: () => number = Math.random): number {
  return range.from + Math.floor(random() * (range.to - range.from + 1));
}

/** `n` or `lo-hi`. */
export function parsePortRange(text: string): PortRange {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim());
  const from = match ? Number(match[1]) : NaN;
  const to = match ? Number(match[2] ?? match[1]) : NaN;
  if (!match || from < 1 || to > 65535 || from > to) {
    throw new SknockError('SKNOCK_BAD_PORT_SPEC', `invalid knock port "${text}": expected a port (e.g. 31337) or a range lo-hi within 1-65535`);
  }
  return { from, to };
}
