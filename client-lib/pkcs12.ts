import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import forge from 'node-forge';
import { SknockError } from './errors.js';
import type { Pkcs12Bundle, Pkcs12ErrorCode } from './pkcs12-bundle.js';

export { caCertificatesOf, type Pkcs12Bundle, type Pkcs12ErrorCode } from './pkcs12-bundle.js';

const keyBagTypes = [forge.pki.oids.pkcs8ShroudedKeyBag!, forge.pki.oids.keyBag!];

function fail(code: Pkcs12ErrorCode, message: string, cause?: unknown): never {
  throw new SknockError(code, message, cause === undefined ? undefined : { cause });
}

function bagToDer(bag: forge.pkcs12.Bag): Buffer | undefined {
  // node-forge models RSA only: for EC keys and certificates `bag.key`/`bag.cert`
  // are null and `bag.asn1` holds the decrypted PKCS#8 or the certificate.
  const asn1 =
    bag.asn1 ??
    (bag.cert ? forge.pki.certificateToAsn1(bag.cert) : undefined) ??
    (bag.key ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key)) : undefined);
  if (!asn1) return undefined;
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

/**
 * Opens a PKCS#12 bundle: the original sKnock bundles (OpenSSL 1.x legacy
 * RC2/3DES, SHA-1 MAC) and OpenSSL 3 ones (AES-256, PBKDF2, SHA-256 MAC).
 * The key must be P-256, as every knock's cryptography is.
 */
export function loadPkcs12(bytes: Buffer, password: string, label = 'PKCS#12 bundle'): Pkcs12Bundle {
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString('binary')));
  } catch (error) {
    fail('SKNOCK_PFX_MALFORMED', `${label} is not a PKCS#12 (DER) file`, error);
  }
  let pfx: forge.pkcs12.Pkcs12Pfx;
  try {
    pfx = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/MAC could not be verified|Invalid password/i.test(message)) {
      fail('SKNOCK_PFX_BAD_PASSWORD', `wrong password for ${label}`, error);
    }
    // Without a MAC a wrong password shows up as undecryptable content.
    fail('SKNOCK_PFX_MALFORMED', `${label} cannot be read (wrong password or damaged file): ${message}`, error);
  }

  const keyDers = keyBagTypes.flatMap((type) => pfx.getBags({ bagType: type })[type] ?? []).map(bagToDer);
  const certificateType = forge.pki.oids.certBag!;
  const certificateDers = (pfx.getBags({ bagType: certificateType })[certificateType] ?? []).map(bagToDer);

  const keyDer = keyDers.find((der): der is Buffer => der !== undefined);
  if (!keyDer) fail('SKNOCK_PFX_NO_KEY', `${label} holds no private key`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: keyDer, format: 'der', type: 'pkcs8' });
  } catch (error) {
    fail('SKNOCK_PFX_MALFORMED', `${label}: the private key cannot be decoded`, error);
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const found = privateKey.asymmetricKeyDetails?.namedCurve ?? privateKey.asymmetricKeyType;
    fail('SKNOCK_PFX_NOT_P256', `${label}: the private key is ${found}, but sKnock needs a P-256 (prime256v1) key`);
  }

  const certificates: X509Certificate[] = [];
  for (const der of certificateDers) {
    if (!der) continue;
    try {
      certificates.push(new X509Certificate(der));
    } catch (error) {
      fail('SKNOCK_PFX_MALFORMED', `${label}: a certificate in the bundle cannot be decoded`, error);
    }
  }
  if (certificates.length === 0) fail('SKNOCK_PFX_NO_CERTIFICATE', `${label} holds no certificate`);
  const certificate = certificates.find((candidate) => candidate.checkPrivateKey(privateKey));
  if (!certificate) {
    fail('SKNOCK_PFX_KEY_MISMATCH', `${label}: no certificate in the bundle matches its private key`);
  }
  return {
    privateKey,
    certificate,
    certificateDer: certificate.raw,
    otherCertificates: certificates.filter((candidate) => candidate !== certificate),
  };
}

export function loadPkcs12File(file: string, password: string): Pkcs12Bundle {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    fail('SKNOCK_FILE_NOT_FOUND', `cannot read PKCS#12 file ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`, error);
  }
  return loadPkcs12(bytes, password, file);
}
