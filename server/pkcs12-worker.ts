/**
 * Opens the server's PKCS#12 bundle for pkcs12-off-thread.ts and answers
 * once; the thread then ends, and node-forge with it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isSknockError } from '../client-lib/errors.js';
import { loadPkcs12File } from '../client-lib/pkcs12.js';
import type { Pkcs12WorkerData, Pkcs12WorkerReply } from './pkcs12-off-thread.js';

if (parentPort === null) throw new Error('pkcs12-worker.js runs as a worker thread of pkcs12-off-thread.ts');
const { file, password } = workerData as Pkcs12WorkerData;
let reply: Pkcs12WorkerReply;
try {
  const bundle = loadPkcs12File(file, password);
  reply = {
    ok: true,
    privateKeyPkcs8: bundle.privateKey.export({ format: 'der', type: 'pkcs8' }),
    certificateDer: bundle.certificateDer,
    otherCertificatesDer: bundle.otherCertificates.map((certificate) => certificate.raw),
  };
} catch (error) {
  reply = { ok: false, code: isSknockError(error) ? error.code : undefined, message: error instanceof Error ? error.message : String(error) };
}
parentPort.postMessage(reply);
