#!/usr/bin/env node
/**
 * knock-client: builds a knock from a client PKCS#12 bundle and the server's
 * certificate, sends it, and checks that the TCP ports answer.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SknockError } from './errors.js';
import { isEntryPoint } from './entry-point.js';
import { authorizationWarning, buildKnock, knock, resolveClientAddress, type ClientAddressChoice, type KnockReport } from './knock.js';
import { parsePortRange, resolveHost, type AddressFamily } from './network.js';
import { resolvePassword } from './password.js';
import { loadPkcs12File } from './pkcs12.js';
import { formatPort, formatPortList, parsePortList } from './protocol/ports.js';
import type { KnockFormat } from './protocol/index.js';
import { loadServerCertificateFile } from './server-certificate.js';

export const CLIENT_USAGE = `Usage: knock-client [options] <host>

Sends one sKnock knock to <host> and checks that the port opens.

  -p, --port <proto/port[,...]>  ports to open, e.g. tcp/22 or tcp/22,udp/53 (required)
      --pfx <file>               client PKCS#12 bundle (key + certificate) (required)
      --password <pw>            its password; or --password-file <f>; or env SKNOCK_PFX_PASSWORD
      --password-file <f>
      --server-cert <file>       the server's certificate, DER or PEM (required)
      --knock-port <n | lo-hi>   UDP port to knock on (default: random in 10000-60000)
      --format v2|legacy         knock format (default v2; legacy = sKnock 1.0.0, one port)
  -4 / -6                        use IPv4 / IPv6 only
      --client-ip <ip|auto|source>
                                 address to open for: auto (default, the local address
                                 towards the server), an address, or source (v2, behind NAT)
      --duration <s>             ask for this many seconds open (v2; the server caps it)
      --min-length <n>           pad a v2 knock to at least n bytes (default 800)
      --no-verify                do not check with a TCP connect that the port opened
      --retries <n>              knock again this many times if the port stays closed (default 2)
      --timeout <ms>             wait this long for the port after each knock (default 2000)
      --save-packet <file>       write the knock bytes to a file
      --dry-run                  build (and save) the knock, do not send it
      --json                     print one JSON object on stdout
  -h, --help

Exit status: 0 when the port was verified open (or sent, with --no-verify; or
built, with --dry-run); 1 when it stayed closed; 2 on a usage or input error.`;

const options = {
  port: { type: 'string', short: 'p' },
  pfx: { type: 'string' },
  password: { type: 'string' },
  'password-file': { type: 'string' },
  'server-cert': { type: 'string' },
  'knock-port': { type: 'string' },
  format: { type: 'string' },
  '4': { type: 'boolean', short: '4' },
  '6': { type: 'boolean', short: '6' },
  'client-ip': { type: 'string' },
  duration: { type: 'string' },
  'min-length': { type: 'string' },
  'no-verify': { type: 'boolean' },
  retries: { type: 'string' },
  timeout: { type: 'string' },
  'save-packet': { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function usageError(message: string): never {
  throw new SknockError('SKNOCK_USAGE', `${message}\nRun knock-client --help for the options.`);
}

function integerOption(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) usageError(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  return value;
}

function required(name: string, value: string | undefined): string {
  if (value === undefined || value === '') usageError(`--${name} is required`);
  return value;
}

export interface ClientOutput {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** Runs the command line; returns the exit status. */
export async function runKnockClient(argv: readonly string[], output: ClientOutput, environment = process.env): Promise<number> {
  let json = argv.includes('--json');
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    json = values.json ?? false;
    if (values.help) {
      output.stdout(`${CLIENT_USAGE}\n`);
      return 0;
    }
    if (positionals.length !== 1) usageError(positionals.length === 0 ? 'the server <host> is missing' : `one <host> expected, got: ${positionals.join(' ')}`);
    const host = positionals[0]!;
    if (values['4'] && values['6']) usageError('-4 and -6 exclude each other');
    const family: AddressFamily | undefined = values['4'] ? 4 : values['6'] ? 6 : undefined;
    const format = (values.format ?? 'v2') as KnockFormat;
    if (format !== 'v2' && format !== 'legacy') usageError(`--format must be v2 or legacy, got "${values.format}"`);
    const ports = parsePortList(required('port', values.port));
    const clientChoice = (values['client-ip'] ?? 'auto') as ClientAddressChoice;
    const durationSeconds = integerOption('duration', values.duration, 0, 0xffffffff);
    const minDatagramLength = integerOption('min-length', values['min-length'], 0, 1232);
    const retries = integerOption('retries', values.retries, 0, 100) ?? 2;
    const timeoutMs = integerOption('timeout', values.timeout, 1, 600_000) ?? 2000;
    const knockPorts = values['knock-port'] === undefined ? undefined : parsePortRange(values['knock-port']);

    const identity = loadPkcs12File(
      required('pfx', values.pfx),
      resolvePassword({ password: values.password, passwordFile: values['password-file'], environment }),
    );
    const serverCertificate = loadServerCertificateFile(required('server-cert', values['server-cert']));
    const warning = authorizationWarning(identity, ports);
    if (warning) output.stderr(`knock-client: warning: ${warning}\n`);
    const savePacket = values['save-packet'];
    const content = {
      identity,
      serverCertificate,
      ports,
      format,
      ...(durationSeconds === undefined ? {} : { durationSeconds }),
      ...(minDatagramLength === undefined ? {} : { minDatagramLength }),
    };

    if (values['dry-run']) {
      const server = await resolveHost(host, family);
      const clientAddress = await resolveClientAddress(clientChoice, server);
      const packet = buildKnock({ ...content, clientAddress });
      if (savePacket) writeFileSync(savePacket, packet);
      const summary = { outcome: 'built', host, server: server.address, format, ports: formatPortList(ports), packetLength: packet.length, savedTo: savePacket ?? null };
      output.stdout(json ? `${JSON.stringify(summary)}\n` : `built a ${format} knock for ${formatPortList(ports)} to ${server.address}: ${packet.length} bytes${savePacket ? `, saved to ${savePacket}` : ''} (not sent)\n`);
      return 0;
    }

    const report = await knock({
      ...content,
      host,
      ...(family ? { family } : {}),
      clientAddress: clientChoice,
      ...(knockPorts ? { knockPorts } : {}),
      verify: !values['no-verify'],
      retries,
      timeoutMs,
      ...(savePacket ? { onPacket: (packet: Buffer) => writeFileSync(savePacket, packet) } : {}),
    });
    output.stdout(json ? `${JSON.stringify(reportAsJson(host, report))}\n` : `${describeReport(report)}\n`);
    return report.outcome === 'closed' ? 1 : 0;
  } catch (error) {
    const code = error instanceof SknockError ? error.code : 'SKNOCK_INTERNAL';
    const message = error instanceof Error ? error.message : String(error);
    if (json) output.stdout(`${JSON.stringify({ outcome: 'error', code, message })}\n`);
    output.stderr(`knock-client: ${message}\n`);
    return error instanceof SknockError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
  }
}

