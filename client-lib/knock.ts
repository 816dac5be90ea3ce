import { SknockError } from './errors.js';
import {
  DEFAULT_MIN_DATAGRAM,
  buildLegacyKnock,
  buildV2Knock,
  type KnockFormat,
} from './protocol/index.js';
import { formatAddress, parseAddress } from './protocol/address.js';
import { readAuthorization } from './certificate/authorization.js';
import { parseCertificate } from './certificate/x509.js';
import { formatPortList, samePort, type PortRequest } from './protocol/ports.js';
import {
  DEFAULT_KNOCK_PORTS,
  chooseKnockPort,
  localAddressToward,
  probeTcpPort,
  resolveHost,
  sendDatagram,
  type AddressFamily,
  type PortRange,
  type ResolvedHost,
  type TcpProbeOutcome,
} from './network.js';
import type { Pkcs12Bundle } from './pkcs12.js';
import type { ServerCertificate } from './server-certificate.js';

/** What a knock says, before any network is involved. */
export interface KnockContent {
  readonly identity: Pkcs12Bundle;
  readonly serverCertificate: ServerCertificate;
  readonly ports: readonly PortRequest[];
  readonly format?: KnockFormat;
  /** The client's address as bytes (4 or 16), or null: "use the packet's source address" (v2 only). */
  readonly clientAddress: Buffer | null;
  /** v2: ask for this many seconds (the server caps it); 0 or absent = the server's default. */
  readonly durationSeconds?: number;
  /** v2: pad the datagram to at least this many bytes (default 800). */
  readonly minDatagramLength?: number;
  /** v2: an intermediate certificate between the client's and the server's CA. */
  readonly intermediateCertificateDer?: Buffer | null;
  readonly now?: () => number;
}

/** Builds one knock datagram; every call makes a fresh one (new ephemeral key and nonce). */
export function buildKnock(content: KnockContent): Buffer {
  const format = content.format ?? 'v2';
  const timestampMs = (content.now ?? Date.now)();
  const common = {
    serverCertificateDer: content.serverCertificate.der,
    certificateDer: content.identity.certificateDer,
    signer: content.identity.privateKey,
    timestampMs,
  };
  if (format === 'v2') {
    return buildV2Knock({
      ...common,
      ports: content.ports,
      clientAddress: content.clientAddress,
      requestedDurationSeconds: content.durationSeconds ?? 0,
      minDatagramLength: content.minDatagramLength ?? DEFAULT_MIN_DATAGRAM,
      intermediateCertificateDer: content.intermediateCertificateDer ?? null,
    });
  }
  const [port, ...more] = content.ports;
  if (!port || more.length > 0) {
    throw new SknockError('SKNOCK_BAD_KNOCK_INPUT', 'a legacy (sKnock 1.0.0) knock opens exactly one port: use --format v2 for several');
  }
  if (content.clientAddress === null) {
    throw new SknockError('SKNOCK_BAD_KNOCK_INPUT', 'a legacy (sKnock 1.0.0) knock cannot use the source address (NAT mode): use --format v2');
  }
  if (content.durationSeconds) {
    throw new SknockError('SKNOCK_BAD_KNOCK_INPUT', 'a legacy (sKnock 1.0.0) knock cannot ask for a duration: use --format v2');
  }
  return buildLegacyKnock({ ...common, port, clientAddress: content.clientAddress });
}

/** `auto`, `source` (NAT mode) or a literal address. */
export type ClientAddressChoice = 'auto' | 'source' | (string & {});

/** The address bytes to sign for `choice`, as seen towards `server`. */
export async function resolveClientAddress(choice: ClientAddressChoice, server: ResolvedHost): Promise<Buffer | null> {
  if (choice === 'source') return null;
  const text = choice === 'auto' ? await localAddressToward(server) : choice;
  const bytes = parseAddress(text);
  if (!bytes) {
    throw new SknockError('SKNOCK_BAD_CLIENT_ADDRESS', `invalid client address "${choice}": expected auto, source or an IPv4/IPv6 address`);
  }
  return Buffer.from(bytes);
}

/** Sends one knock datagram to `server` on `knockPort`. */
export function sendKnock(packet: Uint8Array, server: ResolvedHost, knockPort: number): Promise<void> {
  return sendDatagram(packet, server, knockPort);
}

export interface KnockOptions extends Omit<KnockContent, 'clientAddress'> {
  readonly host: string;
  readonly family?: AddressFamily;
  readonly clientAddress?: ClientAddressChoice;
  readonly knockPorts?: PortRange;
  /** Check with a TCP connect that the ports opened (default true). */
  readonly verify?: boolean;
  /** Further knocks when a port did not open in time (default 2). */
  readonly retries?: number;
  /** How long to wait for the ports to open after each knock, in ms (default 2000). */
  readonly timeoutMs?: number;
  readonly random?: () => number;
  /** Called with every datagram before it is sent (e.g. to save it). */
  readonly onPacket?: (packet: Buffer) => void;
}

export interface PortOutcome {
  readonly port: PortRequest;
  /** `unverified` for UDP ports and with verify off: nothing can tell from outside. */
  readonly outcome: TcpProbeOutcome | 'unverified';
  readonly openAfterMs?: number;
}

