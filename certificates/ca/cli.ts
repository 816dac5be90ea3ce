/**
 * The sknock-ca command line: parses arguments into the operations'
 * options, prints what was done, and turns errors into one clear line and
 * an exit status (0 done, 1 refused or failed, 2 usage).
 */
import { randomBytes } from 'node:crypto';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SknockError, isSknockError } from '../../client-lib/errors.js';
import { PASSWORD_ENVIRONMENT_VARIABLE } from '../../client-lib/password.js';
import { parsePortList } from '../../client-lib/protocol/ports.js';
import { isRevocationReason, revocationReasons } from './crl.js';
import {
  defaultDays,
  initCa,
  issueLeaf,
  listCertificates,
  publishCrl,
  revoke,
  serveCrl,
  type CaContext,
  type ListResult,
} from './operations.js';
import { bundlePassword, caKeyPassword, caPasswordVariable, type PasswordFlags } from './passwords.js';

/** Everything main() takes from the process, so tests run it in-process with their own clock. */
export interface CliEnvironment {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly environment: NodeJS.ProcessEnv;
  readonly now: () => Date;
  readonly randomBytes: (size: number) => Buffer;
  readonly pkcs12Iterations?: number;
  /** Resolves when a long-running command (serve) should stop. */
  readonly untilStopped: () => Promise<void>;
}

export function processEnvironment(): CliEnvironment {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    environment: process.env,
    now: () => new Date(),
    randomBytes,
    untilStopped: () =>
      new Promise((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      }),
  };
}

const passwordHelp = `Passwords (first found wins):
  bundles written:  --password P | --password-file FILE | ${PASSWORD_ENVIRONMENT_VARIABLE}
  CA key (ca.pfx):  --ca-password P | --ca-password-file FILE | ${caPasswordVariable},
                    else the bundle password
  Prefer the file or the variable: a --password value is visible in ps.`;

const commandHelp = {
  init: `sknock-ca init --dir DIR [--cn NAME] [--days N]
  Creates a CA in DIR: ca.pfx (key store), ca.cer (DER), index.json.
  --cn NAME   subject common name (default "sKnock CA")
  --days N    validity (default ${defaultDays.ca})`,
  server: `sknock-ca server --dir DIR --name NAME [--days N] [--force]
  Issues DIR/server/NAME.pfx (key, certificate, CA) and DIR/server/NAME.cer (DER, for clients).
  NAME is also the certificate's DNS name.
  --days N    validity (default ${defaultDays.leaf}, never past the CA's end)
  --force     issue again under an existing NAME (the old certificate stays valid until revoked)`,
  client: `sknock-ca client --dir DIR --name NAME --allow tcp/22,udp/53 [--days N] [--force]
  Issues DIR/client/NAME.pfx (key, certificate, CA), permitted to open the --allow ports.
  --days N    validity (default ${defaultDays.leaf}, never past the CA's end)
  --force     issue again under an existing NAME (the old certificate stays valid until revoked)`,
  revoke: `sknock-ca revoke --dir DIR (--name NAME | --serial HEX) [--reason REASON]
  Records a revocation in index.json; run "sknock-ca crl" to publish it.
  --name NAME    every unrevoked certificate issued under NAME
  --serial HEX   one certificate
  --reason       ${Object.keys(revocationReasons).join(' | ')} (default unspecified)`,
  crl: `sknock-ca crl --dir DIR [--days N]
  Writes DIR/crl.der, signed, with the next CRL number and every revoked serial.
  --days N    until nextUpdate (default ${defaultDays.crl}); servers refuse a CRL past it`,
  list: `sknock-ca list --dir DIR [--json]
  Shows every issued certificate: serial, expiry, status, permitted ports.`,
  serve: `sknock-ca serve --dir DIR --port N [--host ADDRESS]
  Serves DIR/crl.der at http://ADDRESS:N/crl.der (Last-Modified, ETag) until stopped.
  --host      address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)
  --port N    port, 0 for any free one`,
} as const;

type Command = keyof typeof commandHelp;

const usage = `sknock-ca: the certificate authority of sKnock (port knocking with certificates).

${Object.values(commandHelp)
  .map((help) => help.split('\n')[0])
  .join('\n')}

sknock-ca COMMAND --help shows a command's options.

${passwordHelp}
`;

