import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import { loadServerConfig } from '../../server/config.js';
import { CONFIG_DIR, CONFIG_FILE, MINIMAL_CONFIG, minimalWith, parseInMemory, type InMemoryOptions } from '../fixtures/config/in-memory.js';

/** The message of the SKNOCK_CONFIG_INVALID error the text causes. */
function configError(text: string, options?: InMemoryOptions): string {
  try {
    parseInMemory(text, options);
  } catch (error) {
    if (isSknockError(error, 'SKNOCK_CONFIG_INVALID')) return error.message;
    throw error;
  }
  throw new Error('expected SKNOCK_CONFIG_INVALID, but the configuration loaded');
}

/** One line of the message: `${file}: ${key}: …reason…`. */
function problemLine(key: string, reason: RegExp): RegExp {
  const escapedFile = CONFIG_FILE.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(`^${escapedFile}: ${key}: .*${reason.source}`, 'm');
}

describe('invalid configurations name the file, the key and the reason', () => {
  const cases: [string, string[], string, RegExp][] = [
    ['bad number', ['PORT_OPEN_DURATION_IN_SECONDS = 15s'], 'PORT_OPEN_DURATION_IN_SECONDS', /expected an integer from 1 to 86400, got "15s" \(line 4\)/],
    ['number out of range', ['KNOCKPACKET_MIN_LENGTH = 70000'], 'KNOCKPACKET_MIN_LENGTH', /expected an integer from 1 to 65535, got "70000"/],
    ['fraction', ['TIMESTAMP_THRESHOLD_IN_SECONDS = 7.5'], 'TIMESTAMP_THRESHOLD_IN_SECONDS', /expected an integer from 1 to 3600, got "7.5"/],
    ['empty number', ['workers ='], 'workers', /empty value; expected an integer from 0 to 1024 \(remove the line to use the default\)/],
    ['inline comment', ['workers = 2 # two cores'], 'workers', /got "2 # two cores" \(comments must be on lines of their own\)/],
    ['unknown enum', ['firewallPolicy = block'], 'firewallPolicy', /expected one of none, reject, drop, got "block"/],
    ['enum typo', ['firewallBackend = nftable'], 'firewallBackend', /got "nftable" \(did you mean nftables\?\)/],
    ['unknown key with hint', ['firewallPolicyy = drop'], 'firewallPolicyy', /unknown key \(did you mean firewallPolicy\?\) \(line 4\)/],
    ['key in the wrong case', ['FirewallPolicy = drop'], 'FirewallPolicy', /unknown key \(did you mean firewallPolicy\? keys are case-sensitive\)/],
    ['unknown key far from any', ['colour = blue'], 'colour', /unknown key \(line 4\)$/],
    ['both passwords', ['PFXPasswdFile = pw.txt'], 'PFXPasswdFile', /set only one of PFXPasswd and PFXPasswdFile \(line 4\)/],
    ['missing password file', ['PFXPasswdFile = pw.txt'], 'PFXPasswdFile', new RegExp(`cannot read the password file ${CONFIG_DIR}/pw.txt: no such file`)],
    ['bad port list', ['publicPorts = tcp/80,http'], 'publicPorts', /invalid port "http": expected protocol\/port/],
    ['port out of range', ['publicPorts = tcp/70000'], 'publicPorts', /invalid port "tcp\/70000"/],
    ['reversed range', ['knockPorts = 60000-10000'], 'knockPorts', /expected a port or a range such as 10000-60000 .* got "60000-10000"/],
    ['range past 65535', ['knockPorts = 10000-70000'], 'knockPorts', /got "10000-70000"/],
    ['maxOpen < duration', ['PORT_OPEN_DURATION_IN_SECONDS = 600', 'maxOpenDurationInSeconds = 60'], 'maxOpenDurationInSeconds', /60 is less than PORT_OPEN_DURATION_IN_SECONDS \(600\) \(line 5\)/],
    ['bad cron value', ['crlRefreshCron = 61 * * * *'], 'crlRefreshCron', /invalid cron expression "61 \* \* \* \*": 61 is a invalid expression for minute/],
    ['cron with 4 fields', ['crlRefreshCron = * * * *'], 'crlRefreshCron', /expected a cron expression of 5 fields .* got 4/],
    ['cron and interval', ['crlRefreshCron = */5 * * * *', 'CRL_UPDATE_INTERVAL_IN_MINUTES = 5'], 'crlRefreshCron', /set only one of CRL_UPDATE_INTERVAL_IN_MINUTES and crlRefreshCron/],
    ['bad boolean', ['legacyKnocks = maybe'], 'legacyKnocks', /expected true\/false, yes\/no, on\/off or 1\/0, got "maybe"/],
    ['bad URL', ['crlUrl = https://ok.example/c not-a-url'], 'crlUrl', /"not-a-url" is not a URL/],
    ['URL that cannot be fetched', ['crlUrl = ftp://ca.example/crl'], 'crlUrl', /only http and https URLs/],
    ['require without CRL', ['crlPolicy = require'], 'crlFile', /required when crlPolicy = require$/],
    ['command backend without commands', ['firewallBackend = command'], 'openCommand', /required when firewallBackend = command/],
    ['unknown placeholder', ['firewallBackend = command', 'openCommand = open {addr}', 'closeCommand = close {address}'], 'openCommand', /unknown placeholder \{addr\}: use \{address\} \{protocol\} \{port\} \{seconds\}/],
    ['command without address', ['firewallBackend = command', 'openCommand = open {address}', 'closeCommand = close {port}'], 'closeCommand', /must contain \{address\}/],
    ['unterminated quote', ['firewallBackend = command', 'openCommand = open "{address}', 'closeCommand = close {address}'], 'openCommand', /unterminated " quote/],
    ['interface list with any', ['interfaces = any,eth0'], 'interfaces', /"any" already captures on every interface/],
    ['interface name too long', ['interfaces = averyveryverylongname0'], 'interfaces', /"averyveryverylongname0" is not an interface name/],
    ['capture ring of zero', ['captureBufferMB = 0'], 'captureBufferMB', /expected an integer from 1 to 1024, got "0"/],
    ['replay quota of zero', ['replayEntriesPerClient = 0'], 'replayEntriesPerClient', /expected an integer from 1 to 100000, got "0"/],
    ['root user', ['user = root'], 'user', /must not be root/],
    ['bad emergency port', ['emergencySshPort = none'], 'emergencySshPort', /expected a TCP port 1-65535 or off, got "none"/],
    ['log level', ['logLevel = verbose'], 'logLevel', /expected one of debug, info, warn, error, got "verbose"/],
  ];

  it.each(cases)('%s', (_name, lines, key, reason) => {
    expect(configError(minimalWith(...lines))).toMatch(problemLine(key, reason));
  });

  it('requires serverPFXFile and checks that it exists', () => {
    expect(configError('[DEFAULT]\nPFXPasswd = x\n')).toMatch(problemLine('serverPFXFile', /required but not set$/));
    expect(configError(MINIMAL_CONFIG, { files: {} })).toMatch(problemLine('serverPFXFile', new RegExp(`${CONFIG_DIR}/server.pfx does not exist \\(line 2\\)`)));
  });

  it('requires a password', () => {
    expect(configError('[DEFAULT]\nserverPFXFile = server.pfx\n')).toMatch(problemLine('PFXPasswd', /no password for serverPFXFile: set PFXPasswd or PFXPasswdFile/));
  });

  it('lists every problem at once', () => {
    const message = configError(minimalWith('workers = many', 'logFormat = xml', 'knockport = 1'));
    expect(message.split('\n')).toHaveLength(3);
    expect(message).toMatch(problemLine('workers', /expected an integer/));
    expect(message).toMatch(problemLine('logFormat', /expected one of text, json/));
    expect(message).toMatch(problemLine('knockport', /unknown key \(did you mean knockPorts\?/));
  });

  it('says which problems come from the command line', () => {
    const message = configError(MINIMAL_CONFIG, { overrides: { logLevel: 'loud', 'firewall-policy': 'drop' } });
    expect(message).toMatch(problemLine('logLevel', /expected one of .* got "loud" \(from the command line\)$/));
    expect(message).toMatch(problemLine('firewall-policy', /unknown key \(did you mean firewallPolicy\?\) \(from the command line\)$/));
  });

  it('refuses both passwords when both come from the command line', () => {
    const message = configError('[DEFAULT]\nserverPFXFile = server.pfx\n', {
      overrides: { PFXPasswd: 'a', PFXPasswdFile: '/pw' },
      files: { [`${CONFIG_DIR}/server.pfx`]: '', '/pw': 'b' },
    });
    expect(message).toMatch(problemLine('PFXPasswdFile', /set only one of PFXPasswd and PFXPasswdFile \(from the command line\)/));
  });

  it('names the line of syntax errors, sections other than [DEFAULT], keys outside it and duplicates', () => {
    const file = CONFIG_FILE;
    expect(configError('serverPFXFile = server.pfx\n[DEFAULT]\nPFXPasswd = x\n')).toContain(
      `${file}: line 1: "serverPFXFile" comes before the [DEFAULT] section header`,
    );
    expect(configError(`${MINIMAL_CONFIG}[server]\nuser = knock\n`)).toContain(`${file}: line 4: section [server] is not read: all keys belong in [DEFAULT]`);
    expect(configError(`${MINIMAL_CONFIG}just words\n`)).toContain(`${file}: line 4: expected "key = value", got "just words"`);
    expect(configError(`${MINIMAL_CONFIG}PFXPasswd = y\n`)).toContain(`${file}: PFXPasswd: set twice (lines 3 and 4)`);
    expect(configError(`${MINIMAL_CONFIG}[DEFAULT]\n`)).toContain(`${file}: line 4: section [DEFAULT] appears twice`);
  });

  it('names a configuration file that cannot be read', () => {
    const missing = path.join(CONFIG_DIR, 'no-such-dir', 'config.ini');
    expect(() => loadServerConfig(missing)).toThrow(`${missing}: cannot read the configuration file: no such file`);
  });
});

describe('a CRL that is missing at start', () => {
  it('is a loud warning, not a refusal to start, even under crlPolicy = require', () => {
    const { config, warnings } = parseInMemory(minimalWith('crlPolicy = require', 'crlFile = none.der'));
    expect(config.crl.policy).toBe('require');
    expect(warnings).toContainEqual(
      expect.stringMatching(/crlFile: .*none.der does not exist and no crlUrl is set to fetch it: crlPolicy = require refuses every knock/),
    );
  });
});
