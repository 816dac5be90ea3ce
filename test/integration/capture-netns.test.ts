/**
 * The capture edge against a real kernel: the probe (dist/server/capture/capture-probe.js)
 * runs in the server namespace with the server's filter and decoder, datagrams come from
 * the client namespace to ports where nothing listens, and the test reads what the
 * probe printed. Negatives are sent before positives, so once every positive has
 * arrived, a negative that passed the filter would already have been printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import { buildCaptureFilter } from '../../server/capture/filter.js';
import { decodeFrame } from '../../server/capture/frames.js';
import { openCapture, type Capture } from '../../server/capture/pcap-capture.js';
import { repoRoot } from '../helpers/fixtures.js';
import { describeWithNamespaces, run, TestNetwork } from '../helpers/netns.js';

const PROBE = path.join(repoRoot, 'dist/server/capture/capture-probe.js');
const CAPTURE_SOURCES = path.join(repoRoot, 'server/capture');
const PORTS = { from: 40000, to: 40099 };
const MIN_FRAME_LENGTH = 800;
/** UDP payload sizes whose frames measure exactly 800: 800 - 14 - 20 - 8 and 800 - 14 - 40 - 8. */
const THRESHOLD_PAYLOAD = { 4: 758, 6: 738 } as const;
const WAIT_MS = 10_000;

type ProbeLine = Record<string, unknown> & { event: string };

/** The probe as a child process, its JSON lines collected as they come. */
class Probe {
  readonly lines: ProbeLine[] = [];
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;
  private closed = false;

