/**
 * Grants as nf_tables netlink messages: the same transaction that
 * nftGrantCommands writes as text (per address family: add the elements,
 * delete them, add them again with their full timeout), encoded here and
 * sent by the root helper through native/nft_netlink.c, with the kernel's
 * acknowledgements decoded and judged here. Encoding and decoding are pure
 * functions of their inputs and never throw on what the kernel sends.
 * Layouts: netlink(7), linux/netfilter/nfnetlink.h and nf_tables.h.
 */
import { endianness } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { SknockError } from '../../client-lib/errors.js';
import { loadNativeAddon } from '../../client-lib/native-addon.js';
import { parseAddress } from '../../client-lib/protocol/address.js';
import type { Grant } from './types.js';

const NLMSG_HEADER_LENGTH = 16;
const NFGENMSG_LENGTH = 4;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
/** In an error reply: the request was not echoed back (NETLINK_CAP_ACK), and attributes follow (NETLINK_EXT_ACK). */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
/** The family of the project's table (`inet sknock`, nftables.ts). */
const NFPROTO_INET = 1;

const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_TIMEOUT = 4;
const NFTA_DATA_VALUE = 1;

const PROTOCOL_NUMBERS = { tcp: 6, udp: 17 } as const;

/**
 * Batches up to this many grants go over netlink: ≈ 100 bytes each, so the
 * message stays far below a socket's default send buffer (≈ 208 KiB).
 */
export const NETLINK_BATCH_LIMIT = 1_000;

/** Where the grants go: the project's table and its set per address family. */
export interface GrantSets {
  readonly table: string;
  readonly sets: Readonly<Record<4 | 6, string>>;
}

const littleEndian = endianness() === 'LE';

function hostU16(value: number): Buffer {
  const bytes = Buffer.alloc(2);
  if (littleEndian) bytes.writeUInt16LE(value);
  else bytes.writeUInt16BE(value);
  return bytes;
}

function hostU32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  if (littleEndian) bytes.writeUInt32LE(value);
  else bytes.writeUInt32BE(value);
  return bytes;
}

const readHostU16 = (bytes: Buffer, offset: number): number => (littleEndian ? bytes.readUInt16LE(offset) : bytes.readUInt16BE(offset));
const readHostU32 = (bytes: Buffer, offset: number): number => (littleEndian ? bytes.readUInt32LE(offset) : bytes.readUInt32BE(offset));
const readHostI32 = (bytes: Buffer, offset: number): number => (littleEndian ? bytes.readInt32LE(offset) : bytes.readInt32BE(offset));

const align4 = (length: number): number => (length + 3) & ~3;

/** One attribute: length and type (host order), the payload, padding to four bytes. */
function attribute(type: number, payload: Buffer): Buffer {
  const length = 4 + payload.length;
  return Buffer.concat([hostU16(length), hostU16(type), payload, Buffer.alloc(align4(length) - length)]);
}

function nested(type: number, children: readonly Buffer[]): Buffer {
  return attribute(type | NLA_F_NESTED, Buffer.concat(children));
}

const cString = (text: string): Buffer => Buffer.from(`${text}\0`, 'latin1');

/** A netlink message with the nfnetlink header (family, version 0, resource id big-endian). */
function message(type: number, flags: number, sequence: number, family: number, resourceId: number, payload: Buffer): Buffer {
  const generic = Buffer.from([family, 0, resourceId >> 8, resourceId & 0xff]);
  const length = NLMSG_HEADER_LENGTH + NFGENMSG_LENGTH + payload.length;
  return Buffer.concat([hostU32(length), hostU16(type), hostU16(flags), hostU32(sequence), hostU32(0), generic, payload]);
}

/**
 * The set key of `address . meta l4proto . th dport`: each field of a
 * concatenation fills whole 32-bit registers, so the protocol byte and the
 * port (network order) are each padded to four bytes.
 */
export function setElementKey(grant: Grant): Buffer {
  const address = parseAddress(grant.address);
  if (address === undefined) throw new RangeError(`not an IP address: ${grant.address}`);
  const key = Buffer.alloc(address.length + 8);
  key.set(address, 0);
  key[address.length] = PROTOCOL_NUMBERS[grant.protocol];
  key.writeUInt16BE(grant.port, address.length + 4);
  return key;
}

/** The element list of one message: each key, and with `withTimeout` each grant's timeout in milliseconds. */
function elementList(members: readonly { readonly grant: Grant; readonly key: Buffer }[], withTimeout: boolean): Buffer {
  return nested(
    NFTA_SET_ELEM_LIST_ELEMENTS,
    members.map(({ grant, key }) => {
      const element = nested(NFTA_SET_ELEM_KEY, [attribute(NFTA_DATA_VALUE, key)]);
      if (!withTimeout) return nested(NFTA_LIST_ELEM, [element]);
      const timeout = Buffer.alloc(8);
      timeout.writeBigUInt64BE(BigInt(grant.seconds) * 1000n);
      return nested(NFTA_LIST_ELEM, [element, attribute(NFTA_SET_ELEM_TIMEOUT, timeout)]);
    }),
  );
}

