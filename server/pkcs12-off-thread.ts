/**
 * Reads the server's PKCS#12 bundle on a short-lived worker thread. Decoding
 * it needs node-forge, and a module once loaded stays in its isolate: in the
 * daemon's main isolate that was ≈ 1.5 MB of heap (measured) for a file read
 * at start and on a reload only. The worker's isolate, node-forge with it,
 * is gone once the bundle is back.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { SknockError } from '../client-lib/errors.js';
import type { Pkcs12Bundle } from '../client-lib/pkcs12-bundle.js';

export interface Pkcs12WorkerData {
  readonly file: string;
  readonly password: string;
}

/** The bundle as DER, or the error that opening it raised (its code kept). */
export type Pkcs12WorkerReply =
  | { readonly ok: true; readonly privateKeyPkcs8: Uint8Array; readonly certificateDer: Uint8Array; readonly otherCertificatesDer: readonly Uint8Array[] }
  | { readonly ok: false; readonly code: string | undefined; readonly message: string };

/** The worker entry beside this module (in dist/ next to the compiled loader). */
export const PKCS12_WORKER_SCRIPT = new URL('./pkcs12-worker.js', import.meta.url);

/** loadPkcs12File's result and errors (the same codes), from a worker thread. */
export function loadPkcs12FileOffThread(file: string, password: string, script: URL = PKCS12_WORKER_SCRIPT): Promise<Pkcs12Bundle> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(script, { workerData: { file, password } satisfies Pkcs12WorkerData });
    let answered = false;
    worker.once('message', (reply: Pkcs12WorkerReply) => {
      answered = true;
      try {
        resolve(bundleOf(reply));
      } catch (error) {
        reject(error);
      }
    });
    const failed = (detail: string, cause?: unknown) => {
      if (answered) return;
      answered = true;
      reject(new SknockError('SKNOCK_PFX_WORKER_FAILED', `reading ${file} failed: ${detail}`, cause === undefined ? undefined : { cause }));
    };
    worker.once('error', (error) => failed(error.message, error));
    worker.once('exit', (code) => failed(`its worker thread exited with code ${code} before answering`));
  });
}

function bundleOf(reply: Pkcs12WorkerReply): Pkcs12Bundle {
  if (!reply.ok) throw new SknockError(reply.code ?? 'SKNOCK_PFX_WORKER_FAILED', reply.message);
  const keyDer = Buffer.from(reply.privateKeyPkcs8.buffer, reply.privateKeyPkcs8.byteOffset, reply.privateKeyPkcs8.byteLength);
  const privateKey = createPrivateKey({ key: keyDer, format: 'der', type: 'pkcs8' });
  // The KeyObject holds the key now: no plain copy of it lingers in the heap.
  keyDer.fill(0);
  const certificate = new X509Certificate(Buffer.from(reply.certificateDer));
  return {
    privateKey,
    certificate,
    certificateDer: certificate.raw,
    otherCertificates: reply.otherCertificatesDer.map((der) => new X509Certificate(Buffer.from(der))),
  };
}
