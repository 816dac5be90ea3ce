/**
 * The benchmark's client side, run inside the client namespace by run.ts:
 *   node dist/bench/knocker.js '<json task>'
 * Prints one JSON result. Every source address comes from the client pool
 * (bench/netns.ts), so each knock is a distinct client to the firewall.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { parseAddress } from '../client-lib/protocol/address.js';
import { buildV2Knock } from '../client-lib/protocol/index.js';
import { poolAddress } from './netns.js';
import { readClients, type ClientIdentity } from './pki.js';

interface Target {
  readonly clientsFile: string;
  readonly serverCertificateFile: string;
  readonly serverAddress: string;
  readonly servicePort: number;
  readonly knockPort: number;
}

export type KnockerTask =
  /**
   * `count` knocks, one every intervalMs (0: one after another), each followed by TCP connects until one succeeds;
   * knock i comes from client firstClient + i (default 0) of the clients file.
   */
  | (Target & {
      readonly mode: 'knocks';
      readonly count: number;
      readonly intervalMs: number;
      readonly timeoutMs: number;
      readonly firstSource: number;
      readonly firstClient?: number;
    })
  /** Knocks at `rate` per second for `seconds`, not waiting for anything. */
  | (Target & { readonly mode: 'sustained'; readonly rate: number; readonly seconds: number; readonly firstSource: number })
  /** `count` TCP connects from `source` (already granted): connect latency. */
  | (Target & { readonly mode: 'connects'; readonly count: number; readonly source: string })
  /** Connects from each source until one is refused: when each grant actually closed. */
  | (Target & { readonly mode: 'expiry'; readonly sources: readonly string[]; readonly untilMs: number });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const elapsedMs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

function knockFor(target: Target, client: ClientIdentity, serverCertificateDer: Buffer, source: string, timestampMs: number): Buffer {
  return buildV2Knock({
    serverCertificateDer,
    ports: [{ protocol: 'tcp', port: target.servicePort }],
    clientAddress: Buffer.from(parseAddress(source)!),
    timestampMs,
    certificateDer: client.certificateDer,
    signer: client.privateKey,
  });
}

/** A UDP socket bound to `source`, so that sending is all that is left. */
function boundSocket(source: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ address: source, port: 0 }, () => resolve(socket));
  });
}

function sendOn(socket: dgram.Socket, datagram: Buffer, target: Target): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.send(datagram, target.knockPort, target.serverAddress, (error) => {
      socket.close();
      if (error) reject(error);
      else resolve();
    });
  });
}

async function sendFrom(source: string, datagram: Buffer, target: Target): Promise<void> {
  await sendOn(await boundSocket(source), datagram, target);
}

/** 'open' when a TCP connect from `source` succeeds, 'refused' otherwise. */
function connectOnce(source: string, target: Target, timeoutMs: number): Promise<'open' | 'refused'> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.serverAddress, port: target.servicePort, localAddress: source, timeout: timeoutMs });
    const finish = (outcome: 'open' | 'refused') => {
      socket.destroy();
      resolve(outcome);
    };
    socket.once('connect', () => finish('open'));
    socket.once('error', () => finish('refused'));
    socket.once('timeout', () => finish('refused'));
  });
}

/** Milliseconds from the knock's send to the first successful connect, or null after timeoutMs. */
async function knockAndConnect(target: Target, datagram: Buffer, source: string, timeoutMs: number): Promise<number | null> {
  const socket = await boundSocket(source);
  // From the send itself: creating and binding the client's socket is not the server's latency.
  const start = process.hrtime.bigint();
  await sendOn(socket, datagram, target);
  // Bounded by time: the firewall answers refused connects with a TCP reset at once.
  while (elapsedMs(start) < timeoutMs) {
    if ((await connectOnce(source, target, Math.max(1, timeoutMs - elapsedMs(start)))) === 'open') return elapsedMs(start);
  }
  return null;
}