export interface EncodedTransaction {
  readonly bytes: Buffer;
  /** The sequence numbers of the messages that must each be acknowledged. */
  readonly acknowledged: readonly number[];
  /** Every message's sequence number lies in [first, last] (batch begin and end included). */
  readonly first: number;
  readonly last: number;
}

/**
 * One nf_tables transaction for a batch of validated grants, numbered from
 * `firstSequence`: it commits whole or not at all. `add` without
 * NLM_F_EXCL leaves an element that exists alone, timeout included, hence
 * add, delete, add: a grant already open is extended, never duplicated.
 */
export function encodeGrantTransaction(target: GrantSets, grants: readonly Grant[], firstSequence: number): EncodedTransaction {
  let sequence = firstSequence;
  const messages = [message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, sequence++, 0, NFNL_SUBSYS_NFTABLES, Buffer.alloc(0))];
  const acknowledged: number[] = [];
  const keyed = grants.map((grant) => ({ grant, key: setElementKey(grant) }));
  for (const family of [4, 6] as const) {
    // An IPv4 key is 4 + 8 bytes long, an IPv6 one 16 + 8.
    const members = keyed.filter(({ key }) => key.length === (family === 4 ? 12 : 24));
    if (members.length === 0) continue;
    const names = [attribute(NFTA_SET_ELEM_LIST_TABLE, cString(target.table)), attribute(NFTA_SET_ELEM_LIST_SET, cString(target.sets[family]))];
    const steps = [
      [NFT_MSG_NEWSETELEM, NLM_F_CREATE, true],
      [NFT_MSG_DELSETELEM, 0, false],
      [NFT_MSG_NEWSETELEM, NLM_F_CREATE, true],
    ] as const;
    for (const [type, flags, withTimeout] of steps) {
      acknowledged.push(sequence);
      const payload = Buffer.concat([...names, elementList(members, withTimeout)]);
      messages.push(message((NFNL_SUBSYS_NFTABLES << 8) | type, NLM_F_REQUEST | NLM_F_ACK | flags, sequence++, NFPROTO_INET, 0, payload));
    }
  }
  messages.push(message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, sequence, 0, NFNL_SUBSYS_NFTABLES, Buffer.alloc(0)));
  return { bytes: Buffer.concat(messages), acknowledged, first: firstSequence, last: sequence };
}

/** One NLMSG_ERROR reply: error 0 acknowledges the request `sequence`; a negative one is -errno. */
export interface NetlinkAcknowledgement {
  readonly sequence: number;
  readonly error: number;
  /** The kernel's explanation (extended acknowledgement), when it gave one. */
  readonly message?: string;
}

/** The error message attribute after an error reply's echoed request header (or whole request). */
function extendedMessage(bytes: Buffer, start: number, end: number): string | undefined {
  let offset = start;
  while (offset + 4 <= end) {
    const length = readHostU16(bytes, offset);
    if (length < 4 || offset + length > end) return undefined;
    if ((readHostU16(bytes, offset + 2) & NLA_TYPE_MASK) === NLMSGERR_ATTR_MSG) {
      return bytes.toString('utf8', offset + 4, offset + length).replace(/\0+$/, '').slice(0, 200);
    }
    offset += align4(length);
  }
  return undefined;
}

/** Every acknowledgement in `bytes` (replies back to back); what cannot be read ends the walk. Never throws. */
export function decodeAcknowledgements(bytes: Buffer): NetlinkAcknowledgement[] {
  const found: NetlinkAcknowledgement[] = [];
  let offset = 0;
  while (offset + NLMSG_HEADER_LENGTH <= bytes.length) {
    const length = readHostU32(bytes, offset);
    if (length < NLMSG_HEADER_LENGTH || length > bytes.length - offset) break;
    const end = offset + length;
    const errorStart = offset + NLMSG_HEADER_LENGTH;
    // nlmsgerr: the error, then the request's own header, whose sequence number says what is answered.
    if (readHostU16(bytes, offset + 4) === NLMSG_ERROR && errorStart + 4 + NLMSG_HEADER_LENGTH <= end) {
      const flags = readHostU16(bytes, offset + 6);
      const error = readHostI32(bytes, errorStart);
      const echoed = errorStart + 4;
      const echoedLength = flags & NLM_F_CAPPED ? NLMSG_HEADER_LENGTH : readHostU32(bytes, echoed);
      const text = flags & NLM_F_ACK_TLVS ? extendedMessage(bytes, echoed + align4(echoedLength), end) : undefined;
      found.push({ sequence: readHostU32(bytes, echoed + 8), error, ...(text ? { message: text } : {}) });
    }
    offset += align4(length);
  }
  return found;
}

