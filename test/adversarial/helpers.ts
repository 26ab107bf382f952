// Shared set-up for the adversarial suites on host names, redirects, private egress and
// sandbox-chosen parameters. Every proxy started here resolves names through a fake DNS
// and dials through a guard that refuses, and records, any address off loopback, so a
// broken proxy fails the test instead of reaching the network.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { TestContext } from 'node:test';
import type { HostResolver, ResolvedAddress } from '../../src/proxy/dialer.ts';
import { cidrContains, parseCidr } from '../../src/policy/ipAddress.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import type { TestPki } from '../helpers/testPki.ts';
import type { EchoedRequest, EchoUpstream } from '../helpers/upstreams.ts';

export const ADV_CHANNEL = 'C0ADV';

// Only these reach the local host: an IPv4-compatible or 6to4 form of 127.0.0.1 does not.
const LOOPBACK_NETWORKS = ['127.0.0.0/8', '::1/128', '::ffff:127.0.0.0/104'].map((network) => parseCidr(network));

/** A DNS answer: fixed addresses, or a function of how many times the name was looked up before. */
export type AdvDnsAnswer = readonly string[] | ((previousLookups: number) => readonly string[]);

export interface AdvFakeDns {
  resolver: HostResolver;
  /** Every name looked up, in order. */
  lookups: string[];
}

/** Builds a resolver that answers only the names in `records` and fails every other lookup with ENOTFOUND. */
export function advFakeDns(records: Record<string, AdvDnsAnswer>): AdvFakeDns {
  const lookups: string[] = [];
  const resolver: HostResolver = async (host) => {
    const previous = lookups.filter((name) => name === host).length;
    lookups.push(host);
    const answer = records[host];
    if (answer === undefined) {
      throw Object.assign(new Error(`fake DNS has no record for ${host}`), { code: 'ENOTFOUND' });
    }
    const addresses = typeof answer === 'function' ? answer(previous) : answer;
    return addresses.map((address): ResolvedAddress => ({ address, family: net.isIP(address) === 6 ? 6 : 4 }));
  };
  return { resolver, lookups };
}

export interface AdvConnectGuard {
  guard: (address: ResolvedAddress, port: number) => void;
  /** Every address the proxy dialled, allowed or not. */
  dials: string[];
  /** Dials the guard refused because they would have left loopback. */
  violations: string[];
}

/** Builds a connect guard that lets the proxy dial loopback only and records everything it tried. */
export function advConnectGuard(): AdvConnectGuard {
  const dials: string[] = [];
  const violations: string[] = [];
  const guard = (address: ResolvedAddress, port: number) => {
    const dialled = `${address.address}:${port}`;
    dials.push(dialled);
    if (!LOOPBACK_NETWORKS.some((network) => cidrContains(network, address.address))) {
      violations.push(dialled);
      throw new Error(`test connect guard: the proxy tried to dial ${dialled}, which is off loopback`);
    }
  };
  return { guard, dials, violations };
}

export interface AdvProxy {
  harness: Harness;
  session: CreatedSession;
  proxyPort: number;
  adminPort: number;
  proxyCaPem: string;
  dns: AdvFakeDns;
  guard: AdvConnectGuard;
}

export interface AdvProxyOptions {
  records: Record<string, AdvDnsAnswer>;
  credentials?: unknown[];
  egress?: { default?: 'allow' | 'deny'; allow?: string[]; allowPrivateNetworks?: string[] };
  upstreamCaPem: string[];
}

/**
 * Starts a proxy whose only bundle covers ADV_CHANNEL, with 127.0.0.1/32 allowed so it
 * can reach the loopback upstreams, and stops it after the test. The test fails if the
 * proxy tried to dial off loopback.
 */
