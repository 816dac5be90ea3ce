import { createECDH, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildKnock } from '../../client-lib/knock.js';
import { parseAddress } from '../../client-lib/protocol/address.js';
import { createServerContext, openV2Knock, type ServerContext } from '../../client-lib/protocol/index.js';
import { caCertificatesOf, loadPkcs12File, type Pkcs12Bundle } from '../../client-lib/pkcs12.js';
import { parseServerCertificate, type ServerCertificate } from '../../client-lib/server-certificate.js';
import { ReplayCache, ReplayJournal } from '../../server/replay-cache.js';
import { createTrustState, parseCrl } from '../../server/trust/index.js';
import { decideReplay, examineKnock, verifyKnock, type VerifierSettings, type VerifierState } from '../../server/verify/pipeline.js';
import { repoRoot } from '../helpers/fixtures.js';
import { testVerifierSettings } from '../helpers/verifier-settings.js';
import { sealV2 } from '../vectors/vectors.js';

const devPki = path.join(repoRoot, 'certificates', 'dev');
const now = Date.parse('2027-03-01T12:00:00Z');
const clientAddress = '198.18.0.2';
const settings = testVerifierSettings;

let server: Pkcs12Bundle;
let serverContext: ServerContext;
let serverCertificate: ServerCertificate;
const clients: Record<string, Pkcs12Bundle> = {};

function freshState(overrides: Partial<VerifierSettings> = {}, crlPolicy: 'warn' | 'require' = 'require', withCrl = true): VerifierState {
  const caCertificates = caCertificatesOf(server).map((ca) => ca.raw);
  const crl = parseCrl(readFileSync(path.join(devPki, 'crl.der')), caCertificates);
  if (!crl.ok) throw new Error(`dev CRL: ${crl.reason}`);
  return {
    server: serverContext,
    trust: createTrustState({ caCertificates, crl: withCrl ? crl.value : null, crlPolicy }),
    replay: new ReplayCache(1000),
    settings: { ...settings, ...overrides },
  };
}

function knockFrom(name: string, options: { ports?: string[]; format?: 'v2' | 'legacy'; address?: string | null; at?: number; durationSeconds?: number } = {}) {
  const address = options.address === undefined ? clientAddress : options.address;
  return buildKnock({
    identity: clients[name]!,
    serverCertificate,
    ports: (options.ports ?? ['tcp/22']).map((text) => {
      const [protocol, port] = text.split('/');
      return { protocol: protocol as 'tcp' | 'udp', port: Number(port) };
    }),
    format: options.format ?? 'v2',
    clientAddress: address === null ? null : Buffer.from(parseAddress(address)!),
    now: () => options.at ?? now,
    ...(options.durationSeconds ? { durationSeconds: options.durationSeconds } : {}),
  });
}

const captured = (datagram: Buffer, source = clientAddress) => ({ datagram, source, frameLength: datagram.length + 42 });

beforeAll(() => {
  server = loadPkcs12File(path.join(devPki, 'server', 'devserver.pfx'), 'portknocking');
  serverContext = createServerContext(server.privateKey, server.certificateDer);
  serverCertificate = parseServerCertificate(readFileSync(path.join(devPki, 'server', 'devserver.cer')));
  for (const name of ['alice', 'bob', 'mallory']) clients[name] = loadPkcs12File(path.join(devPki, 'client', `${name}.pfx`), 'portknocking');
});