function errorName(error: number): string {
  try {
    return getSystemErrorName(error);
  } catch {
    return `error ${-error}`;
  }
}

/**
 * Why the kernel did not commit `transaction`, or undefined when every
 * message was acknowledged. Replies to other sequence numbers (a late answer
 * to an earlier transaction) are not this transaction's.
 */
export function transactionFailure(replies: readonly NetlinkAcknowledgement[], transaction: Omit<EncodedTransaction, 'bytes'>): string | undefined {
  const { acknowledged } = transaction;
  const refused = replies.find((reply) => reply.error !== 0 && reply.sequence >= transaction.first && reply.sequence <= transaction.last);
  if (refused) return `${errorName(refused.error)}${refused.message ? ` (${refused.message})` : ''}`;
  const missing = acknowledged.filter((sequence) => !replies.some((reply) => reply.sequence === sequence));
  return missing.length > 0 ? `no acknowledgement for ${missing.length} of ${acknowledged.length} messages` : undefined;
}

interface NftNetlinkAddon {
  openNetfilterSocket(): number;
  transact(descriptor: number, request: Buffer, expectedAcknowledgements: number): Buffer;
  closeNetfilterSocket(descriptor: number): void;
}

// From server/firewall/ (sources under vitest) or dist/server/firewall/ (the build).
const addonCandidates = ['../../native/build/Release/sknock_nft_netlink.node', '../../../native/build/Release/sknock_nft_netlink.node'];

/** The addon, or why grants go through `nft` instead. */
function loadAddon(): { readonly addon: NftNetlinkAddon } | { readonly unavailable: string } {
  if (process.env['SKNOCK_NFT_NETLINK'] === 'off') return { unavailable: 'SKNOCK_NFT_NETLINK=off' };
  const load = loadNativeAddon<NftNetlinkAddon>(import.meta.url, addonCandidates);
  if (!load.loaded) return { unavailable: load.problem === 'not-built' ? 'native/ addon not built: npm run build:native' : `native addon failed to load: ${load.detail}` };
  const { addon } = load;
  const complete = typeof addon.openNetfilterSocket === 'function' && typeof addon.transact === 'function' && typeof addon.closeNetfilterSocket === 'function';
  return complete ? { addon: addon as NftNetlinkAddon } : { unavailable: 'native addon outdated: npm run build:native' };
}

/** Thrown when the socket itself fails (not the kernel refusing a grant): the caller may fall back to `nft`. */
export class NetlinkTransportError extends Error {}

/** What the nftables backend needs of a grant writer. */
export interface GrantWriter {
  /** Commits one batch; SknockError when the kernel refuses it, NetlinkTransportError when the writer cannot write any more. */
  write(grants: readonly Grant[]): void;
  close(): void;
}

/** A netfilter netlink socket in this process's network namespace, writing grant transactions. */
export class NetlinkGrantWriter implements GrantWriter {
  private nextSequence = 1;

  private constructor(
    private readonly addon: NftNetlinkAddon,
    private descriptor: number | null,
    private readonly target: GrantSets,
  ) {}

  /** A writer, or the reason there is none (no addon, switched off, no socket). */
  static open(target: GrantSets): NetlinkGrantWriter | { readonly unavailable: string } {
    const loaded = loadAddon();
    if ('unavailable' in loaded) return loaded;
    try {
      return new NetlinkGrantWriter(loaded.addon, loaded.addon.openNetfilterSocket(), target);
    } catch (error) {
      return { unavailable: error instanceof Error ? error.message : String(error) };
    }
  }

  /**
   * Commits one batch (at most NETLINK_BATCH_LIMIT grants). Throws
   * SknockError when the kernel refuses it, NetlinkTransportError when the
   * socket fails (the writer is closed then).
   */
  write(grants: readonly Grant[]): void {
    if (this.descriptor === null) throw new NetlinkTransportError('netlink socket closed');
    const transaction = encodeGrantTransaction(this.target, grants, this.nextSequence);
    // Sequence numbers stay positive 31-bit values; a wrap only needs them distinct from the last transaction's.
    this.nextSequence = transaction.last + 1 > 0x7fff_0000 ? 1 : transaction.last + 1;
    let replies: Buffer;
    try {
      replies = this.addon.transact(this.descriptor, transaction.bytes, transaction.acknowledged.length);
    } catch (error) {
      this.close();
      throw new NetlinkTransportError(error instanceof Error ? error.message : String(error));
    }
    const failure = transactionFailure(decodeAcknowledgements(replies), transaction);
    if (failure !== undefined) throw new SknockError('SKNOCK_FIREWALL_COMMAND_FAILED', `nf_tables refused the grant transaction: ${failure}`);
  }

  close(): void {
    if (this.descriptor === null) return;
    this.addon.closeNetfilterSocket(this.descriptor);
    this.descriptor = null;
  }
}