type Options = NonNullable<ParseArgsConfig['options']>;
const string = { type: 'string' } as const;
const flag = { type: 'boolean' } as const;
/** Every command that opens ca.pfx takes all four: the bundle password stands in for the CA's. */
const passwordOptions: Options = { password: string, 'password-file': string, 'ca-password': string, 'ca-password-file': string };

const commandOptions: Record<Command, Options> = {
  init: { cn: string, days: string, ...passwordOptions },
  server: { name: string, days: string, force: flag, ...passwordOptions },
  client: { name: string, allow: string, days: string, force: flag, ...passwordOptions },
  revoke: { name: string, serial: string, reason: string },
  crl: { days: string, ...passwordOptions },
  list: { json: flag },
  serve: { port: string, host: string },
};

function usageError(message: string): SknockError {
  return new SknockError('SKNOCK_CA_USAGE', message);
}

type Values = Record<string, string | boolean | undefined>;

function stringValue(values: Values, key: string): string | undefined {
  const value = values[key];
  return typeof value === 'string' ? value : undefined;
}

function required(values: Values, key: string, command: Command): string {
  const value = stringValue(values, key);
  if (value === undefined || value === '') throw usageError(`${command} needs --${key}\n\n${commandHelp[command]}`);
  return value;
}

function days(values: Values, fallback: number): number {
  const text = stringValue(values, 'days');
  if (text === undefined) return fallback;
  const parsed = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(parsed >= 1 && parsed <= 36_500)) throw usageError(`--days must be a whole number of days from 1 to 36500, not "${text}"`);
  return parsed;
}

function portNumber(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) throw usageError(`--port must be a number from 0 to 65535, not "${text}"`);
  return port;
}

function passwordFlags(values: Values): PasswordFlags {
  return {
    password: stringValue(values, 'password'),
    passwordFile: stringValue(values, 'password-file'),
    caPassword: stringValue(values, 'ca-password'),
    caPasswordFile: stringValue(values, 'ca-password-file'),
  };
}

function formatList(result: ListResult, now: Date): string {
  const rows = result.certificates.map((entry) => {
    const status =
      entry.status.state === 'revoked' ? `revoked ${entry.status.revocationDate.slice(0, 10)} (${entry.status.reason})` : entry.status.state;
    return [entry.kind, entry.name, entry.serial, entry.notAfter.slice(0, 10), status, entry.permittedPorts ?? ''];
  });
  const table = [['KIND', 'NAME', 'SERIAL', 'EXPIRES', 'STATUS', 'PORTS'], ...rows];
  const widths = table[0]!.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
  const lines = table.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd());
  const crl =
    result.crlNextUpdate === undefined
      ? 'no CRL yet (sknock-ca crl writes one)'
      : `CRL number ${result.crlNumber}, next update ${result.crlNextUpdate.toISOString()}` +
        (result.crlNextUpdate.getTime() <= now.getTime() ? ' (STALE: servers refuse it; run sknock-ca crl)' : '');
  const notes = [`CA: ${result.ca.subject}, serial ${result.ca.serial}, expires ${result.ca.notAfter}`, crl];
  if (result.unpublishedRevocations.length > 0) {
    notes.push(
      `${result.unpublishedRevocations.length} revocation(s) not in crl.der yet (` +
        `${result.unpublishedRevocations.map((entry) => entry.name).join(', ')}): run sknock-ca crl`,
    );
  }
  return `${notes.join('\n')}\n\n${lines.join('\n')}\n`;
}

