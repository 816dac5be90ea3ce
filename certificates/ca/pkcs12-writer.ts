/**
 * Writes PKCS#12 (RFC 7292) bundles that OpenSSL 3 reads without `-legacy`:
 * the private key in a pkcs8ShroudedKeyBag encrypted with PBES2
 * (PBKDF2-HMAC-SHA256, AES-256-CBC), the certificates in plain cert bags
 * (certificates are public), and an HMAC-SHA256 integrity MAC.
 * node-forge cannot export EC keys itself, so the bundle is assembled here
 * from its ASN.1 pieces; the cryptography is node:crypto's, except the
 * PKCS#12 MAC key derivation, which node:crypto does not offer.
 */
import { createCipheriv, createHash, createHmac, pbkdf2Sync, randomBytes, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

/** What one bundle holds and how it is protected. */
export interface Pkcs12Contents {
  readonly privateKey: KeyObject;
  /** DER of the certificate that belongs to `privateKey`. */
  readonly certificate: Buffer;
  /** DER of further certificates to carry, e.g. the issuing CA. */
  readonly otherCertificates: readonly Buffer[];
  /** Label shown by `openssl pkcs12 -info` and key stores. */
  readonly friendlyName: string;
  readonly password: string;
  /** PBKDF2 and MAC iteration count. */
  readonly iterations?: number;
  /** Source of salts and IVs; a parameter so a test can make output deterministic. */
  readonly randomBytes?: (size: number) => Buffer;
}

/**
 * OpenSSL 3's own default. The reader (node-forge) derives keys in pure
 * JavaScript: 100,000 iterations made every knock-client start take ~1 s.
 * The bundle's protection is its file mode (0600) and the password's length.
 */
export const defaultPkcs12Iterations = 2048;

const oids = {
  data: '1.2.840.113549.1.7.1',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSha256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const;

const { asn1 } = forge;
type Node = forge.asn1.Asn1;

const universal = (type: number, constructed: boolean, value: string | Node[]): Node =>
  asn1.create(asn1.Class.UNIVERSAL, type, constructed, value);
const sequence = (...items: Node[]): Node => universal(asn1.Type.SEQUENCE, true, items);
const setOf = (...items: Node[]): Node => universal(asn1.Type.SET, true, items);
const oid = (text: string): Node => universal(asn1.Type.OID, false, asn1.oidToDer(text).getBytes());
const octets = (bytes: Buffer): Node => universal(asn1.Type.OCTETSTRING, false, bytes.toString('binary'));
const integer = (value: number): Node => universal(asn1.Type.INTEGER, false, asn1.integerToDer(value).getBytes());
const nullValue = (): Node => universal(asn1.Type.NULL, false, '');
const explicit0 = (item: Node): Node => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [item]);
const der = (item: Node): Buffer => Buffer.from(asn1.toDer(item).getBytes(), 'binary');

/** forge writes a BMPSTRING's value as 16-bit code units itself. */
const bmpString = (text: string): Node => universal(asn1.Type.BMPSTRING, false, text);

function attribute(type: string, value: Node): Node {
  return sequence(oid(type), setOf(value));
}

function safeBag(bagType: string, value: Node, attributes: Node[]): Node {
  const items = [oid(bagType), explicit0(value)];
  if (attributes.length > 0) items.push(setOf(...attributes));
  return sequence(...items);
}

/** ContentInfo of type data wrapping a SafeContents (SEQUENCE OF SafeBag). */
function dataContentInfo(bags: Node[]): Node {
  return sequence(oid(oids.data), explicit0(octets(der(sequence(...bags)))));
}

function certificateBag(certificate: Buffer, attributes: Node[]): Node {
  return safeBag(oids.certBag, sequence(oid(oids.x509Certificate), explicit0(octets(certificate))), attributes);
}

/** EncryptedPrivateKeyInfo (RFC 5958) with PBES2 (RFC 8018); the password as UTF-8, as OpenSSL does for PBES2. */
function shroudedPrivateKey(privateKey: KeyObject, password: string, iterations: number, random: (size: number) => Buffer): Node {
  const salt = random(16);
  const iv = random(16);
  const key = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const plaintext = privateKey.export({ format: 'der', type: 'pkcs8' });
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const pbkdf2Parameters = sequence(octets(salt), integer(iterations), sequence(oid(oids.hmacWithSha256), nullValue()));
  const pbes2Parameters = sequence(sequence(oid(oids.pbkdf2), pbkdf2Parameters), sequence(oid(oids.aes256Cbc), octets(iv)));
  return sequence(sequence(oid(oids.pbes2), pbes2Parameters), octets(ciphertext));
}

/** MacData: HMAC-SHA256 over the AuthenticatedSafe, keyed by the RFC 7292 B.2 KDF (ID 3 = MAC). */
function macData(authenticatedSafe: Buffer, password: string, iterations: number, random: (size: number) => Buffer): Node {
  const salt = random(16);
  const macKey = forge.pkcs12.generateKey(
    password,
    forge.util.createBuffer(salt.toString('binary')),
    3,
    iterations,
    32,
    forge.md.sha256.create(),
  );
  const mac = createHmac('sha256', Buffer.from(macKey.getBytes(), 'binary')).update(authenticatedSafe).digest();
  return sequence(sequence(sequence(oid(oids.sha256), nullValue()), octets(mac)), octets(salt), integer(iterations));
}

/** Returns the DER bytes of a password-protected PKCS#12 bundle. */
export function writePkcs12(contents: Pkcs12Contents): Buffer {
  const iterations = contents.iterations ?? defaultPkcs12Iterations;
  const random = contents.randomBytes ?? randomBytes;
  // localKeyId pairs the key with its certificate; OpenSSL derives it from the certificate too.
  const localKeyId = createHash('sha256').update(contents.certificate).digest();
  const identity = [attribute(oids.friendlyName, bmpString(contents.friendlyName)), attribute(oids.localKeyId, octets(localKeyId))];

  const certificates = dataContentInfo([
    certificateBag(contents.certificate, identity),
    ...contents.otherCertificates.map((certificate) => certificateBag(certificate, [])),
  ]);
  const key = dataContentInfo([
    safeBag(oids.pkcs8ShroudedKeyBag, shroudedPrivateKey(contents.privateKey, contents.password, iterations, random), identity),
  ]);
  const authenticatedSafe = der(sequence(certificates, key));
  return der(
    sequence(
      integer(3),
      sequence(oid(oids.data), explicit0(octets(authenticatedSafe))),
      macData(authenticatedSafe, contents.password, iterations, random),
    ),
  );
}
