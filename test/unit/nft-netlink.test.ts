import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAcknowledgements,
  encodeGrantTransaction,
  setElementKey,
  transactionFailure,
  type GrantSets,
} from '../../server/firewall/nft-netlink.js';
import type { Grant } from '../../server/firewall/types.js';

const target: GrantSets = { table: 'sknock', sets: { 4: 'grants_v4', 6: 'grants_v6' } };
const v4: Grant = { address: '198.18.0.2', protocol: 'tcp', port: 443, seconds: 30 };
const v6: Grant = { address: 'fd00:18::2', protocol: 'udp', port: 53, seconds: 86_400 };

interface Attribute {
  readonly type: number;
  readonly nested: boolean;
  readonly payload: Buffer;
}

/** The test's own reading of netlink attributes (host order: x86 and arm64 hosts are little-endian). */
function attributes(bytes: Buffer): Attribute[] {
  const found: Attribute[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const length = bytes.readUInt16LE(offset);
    const type = bytes.readUInt16LE(offset + 2);
    found.push({ type: type & 0x3fff, nested: (type & 0x8000) !== 0, payload: bytes.subarray(offset + 4, offset + length) });
    offset += (length + 3) & ~3;
  }
  return found;
}

interface Message {
  readonly type: number;
  readonly flags: number;
  readonly sequence: number;
  readonly family: number;
  readonly resourceId: number;
  readonly attributes: Attribute[];
}

function messages(bytes: Buffer): Message[] {
  const found: Message[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const length = bytes.readUInt32LE(offset);
    found.push({
      type: bytes.readUInt16LE(offset + 4),
      flags: bytes.readUInt16LE(offset + 6),
      sequence: bytes.readUInt32LE(offset + 8),
      family: bytes[offset + 16]!,
      resourceId: bytes.readUInt16BE(offset + 18),
      attributes: attributes(bytes.subarray(offset + 20, offset + length)),
    });
    offset += length;
  }
  return found;
}

/** An NLMSG_ERROR reply as the kernel writes it with NETLINK_CAP_ACK, and NETLINK_EXT_ACK's message when given. */
function acknowledgement(sequence: number, error: number, text?: string): Buffer {
  const message = text === undefined ? Buffer.alloc(0) : Buffer.from(`${text}\0`);
  const tlv = text === undefined ? Buffer.alloc(0) : Buffer.concat([Buffer.alloc(4), message, Buffer.alloc(((message.length + 3) & ~3) - message.length)]);
  if (text !== undefined) {
    tlv.writeUInt16LE(4 + message.length, 0);
    tlv.writeUInt16LE(1, 2);
  }
  const reply = Buffer.alloc(16 + 4 + 16 + tlv.length);
  reply.writeUInt32LE(reply.length, 0);
  reply.writeUInt16LE(2, 4);
  reply.writeUInt16LE(0x100 | (text === undefined ? 0 : 0x200), 6);
  reply.writeUInt32LE(sequence, 8);
  reply.writeInt32LE(error, 16);
  reply.writeUInt32LE(60, 20); // the request's own header: its length, type, flags, sequence
  reply.writeUInt32LE(sequence, 28);
  tlv.copy(reply, 36);
  return reply;
}

