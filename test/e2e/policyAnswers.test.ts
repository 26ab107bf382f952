// The proxy's own responses, seen byte for byte by a raw client: 407 for sessions,
// 403 for egress policy and credential access, 409 for ambiguous credentials, 421
// for misdirected requests, and the headers the proxy strips in both directions.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { after, before, describe, test, type TestContext } from 'node:test';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { recordedRequest, reflectionMask, startEchoUpstream, type EchoedRequest, type EchoUpstream } from '../helpers/upstreams.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';

const SECRET = 'sk-policy-4e1d7b';
const OTHER_SECRET = 'sk-policy-other-90ac';
const CHANNEL = 'C0ENG';
const ALLOW_LOOPBACK = ['127.0.0.1/32'];

const API_HOST = 'api.example.test';
const OTHER_HOST = 'other.example.test';
const PLAIN_HOST = 'plain.example.test';

let upstream: EchoUpstream;
let plainUpstream: PlainEchoUpstream;

before(async () => {
  upstream = await startEchoUpstream([API_HOST, OTHER_HOST], {
    '/forged': (_req, res) => {
      res.writeHead(200, { 'x-agent-proxy-error': 'forged', 'x-agent-proxy-session': 'forged', 'x-upstream': 'kept', 'content-type': 'text/plain' });
      res.end('forged');
    },
  });
  plainUpstream = await startPlainEchoUpstream();
});

after(async () => {
  await upstream?.close();
  await plainUpstream?.close();
});

// ---------------------------------------------------------------- set-up helpers

interface ProxyUnderTest {
  harness: Harness;
  session: CreatedSession;
  proxyPort: number;
  proxyCaPem: string;
}

interface ConfigOptions {
  egress?: { default?: 'allow' | 'deny'; allow?: string[]; allowPrivateNetworks?: string[] };
  credentials?: unknown[];
  /** A second bundle covering the same channel. */
  otherCredentials?: unknown[];
}

function bearerCredential(name: string, token: string, allowedWebsites: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, type: 'bearer_token', token, allowedWebsites, ...extra };
}

/** Starts an in-process proxy whose pins send the test host names to the echo upstreams. It is stopped after the test. */
async function startProxy(t: TestContext, options: ConfigOptions = {}): Promise<ProxyUnderTest> {
  const bundles: unknown[] = [{ name: 'engineering', channels: [CHANNEL], credentials: options.credentials ?? [] }];
  if (options.otherCredentials) {
    bundles.push({ name: 'platform', channels: ['*'], credentials: options.otherCredentials });
  }
  const harness = await startHarness({
    upstreamCaPem: [upstream.pki.caPem],
    pins: [
      ...[API_HOST, OTHER_HOST].map((host) => ({ host, port: upstream.port, address: '127.0.0.1' })),
      { host: PLAIN_HOST, port: plainUpstream.port, address: '127.0.0.1' },
    ],
    config: { egress: { default: 'allow', allowPrivateNetworks: ALLOW_LOOPBACK, ...options.egress }, bundles },
  });
  t.after(() => harness.close());

  const session = await harness.createSession(CHANNEL);
  return { harness, session, proxyPort: harness.proxy.proxyAddress.port, proxyCaPem: readFileSync(harness.proxy.caPath, 'utf8') };
}

function apiTarget(host = API_HOST): string {
  return `${host}:${upstream.port}`;
}

function proxyAuthorization(session: { id: string; token: string }): string {
  return `Basic ${Buffer.from(`${session.id}:${session.token}`).toString('base64')}`;
}

// ---------------------------------------------------------------- raw client

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  [extension: string]: unknown;
}

/**
 * Sends a CONNECT with `proxyAuthorization` (none when null). Returns the socket after a
 * 200, or the complete error response otherwise.
 */