  constructor(namespace: string, args: readonly string[], runAs: readonly string[] = []) {
    this.child = spawn('ip', ['netns', 'exec', namespace, ...runAs, process.execPath, PROBE, ...args, '--seconds', '60'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let pending = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const complete = pending.split('\n');
      pending = complete.pop() ?? '';
      for (const line of complete) if (line.trim() !== '') this.lines.push(JSON.parse(line) as ProbeLine);
    });
    this.child.stderr?.on('data', () => undefined); // libpcap's pcap_lookupnet warnings
    // 'close' comes after stdout has been read to the end, unlike 'exit'.
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code) => {
        this.closed = true;
        resolve(code);
      }),
    );
  }

  /** Resolves with the lines once `done(lines)` holds; fails after WAIT_MS or if the probe has ended. */
  async waitFor(what: string, done: (lines: readonly ProbeLine[]) => boolean): Promise<readonly ProbeLine[]> {
    const deadline = Date.now() + WAIT_MS;
    while (!done(this.lines)) {
      if (Date.now() > deadline || this.closed) {
        throw new Error(`probe: no ${what} within ${WAIT_MS} ms; lines so far:\n${this.lines.map((line) => JSON.stringify(line)).join('\n')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.lines;
  }

  ready(): Promise<readonly ProbeLine[]> {
    return this.waitFor('ready line', (lines) => lines.some((line) => line.event === 'ready'));
  }

  datagrams(): ProbeLine[] {
    return this.lines.filter((line) => line.event === 'datagram' || line.event === 'rejected');
  }

  exitCode(): Promise<number | null> {
    return this.exited;
  }

  /** SIGTERM by pid (ip netns exec execs node, so the pid is the probe's), SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (this.closed || this.child.pid === undefined) return;
    process.kill(this.child.pid, 'SIGTERM');
    const timer = setTimeout(() => this.child.pid !== undefined && this.child.exitCode === null && process.kill(this.child.pid, 'SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

interface Send {
  readonly address: string;
  readonly port: number;
  readonly payloadHex: string;
}

/** Distinct payload bytes per datagram, so each capture line names the datagram it was. */
function send(address: string, port: number, length: number, tag: number): Send {
  return { address, port, payloadHex: Buffer.from(Array.from({ length }, (_, index) => (index * 7 + tag * 31) & 0xff)).toString('hex') };
}

const SENDER = `
const dgram = require('node:dgram');
const { isIPv6 } = require('node:net');
(async () => {
  for (const { address, port, payloadHex } of JSON.parse(process.argv[1])) {
    const socket = dgram.createSocket(isIPv6(address) ? 'udp6' : 'udp4');
    await new Promise((resolve, reject) => socket.send(Buffer.from(payloadHex, 'hex'), port, address, (error) => (error ? reject(error) : resolve())));
    socket.close();
  }
})().catch((error) => { console.error(error); process.exit(1); });
`;

async function sendFrom(network: TestNetwork, namespace: string, sends: readonly Send[]): Promise<void> {
  const result = await network.exec(namespace, process.execPath, ['-e', SENDER, JSON.stringify(sends)]);
  if (result.code !== 0) throw new Error(`sender failed: ${result.stderr}`);
}

function sha256(hex: string): string {
  return createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex');
}

/** Knock-sized datagrams at the edges of the port range and the size threshold, and what must not pass. */
function plan(server: { 4: string; 6: string }): { negatives: Send[]; positives: Send[] } {
  let tag = 0;
  const negatives: Send[] = [];
  const positives: Send[] = [];
  for (const family of [4, 6] as const) {
    const address = server[family];
    const threshold = THRESHOLD_PAYLOAD[family];
    negatives.push(
      send(address, PORTS.from, threshold - 1, ++tag), // one byte short
      send(address, PORTS.to, 100, ++tag),
      send(address, PORTS.from - 1, 1000, ++tag), // just below the range
      send(address, PORTS.to + 1, 1000, ++tag), // just above
      send(address, 9, 1000, ++tag),
    );
    positives.push(send(address, PORTS.from, threshold, ++tag), send(address, PORTS.to, 1200, ++tag), send(address, 40050, threshold + 1, ++tag));
  }
  return { negatives, positives };
}

function expectCaptured(lines: readonly ProbeLine[], positives: readonly Send[], source: { 4: string; 6: string }, header: { linkType: number[]; interface: string }): void {
  const seen = lines.map((line) => ({
    event: line.event,
    family: line.family,
    source: line.source,
    destination: line.destination,
    destinationPort: line.destinationPort,
    payloadSha256: line.payloadSha256,
    originalFrameLength: line.originalFrameLength,
  }));
  const expected = positives.map(({ address, port, payloadHex }) => {
    const family = address.includes(':') ? 6 : 4;
    return {
      event: 'datagram',
      family,
      source: source[family],
      destination: address,
      destinationPort: port,
      payloadSha256: sha256(payloadHex),
      originalFrameLength: payloadHex.length / 2 + 8 + (family === 4 ? 20 : 40) + 14,
    };
  });
  const order = (a: { payloadSha256: unknown }, b: { payloadSha256: unknown }): number => String(a.payloadSha256).localeCompare(String(b.payloadSha256));
  expect([...seen].sort(order)).toEqual([...expected].sort(order));
  for (const line of lines) {
    expect(header.linkType).toContain(line.linkType);
    expect(line.interface).toBe(header.interface);
  }
}

/** Fresh on every run: compiles when dist is missing or older than the capture sources. */
async function ensureProbeBuilt(): Promise<void> {
  const newestSource = Math.max(...readdirSync(CAPTURE_SOURCES).map((name) => statSync(path.join(CAPTURE_SOURCES, name)).mtimeMs));
  if (existsSync(PROBE) && statSync(PROBE).mtimeMs >= newestSource) return;
  // Other modules may have type errors while they are being written; tsc still emits.
  await run('npx', ['tsc', '-p', path.join(repoRoot, 'tsconfig.json')], 120_000);
  if (!existsSync(PROBE)) throw new Error(`npx tsc did not produce ${PROBE}`);
}

describeWithNamespaces('capture in network namespaces', () => {
  let network: TestNetwork;
  const probes: Probe[] = [];
  const probeArgs = ['--ports', `${PORTS.from}-${PORTS.to}`, '--min-length', String(MIN_FRAME_LENGTH)];
  const serverAddresses = { 4: TestNetwork.serverIPv4, 6: TestNetwork.serverIPv6 };
  const clientAddresses = { 4: TestNetwork.clientIPv4, 6: TestNetwork.clientIPv6 };

  function startProbe(namespace: string, args: readonly string[], runAs: readonly string[] = []): Probe {
    const probe = new Probe(namespace, [...probeArgs, ...args], runAs);
    probes.push(probe);
    return probe;
  }

  beforeAll(async () => {
    await ensureProbeBuilt();
    network = await TestNetwork.create('cap');
    // Permanent neighbour entries: no datagram waits in an ARP/ND queue, so sending order is arrival order.
    for (const [from, to, addresses] of [
      [network.client, network.server, [TestNetwork.serverIPv4, TestNetwork.serverIPv6]],
      [network.server, network.client, [TestNetwork.clientIPv4, TestNetwork.clientIPv6]],
    ] as const) {
      const links = JSON.parse((await network.exec(to, 'ip', ['-j', 'link', 'show', TestNetwork.linkName])).stdout) as Array<{ address: string }>;
      for (const address of addresses) {
        const result = await network.exec(from, 'ip', ['neigh', 'replace', address, 'lladdr', links[0]?.address ?? '', 'dev', TestNetwork.linkName, 'nud', 'permanent']);
        if (result.code !== 0) throw new Error(result.stderr);
      }
    }
  });

  afterEach(async () => {
    await Promise.all(probes.splice(0).map((probe) => probe.stop()));
  });

  afterAll(async () => {
    await network?.destroy();
  });

  it.each([
    ['kn0', [1]],
    ['any', [113, 276]],
  ])('captures knock-sized IPv4 and IPv6 datagrams on %s and filters the rest in the kernel', async (interfaceName, linkTypes) => {
    const probe = startProbe(network.server, ['--interface', interfaceName]);
    const [ready] = (await probe.ready()).filter((line) => line.event === 'ready');
    expect(ready?.immediateMode).toBe(true);
    const { negatives, positives } = plan(serverAddresses);
    await sendFrom(network, network.client, [...negatives, ...positives]);
    await probe.waitFor(`${positives.length} datagrams`, () => probe.datagrams().length >= positives.length);
    expectCaptured(probe.datagrams(), positives, clientAddresses, { linkType: linkTypes, interface: interfaceName });
  });

  it('drops the server host’s own outgoing knock-sized datagrams on any', async () => {
    const probe = startProbe(network.server, ['--interface', 'any']);
    await probe.ready();
    const outgoing = [send(TestNetwork.clientIPv4, PORTS.from, 900, 201), send(TestNetwork.clientIPv6, PORTS.from, 900, 202)];
    await sendFrom(network, network.server, outgoing);
    const incoming = [send(TestNetwork.serverIPv4, PORTS.to, 900, 203)];
    await sendFrom(network, network.client, incoming);
    await probe.waitFor('the incoming datagram', () => probe.datagrams().some((line) => line.event === 'datagram'));
    const [rejected, captured] = [probe.datagrams().filter((line) => line.event === 'rejected'), probe.datagrams().filter((line) => line.event === 'datagram')];
    expect(rejected.map((line) => line.reason)).toEqual(['outgoing', 'outgoing']);
    expectCaptured(captured, incoming, clientAddresses, { linkType: [113, 276], interface: 'any' });
  });

  it('captures on lo what the server host sends itself', async () => {
    const probe = startProbe(network.server, ['--interface', 'lo']);
    await probe.ready();
    const loopback = { 4: '127.0.0.1', 6: '::1' };
    const { negatives, positives } = plan(loopback);
    await sendFrom(network, network.server, [...negatives, ...positives]);
    await probe.waitFor(`${positives.length} datagrams`, () => probe.datagrams().length >= positives.length);
    expectCaptured(probe.datagrams(), positives, loopback, { linkType: [1], interface: 'lo' });
  });

  it('keeps capturing after dropping root, and closes cleanly as nobody', async () => {
    const probe = startProbe(network.server, ['--interface', 'kn0', '--user', 'nobody', '--group', 'nogroup']);
    const [ready] = (await probe.ready()).filter((line) => line.event === 'ready');
    expect([ready?.uid, ready?.gid]).toEqual([65534, 65534]);
    const positives = [send(TestNetwork.serverIPv4, PORTS.from, 900, 101), send(TestNetwork.serverIPv6, PORTS.to, 900, 102)];
    await sendFrom(network, network.client, positives);
    await probe.waitFor('2 datagrams', () => probe.datagrams().length >= 2);
    expectCaptured(probe.datagrams(), positives, clientAddresses, { linkType: [1], interface: 'kn0' });
    await probe.stop();
    expect(probe.lines.at(-1)).toEqual({ event: 'closed', datagrams: 2, rejected: 0 });
  });

  it('fails with SKNOCK_CAPTURE_OPEN for a missing interface', async () => {
    const probe = startProbe(network.server, ['--interface', 'sk-missing0']);
    expect(await probe.exitCode()).toBe(2);
    expect(probe.lines).toEqual([expect.objectContaining({ event: 'error', code: 'SKNOCK_CAPTURE_OPEN', message: expect.stringContaining('"sk-missing0" does not exist') })]);
  });

  it('fails with SKNOCK_CAPTURE_OPEN and says what privilege is missing when not root', async () => {
    const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    const probe = startProbe(network.server, ['--interface', 'kn0'], asNobody);
    expect(await probe.exitCode()).toBe(2);
    expect(probe.lines).toEqual([expect.objectContaining({ event: 'error', code: 'SKNOCK_CAPTURE_OPEN', message: expect.stringContaining('CAP_NET_RAW') })]);
  });
});

// In this process, so the adapter's callbacks can be observed: loopback only, no firewall.
describeWithNamespaces('openCapture in this process on loopback', () => {
  const port = 47000 + (process.pid % 100);
  let capture: Capture | undefined;

  afterEach(() => {
    capture?.close();
    capture = undefined;
  });

  async function sendToLoopback(payloads: readonly Buffer[]): Promise<void> {
    const socket = createSocket('udp4');
    for (const payload of payloads) await new Promise<void>((resolve, reject) => socket.send(payload, port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
    socket.close();
  }

  async function until(what: string, done: () => boolean): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`no ${what} within ${WAIT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  const filter = buildCaptureFilter({ knockPorts: { from: port, to: port }, minFrameLength: MIN_FRAME_LENGTH });

  it('hands each callback a view of cap’s one buffer, whole during the call (no copy per frame)', async () => {
    const frames: Buffer[] = [];
    const payloads: Buffer[] = [];
    capture = openCapture({
      interfaces: ['lo'],
      filter,
      onPacket: (linkType, frame) => {
        frames.push(frame);
        const decoded = decodeFrame(linkType, frame);
        payloads.push(decoded.ok ? Buffer.from(decoded.value.payload) : Buffer.alloc(0));
      },
      onError: () => undefined,
    });
    await sendToLoopback([Buffer.alloc(900, 0xaa), Buffer.alloc(900, 0xbb)]);
    await until('2 frames', () => frames.length >= 2);
    expect(payloads).toEqual([Buffer.alloc(900, 0xaa), Buffer.alloc(900, 0xbb)]);
    // A kept view shows the later frame: a caller that keeps a frame must copy it (the pool and the hold do).
    const keptFirst = decodeFrame(capture.linkTypes.get('lo') ?? -1, frames[0]!);
    expect(keptFirst.ok && Buffer.from(keptFirst.value.payload)).toEqual(Buffer.alloc(900, 0xbb));
  });

  it('counts what the kernel ring took, and what it dropped while full, and nothing after close', async () => {
    let frames = 0;
    capture = openCapture({ interfaces: ['lo'], filter, bufferSize: 1024 * 1024, onPacket: () => void (frames += 1), onError: () => undefined });
    expect(capture.ringStatistics()).toEqual({ packets: 0, dropped: 0 });
    await sendToLoopback([Buffer.alloc(900, 1)]);
    await until('1 frame', () => frames >= 1);
    // On lo the ring takes each datagram twice, leaving and arriving; libpcap hands on the arriving copy only.
    expect(capture.ringStatistics()).toEqual({ packets: 2, dropped: 0 });

    // Another process sends while this thread, capture's only reader, is blocked: the ring (a few
    // dozen 64 KB slots at loopback's MTU) fills and the kernel drops the rest.
    const sent = 2000;
    const sender = spawn(process.execPath, [
      '-e',
      `const socket = require('node:dgram').createSocket('udp4'); let left = ${sent};
       const next = () => (left-- > 0 ? socket.send(Buffer.alloc(900, 2), ${port}, '127.0.0.1', next) : socket.close()); next();`,
    ]);
    const exited = new Promise((resolve) => sender.once('exit', resolve));
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
    expect(await exited).toBe(0);
    const afterFlood = capture.ringStatistics()!;
    expect(afterFlood.packets).toBe(2 * (1 + sent));
    expect(afterFlood.dropped).toBeGreaterThan(0);
    let seen = -1;
    await until('the ring drained', () => {
      const drained = frames === seen;
      seen = frames;
      return drained;
    });
    expect(frames).toBeLessThan(1 + sent);
    expect(capture.ringStatistics()).toEqual(afterFlood);

    capture.close();
    expect(capture.ringStatistics()).toBeUndefined();
  });

  it('reports a throwing handler through onError and keeps capturing', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    capture = openCapture({
      interfaces: ['lo'],
      filter,
      onPacket: () => {
        calls += 1;
        if (calls === 1) throw new Error('handler bug');
      },
      onError: (error) => errors.push(error),
    });
    await sendToLoopback([Buffer.alloc(900, 1), Buffer.alloc(900, 2)]);
    await until('2 handler calls', () => calls >= 2);
    expect(errors).toHaveLength(1);
    expect(isSknockError(errors[0], 'SKNOCK_CAPTURE_CALLBACK')).toBe(true);
    expect(((errors[0] as Error).cause as Error).message).toBe('handler bug');
    capture.close();
    capture.close(); // twice is harmless
  });
});
