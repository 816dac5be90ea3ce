import { existsSync } from 'node:fs';
import path from 'node:path';
import { SknockError } from '../client-lib/errors.js';
import { didYouMean } from './config.js';

/** The command line of sknock-server: which command, which config file, which keys overridden. */

export const SERVER_COMMANDS = ['run', 'check-config', 'crl-status', 'help'] as const;
export type ServerCommand = (typeof SERVER_COMMANDS)[number];

export const LOCAL_CONFIG_FILE = 'config.ini';
export const SYSTEM_CONFIG_FILE = '/etc/sknock/config.ini';

export interface ServerArgs {
  readonly command: ServerCommand;
  /** Absolute path. */
  readonly configFile: string;
  /** How configFile was chosen: --config, ./config.ini in the working directory, or the system-wide file. */
  readonly configFileSource: 'option' | 'working-directory' | 'system';
  /** Config key → value from --set and the friendly options; these win over the file. */
  readonly overrides: Readonly<Record<string, string>>;
}

export interface ParseServerArgsOptions {
  readonly cwd?: string;
  readonly fileExists?: (file: string) => boolean;
}

/** Friendly options, each a shorthand for `--set KEY=VALUE`. */
export const OPTION_KEYS: Readonly<Record<string, string>> = {
  '--interfaces': 'interfaces',
  '--knock-ports': 'knockPorts',
  '--firewall-policy': 'firewallPolicy',
  '--firewall-backend': 'firewallBackend',
  '--crl-policy': 'crlPolicy',
  '--pfx': 'serverPFXFile',
  '--password-file': 'PFXPasswdFile',
  '--user': 'user',
  '--log-level': 'logLevel',
  '--log-format': 'logFormat',
};

export const SERVER_USAGE = `Usage: sknock-server [COMMAND] [OPTIONS]

Commands:
  run            capture knocks and open the firewall for valid ones (default);
                 stays in the foreground (use systemd or similar to supervise it)
  check-config   load the configuration, print the effective settings and warnings, exit
  crl-status     print the state of the certificate revocation list, exit
  help           print this text

Options:
  -c, --config FILE          configuration file; default: ./${LOCAL_CONFIG_FILE} when it exists
                             in the working directory, else ${SYSTEM_CONFIG_FILE}
      --set KEY=VALUE        override a key of the configuration file (repeatable)
      --interfaces LIST      = --set interfaces=LIST            (e.g. eth0,eth1 or any)
      --knock-ports RANGE    = --set knockPorts=RANGE           (e.g. 10000-60000)
      --firewall-policy P    = --set firewallPolicy=P           (none, reject, drop)
      --firewall-backend B   = --set firewallBackend=B          (nftables, iptables, command)
      --crl-policy P         = --set crlPolicy=P                (warn, require)
      --pfx FILE             = --set serverPFXFile=FILE
      --password-file FILE   = --set PFXPasswdFile=FILE
      --user NAME            = --set user=NAME
      --log-level L          = --set logLevel=L                 (debug, info, warn, error)
      --log-format F         = --set logFormat=F                (text, json)
  -h, --help                 print this text

Relative paths in the configuration file resolve against the file's folder;
relative paths given on the command line resolve against the working directory.
`;

export function parseServerArgs(argv: readonly string[], options: ParseServerArgsOptions = {}): ServerArgs {
  const cwd = options.cwd ?? process.cwd();
  const fileExists = options.fileExists ?? existsSync;
  let command: ServerCommand | null = null;
  let configOption: string | null = null;
  const overrides: Record<string, string> = {};

  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index]!;
    if (!arg.startsWith('-')) {
      if (command !== null) throw usageError(`unexpected argument "${arg}" after the command ${command}`);
      if (!(SERVER_COMMANDS as readonly string[]).includes(arg)) {
        throw usageError(`unknown command "${arg}"${didYouMean(arg, SERVER_COMMANDS)}`);
      }
      command = arg as ServerCommand;
      continue;
    }
    const equals = arg.indexOf('=');
    const flag = arg.startsWith('--') && equals > 0 ? arg.slice(0, equals) : arg;
    const takeValue = (): string => {
      if (flag !== arg) return arg.slice(equals + 1);
      const value = argv[index + 1];
      // A value never starts with "--": that is the next option, so this one's value was forgotten.
      if (value === undefined || value.startsWith('--')) throw usageError(`${flag} needs a value`);
      index += 1;
      return value;
    };

    if (flag === '-h' || flag === '--help') {
      command = 'help';
    } else if (flag === '-c' || flag === '--config') {
      configOption = takeValue();
    } else if (flag === '--set') {
      const assignment = takeValue();
      const separator = assignment.indexOf('=');
      if (separator <= 0) throw usageError(`--set needs KEY=VALUE, got "${assignment}"`);
      overrides[assignment.slice(0, separator).trim()] = assignment.slice(separator + 1);
    } else if (Object.hasOwn(OPTION_KEYS, flag)) {
      overrides[OPTION_KEYS[flag]!] = takeValue();
    } else {
      const known = ['--help', '--config', '--set', ...Object.keys(OPTION_KEYS)];
      throw usageError(`unknown option ${flag}${didYouMean(flag, known)}`);
    }
  }

  const local = path.resolve(cwd, LOCAL_CONFIG_FILE);
  const [configFile, configFileSource]: [string, ServerArgs['configFileSource']] =
    configOption !== null
      ? [path.resolve(cwd, configOption), 'option']
      : fileExists(local)
        ? [local, 'working-directory']
        : [SYSTEM_CONFIG_FILE, 'system'];
  return { command: command ?? 'run', configFile, configFileSource, overrides };
}

function usageError(message: string): SknockError<'SKNOCK_USAGE'> {
  return new SknockError('SKNOCK_USAGE', `${message}; see sknock-server --help`);
}
