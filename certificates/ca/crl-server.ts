/**
 * Serves DIR/crl.der over HTTP for the servers' CRL updaters. The file is
 * read on every request, so a CRL that `sknock-ca crl` has just written (by
 * atomic rename) is served at once. Last-Modified and ETag let an updater
 * ask "anything newer?" and get 304 Not Modified.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export const crlPath = '/crl.der';

interface CrlSnapshot {
  readonly bytes: Buffer;
  /** Whole seconds: HTTP dates carry no fractions, and If-Modified-Since compares in seconds. */
  readonly lastModified: Date;
  readonly etag: string;
}

async function snapshot(file: string): Promise<CrlSnapshot | undefined> {
  try {
    const [bytes, stats] = await Promise.all([readFile(file), stat(file)]);
    const etag = `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"`;
    return { bytes, lastModified: new Date(Math.floor(stats.mtimeMs / 1000) * 1000), etag };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** RFC 9110 13.1.2/13.1.3: If-None-Match (weak comparison) decides when present; If-Modified-Since otherwise. */
export function isNotModified(headers: IncomingMessage['headers'], crl: Pick<CrlSnapshot, 'etag' | 'lastModified'>): boolean {
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    return ifNoneMatch
      .split(',')
      .map((tag) => tag.trim().replace(/^W\//, ''))
      .some((tag) => tag === '*' || tag === crl.etag);
  }
  const ifModifiedSince = Date.parse(headers['if-modified-since'] ?? '');
  return !Number.isNaN(ifModifiedSince) && crl.lastModified.getTime() <= ifModifiedSince;
}

function plain(response: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  response.end(`${text}\n`);
}

async function respond(request: IncomingMessage, response: ServerResponse, file: string): Promise<void> {
  const requestPath = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (requestPath !== crlPath) return plain(response, 404, `not found: the CRL is at ${crlPath}`);
  if (request.method !== 'GET' && request.method !== 'HEAD') return plain(response, 405, 'GET or HEAD only', { allow: 'GET, HEAD' });
  const crl = await snapshot(file);
  if (!crl) return plain(response, 404, 'no CRL has been written yet (sknock-ca crl)');
  const headers = {
    'last-modified': crl.lastModified.toUTCString(),
    etag: crl.etag,
    // Revalidate every time: a revocation must reach the servers on their next poll.
    'cache-control': 'no-cache',
  };
  if (isNotModified(request.headers, crl)) {
    response.writeHead(304, headers);
    response.end();
    return;
  }
  response.writeHead(200, { ...headers, 'content-type': 'application/pkix-crl', 'content-length': crl.bytes.length });
  response.end(request.method === 'HEAD' ? undefined : crl.bytes);
}

/** An HTTP server for `crlFile`; the caller listens and closes it. */
export function createCrlServer(crlFile: string, onError: (error: Error) => void): Server {
  return createServer((request, response) => {
    respond(request, response, crlFile).catch((error: Error) => {
      onError(error);
      if (!response.headersSent) plain(response, 500, 'cannot read the CRL');
      else response.destroy();
    });
  });
}