function reportAsJson(host: string, report: KnockReport) {
  return {
    outcome: report.outcome,
    host,
    server: report.server.address,
    clientAddress: report.clientAddress,
    format: report.format,
    ports: formatPortList(report.ports),
    knockPort: report.knockPort,
    packetLength: report.packetLength,
    attempts: report.attempts,
    openAfterMs: report.openAfterMs ?? null,
    portOutcomes: report.portOutcomes.map((entry) => ({ port: formatPort(entry.port), outcome: entry.outcome, openAfterMs: entry.openAfterMs ?? null })),
  };
}

function describeReport(report: KnockReport): string {
  const from = report.clientAddress === 'source' ? 'its source address (NAT mode)' : report.clientAddress;
  const head = `knocked ${report.server.address} from ${from} for ${formatPortList(report.ports)} (${report.format}, ${report.packetLength} bytes, UDP port ${report.knockPort})`;
  const tries = report.attempts > 1 ? ` after ${report.attempts} knocks` : '';
  switch (report.outcome) {
    case 'open':
      return `${head}: open after ${report.openAfterMs!.toFixed(1)} ms${tries}`;
    case 'sent':
      return `${head}: sent (not verified)`;
    case 'closed': {
      const closed = report.portOutcomes.filter((entry) => entry.outcome !== 'open' && entry.outcome !== 'unverified');
      return `${head}: still closed${tries} (${closed.map((entry) => `${formatPort(entry.port)} ${entry.outcome}`).join(', ')})`;
    }
  }
}

if (isEntryPoint(import.meta.url)) {
  process.exitCode = await runKnockClient(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  });
}