export async function advStartProxy(t: TestContext, options: AdvProxyOptions): Promise<AdvProxy> {
  const dns = advFakeDns(options.records);
  const guard = advConnectGuard();
  const harness = await startHarness({
    upstreamCaPem: options.upstreamCaPem,
    resolver: dns.resolver,
    connectGuard: guard.guard,
    config: {
      egress: { default: 'allow', allowPrivateNetworks: ['127.0.0.1/32'], ...options.egress },
      bundles: [{ name: 'adversarial', channels: [ADV_CHANNEL], credentials: options.credentials ?? [] }],
    },
  });
  t.after(async () => {
    await harness.close();
    assert.deepEqual(guard.violations, [], 'the proxy tried to dial an address off loopback');
  });

  const session = await harness.createSession(ADV_CHANNEL);
  return {
    harness,
    session,
    proxyPort: harness.proxy.proxyAddress.port,
    adminPort: harness.proxy.adminAddress.port,
    proxyCaPem: readFileSync(harness.proxy.caPath, 'utf8'),
    dns,
    guard,
  };
}

export function advProxyAuthorization(session: { id: string; token: string }): string {
  return `Basic ${Buffer.from(`${session.id}:${session.token}`).toString('base64')}`;
}

// ---------------------------------------------------------------- raw client

export interface AdvResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Returns the X-Agent-Proxy-Error code of a response, or undefined. */
export function advErrorCode(response: AdvResponse): string | undefined {
  const value = response.headers['x-agent-proxy-error'];
  return Array.isArray(value) ? value[0] : value;
}

/** Asserts the exact refusal: status and X-Agent-Proxy-Error code. */
export function advAssertRefused(response: AdvResponse, status: number, code: string): void {
  assert.equal(response.status, status, `expected ${status} ${code}, got ${response.status}: ${response.body}`);
  assert.equal(advErrorCode(response), code, `expected X-Agent-Proxy-Error ${code}: ${response.body}`);
}

/**
 * Sends `CONNECT target` as raw bytes (so malformed targets reach the proxy as written)
 * and returns the socket after a 200, or the whole error response.
 */
