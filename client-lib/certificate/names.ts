/**
 * Distinguished names as one display line, `CN=alice, O=Example`: the text of
 * node:crypto's X509Certificate.subject (OpenSSL's multi-line form: short
 * names, RFC 2253 escapes, control characters as \XX) with its lines joined
 * by ", ", decoded here because node's certificate object costs ≈ 230 µs per
 * new client. For display and logs only: names are compared as DER bytes.
 * Attribute types outside the table below, and values that are not character
 * strings, are written as RFC 4514 §2.4 `dotted.oid=#hex-of-the-DER-value`.
 * Total: malformed input gives undefined.
 */
import { isUtf8 } from 'node:buffer';
import { contentOf, derTag, encodingOf, objectIdentifierText, readChildrenOf, type DerElement } from './der.js';

/** OpenSSL's short names (what node prints) for the attribute types certificates use. */
const attributeShortNames = new Map<string, string>([
  ['2.5.4.3', 'CN'],
  ['2.5.4.4', 'SN'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.6', 'C'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.9', 'street'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.12', 'title'],
  ['2.5.4.13', 'description'],
  ['2.5.4.15', 'businessCategory'],
  ['2.5.4.17', 'postalCode'],
  ['2.5.4.41', 'name'],
  ['2.5.4.42', 'GN'],
  ['2.5.4.43', 'initials'],
  ['2.5.4.44', 'generationQualifier'],
  ['2.5.4.46', 'dnQualifier'],
  ['2.5.4.65', 'pseudonym'],
  ['2.5.4.97', 'organizationIdentifier'],
  ['1.2.840.113549.1.9.1', 'emailAddress'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
  ['1.3.6.1.4.1.311.60.2.1.1', 'jurisdictionL'],
  ['1.3.6.1.4.1.311.60.2.1.2', 'jurisdictionST'],
  ['1.3.6.1.4.1.311.60.2.1.3', 'jurisdictionC'],
]);

/** Readable string types: UTF-8, byte-per-character (read as Latin-1, as OpenSSL does, T.61 included), UCS-2 and UCS-4. */
const characterWidths = new Map<number, 'utf8' | 1 | 2 | 4>([
  [derTag.utf8String, 'utf8'],
  [derTag.numericString, 1],
  [derTag.printableString, 1],
  [derTag.teletexString, 1],
  [derTag.ia5String, 1],
  [derTag.bmpString, 2],
  [derTag.universalString, 4],
]);

/**
 * A string value's characters, or undefined where OpenSSL refuses the whole
 * certificate: invalid UTF-8, a length that does not fit the width, a
 * surrogate or a code point past U+10FFFF.
 */
function decodeCharacters(width: 'utf8' | 1 | 2 | 4, content: Buffer): string | undefined {
  if (width === 'utf8') return isUtf8(content) ? content.toString('utf8') : undefined;
  if (width === 1) return content.toString('latin1');
  if (content.length % width !== 0) return undefined;
  let text = '';
  for (let offset = 0; offset < content.length; offset += width) {
    const code = width === 2 ? content.readUInt16BE(offset) : content.readUInt32BE(offset);
    if ((code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff) return undefined;
    text += String.fromCodePoint(code);
  }
  return text;
}

/** Characters OpenSSL's ASN1_STRFLGS_ESC_2253 escapes with a backslash wherever they stand. */
const backslashEscaped = new Set(['"', '+', ',', ';', '<', '>', '\\']);
const needsEscaping = /[\u0000-\u001f\u007f"+,;<>\\]|^[ #]| $/;

/** RFC 2253 escapes as OpenSSL writes them: a leading '#' (unless it is the only character), a leading or trailing space. */
function escapeValue(text: string): string {
  if (!needsEscaping.test(text)) return text;
  let escaped = '';
  for (let index = 0; index < text.length; index += 1) {
    const character = text[index]!;
    const code = character.charCodeAt(0);
    const last = index === text.length - 1;
    const edge = (character === '#' && index === 0 && !last) || (character === ' ' && (index === 0 || last));
    if (backslashEscaped.has(character) || edge) escaped += `\\${character}`;
    else if (code < 0x20 || code === 0x7f) escaped += `\\${code.toString(16).toUpperCase().padStart(2, '0')}`;
    else escaped += character;
  }
  return escaped;
}

/** `type=value` of one AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY }. */
function attributeText(bytes: Buffer, attribute: DerElement): string | undefined {
  const parts = readChildrenOf(bytes, attribute, derTag.sequence);
  if (parts?.length !== 2) return undefined;
  const [type, value] = parts as [DerElement, DerElement];
  const typeOid = type.tag === derTag.objectIdentifier ? objectIdentifierText(contentOf(bytes, type)) : undefined;
  if (typeOid === undefined) return undefined;
  const width = characterWidths.get(value.tag);
  const characters = width === undefined ? null : decodeCharacters(width, contentOf(bytes, value));
  if (characters === undefined) return undefined;
  const shortName = attributeShortNames.get(typeOid);
  if (shortName === undefined || characters === null) return `${shortName ?? typeOid}=#${encodingOf(bytes, value).toString('hex')}`;
  return `${shortName}=${escapeValue(characters)}`;
}

/** A Name (RDNSequence) on one line: RDNs joined by ", ", the attributes of a multi-valued RDN by " + ". */
export function nameText(bytes: Buffer, name: DerElement): string | undefined {
  const relativeNames = readChildrenOf(bytes, name, derTag.sequence);
  if (!relativeNames) return undefined;
  const lines: string[] = [];
  for (const relativeName of relativeNames) {
    const attributes = readChildrenOf(bytes, relativeName, derTag.set);
    // RelativeDistinguishedName ::= SET SIZE (1..MAX) OF AttributeTypeAndValue
    if (!attributes || attributes.length === 0) return undefined;
    const texts = attributes.map((attribute) => attributeText(bytes, attribute));
    if (texts.includes(undefined)) return undefined;
    lines.push(texts.join(' + '));
  }
  return lines.join(', ');
}