async function run(command: Command, values: Values, cli: CliEnvironment): Promise<void> {
  const directory = required(values, 'dir', command);
  const now = cli.now();
  const context: CaContext = { now, randomBytes: cli.randomBytes, pkcs12Iterations: cli.pkcs12Iterations };
  const print = cli.stdout;
  switch (command) {
    case 'init': {
      const result = await initCa(
        {
          directory,
          commonName: stringValue(values, 'cn') ?? 'sKnock CA',
          days: days(values, defaultDays.ca),
          caPassword: caKeyPassword(passwordFlags(values), cli.environment),
        },
        context,
      );
      print(
        `created CA "${result.subject}" (serial ${result.serial}, expires ${result.notAfter.toISOString()})\n` +
          `  ${result.paths.keyStore}\n  ${result.paths.certificate}\n  ${result.paths.index}\n`,
      );
      return;
    }
    case 'server':
    case 'client': {
      const name = required(values, 'name', command);
      const permittedPorts = command === 'client' ? parsePortList(required(values, 'allow', command)) : undefined;
      const leafDays = days(values, defaultDays.leaf);
      const flags = passwordFlags(values);
      const result = await issueLeaf(
        {
          directory,
          kind: command,
          name,
          permittedPorts,
          days: leafDays,
          force: values.force === true,
          caPassword: caKeyPassword(flags, cli.environment),
          bundlePassword: bundlePassword(flags, cli.environment),
        },
        context,
      );
      const ports = result.entry.permittedPorts === undefined ? '' : `, permits ${result.entry.permittedPorts}`;
      print(
        `issued ${command} "${name}" (serial ${result.entry.serial}, expires ${result.entry.notAfter}${ports})\n` +
          result.files.map((file) => `  ${file}\n`).join(''),
      );
      if (result.clampedToCa) cli.stderr(`note: the CA expires first, so this certificate ends with it (${result.entry.notAfter})\n`);
      for (const earlier of result.stillValid) {
        cli.stderr(
          `note: the earlier "${name}" certificate (serial ${earlier.serial}) stays valid until ${earlier.notAfter}; ` +
            `revoke it with: sknock-ca revoke --dir ${directory} --serial ${earlier.serial}\n`,
        );
      }
      return;
    }
    case 'revoke': {
      const name = stringValue(values, 'name');
      const serial = stringValue(values, 'serial');
      if ((name === undefined) === (serial === undefined)) throw usageError(`revoke needs exactly one of --name and --serial\n\n${commandHelp.revoke}`);
      const reason = stringValue(values, 'reason') ?? 'unspecified';
      if (!isRevocationReason(reason)) {
        throw usageError(`unknown --reason "${reason}": use one of ${Object.keys(revocationReasons).join(', ')}`);
      }
      const target = name !== undefined ? { name } : { serial: serial! };
      const result = await revoke({ directory, target, reason }, context);
      for (const entry of result.revoked) print(`revoked "${entry.name}" (serial ${entry.serial}, ${entry.reason})\n`);
      print(`servers learn of it from the next CRL: sknock-ca crl --dir ${directory}\n`);
      return;
    }
    case 'crl': {
      const result = await publishCrl(
        { directory, days: days(values, defaultDays.crl), caPassword: caKeyPassword(passwordFlags(values), cli.environment) },
        context,
      );
      print(
        `wrote CRL number ${result.crlNumber} with ${result.revokedCount} revoked certificate(s), ` +
          `next update ${result.nextUpdate.toISOString()}\n  ${result.file}\n`,
      );
      return;
    }
    case 'list': {
      const result = await listCertificates(directory, context);
      print(values.json === true ? `${JSON.stringify(result, null, 2)}\n` : formatList(result, now));
      return;
    }
    case 'serve': {
      const port = portNumber(required(values, 'port', command));
      const host = stringValue(values, 'host') ?? '127.0.0.1';
      const { server, url } = await serveCrl({ directory, port, host }, (error) =>
        cli.stderr(`sknock-ca serve: ${error.message}\n`),
      );
      print(`serving ${url} (stop with Ctrl-C)\n`);
      await cli.untilStopped();
      await new Promise((resolve) => server.close(resolve));
      return;
    }
  }
}

function isCommand(text: string | undefined): text is Command {
  return text !== undefined && Object.hasOwn(commandHelp, text);
}

/** Runs one sknock-ca command and returns the exit status. */
export async function main(argv: readonly string[], cli: CliEnvironment = processEnvironment()): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? cli.stderr : cli.stdout)(usage);
    return command === undefined ? 2 : 0;
  }
  try {
    if (!isCommand(command)) throw usageError(`unknown command "${command}"\n\n${usage}`);
    const { values } = parseArgs({
      args: [...rest],
      options: { dir: string, help: { type: 'boolean', short: 'h' }, ...commandOptions[command] },
      strict: true,
      allowPositionals: false,
    });
    if (values.help === true) {
      cli.stdout(`${commandHelp[command]}\n\n${passwordHelp}\n`);
      return 0;
    }
    await run(command, values, cli);
    return 0;
  } catch (error) {
    if (isSknockError(error, 'SKNOCK_CA_USAGE') || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      cli.stderr(`sknock-ca: ${(error as Error).message}\n`);
      return 2;
    }
    if (isSknockError(error)) {
      cli.stderr(`sknock-ca: ${error.message} [${error.code}]\n`);
      return 1;
    }
    cli.stderr(`sknock-ca: unexpected failure: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
