/**
 * A minimal, total DER element reader. It only finds where things are (the
 * signed TBS bytes, the serial, the extension list, CRL entries) so that the
 * typed decoders in x509.ts run on small slices: asn1js / asn1-schema need
 * ≈ 0.7–0.9 ms to decode a whole certificate here, this walk ≈ 1 µs.
 * Every function returns undefined on malformed input and never throws.
 */

export const derTag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  objectIdentifier: 0x06,
  utf8String: 0x0c,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  contextConstructed0: 0xa0,
  contextConstructed3: 0xa3,
} as const;

/** One element: its tag byte and where its header, content and end lie in the buffer. */
export interface DerElement {
  readonly tag: number;
  readonly headerStart: number;
  readonly contentStart: number;
  readonly end: number;
}

/** Reads the element starting at `offset`, which must end at or before `limit`. */
export function readElement(bytes: Buffer, offset: number, limit: number = bytes.length): DerElement | undefined {
  if (offset < 0 || offset + 2 > limit) return undefined;
  const tag = bytes[offset]!;
  // Multi-byte tag numbers never occur in X.509 structures.
  if ((tag & 0x1f) === 0x1f) return undefined;
  const lengthByte = bytes[offset + 1]!;
  let length = lengthByte;
  let contentStart = offset + 2;
  if (lengthByte >= 0x80) {
    const lengthOctets = lengthByte & 0x7f;
    // 0x80 is BER's indefinite length, not DER; more than 4 octets cannot fit a datagram or a sane CRL.
    if (lengthOctets === 0 || lengthOctets > 4 || contentStart + lengthOctets > limit) return undefined;
    length = 0;
    for (let index = 0; index < lengthOctets; index += 1) length = length * 256 + bytes[contentStart + index]!;
    contentStart += lengthOctets;
  }
  const end = contentStart + length;
  return end > limit ? undefined : { tag, headerStart: offset, contentStart, end };
}

/** The single element that spans all of `bytes` (trailing bytes make it malformed). */
export function readWhole(bytes: Buffer): DerElement | undefined {
  const element = readElement(bytes, 0);
  return element && element.end === bytes.length ? element : undefined;
}

/** The elements inside a constructed element, in order. */
export function readChildren(bytes: Buffer, parent: DerElement): DerElement[] | undefined {
  if ((parent.tag & 0x20) === 0) return undefined;
  const children: DerElement[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readElement(bytes, offset, parent.end);
    if (!child) return undefined;
    children.push(child);
    offset = child.end;
  }
  return children;
}

/** The children of `parent` when it has the expected tag. */
export function readChildrenOf(bytes: Buffer, parent: DerElement | undefined, tag: number): DerElement[] | undefined {
  return parent && parent.tag === tag ? readChildren(bytes, parent) : undefined;
}

export function contentOf(bytes: Buffer, element: DerElement): Buffer {
  return bytes.subarray(element.contentStart, element.end);
}

/** The element with its header, e.g. the exact bytes a signature covers. */
export function encodingOf(bytes: Buffer, element: DerElement): Buffer {
  return bytes.subarray(element.headerStart, element.end);
}

/**
 * An INTEGER's value, two's complement. Old PKIs issued zero and negative
 * serials and some pad with leading zero bytes: comparing values, not bytes,
 * makes a CRL entry match its certificate however either was encoded.
 */
export function integerValue(content: Buffer): bigint | undefined {
  if (content.length === 0) return undefined;
  const unsigned = BigInt(`0x${content.toString('hex')}`);
  return content[0]! >= 0x80 ? unsigned - (1n << BigInt(content.length * 8)) : unsigned;
}

/** Dotted form of an OBJECT IDENTIFIER's content octets. */
export function objectIdentifierText(content: Buffer): string | undefined {
  if (content.length === 0 || content.length > 64 || content[content.length - 1]! >= 0x80) return undefined;
  const arcs: bigint[] = [];
  let arc = 0n;
  for (const byte of content) {
    arc = (arc << 7n) | BigInt(byte & 0x7f);
    if (byte < 0x80) {
      arcs.push(arc);
      arc = 0n;
    }
  }
  const first = arcs[0]!;
  const root = first < 40n ? 0n : first < 80n ? 1n : 2n;
  return [root, first - root * 40n, ...arcs.slice(1)].join('.');
}
