// Raw-socket clients for the adversarial suites: byte-exact requests to the proxy
// listener and inside an intercepted TLS tunnel, so malformed HTTP reaches the
// proxy's parser as written instead of being fixed up by an HTTP client.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import type { ProxyLimits } from '../../src/proxy/limits.ts';
import { startAgentProxy, type RunningAgentProxy } from '../../src/runtime/agentProxy.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';
import type { EchoUpstream } from '../helpers/upstreams.ts';

export interface ProxyUnderTest {
  proxy: RunningAgentProxy;
  port: number;
  caPem: string;
  createSession(channel: string): Promise<CreatedSession>;
  metrics(): Promise<string>;
  close(): Promise<void>;
}

export interface StartOptions {
  upstream: EchoUpstream;
  /** Host names pinned to the echo upstream's port on 127.0.0.1. */
  hosts: string[];
  bundles: unknown[];
  limits?: Partial<ProxyLimits>;
  extraPins?: Array<{ host: string; port: number; address: string }>;
}

/** Starts an in-process proxy whose listener limits can be lowered, with the test hosts pinned to loopback. */
export async function startProxy(options: StartOptions): Promise<ProxyUnderTest> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-adversarial-'));
  const caFile = path.join(dir, 'upstream-ca.pem');
  writeFileSync(caFile, options.upstream.pki.caPem);
  const proxy = await startAgentProxy({
    dataDir: path.join(dir, 'data'),
    proxyListen: { host: '127.0.0.1', port: 0 },
    adminListen: { host: '127.0.0.1', port: 0 },
    upstreamCaFiles: [caFile],
    resolvePins: [...options.hosts.map((host) => ({ host, port: options.upstream.port, address: '127.0.0.1' })), ...(options.extraPins ?? [])],
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    limits: options.limits,
  });
  const applied = await proxy.apply({ egress: { default: 'allow', allowPrivateNetworks: ['127.0.0.1/32'] }, bundles: options.bundles });
  if (!applied.ok) {
    await proxy.stop();
    throw new Error(`test configuration rejected: ${JSON.stringify(applied)}`);
  }

  const admin = async (method: string, apiPath: string, body?: unknown) => {
    const response = await fetch(`${proxy.adminUrl}${apiPath}`, {
      method,
      headers: { authorization: `Bearer ${proxy.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, text: await response.text() };
  };

  return {
    proxy,
    port: proxy.proxyAddress.port,
    caPem: readFileSync(proxy.caPath, 'utf8'),
    async createSession(channel) {
      const created = await admin('POST', '/api/v1/sessions', { channel });
      assert.equal(created.status, 201, created.text);
      return JSON.parse(created.text) as CreatedSession;
    },
    async metrics() {
      return (await admin('GET', '/metrics')).text;
    },
    async close() {
      await proxy.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function proxyAuthorization(session: { id: string; token: string }): string {
  return `Basic ${Buffer.from(`${session.id}:${session.token}`).toString('base64')}`;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Everything received, for checks that no secret came back. */
  raw: string;
}

/** Parses the first response in `raw`, or returns null when no complete head arrived. */
export function parseRawResponse(raw: string): RawResponse | null {
  const headEnd = raw.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const [statusLine, ...lines] = raw.slice(0, headEnd).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = raw.slice(headEnd + 4);
  const length = headers['content-length'];
  return { status, headers, body: length === undefined ? rest : rest.slice(0, Number(length)), raw };
}

/**
 * Writes `bytes` to `socket` and collects what comes back until the peer closes, a
 * complete response with Content-Length has arrived (unless `untilClose`), or
 * `timeoutMs` passes.
 */
export async function exchange(
  socket: net.Socket | tls.TLSSocket,
  bytes: string | Buffer,
  timeoutMs = 5_000,
  options: { untilClose?: boolean } = {},
): Promise<{ raw: string; closed: boolean }> {
  let raw = '';
  let closed = false;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      resolve();
    };
    socket.on('data', (chunk: Buffer) => {
      raw += chunk.toString('latin1');
      const parsed = parseRawResponse(raw);
      if (!options.untilClose && parsed && parsed.headers['content-length'] !== undefined && parsed.body.length >= Number(parsed.headers['content-length'])) finish();
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      closed = true;
      finish();
    });
  });
  if (bytes.length > 0) socket.write(bytes);
  await done;
  return { raw, closed };
}

/** Sends raw bytes straight to the proxy listener on a new connection and returns the parsed answer. */
export async function rawToProxy(port: number, bytes: string | Buffer, timeoutMs = 5_000): Promise<RawResponse & { closed: boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const { raw, closed } = await exchange(socket, bytes, timeoutMs);
  socket.destroy();
  const parsed = parseRawResponse(raw);
  assert.ok(parsed, `no complete response; received ${JSON.stringify(raw.slice(0, 200))}`);
  return { ...parsed, closed };
}

/** Opens `CONNECT target` with the session and returns the socket after `200`, failing the test otherwise. */
export async function openConnect(port: number, target: string, session: { id: string; token: string }): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: ${proxyAuthorization(session)}\r\n\r\n`);
  const head = await readHead(socket);
  assert.match(head, /^HTTP\/1\.1 200 /, `CONNECT ${target} was refused: ${head}`);
  return socket;
}

/** Sends a CONNECT and returns the raw answer, for refusals. */
export async function connectAnswer(port: number, target: string, session: { id: string; token: string }): Promise<{ response: RawResponse; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: ${proxyAuthorization(session)}\r\n\r\n`);
  const head = await readHead(socket);
  const response = parseRawResponse(`${head}\r\n\r\n`);
  assert.ok(response);
  return { response, socket };
}

/** Reads up to the end of a response head without consuming bytes after it. */
function readHead(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      const rest = received.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve(received.subarray(0, end).toString('latin1'));
    };
    const onClose = () => reject(new Error(`the proxy closed the connection after ${JSON.stringify(received.toString('latin1'))}`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** Opens an intercepted tunnel and completes TLS with the proxy's leaf certificate for `host`. */
export async function openTlsTunnel(proxyPort: number, host: string, upstreamPort: number, session: { id: string; token: string }, caPem: string): Promise<tls.TLSSocket> {
  const socket = await openConnect(proxyPort, `${host}:${upstreamPort}`, session);
  const tlsSocket = tls.connect({ socket, servername: host, ca: caPem, ALPNProtocols: ['http/1.1'] });
  await once(tlsSocket, 'secureConnect');
  return tlsSocket;
}

/** Sends raw bytes inside a new intercepted tunnel and returns the parsed answer. */
export async function rawInTunnel(
  proxy: ProxyUnderTest,
  session: { id: string; token: string },
  host: string,
  upstreamPort: number,
  bytes: string | Buffer,
  timeoutMs = 5_000,
): Promise<RawResponse & { closed: boolean }> {
  const tlsSocket = await openTlsTunnel(proxy.port, host, upstreamPort, session, proxy.caPem);
  const { raw, closed } = await exchange(tlsSocket, bytes, timeoutMs);
  tlsSocket.destroy();
  const parsed = parseRawResponse(raw);
  assert.ok(parsed, `no complete response; received ${JSON.stringify(raw.slice(0, 200))}`);
  return { ...parsed, closed };
}

/** Asserts a problem response with the proxy's error code. */
export function assertRefusal(response: RawResponse, status: number, code: string): void {
  assert.equal(response.status, status, `expected ${status} ${code}, got ${response.status}: ${response.body.slice(0, 300)}`);
  assert.equal(response.headers['x-agent-proxy-error'], code);
  assert.equal(response.headers['content-type'], 'application/problem+json');
}