describe('verification pipeline', () => {
  it('accepts a valid v2 knock and grants each port for the default duration', () => {
    const verdict = verifyKnock(captured(knockFrom('alice', { ports: ['tcp/22', 'tcp/2000'] })), now, freshState());
    expect(verdict).toMatchObject({
      accepted: true,
      format: 'v2',
      client: { subject: expect.stringContaining('CN=alice') },
      grants: [
        { address: clientAddress, protocol: 'tcp', port: 22, seconds: 15 },
        { address: clientAddress, protocol: 'tcp', port: 2000, seconds: 15 },
      ],
      warnings: [],
    });
  });

  it('accepts a legacy knock, and refuses it when legacy knocks are off', () => {
    const legacy = captured(knockFrom('alice', { format: 'legacy' }));
    // 1.0.0 knocks cannot be padded: this CA's small certificates stay under the original's 800.
    expect(verifyKnock(legacy, now, freshState())).toMatchObject({ accepted: false, reason: 'frame-too-short' });
    expect(verifyKnock(legacy, now, freshState({ minFrameLength: 500 }))).toMatchObject({ accepted: true, format: 'legacy' });
    expect(verifyKnock(legacy, now, freshState({ minFrameLength: 500, legacyKnocks: false }))).toMatchObject({ accepted: false, reason: 'legacy-disabled' });
  });

  it('caps a requested duration at maxOpenDurationInSeconds', () => {
    const asked = (seconds: number) => verifyKnock(captured(knockFrom('alice', { durationSeconds: seconds })), now, freshState());
    expect(asked(30)).toMatchObject({ grants: [{ seconds: 30 }] });
    expect(asked(3600)).toMatchObject({ grants: [{ seconds: 60 }] });
  });

  it('refuses a replay of the same bytes, and of a legacy knock too', () => {
    const state = freshState({ minFrameLength: 500 });
    for (const format of ['v2', 'legacy'] as const) {
      const knock = captured(knockFrom('alice', { format }));
      expect(verifyKnock(knock, now, state)).toMatchObject({ accepted: true });
      expect(verifyKnock(knock, now + 1000, state)).toMatchObject({ accepted: false, reason: 'replay' });
    }
  });

  it('refuses timestamps outside ±TIMESTAMP_THRESHOLD, accepts at the edge', () => {
    const state = freshState();
    expect(verifyKnock(captured(knockFrom('alice', { at: now - 7001 })), now, state)).toMatchObject({ reason: 'timestamp-window' });
    expect(verifyKnock(captured(knockFrom('alice', { at: now + 7001 })), now, state)).toMatchObject({ reason: 'timestamp-window' });
    expect(verifyKnock(captured(knockFrom('alice', { at: now - 7000 })), now, state)).toMatchObject({ accepted: true });
  });

  it('refuses a port the certificate does not permit, naming client and ports', () => {
    const verdict = verifyKnock(captured(knockFrom('bob', { ports: ['tcp/22'] })), now, freshState());
    expect(verdict).toMatchObject({ accepted: false, reason: 'unauthorized-port', client: { subject: expect.stringContaining('CN=bob') } });
    expect(verifyKnock(captured(knockFrom('bob', { ports: ['tcp/8080'] })), now, freshState())).toMatchObject({ accepted: true });
  });

  it('refuses a revoked client, and every knock under crlPolicy require without a CRL', () => {
    expect(verifyKnock(captured(knockFrom('mallory')), now, freshState())).toMatchObject({ accepted: false, reason: 'revoked' });
    expect(verifyKnock(captured(knockFrom('alice')), now, freshState({}, 'require', false))).toMatchObject({ reason: 'no-crl' });
    expect(verifyKnock(captured(knockFrom('alice')), now, freshState({}, 'warn', false))).toMatchObject({ accepted: true, warnings: ['no-crl'] });
  });

  it('refuses a knock from another address than the signed one', () => {
    expect(verifyKnock(captured(knockFrom('alice'), '198.18.0.99'), now, freshState())).toMatchObject({ reason: 'address-mismatch' });
    expect(verifyKnock(captured(knockFrom('alice', { address: 'fd00:18::2' }), 'fd00:18::3'), now, freshState())).toMatchObject({ reason: 'address-mismatch' });
    expect(verifyKnock(captured(knockFrom('alice', { address: 'fd00:18::2' }), 'fd00:18::2'), now, freshState())).toMatchObject({ accepted: true, grants: [{ address: 'fd00:18::2' }] });
  });

  it('NAT mode opens for the source address only where allowed', () => {
    const knock = knockFrom('alice', { address: null });
    expect(verifyKnock(captured(knock, '198.18.7.7'), now, freshState())).toMatchObject({ reason: 'nat-not-allowed' });
    expect(verifyKnock(captured(knock, '198.18.7.7'), now, freshState({ allowSourceAddressMode: true }))).toMatchObject({
      accepted: true,
      grants: [{ address: '198.18.7.7' }],
    });
  });

  it('refuses frames below KNOCKPACKET_MIN_LENGTH and garbage, with codec reasons', () => {
    const knock = knockFrom('alice');
    expect(verifyKnock({ datagram: knock, source: clientAddress, frameLength: 799 }, now, freshState())).toMatchObject({ reason: 'frame-too-short' });
    expect(verifyKnock(captured(randomBytes(900)), now, freshState())).toMatchObject({ accepted: false });
    const flipped = Buffer.from(knock);
    flipped[500]! ^= 1;
    expect(verifyKnock(captured(flipped), now, freshState())).toMatchObject({ accepted: false, reason: 'bad-mac1' });
  });

  it('refuses a knock whose signed server binding names another server', () => {
    // Re-seal a genuine knock's body with a different binding, re-signed by the client itself.
    const opened = openV2Knock(knockFrom('alice'), serverContext);
    if (!opened.ok) throw new Error(opened.reason);
    const label = Buffer.from('sKnock v2 knock\0');
    const body = Buffer.from(opened.value.signedMessage.subarray(label.length + 69));
    randomBytes(32).copy(body, 25);
    const ephemeralPrivateKey = randomBytes(32);
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(ephemeralPrivateKey);
    const header = Buffer.concat([Buffer.from('sK'), Buffer.of(2, 1), ecdh.getPublicKey()]);
    const signature = sign('sha256', Buffer.concat([label, header, body]), clients.alice!.privateKey);
    const plaintext = Buffer.concat([body, Buffer.of(signature.length), signature, Buffer.alloc(200)]);
    const resealed = sealV2(plaintext, server.certificateDer, ephemeralPrivateKey);
    expect(verifyKnock(captured(resealed), now, freshState())).toMatchObject({ accepted: false, reason: 'wrong-server' });
  });

  it('refuses a knock whose replay entry cannot be written to the journal, and still refuses its copies', () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'sknock-journal-'));
    try {
      const journal = new ReplayJournal(path.join(folder, 'replay-cache'));
      // A closed journal refuses every append, as a full disk would.
      journal.close();
      const state = { ...freshState(), replay: new ReplayCache(10, { journal }) };
      const knock = captured(knockFrom('alice'));
      expect(verifyKnock(knock, now, state)).toMatchObject({ accepted: false, reason: 'replay-journal-failed', detail: expect.stringContaining('closed') });
      expect(verifyKnock(knock, now, state)).toMatchObject({ accepted: false, reason: 'replay' });
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('refuses when the replay cache is full rather than forgetting', () => {
    const state = { ...freshState(), replay: new ReplayCache(1) };
    expect(verifyKnock(captured(knockFrom('alice')), now, state)).toMatchObject({ accepted: true });
    expect(verifyKnock(captured(knockFrom('alice')), now, state)).toMatchObject({ reason: 'replay-cache-full' });
  });
});

