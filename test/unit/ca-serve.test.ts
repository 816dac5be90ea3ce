import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { serveCrl } from '../../certificates/ca/operations.js';
import { compileProgram, makeSampleCa, runCaOk, temporaryDirectories, testPassword } from './ca-harness.js';

describe('sknock-ca serve: the CRL over HTTP', () => {
  const directories = temporaryDirectories();
  let dir: string;
  let server: Server;
  let url: string;
  const errors: Error[] = [];

  beforeAll(async () => {
    dir = await makeSampleCa(await directories.make());
    ({ server, url } = await serveCrl({ directory: dir, port: 0, host: '127.0.0.1' }, (error) => errors.push(error)));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await directories.removeAll();
    expect(errors).toEqual([]);
  });

  it('answers 404 until a CRL exists, then serves crl.der with its validators, and answers conditional requests', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/crl\.der$/);
    const none = await fetch(url);
    expect([none.status, await none.text()]).toEqual([404, expect.stringContaining('no CRL has been written yet')]);

    await runCaOk(['crl', '--dir', dir]);
    const first = await fetch(url);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('application/pkix-crl');
    expect(Buffer.from(await first.arrayBuffer()).equals(await readFile(path.join(dir, 'crl.der')))).toBe(true);
    const etag = first.headers.get('etag')!;
    const lastModified = first.headers.get('last-modified')!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(Date.parse(lastModified)).not.toBeNaN();

    expect((await fetch(url, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(url, { headers: { 'if-none-match': `"other", W/${etag}` } })).status).toBe(304);
    expect((await fetch(url, { headers: { 'if-modified-since': lastModified } })).status).toBe(304);
    expect((await fetch(url, { headers: { 'if-modified-since': 'Thu, 01 Jan 2015 00:00:00 GMT' } })).status).toBe(200);
    // If-None-Match decides when both are sent.
    expect((await fetch(url, { headers: { 'if-none-match': '"other"', 'if-modified-since': lastModified } })).status).toBe(200);

    await runCaOk(['revoke', '--dir', dir, '--name', 'mallory']);
    await runCaOk(['crl', '--dir', dir]);
    const next = await fetch(url, { headers: { 'if-none-match': etag } });
    expect(next.status).toBe(200);
    expect(next.headers.get('etag')).not.toBe(etag);
    expect(Buffer.from(await next.arrayBuffer()).equals(await readFile(path.join(dir, 'crl.der')))).toBe(true);
  });

  it('answers HEAD without a body, refuses other methods and paths', async () => {
    const head = await fetch(url, { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([200, '']);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(100);
    const post = await fetch(url, { method: 'POST', body: 'x' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    expect((await fetch(new URL('/ca.pfx', url))).status).toBe(404);
    expect((await fetch(new URL('/../ca.pfx', url))).status).toBe(404);
  });

  it('refuses a directory without a CA and a port already in use', async () => {
    const empty = await directories.make();
    await expect(serveCrl({ directory: empty, port: 0, host: '127.0.0.1' }, () => undefined)).rejects.toMatchObject({
      code: 'SKNOCK_CA_NOT_INITIALIZED',
    });
    const port = Number(new URL(url).port);
    await expect(serveCrl({ directory: dir, port, host: '127.0.0.1' }, () => undefined)).rejects.toMatchObject({
      code: 'SKNOCK_CA_LISTEN',
      message: expect.stringContaining('EADDRINUSE'),
    });
  });

  it('runs as a program until SIGTERM and then exits 0', async () => {
    const { program, remove } = await compileProgram();
    onTestFinished(remove);
    const child = spawn(process.execPath, [program, 'serve', '--dir', dir, '--port', '0'], {
      env: { ...process.env, SKNOCK_PFX_PASSWORD: testPassword },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const announced = await new Promise<string>((resolve, reject) => {
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = /serving (\S+)/.exec(output);
          if (match) resolve(match[1]!);
        });
        child.once('exit', () => reject(new Error(`serve exited early: ${output}`)));
      });
      expect((await fetch(announced)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
