// Loopback upstreams for end-to-end tests: an HTTPS echo server that returns
// exactly what it received, with certificates from a test CA.

import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createTestPki, type TestPki } from './testPki.ts';

/** What the echo upstream saw of one request. */
export interface EchoedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  bodyBytes: number;
  body: string;
}

export interface EchoUpstream {
  port: number;
  pki: TestPki;
  requests: EchoedRequest[];
  server: https.Server;
  close(): Promise<void>;
}

/**
 * Starts an HTTPS server on 127.0.0.1 for `names`. Every request is answered with a
 * JSON echo of itself, except the paths that `routes` handles.
 */
export async function startEchoUpstream(
  names: string[],
  routes: Record<string, http.RequestListener> = {},
  pki?: TestPki,
): Promise<EchoUpstream> {
  const testPki = pki ?? (await createTestPki());
  const certificate = await testPki.issueServerCertificate(names);
  const requests: EchoedRequest[] = [];

  const server = https.createServer({ cert: certificate.certPem, key: certificate.keyPem, requestTimeout: 0 }, (req, res) => {
    const route = routes[(req.url ?? '').split('?')[0]!];
    if (route) {
      route(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
      if (bodyBytes <= 1024 * 1024) chunks.push(chunk);
    });
    req.on('end', () => {
      const echoed: EchoedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyBytes,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(echoed);
      const body = JSON.stringify(echoed);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');

  return {
    port: (server.address() as AddressInfo).port,
    pki: testPki,
    requests,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Returns the one request the upstream recorded for `url` (path and query) at index
 * `since` or later, and throws when it recorded none or several. The upstream's record
 * is where tests read injected credentials, because the proxy masks them in the echo
 * that the client reads.
 */
export function recordedRequest(upstream: EchoUpstream, url: string, since = 0): EchoedRequest {
  const matches = upstream.requests.slice(since).filter((request) => request.url === url);
  if (matches.length !== 1) {
    throw new Error(`the echo upstream recorded ${matches.length} requests for ${url} since request ${since}; expected 1`);
  }
  return matches[0]!;
}

/** Builds the mask the proxy writes over an echoed secret: one `*` per UTF-8 byte of `secret`. */
export function reflectionMask(secret: string): string {
  return '*'.repeat(Buffer.byteLength(secret, 'utf8'));
}
