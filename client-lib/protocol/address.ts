/**
 * One canonical text for IP addresses, used everywhere on the server (logs,
 * grants, replay keys): IPv4 dotted decimal, IPv6 as RFC 5952 recommends
 * (lowercase, no leading zeros, the longest run of two or more zero groups
 * compressed to "::", the first such run on a tie, ::ffff:a.b.c.d for
 * IPv4-mapped addresses). Two texts name the same address exactly when they
 * are equal strings.
 */

const IPV4_LENGTH = 4;
const IPV6_LENGTH = 16;
const IPV6_GROUPS = 8;

export function formatIPv4(bytes: Uint8Array): string {
  if (bytes.length !== IPV4_LENGTH) throw new RangeError(`an IPv4 address has 4 bytes, not ${bytes.length}`);
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length !== IPV6_LENGTH) throw new RangeError(`an IPv6 address has 16 bytes, not ${bytes.length}`);
  const groups: number[] = [];
  for (let index = 0; index < IPV6_LENGTH; index += 2) groups.push(((bytes[index] ?? 0) << 8) | (bytes[index + 1] ?? 0));
  if (isIPv4Mapped(groups)) return `::ffff:${formatIPv4(bytes.subarray(12))}`;

  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < IPV6_GROUPS; ) {
    if (groups[start] !== 0) {
      start += 1;
      continue;
    }
    let end = start;
    while (end < IPV6_GROUPS && groups[end] === 0) end += 1;
    if (end - start > bestLength) [bestStart, bestLength] = [start, end - start];
    start = end;
  }
  const hex = (part: readonly number[]): string => part.map((group) => group.toString(16)).join(':');
  // RFC 5952 4.2.2: a single zero group is never shortened to "::".
  if (bestLength < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

function isIPv4Mapped(groups: readonly number[]): boolean {
  return groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
}

/** Formats a 4- or 16-byte address; other lengths are a programming error. */
export function formatAddress(bytes: Uint8Array): string {
  return bytes.length === IPV4_LENGTH ? formatIPv4(bytes) : formatIPv6(bytes);
}

const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * Dotted-decimal IPv4 text (no leading zeros, as node:net accepts it) → 4
 * bytes. A character loop: it runs for every captured knock (its source is
 * the fair queue's key and the address the knock must match), where a
 * split and four regular expressions cost a few µs.
 */
export function parseIPv4(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(IPV4_LENGTH);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let index = 0; index <= text.length; index += 1) {
    const code = index === text.length ? 0x2e : text.charCodeAt(index);
    if (code === 0x2e) {
      if (digits === 0 || part === IPV4_LENGTH) return undefined;
      bytes[part++] = value;
      value = 0;
      digits = 0;
    } else if (code >= 0x30 && code <= 0x39) {
      // A leading zero only as the whole part ("0", not "01").
      if (digits === 1 && value === 0) return undefined;
      value = value * 10 + (code - 0x30);
      digits += 1;
      if (value > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return part === IPV4_LENGTH ? bytes : undefined;
}

/** IPv6 text (RFC 4291 2.2 forms, no zone index) → 16 bytes. */
export function parseIPv6(text: string): Uint8Array | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0] ?? '', halves.length === 1);
  const tail = halves.length === 2 ? parseGroups(halves[1] ?? '', true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = IPV6_GROUPS - head.length - tail.length;
  // Without "::" all eight groups are written; with it, "::" stands for at least one.
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(IPV6_LENGTH);
  groups.forEach((group, index) => {
    bytes[2 * index] = group >> 8;
    bytes[2 * index + 1] = group & 0xff;
  });
  return bytes;
}

/** Colon-separated groups; the last may be dotted IPv4 when it ends the address. */
function parseGroups(text: string, endsAddress: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [index, part] of parts.entries()) {
    if (endsAddress && index === parts.length - 1 && part.includes('.')) {
      const ipv4 = parseIPv4(part);
      if (ipv4 === undefined) return undefined;
      groups.push(((ipv4[0] ?? 0) << 8) | (ipv4[1] ?? 0), ((ipv4[2] ?? 0) << 8) | (ipv4[3] ?? 0));
    } else if (IPV6_GROUP.test(part)) {
      groups.push(Number.parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

/** IPv4 or IPv6 text → its bytes, or undefined when it is neither. */
export function parseAddress(text: string): Uint8Array | undefined {
  return text.includes(':') ? parseIPv6(text) : parseIPv4(text);
}

/** Any IPv4 or IPv6 text → the canonical text, or undefined when it is not an address. */
export function canonicalAddress(text: string): string | undefined {
  const bytes = parseAddress(text);
  return bytes === undefined ? undefined : formatAddress(bytes);
}
