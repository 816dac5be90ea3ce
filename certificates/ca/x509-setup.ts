/**
 * The one place the CA loads @peculiar/x509: it needs the Reflect metadata
 * polyfill before it is evaluated and a WebCrypto provider to sign with.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

export { x509 };

export const ecdsaP256WithSha256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