describe('the replay decision', () => {
  it('refuses a knock whose window closed while it waited, rather than accepting it after its replay entry expired', () => {
    const state = freshState();
    const examination = examineKnock(captured(knockFrom('alice')), now, state);
    expect(decideReplay(examination, state.replay, now + 7001)).toMatchObject({ accepted: false, reason: 'timestamp-window' });
    expect(decideReplay(examination, state.replay, now)).toMatchObject({ accepted: true });
  });

  it('holds each client certificate to its replay quota while other clients still pass, until its entries expire', () => {
    const state = { ...freshState(), replay: new ReplayCache(1000, { entriesPerClient: 2 }) };
    expect(verifyKnock(captured(knockFrom('alice')), now, state)).toMatchObject({ accepted: true });
    expect(verifyKnock(captured(knockFrom('alice')), now, state)).toMatchObject({ accepted: true });
    expect(verifyKnock(captured(knockFrom('alice')), now, state)).toMatchObject({ accepted: false, reason: 'replay-quota', client: { subject: expect.stringContaining('alice') } });
    expect(verifyKnock(captured(knockFrom('bob', { ports: ['tcp/8080'] })), now, state)).toMatchObject({ accepted: true });
    // Once alice's knocks leave the window their entries no longer count.
    const later = now + settings.timestampWindowMs + 1;
    expect(verifyKnock(captured(knockFrom('alice', { at: later })), later, state)).toMatchObject({ accepted: true });
  });
});
