import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { isSknockError } from '../../client-lib/errors.js';
import { accept, reject, type Decoded } from '../../client-lib/protocol/result.js';
import { checkCommandTemplate } from './command-hooks.js';
import { isRecord, parseGrants, parsePolicy, unknownField, type FirewallInputReason } from './validation.js';
import type { ActiveGrant, BackendOptions, FirewallBackend, FirewallPolicy, Grant } from './types.js';

/**
 * The pipe between the unprivileged daemon and the root firewall helper:
 * one JSON object per line each way. Requests {id, op, ...}; replies
 * {id, ok, result?} or {id, ok: false, error: {code, message}}.
 * The helper treats the daemon as untrusted: a closed set of operations,
 * every field checked, and the backend (incl. hook commands) and the policy
 * fixed by the helper's own argv, chosen while the daemon was still root.
 * A session is: `start` once (installs that policy), any grants and lists,
 * and `stop` only as the last request before the daemon closes the pipe.
 */
export type HelperRequest =
  | { readonly id: number; readonly op: 'start' }
  | { readonly id: number; readonly op: 'grant'; readonly grants: readonly Grant[] }
  | { readonly id: number; readonly op: 'list' }
  | { readonly id: number; readonly op: 'stop' };

export type HelperReply =
  | { readonly id: number | null; readonly ok: true; readonly result?: ActiveGrant[] }
  | { readonly id: number | null; readonly ok: false; readonly error: { readonly code: string; readonly message: string } };

export type HelperRequestReason = 'too-long' | 'not-json' | 'bad-id' | 'unknown-op' | FirewallInputReason;

/** Well above the largest batch allowed (10k grants ≈ 0.8 MB of JSON). */
export const MAX_REQUEST_LENGTH = 4 << 20;
export const REFUSED_CODE = 'SKNOCK_FIREWALL_HELPER_REFUSED';

export interface ParsedHelperRequest {
  /** The request's id when it could be read, so even a refusal answers the right caller. */
  readonly id: number | null;
  readonly request: Decoded<HelperRequest, HelperRequestReason>;
}

export function parseHelperRequest(line: string): ParsedHelperRequest {
  if (line.length > MAX_REQUEST_LENGTH) return { id: null, request: reject('too-long', `request longer than ${MAX_REQUEST_LENGTH} characters`) };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { id: null, request: reject('not-json', 'request is not one line of JSON') };
  }
  if (!isRecord(value)) return { id: null, request: reject('not-an-object', 'request is not a JSON object') };
  const id = value.id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    return { id: null, request: reject('bad-id', 'id must be a non-negative integer') };
  }
  const refuse = (reason: HelperRequestReason, detail?: string): ParsedHelperRequest => ({ id, request: reject(reason, detail) });
  const fields: Record<string, readonly string[]> = { start: [], grant: ['grants'], list: [], stop: [] };
  const op = value.op;
  const opFields = typeof op === 'string' && Object.hasOwn(fields, op) ? fields[op] : undefined;
  if (opFields === undefined) return refuse('unknown-op', `unknown op ${JSON.stringify(op)?.slice(0, 40)}: expected start, grant, list or stop`);
  const extra = unknownField(value, ['id', 'op', ...opFields]);
  if (extra !== undefined) return refuse('unknown-field', `unknown field "${extra.slice(0, 40)}" for op ${String(op)}`);
  if (op === 'grant') {
    const grants = parseGrants(value.grants);
    return grants.ok ? { id, request: accept({ id, op, grants: grants.value }) } : refuse(grants.reason, grants.detail);
  }
  return { id, request: accept({ id, op: op as 'start' | 'list' | 'stop' }) };
}

export type HelperArgumentsReason = 'bad-argument-count' | BackendOptionsReason | FirewallInputReason;

/** Everything the helper may ever do, fixed by the root parent: `[backend options JSON, policy JSON]`. */
export interface HelperArguments {
  readonly backend: BackendOptions;
  readonly policy: FirewallPolicy;
}

export function formatHelperArguments({ backend, policy }: HelperArguments): [string, string] {
  return [JSON.stringify(backend), JSON.stringify(policy)];
}

export function parseHelperArguments(argv: readonly string[]): Decoded<HelperArguments, HelperArgumentsReason> {
  const [backendText, policyText, ...rest] = argv;
  if (backendText === undefined || policyText === undefined || rest.length > 0) {
    return reject('bad-argument-count', 'expected exactly two arguments: backend options JSON, policy JSON');
  }
  const backend = parseBackendOptions(backendText);
  if (!backend.ok) return backend;
  let policyValue: unknown;
  try {
    policyValue = JSON.parse(policyText);
  } catch {
    return reject('not-json', 'the policy is not JSON');
  }
  const policy = parsePolicy(policyValue);
  return policy.ok ? accept({ backend: backend.value, policy: policy.value }) : policy;
}

export type BackendOptionsReason = 'not-json' | 'not-an-object' | 'unknown-field' | 'bad-kind' | 'bad-ipset' | 'bad-template';