async function knocks(task: Extract<KnockerTask, { mode: 'knocks' }>, clients: readonly ClientIdentity[], serverCertificateDer: Buffer) {
  const results: Array<number | null> = [];
  const started = Date.now();
  const running: Array<Promise<void>> = [];
  for (let index = 0; index < task.count; index += 1) {
    const source = poolAddress(task.firstSource + index);
    if (task.intervalMs > 0) await sleep(Math.max(0, started + index * task.intervalMs - Date.now()));
    const datagram = knockFor(task, clients[((task.firstClient ?? 0) + index) % clients.length]!, serverCertificateDer, source, Date.now());
    const attempt = knockAndConnect(task, datagram, source, task.timeoutMs).then((result) => {
      results[index] = result;
    });
    if (task.intervalMs > 0) running.push(attempt);
    else await attempt;
  }
  await Promise.all(running);
  return { latenciesMs: results.filter((value): value is number => value !== null), failed: results.filter((value) => value === null).length };
}

async function sustained(task: Extract<KnockerTask, { mode: 'sustained' }>, clients: readonly ClientIdentity[], serverCertificateDer: Buffer) {
  const count = Math.round(task.rate * task.seconds);
  // Built ahead, stamped with the time each will be sent, so the build does not limit the rate.
  const buildStart = Date.now();
  const estimatedBuildMs = count * 0.6 + 200;
  const plannedStart = buildStart + estimatedBuildMs;
  const datagrams = Array.from({ length: count }, (_, index) =>
    knockFor(task, clients[index % clients.length]!, serverCertificateDer, poolAddress(task.firstSource + index), Math.round(plannedStart + (index * 1000) / task.rate)),
  );
  await sleep(Math.max(0, plannedStart - Date.now()));
  const start = Date.now();
  let sent = 0;
  let errors = 0;
  const inFlight: Array<Promise<void>> = [];
  for (let index = 0; index < count; index += 1) {
    const due = start + (index * 1000) / task.rate;
    if (due > Date.now() + 1) await sleep(due - Date.now());
    inFlight.push(
      sendFrom(poolAddress(task.firstSource + index), datagrams[index]!, task).then(
        () => void (sent += 1),
        () => void (errors += 1),
      ),
    );
  }
  await Promise.all(inFlight);
  return { count, sent, errors, sendSeconds: (Date.now() - start) / 1000, startedLateMs: start - plannedStart };
}

async function connects(task: Extract<KnockerTask, { mode: 'connects' }>) {
  const latenciesMs: number[] = [];
  for (let index = 0; index < task.count; index += 1) {
    const start = process.hrtime.bigint();
    if ((await connectOnce(task.source, task, 1000)) === 'open') latenciesMs.push(elapsedMs(start));
  }
  return { latenciesMs, failed: task.count - latenciesMs.length };
}

async function expiry(task: Extract<KnockerTask, { mode: 'expiry' }>) {
  const closedAtMs: Record<string, number | null> = {};
  await Promise.all(
    task.sources.map(async (source) => {
      closedAtMs[source] = null;
      while (Date.now() < task.untilMs) {
        if ((await connectOnce(source, task, 500)) === 'refused') {
          closedAtMs[source] = Date.now();
          return;
        }
        await sleep(10);
      }
    }),
  );
  return { closedAtMs };
}

async function main(): Promise<void> {
  const task = JSON.parse(process.argv[2] ?? '{}') as KnockerTask;
  const clients = task.mode === 'knocks' || task.mode === 'sustained' ? readClients(task.clientsFile) : [];
  const serverCertificateDer = readFileSync(task.serverCertificateFile);
  const result =
    task.mode === 'knocks'
      ? await knocks(task, clients, serverCertificateDer)
      : task.mode === 'sustained'
        ? await sustained(task, clients, serverCertificateDer)
        : task.mode === 'connects'
          ? await connects(task)
          : await expiry(task);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
