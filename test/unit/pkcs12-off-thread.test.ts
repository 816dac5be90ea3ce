import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isSknockError } from '../../client-lib/errors.js';
import { loadPkcs12File } from '../../client-lib/pkcs12.js';
import { loadPkcs12FileOffThread } from '../../server/pkcs12-off-thread.js';
import { repoRoot } from '../helpers/fixtures.js';

const serverPfx = path.join(repoRoot, 'certificates', 'dev', 'server', 'devserver.pfx');
const devPassword = 'portknocking';
/** The compiled worker: test/global-setup.ts builds dist/ before the tests run. */
const workerScript = pathToFileURL(path.join(repoRoot, 'dist', 'server', 'pkcs12-worker.js'));
const scratch = mkdtempSync(path.join(tmpdir(), 'sknock-pkcs12-thread-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  return isSknockError(error) ? error.code : `not a SknockError: ${String(error)}`;
}

describe('loadPkcs12FileOffThread', () => {
  it('gives the bundle loadPkcs12File gives: the same key, certificate and other certificates', async () => {
    const here = loadPkcs12File(serverPfx, devPassword);
    const there = await loadPkcs12FileOffThread(serverPfx, devPassword, workerScript);
    const pkcs8 = { format: 'der', type: 'pkcs8' } as const;
    expect(there.privateKey.export(pkcs8).equals(here.privateKey.export(pkcs8))).toBe(true);
    expect(there.certificateDer.equals(here.certificateDer)).toBe(true);
    expect(there.certificate.subject).toBe(here.certificate.subject);
    expect(there.otherCertificates.map((certificate) => certificate.fingerprint256)).toEqual(here.otherCertificates.map((certificate) => certificate.fingerprint256));
  });

  it('keeps the error codes of the thread that opened the file', async () => {
    expect(await codeOf(loadPkcs12FileOffThread(serverPfx, 'not the password', workerScript))).toBe('SKNOCK_PFX_BAD_PASSWORD');
    expect(await codeOf(loadPkcs12FileOffThread(path.join(scratch, 'missing.pfx'), devPassword, workerScript))).toBe('SKNOCK_FILE_NOT_FOUND');
    const garbage = path.join(scratch, 'garbage.pfx');
    writeFileSync(garbage, Buffer.from('not a PKCS#12 bundle'));
    expect(await codeOf(loadPkcs12FileOffThread(garbage, devPassword, workerScript))).toBe('SKNOCK_PFX_MALFORMED');
  });

  it('fails with SKNOCK_PFX_WORKER_FAILED when its thread dies without an answer', async () => {
    const dying = path.join(scratch, 'dying-worker.mjs');
    writeFileSync(dying, 'process.exit(3);\n');
    const failure = loadPkcs12FileOffThread(serverPfx, devPassword, pathToFileURL(dying));
    expect(await codeOf(failure)).toBe('SKNOCK_PFX_WORKER_FAILED');
    await expect(failure).rejects.toThrow(/exited with code 3/);
  });

  it('leaves node-forge out of the daemon main thread, which the client library loads', () => {
    const forgeModulesAfterImporting = (module: string): number => {
      const probe = [
        "import { createRequire } from 'node:module';",
        `await import(${JSON.stringify(pathToFileURL(path.join(repoRoot, 'dist', module)).href)});`,
        'const cached = Object.keys(createRequire(import.meta.url).cache);',
        "console.log(cached.filter((file) => file.includes('/node-forge/')).length);",
      ].join('\n');
      const file = path.join(scratch, `probe-${module.replace(/\W/g, '-')}.mjs`);
      writeFileSync(file, probe);
      return Number(execFileSync(process.execPath, [file], { encoding: 'utf8' }).trim());
    };
    expect(forgeModulesAfterImporting('server/sknock-server.js')).toBe(0);
    // The control: the same probe does see node-forge where it is loaded.
    expect(forgeModulesAfterImporting('client-lib/pkcs12.js')).toBeGreaterThan(0);
  });
});