export interface KnockReport {
  readonly server: ResolvedHost;
  /** Text of the signed client address, or `source` (NAT mode). */
  readonly clientAddress: string;
  readonly format: KnockFormat;
  readonly ports: readonly PortRequest[];
  readonly knockPort: number;
  readonly packetLength: number;
  readonly attempts: number;
  /** `open`: every TCP port answered; `sent`: nothing was verified; `closed`: some TCP port never answered. */
  readonly outcome: 'open' | 'sent' | 'closed';
  readonly portOutcomes: readonly PortOutcome[];
  /** From the first send of the successful attempt to the last port's first successful connect. */
  readonly openAfterMs?: number;
}

/** Probe timeouts grow from a few ms (one RTT nearby) to 1 s (far away). */
const FIRST_PROBE_TIMEOUT_MS = 5;
const LAST_PROBE_TIMEOUT_MS = 1000;

async function waitForTcpPort(server: ResolvedHost, port: number, deadline: number): Promise<PortOutcome['outcome']> {
  let probeTimeout = FIRST_PROBE_TIMEOUT_MS;
  let last: TcpProbeOutcome = 'timeout';
  while (performance.now() < deadline) {
    last = await probeTcpPort(server, port, Math.max(1, Math.min(probeTimeout, deadline - performance.now())));
    if (last === 'open') return last;
    if (last === 'refused' || last === 'unreachable') await new Promise((resolve) => setTimeout(resolve, 2));
    probeTimeout = Math.min(probeTimeout * 2, LAST_PROBE_TIMEOUT_MS);
  }
  return last;
}

/**
 * Knocks and (unless verify is off) checks that the TCP ports answer,
 * knocking again up to `retries` times. Operator errors throw SknockError;
 * a port that stays closed is an outcome, not an error.
 */
export async function knock(options: KnockOptions): Promise<KnockReport> {
  const format = options.format ?? 'v2';
  const server = await resolveHost(options.host, options.family);
  const clientAddress = await resolveClientAddress(options.clientAddress ?? 'auto', server);
  const verify = options.verify ?? true;
  const retries = options.retries ?? 2;
  const timeoutMs = options.timeoutMs ?? 2000;
  const random = options.random ?? Math.random;

  let attempts = 0;
  for (;;) {
    attempts += 1;
    const packet = buildKnock({ ...options, format, clientAddress });
    options.onPacket?.(packet);
    const knockPort = chooseKnockPort(options.knockPorts ?? DEFAULT_KNOCK_PORTS, random);
    const sentAt = performance.now();
    await sendKnock(packet, server, knockPort);
    const report = {
      server,
      clientAddress: clientAddress === null ? 'source' : formatAddress(clientAddress),
      format,
      ports: options.ports,
      knockPort,
      packetLength: packet.length,
      attempts,
    };
    if (!verify) {
      return { ...report, outcome: 'sent', portOutcomes: options.ports.map((port) => ({ port, outcome: 'unverified' })) };
    }
    const deadline = sentAt + timeoutMs;
    const portOutcomes: PortOutcome[] = await Promise.all(
      options.ports.map(async (port): Promise<PortOutcome> => {
        if (port.protocol !== 'tcp') return { port, outcome: 'unverified' };
        const outcome = await waitForTcpPort(server, port.port, deadline);
        return outcome === 'open' ? { port, outcome, openAfterMs: performance.now() - sentAt } : { port, outcome };
      }),
    );
    const tcpOutcomes = portOutcomes.filter((entry) => entry.outcome !== 'unverified');
    const allOpen = tcpOutcomes.every((entry) => entry.outcome === 'open');
    if (allOpen || attempts > retries) {
      const openTimes = tcpOutcomes.map((entry) => entry.openAfterMs ?? 0);
      return {
        ...report,
        outcome: tcpOutcomes.length === 0 ? 'sent' : allOpen ? 'open' : 'closed',
        portOutcomes,
        ...(allOpen && tcpOutcomes.length > 0 ? { openAfterMs: Math.max(...openTimes) } : {}),
      };
    }
  }
}

/**
 * What the client's own certificate says against the request, before it is
 * sent: the server will refuse ports the certificate does not permit.
 * Returns a warning text, or undefined when the request looks authorized.
 */
export function authorizationWarning(identity: Pkcs12Bundle, ports: readonly PortRequest[]): string | undefined {
  const certificate = parseCertificate(identity.certificateDer);
  if (!certificate.ok) return 'your certificate cannot be read as an sKnock client certificate: the server will refuse the knock';
  const permitted = readAuthorization(certificate.value);
  if (!permitted.ok) return `your certificate carries no usable port authorization (${permitted.detail ?? permitted.reason}): the server will refuse the knock`;
  const refused = ports.filter((request) => !permitted.value.some((allowed) => samePort(allowed, request)));
  if (refused.length === 0) return undefined;
  return `your certificate permits ${formatPortList(permitted.value)}, not ${formatPortList(refused)}: the server will refuse the knock`;
}