async function sendConnect(proxyPort: number, target: string, authorization: string | null): Promise<{ response: RawResponse; socket: net.Socket }> {
  const socket = net.connect(proxyPort, '127.0.0.1');
  await once(socket, 'connect');
  const authorizationLine = authorization === null ? '' : `Proxy-Authorization: ${authorization}\r\n`;
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${authorizationLine}\r\n`);

  let received = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd < 0) return;

      const head = parseResponseHead(received.subarray(0, headEnd).toString('latin1'));
      const body = received.subarray(headEnd + 4);
      const length = Number(head.headers['content-length'] ?? 0);
      if (head.status === 200 || body.length >= length) {
        socket.off('data', onData);
        socket.off('error', reject);
        socket.off('end', onEnd);
        resolve({ response: { ...head, body: body.toString('utf8') }, socket });
      }
    };
    const onEnd = () => reject(new Error(`the proxy closed the connection after ${JSON.stringify(received.toString('latin1'))}`));
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('end', onEnd);
  });
}

function parseResponseHead(text: string): { status: number; headers: Record<string, string> } {
  const [statusLine, ...lines] = text.split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers };
}

/** Opens a CONNECT tunnel with the session and asserts that the proxy accepted it. */
async function openTunnel(proxy: ProxyUnderTest, target = apiTarget()): Promise<net.Socket> {
  const { response, socket } = await sendConnect(proxy.proxyPort, target, proxyAuthorization(proxy.session));
  assert.equal(response.status, 200, `CONNECT ${target} was answered ${response.status}: ${response.body}`);
  return socket;
}

interface TunnelRequest {
  /** TLS server name (SNI) the client sends. */
  servername: string;
  ca: string;
  method?: string;
  path?: string;
  headers: Record<string, string>;
  body?: string;
  /** Accept a certificate for another name, to send an SNI that differs from the CONNECT target. */
  skipNameCheck?: boolean;
}

/** Speaks TLS and one HTTP/1.1 request inside an open tunnel. */
async function requestInTunnel(socket: net.Socket, request: TunnelRequest): Promise<RawResponse> {
  const tlsSocket = tls.connect({
    socket,
    servername: request.servername,
    ca: request.ca,
    ALPNProtocols: ['http/1.1'],
    ...(request.skipNameCheck ? { checkServerIdentity: () => undefined } : {}),
  });
  await once(tlsSocket, 'secureConnect');

  try {
    return await new Promise<RawResponse>((resolve, reject) => {
      const outgoing = http.request({ createConnection: () => tlsSocket, method: request.method ?? 'GET', path: request.path ?? '/', headers: request.headers }, (response) => {
        collectResponse(response).then(resolve, reject);
      });
      outgoing.on('error', reject);
      outgoing.end(request.body);
    });
  } finally {
    tlsSocket.destroy();
  }
}

/** Sends an absolute-form request (`GET http://host/path`) straight to the proxy. */
async function sendAbsoluteForm(proxyPort: number, target: string, headers: Record<string, string>, method = 'GET'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request({ host: '127.0.0.1', port: proxyPort, method, path: target, headers, agent: false }, (response) => {
      collectResponse(response).then(resolve, reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

async function collectResponse(response: http.IncomingMessage): Promise<RawResponse> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { status: response.statusCode ?? 0, headers, body: Buffer.concat(chunks).toString('utf8') };
}

/** Asserts the proxy's problem response shape and returns its parsed body. */
function assertProblem(response: RawResponse, status: number, code: string): ProblemBody {
  assert.equal(response.status, status, response.body);
  assert.equal(response.headers['x-agent-proxy-error'], code);
  assert.equal(response.headers['content-type'], 'application/problem+json');
  const body = JSON.parse(response.body) as ProblemBody;
  assert.equal(body.type, `urn:agent-proxy:error:${code}`);
  assert.equal(body.status, status);
  assert.equal(body.code, code);
  return body;
}

function echoOf(response: RawResponse): EchoedRequest {
  assert.equal(response.status, 200, response.body);
  return JSON.parse(response.body) as EchoedRequest;
}

// ---------------------------------------------------------------- tests

describe('proxy authentication', () => {
  const PROXY_AUTHENTICATE = 'Basic realm="agent-proxy", charset="UTF-8"';

  test('missing and malformed credentials get 407', async (t) => {
    const proxy = await startProxy(t);
    const cases: Array<[string, string | null]> = [
      ['missing', null],
      ['bearer scheme', `Bearer ${proxy.session.token}`],
      ['no colon', `Basic ${Buffer.from(proxy.session.id).toString('base64')}`],
      ['not base64', 'Basic %%%'],
      ['wrong token', proxyAuthorization({ id: proxy.session.id, token: 'wrong-token' })],
      ['unknown session', proxyAuthorization({ id: 'ses_unknown', token: proxy.session.token })],
    ];

    for (const [name, authorization] of cases) {
      const { response, socket } = await sendConnect(proxy.proxyPort, apiTarget(), authorization);
      socket.destroy();

      const body = assertProblem(response, 407, 'proxy_auth_required');
      assert.equal(response.headers['proxy-authenticate'], PROXY_AUTHENTICATE, name);
      assert.equal(body.detail.includes(proxy.session.token), false, name);
    }
  });

  test('absolute-form without credentials gets 407', async (t) => {
    const proxy = await startProxy(t);

    const response = await sendAbsoluteForm(proxy.proxyPort, `http://${PLAIN_HOST}:${plainUpstream.port}/`, { host: `${PLAIN_HOST}:${plainUpstream.port}` });

    assertProblem(response, 407, 'proxy_auth_required');
    assert.equal(response.headers['proxy-authenticate'], PROXY_AUTHENTICATE);
    assert.equal(plainUpstream.requests.length, 0);
  });

  test('revoked session gets 407', async (t) => {
    const proxy = await startProxy(t);
    const revoked = await proxy.harness.admin('DELETE', `/api/v1/sessions/${proxy.session.id}`);
    assert.equal(revoked.status, 204);

    const { response, socket } = await sendConnect(proxy.proxyPort, apiTarget(), proxyAuthorization(proxy.session));
    socket.destroy();

    const body = assertProblem(response, 407, 'proxy_auth_required');
    assert.equal(response.headers['proxy-authenticate'], PROXY_AUTHENTICATE);
    assert.equal(body.session, proxy.session.id);
    assert.match(body.detail, /was revoked at /);
  });

  test('expired session gets 407', async (t) => {
    const proxy = await startProxy(t);
    const shortLived = await proxy.harness.createSession(CHANNEL, { ttl: '1s' });
    await new Promise((resolve) => setTimeout(resolve, 1200));

    const { response, socket } = await sendConnect(proxy.proxyPort, apiTarget(), proxyAuthorization(shortLived));
    socket.destroy();

    const body = assertProblem(response, 407, 'proxy_auth_required');
    assert.equal(response.headers['proxy-authenticate'], PROXY_AUTHENTICATE);
    assert.equal(body.session, shortLived.id);
    assert.equal(body.detail, `Session ${shortLived.id} expired at ${shortLived.expiresAt}. Create a new session.`);
  });

  test('revocation closes open tunnel', async (t) => {
    const proxy = await startProxy(t, { credentials: [bearerCredential('api', SECRET, [apiTarget()])] });
    const socket = await openTunnel(proxy);
    const closed = once(socket, 'close');
    socket.resume();
    const seenBefore = upstream.requests.length;

    const revoked = await proxy.harness.admin('DELETE', `/api/v1/sessions/${proxy.session.id}`);
    await closed;

    assert.equal(revoked.status, 204);
    assert.equal(upstream.requests.length, seenBefore);
  });
});

describe('egress policy', () => {
  test('default deny refuses unlisted host', async (t) => {
    const proxy = await startProxy(t, { egress: { default: 'deny', allow: [apiTarget()] } });

    const { response, socket } = await sendConnect(proxy.proxyPort, apiTarget(OTHER_HOST), proxyAuthorization(proxy.session));
    socket.destroy();

    const body = assertProblem(response, 403, 'egress_denied');
    assert.equal(body.host, OTHER_HOST);
    assert.equal(body.port, upstream.port);
    assert.equal(body.reason, 'not_on_allow_list');
    assert.match(body.detail, new RegExp(`^Agent Proxy policy does not allow connections to ${OTHER_HOST}:${upstream.port}: `));
  });

  test('default deny tunnels listed host', async (t) => {
    const proxy = await startProxy(t, { egress: { default: 'deny', allow: [apiTarget()] } });
    const socket = await openTunnel(proxy);

    // Only the upstream's CA verifies here, so the response came through an opaque tunnel.
    const response = await requestInTunnel(socket, { servername: API_HOST, ca: upstream.pki.caPem, path: '/listed', headers: { host: apiTarget() } });

    assert.equal(echoOf(response).url, '/listed');
  });

  test('default deny refuses absolute-form', async (t) => {
    const proxy = await startProxy(t, { egress: { default: 'deny', allow: [apiTarget()] } });
    const target = `${PLAIN_HOST}:${plainUpstream.port}`;

    const response = await sendAbsoluteForm(proxy.proxyPort, `http://${target}/`, { host: target, 'proxy-authorization': proxyAuthorization(proxy.session) });

    const body = assertProblem(response, 403, 'egress_denied');
    assert.equal(body.reason, 'not_on_allow_list');
    assert.equal(plainUpstream.requests.length, 0);
  });

  test('pinned loopback name refused without allowance', async (t) => {
    const proxy = await startProxy(t, { egress: { allowPrivateNetworks: [] } });

    const { response, socket } = await sendConnect(proxy.proxyPort, apiTarget(), proxyAuthorization(proxy.session));
    socket.destroy();

    const body = assertProblem(response, 403, 'egress_denied');
    assert.equal(body.host, API_HOST);
    assert.equal(body.address, '127.0.0.1');
    assert.equal(body.reason, 'loopback');
    assert.match(body.detail, new RegExp(`\\(${API_HOST} resolves to 127\\.0\\.0\\.1\\)`));
  });

  test('pinned loopback name allowed with allowance', async (t) => {
    const proxy = await startProxy(t, { egress: { allowPrivateNetworks: ALLOW_LOOPBACK } });
    const socket = await openTunnel(proxy);

    const response = await requestInTunnel(socket, { servername: API_HOST, ca: upstream.pki.caPem, path: '/pinned', headers: { host: apiTarget() } });

    assert.equal(echoOf(response).url, '/pinned');
  });

  const LOOPBACK_SPELLINGS: Array<[string, string]> = [
    ['127.0.0.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['[::1]', '::1'],
    ['[::ffff:127.0.0.1]', '::ffff:127.0.0.1'],
  ];
  const METADATA_SPELLINGS = ['169.254.169.254', '2852039166', '0xa9fea9fe', '0251.0376.0251.0376', '169.254.43518'];

  test('loopback spellings refused as CONNECT', async (t) => {
    const proxy = await startProxy(t, { egress: { allowPrivateNetworks: [] } });

    for (const [spelling] of LOOPBACK_SPELLINGS) {
      const { response, socket } = await sendConnect(proxy.proxyPort, `${spelling}:443`, proxyAuthorization(proxy.session));
      socket.destroy();

      const body = assertProblem(response, 403, 'egress_denied');
      assert.equal(body.reason, 'loopback', spelling);
    }
  });

  test('loopback spellings refused as absolute-form', async (t) => {
    const proxy = await startProxy(t, { egress: { allowPrivateNetworks: [] } });

    for (const [spelling] of LOOPBACK_SPELLINGS) {
      const response = await sendAbsoluteForm(proxy.proxyPort, `http://${spelling}:${plainUpstream.port}/`, {
        host: `${spelling}:${plainUpstream.port}`,
        'proxy-authorization': proxyAuthorization(proxy.session),
      });

      const body = assertProblem(response, 403, 'egress_denied');
      assert.equal(body.reason, 'loopback', spelling);
    }
    assert.equal(plainUpstream.requests.length, 0);
  });

  test('metadata spellings refused as CONNECT and absolute-form', async (t) => {
    const proxy = await startProxy(t, { egress: { allowPrivateNetworks: [] } });

    for (const spelling of METADATA_SPELLINGS) {
      const { response, socket } = await sendConnect(proxy.proxyPort, `${spelling}:80`, proxyAuthorization(proxy.session));
      socket.destroy();
      const connectBody = assertProblem(response, 403, 'egress_denied');
      assert.equal(connectBody.reason, 'metadata', spelling);
      assert.equal(connectBody.address, '169.254.169.254', spelling);

      const absolute = await sendAbsoluteForm(proxy.proxyPort, `http://${spelling}/latest/meta-data/`, { host: spelling, 'proxy-authorization': proxyAuthorization(proxy.session) });
      const absoluteBody = assertProblem(absolute, 403, 'egress_denied');
      assert.equal(absoluteBody.reason, 'metadata', spelling);
    }
  });

  test('metadata refused despite link-local allowance', async (t) => {
    const proxy = await startProxy(t, { egress: { allowPrivateNetworks: ['169.254.0.0/16'] } });

    for (const spelling of METADATA_SPELLINGS) {
      const { response, socket } = await sendConnect(proxy.proxyPort, `${spelling}:80`, proxyAuthorization(proxy.session));
      socket.destroy();

      const body = assertProblem(response, 403, 'egress_denied');
      assert.equal(body.reason, 'metadata', spelling);
    }
  });
});

describe('credential selection', () => {
  test('equally specific patterns get 409', async (t) => {
    const proxy = await startProxy(t, {
      credentials: [bearerCredential('api-main', SECRET, [apiTarget()])],
      otherCredentials: [bearerCredential('api-platform', OTHER_SECRET, [apiTarget()])],
    });

    const { response, socket } = await sendConnect(proxy.proxyPort, apiTarget(), proxyAuthorization(proxy.session));
    socket.destroy();

    const body = assertProblem(response, 409, 'ambiguous_credential');
    assert.deepEqual(body.credentials, ['api-main', 'api-platform']);
    assert.equal(body.host, API_HOST);
    assert.match(body.detail, /"api-main" \(bundle "engineering"\) and "api-platform" \(bundle "platform"\)/);
    assert.equal(response.body.includes(SECRET), false);
    assert.equal(response.body.includes(OTHER_SECRET), false);
  });

  test('more specific pattern wins', async (t) => {
    const proxy = await startProxy(t, {
      credentials: [bearerCredential('api-exact', SECRET, [apiTarget()])],
      otherCredentials: [bearerCredential('example-wildcard', OTHER_SECRET, [`*.example.test:${upstream.port}`])],
    });

    const seenBefore = upstream.requests.length;
    const exact = await requestInTunnel(await openTunnel(proxy), { servername: API_HOST, ca: proxy.proxyCaPem, path: '/exact', headers: { host: apiTarget() } });
    const wildcard = await requestInTunnel(await openTunnel(proxy, apiTarget(OTHER_HOST)), { servername: OTHER_HOST, ca: proxy.proxyCaPem, path: '/wildcard', headers: { host: apiTarget(OTHER_HOST) } });

    assert.equal(recordedRequest(upstream, '/exact', seenBefore).headers.authorization, `Bearer ${SECRET}`);
    assert.equal(recordedRequest(upstream, '/wildcard', seenBefore).headers.authorization, `Bearer ${OTHER_SECRET}`);
    assert.equal(echoOf(exact).headers.authorization, `Bearer ${reflectionMask(SECRET)}`);
    assert.equal(echoOf(wildcard).headers.authorization, `Bearer ${reflectionMask(OTHER_SECRET)}`);
  });
});

describe('intercepted requests', () => {
  test('Host naming another host gets 421', async (t) => {
    const proxy = await startProxy(t, { credentials: [bearerCredential('api', SECRET, [apiTarget()])] });
    const socket = await openTunnel(proxy);
    const seenBefore = upstream.requests.length;

    const response = await requestInTunnel(socket, { servername: API_HOST, ca: proxy.proxyCaPem, headers: { host: apiTarget(OTHER_HOST) } });

    const body = assertProblem(response, 421, 'misdirected_request');
    assert.equal(body.host, API_HOST);
    assert.match(body.detail, new RegExp(`^The Host header "${OTHER_HOST}:${upstream.port}" does not name the CONNECT target ${API_HOST}:${upstream.port}\\.`));
    assert.equal(upstream.requests.length, seenBefore);
  });

  test('SNI naming another host gets 421', async (t) => {
    const proxy = await startProxy(t, { credentials: [bearerCredential('api', SECRET, [apiTarget()])] });
    const socket = await openTunnel(proxy);
    const seenBefore = upstream.requests.length;

    const response = await requestInTunnel(socket, { servername: OTHER_HOST, ca: proxy.proxyCaPem, skipNameCheck: true, headers: { host: apiTarget() } });

    const body = assertProblem(response, 421, 'misdirected_request');
    assert.match(body.detail, new RegExp(`^The TLS server name "${OTHER_HOST}" does not match the CONNECT target ${API_HOST}\\.`));
    assert.equal(upstream.requests.length, seenBefore);
  });

  test('read access refuses POST', async (t) => {
    const proxy = await startProxy(t, { credentials: [bearerCredential('api-read', SECRET, [apiTarget()], { access: 'read' })] });
    const seenBefore = upstream.requests.length;

    const posted = await requestInTunnel(await openTunnel(proxy), {
      servername: API_HOST,
      ca: proxy.proxyCaPem,
      method: 'POST',
      path: '/v1/items',
      headers: { host: apiTarget(), 'content-type': 'application/json', 'content-length': '2' },
      body: '{}',
    });

    const body = assertProblem(posted, 403, 'method_not_allowed_by_credential');
    assert.equal(body.credential, 'api-read');
    assert.equal(body.method, 'POST');
    assert.equal(body.path, '/v1/items');
    assert.equal(upstream.requests.length, seenBefore);

    const read = await requestInTunnel(await openTunnel(proxy), { servername: API_HOST, ca: proxy.proxyCaPem, path: '/v1/items', headers: { host: apiTarget() } });
    assert.equal(echoOf(read).headers.authorization, `Bearer ${reflectionMask(SECRET)}`);
    const received = recordedRequest(upstream, '/v1/items', seenBefore);
    assert.equal(received.method, 'GET');
    assert.equal(received.headers.authorization, `Bearer ${SECRET}`);
  });

  test('rules restrict methods and paths', async (t) => {
    const rules = [{ methods: ['GET'], paths: ['/v1/items/*'] }];
    const proxy = await startProxy(t, { credentials: [bearerCredential('api-items', SECRET, [apiTarget()], { rules })] });
    const send = async (method: string, path: string) =>
      requestInTunnel(await openTunnel(proxy), { servername: API_HOST, ca: proxy.proxyCaPem, method, path, headers: { host: apiTarget() } });

    const allowedBefore = upstream.requests.length;
    const allowed = echoOf(await send('GET', '/v1/items/42?expand=1'));
    assert.equal(allowed.url, '/v1/items/42?expand=1');
    assert.equal(allowed.headers.authorization, `Bearer ${reflectionMask(SECRET)}`);
    assert.equal(recordedRequest(upstream, '/v1/items/42?expand=1', allowedBefore).headers.authorization, `Bearer ${SECRET}`);

    // Dot segments are resolved before the rules see the path, and the upstream gets the resolved path.
    const dotted = echoOf(await send('GET', '/v1/other/../items/7'));
    assert.equal(dotted.url, '/v1/items/7');

    const seenBefore = upstream.requests.length;
    const refusals: Array<[string, string, string]> = [
      ['GET', '/v1/users', '/v1/users'],
      ['GET', '/v1/items/42/history', '/v1/items/42/history'],
      ['GET', '/v1/items/../admin', '/v1/admin'],
      ['GET', '/v1/items/%2e%2e/admin', '/v1/admin'],
      ['DELETE', '/v1/items/42', '/v1/items/42'],
    ];
    for (const [method, path, checkedPath] of refusals) {
      const body = assertProblem(await send(method, path), 403, 'method_not_allowed_by_credential');
      assert.equal(body.path, checkedPath, `${method} ${path}`);
    }
    assert.equal(upstream.requests.length, seenBefore);
  });

  test('proxy-owned request headers stripped', async (t) => {
    const proxy = await startProxy(t, { credentials: [bearerCredential('api', SECRET, [apiTarget()])] });

    const response = await requestInTunnel(await openTunnel(proxy), {
      servername: API_HOST,
      ca: proxy.proxyCaPem,
      headers: {
        host: apiTarget(),
        'proxy-authorization': proxyAuthorization(proxy.session),
        'x-agent-proxy-session': 'forged',
        'X-Agent-Proxy-Credential': 'other',
        'x-kept': 'yes',
      },
    });

    const echo = echoOf(response);
    const names = echo.rawHeaders.filter((_value, index) => index % 2 === 0).map((name) => name.toLowerCase());
    assert.equal(names.includes('proxy-authorization'), false);
    assert.deepEqual(names.filter((name) => name.startsWith('x-agent-proxy-')), []);
    assert.equal(echo.headers['x-kept'], 'yes');
  });

  test('upstream X-Agent-Proxy headers stripped', async (t) => {
    const proxy = await startProxy(t, { credentials: [bearerCredential('api', SECRET, [apiTarget()])] });

    const response = await requestInTunnel(await openTunnel(proxy), { servername: API_HOST, ca: proxy.proxyCaPem, path: '/forged', headers: { host: apiTarget() } });

    assert.equal(response.status, 200);
    assert.equal(response.body, 'forged');
    assert.equal(response.headers['x-agent-proxy-error'], undefined);
    assert.equal(response.headers['x-agent-proxy-session'], undefined);
    assert.equal(response.headers['x-upstream'], 'kept');
  });
});

describe('plain http', () => {
  test('absolute-form gets no credential', async (t) => {
    const target = `${PLAIN_HOST}:${plainUpstream.port}`;
    const proxy = await startProxy(t, { credentials: [bearerCredential('plain', SECRET, [target, PLAIN_HOST])] });
    const seenBefore = plainUpstream.requests.length;

    const response = await sendAbsoluteForm(proxy.proxyPort, `http://${target}/v1/items`, {
      host: target,
      'proxy-authorization': proxyAuthorization(proxy.session),
      authorization: 'Bearer client-own',
    });

    assert.equal(response.status, 200, response.body);
    const seen = plainUpstream.requests.slice(seenBefore);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.url, '/v1/items');
    assert.equal(seen[0]!.headers.authorization, 'Bearer client-own');
    assert.equal(seen[0]!.headers['proxy-authorization'], undefined);
    assert.equal(JSON.stringify(seen[0]).includes(SECRET), false);
  });
});

// ---------------------------------------------------------------- plain HTTP upstream

interface PlainEchoUpstream {
  port: number;
  requests: Array<{ url: string; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/** Starts a plain HTTP server on 127.0.0.1 that records each request and responds with 200. */
async function startPlainEchoUpstream(): Promise<PlainEchoUpstream> {
  const requests: PlainEchoUpstream['requests'] = [];
  const server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('plain');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