export async function advConnect(proxyPort: number, target: string, authorization: string | null): Promise<{ response: AdvResponse; socket: net.Socket }> {
  const socket = net.connect(proxyPort, '127.0.0.1');
  await once(socket, 'connect');
  const authorizationLine = authorization === null ? '' : `Proxy-Authorization: ${authorization}\r\n`;
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${authorizationLine}\r\n`);

  let received = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const finish = (response: AdvResponse) => {
      socket.off('data', onData);
      socket.off('error', reject);
      socket.off('end', onEnd);
      resolve({ response, socket });
    };
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = parseHead(received.subarray(0, headEnd).toString('latin1'));
      const body = received.subarray(headEnd + 4);
      const length = Number(head.headers['content-length'] ?? 0);
      if (head.status === 200 || body.length >= length) {
        finish({ ...head, body: body.toString('utf8') });
      }
    };
    const onEnd = () => {
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd >= 0) {
        finish({ ...parseHead(received.subarray(0, headEnd).toString('latin1')), body: received.subarray(headEnd + 4).toString('utf8') });
      } else {
        reject(new Error(`the proxy closed the connection after ${JSON.stringify(received.toString('latin1'))}`));
      }
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('end', onEnd);
  });
}

function parseHead(text: string): { status: number; headers: Record<string, string> } {
  const [statusLine, ...lines] = text.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers };
}

export interface AdvTlsOptions {
  /** The TLS server name (SNI) to send; none for an IP literal. */
  servername?: string;
  /** The name or address the certificate must carry when no servername is sent. */
  identity?: string;
  ca: string;
  /** Accept a certificate for another name, to send an SNI or Host that differs from the CONNECT target. */
  skipNameCheck?: boolean;
}

export interface AdvRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  /** Header lines as a flat [name, value, …] list, sent as written, for repeated Host lines. Replaces `headers`. */
  rawHeaders?: string[];
  body?: string;
}

export interface AdvTlsSession {
  /** Sends one request on the kept-alive TLS connection. */
  request(request: AdvRequest): Promise<AdvResponse>;
  close(): void;
}

/** Speaks TLS inside an open tunnel and returns a client that sends requests one after another on that connection. */
export async function advTlsInTunnel(socket: net.Socket, options: AdvTlsOptions): Promise<AdvTlsSession> {
  const tlsSocket = tls.connect({
    socket,
    ...(options.servername === undefined ? {} : { servername: options.servername }),
    ...(options.identity === undefined ? {} : { host: options.identity }),
    ca: options.ca,
    ALPNProtocols: ['http/1.1'],
    ...(options.skipNameCheck ? { checkServerIdentity: () => undefined } : {}),
  });
  await once(tlsSocket, 'secureConnect');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  (agent as unknown as { createConnection: () => net.Socket }).createConnection = () => tlsSocket;

  return {
    request(request) {
      return new Promise<AdvResponse>((resolve, reject) => {
        const outgoing = http.request(
          { agent, method: request.method ?? 'GET', path: request.path ?? '/', headers: request.rawHeaders ?? request.headers ?? {}, setHost: false },
          (response) => advCollect(response).then(resolve, reject),
        );
        outgoing.on('error', reject);
        outgoing.end(request.body);
      });
    },
    close() {
      agent.destroy();
      tlsSocket.destroy();
    },
  };
}

/** Opens a CONNECT tunnel, speaks TLS in it and sends one request. */
export async function advRequestThroughTunnel(
  proxy: AdvProxy,
  target: string,
  tlsOptions: AdvTlsOptions,
  request: AdvRequest,
): Promise<AdvResponse> {
  const { response, socket } = await advConnect(proxy.proxyPort, target, advProxyAuthorization(proxy.session));
  assert.equal(response.status, 200, `CONNECT ${target} was answered ${response.status}: ${response.body}`);
  const session = await advTlsInTunnel(socket, tlsOptions);
  try {
    return await session.request(request);
  } finally {
    session.close();
  }
}

/** Sends an absolute-form request (`GET http://host/path`) straight to the proxy. */
export function advAbsoluteForm(proxy: AdvProxy, target: string, request: AdvRequest = {}): Promise<AdvResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      {
        host: '127.0.0.1',
        port: proxy.proxyPort,
        method: request.method ?? 'GET',
        path: target,
        headers: request.rawHeaders
          ? ['proxy-authorization', advProxyAuthorization(proxy.session), ...request.rawHeaders]
          : { 'proxy-authorization': advProxyAuthorization(proxy.session), ...request.headers },
        agent: false,
        setHost: false,
      },
      (response) => advCollect(response).then(resolve, reject),
    );
    outgoing.on('error', reject);
    outgoing.end(request.body);
  });
}

async function advCollect(response: http.IncomingMessage): Promise<AdvResponse> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return { status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') };
}

/**
 * Starts an HTTPS echo server on a given loopback address and port, for an attacker that
 * listens on the same port as the credentialed upstream but at another address, so that
 * only the host name tells the two apart.
 */
export async function advStartEchoOn(address: string, port: number, names: string[], pki: TestPki): Promise<EchoUpstream> {
  const certificate = await pki.issueServerCertificate(names);
  const requests: EchoedRequest[] = [];
  const server = https.createServer({ cert: certificate.certPem, key: certificate.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const echoed: EchoedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: body.length, body };
      requests.push(echoed);
      const text = JSON.stringify(echoed);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.listen(port, address);
  await once(server, 'listening');
  return {
    port,
    pki,
    requests,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------- credential leak checks

/** Asserts that nothing `upstream` received, in any header, path or body, contains one of `secrets`. */
export function advAssertNoSecretReached(upstream: Pick<EchoUpstream, 'requests'>, secrets: readonly string[], label: string): void {
  const seen = JSON.stringify(upstream.requests);
  for (const secret of secrets) {
    assert.ok(!seen.includes(secret), `${label} received the credential ${secret}`);
  }
}

/** Asserts that a response the sandbox got does not contain one of `secrets`. */
export function advAssertNoSecretInResponse(response: AdvResponse, secrets: readonly string[]): void {
  const seen = JSON.stringify(response);
  for (const secret of secrets) {
    assert.ok(!seen.includes(secret), `the sandbox received the credential ${secret}`);
  }
}