describe('nf_tables netlink encoding of grants', () => {
  it('lays out a set key as address . protocol . port, each field padded to 32 bits', () => {
    expect(setElementKey(v4).toString('hex')).toBe('c6120002' + '06000000' + '01bb0000');
    expect(setElementKey(v6).toString('hex')).toBe('fd000018000000000000000000000002' + '11000000' + '00350000');
    expect(() => setElementKey({ ...v4, address: 'not an address' })).toThrow(RangeError);
  });

  it('writes one batch: add, delete, add per family, each acknowledged, numbered from the first sequence', () => {
    const transaction = encodeGrantTransaction(target, [v4, v6], 41);
    const sent = messages(transaction.bytes);
    expect(sent.map((message) => message.type)).toEqual([0x10, 0xa0c, 0xa0e, 0xa0c, 0xa0c, 0xa0e, 0xa0c, 0x11]);
    expect(sent.map((message) => message.sequence)).toEqual([41, 42, 43, 44, 45, 46, 47, 48]);
    expect(transaction).toMatchObject({ acknowledged: [42, 43, 44, 45, 46, 47], first: 41, last: 48 });
    // The batch is addressed to nf_tables; its elements to the inet family.
    expect(sent[0]).toMatchObject({ family: 0, resourceId: 10 });
    expect(sent.slice(1, -1).every((message) => message.family === 1 && (message.flags & 0x5) === 0x5)).toBe(true);
    // add (NLM_F_CREATE, no NLM_F_EXCL: an element that exists is not an error), delete without it.
    expect(sent.slice(1, -1).map((message) => message.flags & 0x600)).toEqual([0x400, 0, 0x400, 0x400, 0, 0x400]);
  });

  it('names the table and set, and gives each added element its key and timeout in milliseconds', () => {
    const [, add, remove] = messages(encodeGrantTransaction(target, [v6], 1).bytes);
    const [table, set, list] = add!.attributes;
    expect(table).toMatchObject({ type: 1, payload: Buffer.from('sknock\0') });
    expect(set).toMatchObject({ type: 2, payload: Buffer.from('grants_v6\0') });
    expect(list).toMatchObject({ type: 3, nested: true });
    const [element] = attributes(list!.payload);
    const [key, timeout] = attributes(element!.payload);
    expect(key).toMatchObject({ type: 1, nested: true });
    expect(attributes(key!.payload)[0]!.payload).toEqual(setElementKey(v6));
    expect(timeout!.type).toBe(4);
    expect(timeout!.payload.readBigUInt64BE()).toBe(86_400_000n);
    const removed = attributes(attributes(remove!.attributes[2]!.payload)[0]!.payload);
    expect(removed.map((part) => part.type)).toEqual([1]);
  });

  it('puts every grant of a family into one message, in the order given', () => {
    const grants = Array.from({ length: 300 }, (_, index): Grant => ({ address: `198.19.${index >> 8}.${index & 255}`, protocol: 'tcp', port: 22, seconds: 60 }));
    const sent = messages(encodeGrantTransaction(target, grants, 1).bytes);
    expect(sent).toHaveLength(5);
    const keys = attributes(sent[1]!.attributes[2]!.payload).map((element) => attributes(attributes(element.payload)[0]!.payload)[0]!.payload);
    expect(keys).toEqual(grants.map(setElementKey));
  });
});

describe('nf_tables netlink acknowledgements', () => {
  const transaction = encodeGrantTransaction(target, [v4], 10);

  it('is committed when every message is acknowledged', () => {
    const replies = decodeAcknowledgements(Buffer.concat([11, 12, 13].map((sequence) => acknowledgement(sequence, 0))));
    expect(replies).toEqual([11, 12, 13].map((sequence) => ({ sequence, error: 0 })));
    expect(transactionFailure(replies, transaction)).toBeUndefined();
  });

  it('names the errno and the kernel message of a refusal', () => {
    const replies = decodeAcknowledgements(Buffer.concat([acknowledgement(11, -2, 'Set not found'), acknowledgement(12, 0)]));
    expect(replies[0]).toEqual({ sequence: 11, error: -2, message: 'Set not found' });
    expect(transactionFailure(replies, transaction)).toBe('ENOENT (Set not found)');
  });

  it('counts a missing acknowledgement as a failure, and ignores replies to other transactions', () => {
    const replies = decodeAcknowledgements(Buffer.concat([acknowledgement(3, -17), acknowledgement(11, 0), acknowledgement(12, 0)]));
    expect(transactionFailure(replies, transaction)).toBe('no acknowledgement for 1 of 3 messages');
  });

  it('reads what it can of a truncated or corrupt reply and never throws', () => {
    const whole = Buffer.concat([acknowledgement(11, 0), acknowledgement(12, 0)]);
    expect(decodeAcknowledgements(whole.subarray(0, whole.length - 5))).toEqual([{ sequence: 11, error: 0 }]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const replies = decodeAcknowledgements(Buffer.from(bytes));
        expect(transactionFailure(replies, transaction)).toBeDefined();
      }),
      { numRuns: 2_000 },
    );
  });
});
