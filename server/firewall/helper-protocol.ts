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
 * every field checked, and the backend (incl. hook commands) fixed by the
 * helper's own argv, chosen while the daemon was still root.
 */
export type HelperRequest =
  | { readonly id: number; readonly op: 'start'; readonly policy: FirewallPolicy }
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
  const fields: Record<string, readonly string[]> = { start: ['policy'], grant: ['grants'], list: [], stop: [] };
  const op = value.op;
  const opFields = typeof op === 'string' && Object.hasOwn(fields, op) ? fields[op] : undefined;
  if (opFields === undefined) return refuse('unknown-op', `unknown op ${JSON.stringify(op)?.slice(0, 40)}: expected start, grant, list or stop`);
  const extra = unknownField(value, ['id', 'op', ...opFields]);
  if (extra !== undefined) return refuse('unknown-field', `unknown field "${extra.slice(0, 40)}" for op ${String(op)}`);
  if (op === 'start') {
    const policy = parsePolicy(value.policy);
    return policy.ok ? { id, request: accept({ id, op, policy: policy.value }) } : refuse(policy.reason, policy.detail);
  }
  if (op === 'grant') {
    const grants = parseGrants(value.grants);
    return grants.ok ? { id, request: accept({ id, op, grants: grants.value }) } : refuse(grants.reason, grants.detail);
  }
  return { id, request: accept({ id, op: op as 'list' | 'stop' }) };
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

/** Answers one request line; never throws. */
export async function answerHelperRequest(backend: FirewallBackend, line: string): Promise<HelperReply> {
  const { id, request } = parseHelperRequest(line);
  if (!request.ok) return errorReply(id, REFUSED_CODE, `refused (${request.reason}): ${request.detail ?? request.reason}`);
  const { value } = request;
  try {
    switch (value.op) {
      case 'start':
        await backend.start(value.policy);
        return { id: value.id, ok: true };
      case 'grant':
        await backend.grant(value.grants);
        return { id: value.id, ok: true };
      case 'list':
        return { id: value.id, ok: true, result: await backend.list() };
      case 'stop':
        await backend.stop();
        return { id: value.id, ok: true };
    }
  } catch (error) {
    const code = isSknockError(error) ? error.code : 'SKNOCK_FIREWALL_COMMAND_FAILED';
    return errorReply(value.id, code, error instanceof Error ? error.message : String(error));
  }
}

/**
 * Serves requests from `input` until it ends, answering each on `output` as
 * soon as it completes (the backend orders and batches them), then waits for
 * the last answers. The firewall is left as it is when the daemon goes away:
 * the policy stays closed and kernel-timed grants still expire.
 */
export async function serveHelper(backend: FirewallBackend, input: Readable, output: Writable): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    const answered = answerHelperRequest(backend, line).then((reply) => {
      output.write(`${JSON.stringify(reply)}\n`);
    });
    inFlight.add(answered);
    void answered.finally(() => inFlight.delete(answered));
  }
  await Promise.all(inFlight);
}