/** The helper's argv: which backend (and which hook commands) it may ever drive. */
export function parseBackendOptions(text: string): Decoded<BackendOptions, BackendOptionsReason> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return reject('not-json', 'backend options are not JSON');
  }
  if (!isRecord(value)) return reject('not-an-object', 'backend options are not a JSON object');
  const kindFields: Record<string, readonly string[]> = { nftables: [], iptables: ['ipset'], command: ['openCommand', 'closeCommand'] };
  const kind = value.kind;
  const allowed = typeof kind === 'string' && Object.hasOwn(kindFields, kind) ? kindFields[kind] : undefined;
  if (allowed === undefined) return reject('bad-kind', 'kind must be nftables, iptables or command');
  const extra = unknownField(value, ['kind', ...allowed]);
  if (extra !== undefined) return reject('unknown-field', `unknown backend option "${extra.slice(0, 40)}"`);
  if (kind === 'nftables') return accept({ kind });
  if (kind === 'iptables') {
    const ipset = value.ipset ?? 'auto';
    if (ipset !== 'auto' && ipset !== 'yes' && ipset !== 'no') return reject('bad-ipset', 'ipset must be auto, yes or no');
    return accept({ kind, ipset });
  }
  const { openCommand, closeCommand } = value;
  try {
    checkCommandTemplate(openCommand, 'openCommand');
    checkCommandTemplate(closeCommand, 'closeCommand');
    return accept({ kind: 'command', openCommand, closeCommand });
  } catch (error) {
    return reject('bad-template', error instanceof Error ? error.message : String(error));
  }
}

function errorReply(id: number | null, code: string, message: string): HelperReply {
  return { id, ok: false, error: { code, message } };
}

function refusal(id: number | null, reason: string, detail: string): HelperReply {
  return errorReply(id, REFUSED_CODE, `refused (${reason}): ${detail}`);
}

async function runOnBackend(id: number, operation: () => Promise<ActiveGrant[] | void>): Promise<HelperReply> {
  try {
    const result = await operation();
    return result === undefined ? { id, ok: true } : { id, ok: true, result };
  } catch (error) {
    const code = isSknockError(error) ? error.code : 'SKNOCK_FIREWALL_COMMAND_FAILED';
    return errorReply(id, code, error instanceof Error ? error.message : String(error));
  }
}

/**
 * One daemon's session with the helper. The order is enforced here, not
 * trusted: a second `start` could install another state, an early `stop`
 * would lift the policy while the daemon carries on, so neither is served.
 */
export class HelperSession {
  private phase: 'waiting' | 'started' | 'stopping' = 'waiting';
  /** The stop request waiting for the end of the input, and whether anything came after it. */
  private finalStop: { readonly id: number; followed: boolean } | null = null;

  constructor(
    private readonly backend: FirewallBackend,
    private readonly policy: FirewallPolicy,
  ) {}

  /** Answers one request line; a `stop` is only noted (null): finish() answers it. Never throws. */
  async answer(line: string): Promise<HelperReply | null> {
    const { id, request } = parseHelperRequest(line);
    if (this.finalStop !== null) {
      this.finalStop.followed = true;
      return refusal(id, 'after-stop', 'stop must be the last request: nothing after it is served, and the stop is cancelled');
    }
    if (!request.ok) return refusal(id, request.reason, request.detail ?? request.reason);
    const { value } = request;
    switch (value.op) {
      case 'start':
        if (this.phase !== 'waiting') return refusal(value.id, 'already-started', 'the policy is installed once per helper');
        this.phase = 'started';
        return runOnBackend(value.id, () => this.backend.start(this.policy));
      case 'grant':
        return runOnBackend(value.id, () => this.backend.grant(value.grants));
      case 'list':
        return runOnBackend(value.id, () => this.backend.list());
      case 'stop':
        if (this.phase !== 'started') return refusal(value.id, 'not-started', 'stop before start');
        this.phase = 'stopping';
        this.finalStop = { id: value.id, followed: false };
        return null;
    }
  }

  /** The input ended (and every other answer is in): runs the stop if it was the last request. */
  async finish(): Promise<HelperReply | null> {
    const stop = this.finalStop;
    if (stop === null) return null;
    if (stop.followed) return refusal(stop.id, 'stop-not-final', 'requests followed the stop: the policy stays');
    return runOnBackend(stop.id, () => this.backend.stop());
  }
}

/**
 * Serves requests from `input` until it ends, answering each on `output` as
 * soon as it completes (the backend orders and batches them), then waits for
 * the last answers and runs a final stop. Without a final stop the firewall
 * is left as it is when the daemon goes away: the policy stays closed and
 * kernel-timed grants still expire.
 */
export async function serveHelper(session: HelperSession, input: Readable, output: Writable): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  const send = (reply: HelperReply | null): void => {
    if (reply !== null) output.write(`${JSON.stringify(reply)}\n`);
  };
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    const answered = session.answer(line).then(send);
    inFlight.add(answered);
    void answered.finally(() => inFlight.delete(answered));
  }
  await Promise.all(inFlight);
  send(await session.finish());
}
