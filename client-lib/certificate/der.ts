/**
 * A minimal, total DER element reader. It finds where things are (the
 * signed TBS bytes, the serial, the extension list, CRL entries) and reads
 * the primitive values X.509 needs (INTEGER, OID, UTCTime/GeneralizedTime),
 * so that the typed decoders in x509.ts run on small slices: asn1js /
 * asn1-schema need ≈ 0.7–0.9 ms to decode a whole certificate here, this
 * walk ≈ 1 µs. Every function returns undefined on malformed input and never throws.
 */

export const derTag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  objectIdentifier: 0x06,
  utf8String: 0x0c,
  numericString: 0x12,
  printableString: 0x13,
  teletexString: 0x14,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  universalString: 0x1c,
  bmpString: 0x1e,
  sequence: 0x30,
  set: 0x31,
  contextPrimitive0: 0x80,
  contextPrimitive1: 0x81,
  contextPrimitive2: 0x82,
  contextConstructed0: 0xa0,
  contextConstructed1: 0xa1,
  contextConstructed3: 0xa3,
  contextConstructed4: 0xa4,
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

/** One subidentifier: up to 7 octets (49 bits) fit a double exactly; longer ones (2.25 UUIDs) need BigInt. */
function arcValue(content: Buffer, start: number, end: number): number | bigint {
  if (end - start <= 7) {
    let value = 0;
    for (let index = start; index < end; index += 1) value = value * 128 + (content[index]! & 0x7f);
    return value;
  }
  let value = 0n;
  for (let index = start; index < end; index += 1) value = (value << 7n) | BigInt(content[index]! & 0x7f);
  return value;
}

/** Dotted form of an OBJECT IDENTIFIER's content octets; undefined for non-minimal (0x80-padded) arcs, as OpenSSL refuses them. */
export function objectIdentifierText(content: Buffer): string | undefined {
  if (content.length === 0 || content.length > 64 || content[content.length - 1]! >= 0x80) return undefined;
  let text = '';
  let start = 0;
  for (let index = 0; index < content.length; index += 1) {
    if (content[index]! >= 0x80) continue;
    if (content[start] === 0x80) return undefined;
    const arc = arcValue(content, start, index + 1);
    if (start === 0) {
      const root = arc < 40 ? 0 : arc < 80 ? 1 : 2;
      text = `${root}.${typeof arc === 'bigint' ? arc - BigInt(root * 40) : arc - root * 40}`;
    } else {
      text += `.${arc}`;
    }
    start = index + 1;
  }
  return text;
}

const daysInMonth = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
/** 400 Gregorian years are exactly 146,097 days: shifting by them keeps Date.UTC off its 0–99 → 1900s rule. */
const fourHundredYearsMs = 146_097 * 86_400_000;

/**
 * A UTCTime or GeneralizedTime in the forms RFC 5280 §4.1.2.5 allows
 * (YYMMDDHHMMSSZ, YYYYMMDDHHMMSSZ: seconds, Z, no fraction) as epoch
 * milliseconds; UTCTime years 50–99 are 19xx. Anything else is undefined.
 */
export function timeValue(tag: number, content: Buffer): number | undefined {
  const yearDigits = tag === derTag.utcTime ? 2 : tag === derTag.generalizedTime ? 4 : 0;
  if (yearDigits === 0 || content.length !== yearDigits + 11 || content[yearDigits + 10] !== 0x5a) return undefined;
  const pairs: number[] = [];
  for (let offset = 0; offset < yearDigits + 10; offset += 2) {
    const tens = content[offset]! - 0x30;
    const units = content[offset + 1]! - 0x30;
    if (tens < 0 || tens > 9 || units < 0 || units > 9) return undefined;
    pairs.push(tens * 10 + units);
  }
  const [month, day, hour, minute, second] = pairs.slice(yearDigits / 2) as [number, number, number, number, number];
  const year = yearDigits === 4 ? pairs[0]! * 100 + pairs[1]! : pairs[0]! + (pairs[0]! >= 50 ? 1900 : 2000);
  const leapDay = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 1 : 0;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth[month - 1]! + leapDay || hour > 23 || minute > 59 || second > 59) return undefined;
  return Date.UTC(year + 400, month - 1, day, hour, minute, second) - fourHundredYearsMs;
}
