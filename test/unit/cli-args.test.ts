import { describe, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import { KEY_NAMES } from '../../server/config.js';
import { OPTION_KEYS, parseServerArgs, SERVER_USAGE, SYSTEM_CONFIG_FILE, type ParseServerArgsOptions } from '../../server/cli-args.js';

const noLocalConfig: ParseServerArgsOptions = { cwd: '/home/admin', fileExists: () => false };

function usageError(argv: string[]): string {
  try {
    parseServerArgs(argv, noLocalConfig);
  } catch (error) {
    if (isSknockError(error, 'SKNOCK_USAGE')) return error.message;
    throw error;
  }
  throw new Error(`expected SKNOCK_USAGE for ${argv.join(' ')}`);
}

describe('parseServerArgs', () => {
  it('runs by default', () => {
    expect(parseServerArgs([], noLocalConfig)).toEqual({
      command: 'run',
      configFile: SYSTEM_CONFIG_FILE,
      configFileSource: 'system',
      overrides: {},
    });
  });

  it('reads the commands', () => {
    expect(parseServerArgs(['run'], noLocalConfig).command).toBe('run');
    expect(parseServerArgs(['check-config'], noLocalConfig).command).toBe('check-config');
    expect(parseServerArgs(['crl-status', '--log-level', 'debug'], noLocalConfig).command).toBe('crl-status');
    expect(parseServerArgs(['help'], noLocalConfig).command).toBe('help');
    expect(parseServerArgs(['check-config', '--help'], noLocalConfig).command).toBe('help');
    expect(parseServerArgs(['-h'], noLocalConfig).command).toBe('help');
  });

  it('prefers ./config.ini in the working directory, then the system file, and takes --config relative to the working directory', () => {
    const local = parseServerArgs([], { cwd: '/srv/sknock', fileExists: (file) => file === '/srv/sknock/config.ini' });
    expect(local).toMatchObject({ configFile: '/srv/sknock/config.ini', configFileSource: 'working-directory' });
    expect(parseServerArgs(['--config', 'etc/s.ini'], noLocalConfig)).toMatchObject({ configFile: '/home/admin/etc/s.ini', configFileSource: 'option' });
    expect(parseServerArgs(['-c', '/etc/x.ini'], noLocalConfig).configFile).toBe('/etc/x.ini');
    expect(parseServerArgs(['--config=/etc/y.ini'], noLocalConfig).configFile).toBe('/etc/y.ini');
  });

  it('turns --set and the friendly options into overrides, later ones winning', () => {
    const args = parseServerArgs(
      [
        '--set', 'workers=2',
        '--set=crlUrl=https://a.example/crl?x=1',
        '--interfaces', 'eth0,eth1',
        '--firewall-policy=drop',
        '--firewall-backend', 'iptables',
        '--knock-ports', '4000-5000',
        '--log-level', 'debug',
        '--log-format', 'json',
        '--user', 'sknock',
        '--crl-policy', 'require',
        '--pfx', 'server.pfx',
        '--password-file', '/run/pw',
        '--set', 'logLevel=warn',
      ],
      noLocalConfig,
    );
    expect(args.overrides).toEqual({
      workers: '2',
      crlUrl: 'https://a.example/crl?x=1',
      interfaces: 'eth0,eth1',
      firewallPolicy: 'drop',
      firewallBackend: 'iptables',
      knockPorts: '4000-5000',
      logLevel: 'warn',
      logFormat: 'json',
      user: 'sknock',
      crlPolicy: 'require',
      serverPFXFile: 'server.pfx',
      PFXPasswdFile: '/run/pw',
    });
  });

  it('maps every friendly option to a real config key and documents it', () => {
    for (const [option, key] of Object.entries(OPTION_KEYS)) {
      expect(KEY_NAMES).toContain(key);
      expect(SERVER_USAGE).toContain(`${option} `);
    }
  });

  it('refuses unknown options with a hint', () => {
    expect(usageError(['--daemon'])).toMatch(/^unknown option --daemon; see sknock-server --help$/);
    expect(usageError(['--log-levle', 'debug'])).toMatch(/^unknown option --log-levle \(did you mean --log-level\?\)/);
    expect(usageError(['-x'])).toMatch(/^unknown option -x/);
  });

  it('refuses unknown commands, a second command and missing values', () => {
    expect(usageError(['chek-config'])).toMatch(/^unknown command "chek-config" \(did you mean check-config\?\)/);
    expect(usageError(['run', 'check-config'])).toMatch(/^unexpected argument "check-config" after the command run/);
    expect(usageError(['--config'])).toMatch(/^--config needs a value/);
    expect(usageError(['--user', '--log-level', 'info'])).toMatch(/^--user needs a value/);
    expect(usageError(['--set', 'workers'])).toMatch(/^--set needs KEY=VALUE, got "workers"/);
    expect(usageError(['--set', '=2'])).toMatch(/^--set needs KEY=VALUE/);
  });
});
