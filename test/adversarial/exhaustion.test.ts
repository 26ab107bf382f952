// Resource exhaustion: slow headers and bodies, thousands of CONNECTs from one
// session, huge bodies and a gzip bomb. Each is answered by a documented limit
// (408, 429, 413) or streamed without buffering, and another session keeps being
// served while one session floods. RSS is sampled in this process, which also runs
// the clients and the upstream, so the bounds are generous.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { gzipSync } from 'node:zlib';
import { DEFAULT_LIMITS } from '../../src/proxy/limits.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import { assertRefusal, connectAnswer, exchange, openConnect, openTlsTunnel, parseRawResponse, proxyAuthorization, startProxy, type ProxyUnderTest } from './rawHttp.ts';

const CHANNEL = 'C0FLOOD';
const API_HOST = 'api.flood.test';
const OPEN_HOST = 'open.flood.test';
const SECRET = 'sk-flood-a81c3e';
const HEADERS_TIMEOUT_MS = 1_000;
const BODY_IDLE_TIMEOUT_MS = 1_000;
const MiB = 1024 * 1024;

// 512 MiB of zeros compress to about 0.5 MiB: a proxy that decoded the body would grow by hundreds of MiB.
const BOMB_PLAIN_BYTES = 512 * MiB;
let bomb: Buffer;

let upstream: EchoUpstream;
let plainUpstream: http.Server;
let plainPort: number;
let proxy: ProxyUnderTest;
// A proxy with 1 s timeouts for the slow-client tests; `proxy` keeps the defaults, so the silent tunnels that the flood tests hold stay open.
let slowProxy: ProxyUnderTest;
let slowSession: CreatedSession;
let flooder: CreatedSession;
let bystander: CreatedSession;

before(async () => {
  bomb = gzipSync(Buffer.alloc(BOMB_PLAIN_BYTES), { level: 9 });
  upstream = await startEchoUpstream([API_HOST, OPEN_HOST], {
    '/bomb': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip', 'content-length': bomb.length });
      res.end(bomb);
    },
  });
  plainUpstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('done'));
  });
  plainUpstream.listen(0, '127.0.0.1');
  await once(plainUpstream, 'listening');
  plainPort = (plainUpstream.address() as net.AddressInfo).port;
  proxy = await startProxy({
    upstream,
    hosts: [API_HOST, OPEN_HOST],
    bundles: [{ name: 'flood', channels: [CHANNEL], credentials: [{ name: 'api', type: 'bearer_token', token: SECRET, allowedWebsites: [`${API_HOST}:${upstream.port}`] }] }],
  });
  slowProxy = await startProxy({
    upstream,
    hosts: [API_HOST, OPEN_HOST],
    bundles: [{ name: 'flood', channels: [CHANNEL], credentials: [{ name: 'api', type: 'bearer_token', token: SECRET, allowedWebsites: [`${API_HOST}:${upstream.port}`] }] }],
    limits: { headersTimeoutMs: HEADERS_TIMEOUT_MS, bodyIdleTimeoutMs: BODY_IDLE_TIMEOUT_MS },
  });
  slowSession = await slowProxy.createSession(CHANNEL);
  flooder = await proxy.createSession(CHANNEL);
  bystander = await proxy.createSession(CHANNEL);
});

after(async () => {
  await proxy?.close();
  await slowProxy?.close();
  await upstream?.close();
  plainUpstream?.closeAllConnections();
  plainUpstream?.close();
});

const target = () => `${API_HOST}:${upstream.port}`;

/** Sends one GET inside a new intercepted tunnel for `session` and returns the status. */
async function getThroughTunnel(session: CreatedSession, path = '/ping'): Promise<number> {
  const tunnel = await openTlsTunnel(proxy.port, API_HOST, upstream.port, session, proxy.caPem);
  const { raw } = await exchange(tunnel, `GET ${path} HTTP/1.1\r\nHost: ${target()}\r\nConnection: close\r\n\r\n`, 10_000);
  tunnel.destroy();
  return parseRawResponse(raw)?.status ?? 0;
}

describe('slow clients', () => {
  test('slowloris headers on listener get 408', async () => {
    const socket = net.connect(slowProxy.port, '127.0.0.1');
    await once(socket, 'connect');
    const started = Date.now();
    const { raw, closed } = await exchange(socket, `GET http://${target()}/ HTTP/1.1\r\nHost: ${target()}\r\nX-Slow: a`, 10_000, { untilClose: true });
    socket.destroy();

    const response = parseRawResponse(raw);
    assert.ok(response, `no response: ${raw}`);
    assertRefusal(response, 408, 'request_timeout');
    assert.equal(closed, true);
    assert.ok(Date.now() - started < HEADERS_TIMEOUT_MS + 3_000, `closed after ${Date.now() - started} ms`);
  });

  test('slowloris headers in tunnel get 408', async () => {
    const tunnel = await openTlsTunnel(slowProxy.port, API_HOST, upstream.port, slowSession, slowProxy.caPem);
    const started = Date.now();
    const { raw, closed } = await exchange(tunnel, `GET / HTTP/1.1\r\nHost: ${target()}\r\nX-Slow: a`, 10_000, { untilClose: true });
    tunnel.destroy();

    const response = parseRawResponse(raw);
    assert.ok(response, `no response: ${raw}`);
    assertRefusal(response, 408, 'request_timeout');
    assert.equal(closed, true);
    assert.ok(Date.now() - started < HEADERS_TIMEOUT_MS + 3_000, `closed after ${Date.now() - started} ms`);
  });

  test('slowloris second request in tunnel gets 408', async () => {
    // The clock restarts at the first byte after a response, so a kept-alive tunnel cannot trickle its next request either.
    const tunnel = await openTlsTunnel(slowProxy.port, API_HOST, upstream.port, slowSession, slowProxy.caPem);
    const first = await exchange(tunnel, `GET /first HTTP/1.1\r\nHost: ${target()}\r\n\r\n`, 3_000);
    assert.equal(parseRawResponse(first.raw)?.status, 200);
    tunnel.removeAllListeners('data');

    const { raw, closed } = await exchange(tunnel, `GET /second HTTP/1.1\r\nHost: ${target()}\r\n`, 10_000, { untilClose: true });
    tunnel.destroy();
    assertRefusal(parseRawResponse(raw)!, 408, 'request_timeout');
    assert.equal(closed, true);
  });

  test('silent TLS handshake in tunnel is closed', async () => {
    const socket = await openConnect(slowProxy.port, target(), slowSession);
    socket.resume();
    const started = Date.now();
    const { closed } = await exchange(socket, '', 10_000);
    socket.destroy();

    assert.equal(closed, true);
    assert.ok(Date.now() - started < HEADERS_TIMEOUT_MS + 3_000);
  });

  test('slow body in tunnel is cut at idle timeout', async () => {
    const before = upstream.requests.length;
    const tunnel = await openTlsTunnel(slowProxy.port, API_HOST, upstream.port, slowSession, slowProxy.caPem);
    const started = Date.now();
    const { closed } = await exchange(tunnel, `POST /upload HTTP/1.1\r\nHost: ${target()}\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(100)}`, 10_000);
    tunnel.destroy();

    assert.equal(closed, true);
    assert.ok(Date.now() - started < BODY_IDLE_TIMEOUT_MS + 3_000, `closed after ${Date.now() - started} ms`);
    assert.equal(upstream.requests.length, before, 'an incomplete body must not complete upstream');
  });

  test('slow body on listener is cut at idle timeout', async () => {
    const socket = net.connect(slowProxy.port, '127.0.0.1');
    await once(socket, 'connect');
    const started = Date.now();
    const { closed } = await exchange(
      socket,
      `POST http://127.0.0.1:${plainPort}/upload HTTP/1.1\r\nHost: 127.0.0.1:${plainPort}\r\nProxy-Authorization: ${proxyAuthorization(slowSession)}\r\nContent-Length: 100000\r\n\r\nxx`,
      10_000,
    );
    socket.destroy();

    assert.equal(closed, true);
    assert.ok(Date.now() - started < BODY_IDLE_TIMEOUT_MS + 3_000, `closed after ${Date.now() - started} ms`);
  });
});

describe('connection limits', () => {
  test('CONNECT flood from one session gets 429', async () => {
    const limit = DEFAULT_LIMITS.maxConnectionsPerSession;
    const held: net.Socket[] = [];
    const refusals: Array<{ status: number; code: string | undefined; retryAfter: string | undefined }> = [];
    try {
      for (let batch = 0; batch < (limit + 64) / 32; batch += 1) {
        const answers = await Promise.all(Array.from({ length: 32 }, () => connectAnswer(proxy.port, target(), flooder)));
        for (const { response, socket } of answers) {
          if (response.status === 200) held.push(socket);
          else {
            refusals.push({ status: response.status, code: response.headers['x-agent-proxy-error'], retryAfter: response.headers['retry-after'] });
            socket.destroy();
          }
        }
      }

      assert.equal(held.length, limit);
      assert.equal(refusals.length, 64);
      assert.deepEqual(refusals[0], { status: 429, code: 'too_many_connections', retryAfter: '1' });
      assert.ok(refusals.every((refusal) => refusal.status === 429 && refusal.code === 'too_many_connections'));

      // Another session is not affected by the flood.
      assert.equal(await getThroughTunnel(bystander), 200);

      const metrics = await proxy.metrics();
      assert.match(metrics, /agent_proxy_limit_refusals_total\{error_code="too_many_connections"\} (\d+)/);
      assert.ok(Number(/agent_proxy_limit_refusals_total\{error_code="too_many_connections"\} (\d+)/.exec(metrics)![1]) >= 64);
    } finally {
      for (const socket of held) socket.destroy();
    }

    // The slots are released when the tunnels close.
    await waitUntil(async () => (await connectAnswer(proxy.port, target(), flooder).then(({ response, socket }) => (socket.destroy(), response.status))) === 200);
  });

  test('two thousand short CONNECTs leak no slot', async () => {
    for (let batch = 0; batch < 2_000 / 100; batch += 1) {
      const answers = await Promise.all(Array.from({ length: 100 }, () => connectAnswer(proxy.port, target(), flooder)));
      for (const { response, socket } of answers) {
        assert.equal(response.status, 200);
        socket.destroy();
      }
    }
    await waitUntil(async () => {
      const { response, socket } = await connectAnswer(proxy.port, target(), flooder);
      socket.destroy();
      return response.status === 200;
    });
  });

  test('global limit refuses across sessions', async () => {
    const small = await startProxy({
      upstream,
      hosts: [API_HOST],
      bundles: [{ name: 'flood', channels: [CHANNEL], credentials: [{ name: 'api', type: 'bearer_token', token: SECRET, allowedWebsites: [`${API_HOST}:${upstream.port}`] }] }],
      limits: { maxConnectionsPerSession: 20, maxConnectionsTotal: 30 },
    });
    const held: net.Socket[] = [];
    try {
      const first = await small.createSession(CHANNEL);
      const second = await small.createSession(CHANNEL);
      for (let index = 0; index < 20; index += 1) held.push(await openConnect(small.port, target(), first));
      for (let index = 0; index < 10; index += 1) held.push(await openConnect(small.port, target(), second));

      const { response, socket } = await connectAnswer(small.port, target(), second);
      socket.destroy();
      assertRefusal(response, 429, 'too_many_connections');
    } finally {
      for (const socket of held) socket.destroy();
      await small.close();
    }
  });

  test('bystander served during flood', async () => {
    // Session A holds its maximum of tunnels plus 50 slowloris connections; session B's requests must still succeed.
    const held: net.Socket[] = [];
    const slow: net.Socket[] = [];
    try {
      for (let batch = 0; batch < DEFAULT_LIMITS.maxConnectionsPerSession / 32; batch += 1) {
        const sockets = await Promise.all(Array.from({ length: 32 }, () => openConnect(proxy.port, target(), flooder)));
        held.push(...sockets);
      }
      for (let index = 0; index < 50; index += 1) {
        const socket = net.connect(proxy.port, '127.0.0.1');
        socket.on('error', () => {});
        socket.write('GET http://a.test/ HTTP/1.1\r\nX-Slow: ');
        slow.push(socket);
      }

      const started = Date.now();
      const statuses = await Promise.all(Array.from({ length: 20 }, () => getThroughTunnel(bystander)));
      assert.deepEqual(statuses, Array.from({ length: 20 }, () => 200));
      // A generous bound, not a speed claim: on loopback the 20 requests take well under a second.
      assert.ok(Date.now() - started < 15_000, `bystander requests took ${Date.now() - started} ms`);
    } finally {
      for (const socket of [...held, ...slow]) socket.destroy();
    }
  });
});

describe('large bodies', () => {
  test('64 MiB upload streams without buffering', async () => {
    const size = 64 * MiB;
    const tunnel = await openTlsTunnel(proxy.port, API_HOST, upstream.port, bystander, proxy.caPem);
    const rssBefore = process.memoryUsage().rss;
    tunnel.write(`POST /upload HTTP/1.1\r\nHost: ${target()}\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`);
    const block = Buffer.alloc(MiB, 0x61);
    let peakRss = rssBefore;
    for (let sent = 0; sent < size; sent += block.length) {
      if (!tunnel.write(block)) await once(tunnel, 'drain');
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
    const { raw } = await exchange(tunnel, '', 20_000);
    tunnel.destroy();

    const response = parseRawResponse(raw);
    assert.equal(response?.status, 200);
    assert.equal((JSON.parse(response!.body) as { bodyBytes: number }).bodyBytes, size);
    // Client, proxy and upstream share this process; buffering would add at least 64 MiB once, and more for copies.
    assert.ok(peakRss - rssBefore < 48 * MiB, `RSS grew by ${Math.round((peakRss - rssBefore) / MiB)} MiB`);
  });

  test('admin API refuses a 6 MiB body with 413', async () => {
    const response = await fetch(`${proxy.proxy.adminUrl}/api/v1/apply`, {
      method: 'POST',
      headers: { authorization: `Bearer ${proxy.proxy.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ bundles: [], padding: 'x'.repeat(6 * MiB) }),
    });
    await response.arrayBuffer();
    assert.equal(response.status, 413);
  });

  test('gzip bomb through a tunnel stays compressed', async () => {
    // Without a credential the proxy relays TLS bytes it cannot read, so the bomb arrives exactly as sent.
    const socket = await openConnect(proxy.port, `${OPEN_HOST}:${upstream.port}`, bystander);
    const tunnel = tls.connect({ socket, servername: OPEN_HOST, ca: upstream.pki.caPem });
    await once(tunnel, 'secureConnect');
    const received = await readWholeResponse(tunnel, `GET /bomb HTTP/1.1\r\nHost: ${OPEN_HOST}:${upstream.port}\r\nConnection: close\r\n\r\n`, 32 * MiB);

    assert.match(received.head, /content-encoding: gzip/i);
    assert.equal(received.bodyBytes, bomb.length);
  });

  test('gzip bomb on credentialed host keeps RSS flat', async () => {
    // Responses to credentialed requests are decoded so that echoed credentials can be masked; decoding must stream.
    const rssBefore = process.memoryUsage().rss;
    const tunnel = await openTlsTunnel(proxy.port, API_HOST, upstream.port, bystander, proxy.caPem);
    const received = await readWholeResponse(tunnel, `GET /bomb HTTP/1.1\r\nHost: ${target()}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n`, 32 * MiB);

    assert.match(received.head, /^HTTP\/1\.1 200 /);
    assert.ok(received.bodyBytes >= bomb.length, 'the body arrives, compressed or decoded');
    const growth = process.memoryUsage().rss - rssBefore;
    assert.ok(growth < 96 * MiB, `RSS grew by ${Math.round(growth / MiB)} MiB`);
    assert.equal(await getThroughTunnel(flooder), 200, 'the proxy still serves other requests');
  });
});

/** Sends a request and reads the answer until the peer closes or `maxBytes` arrived, then closes the socket. */
async function readWholeResponse(socket: tls.TLSSocket, request: string, maxBytes: number): Promise<{ head: string; bodyBytes: number }> {
  let head = '';
  let pending = Buffer.alloc(0);
  let bodyBytes = 0;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 20_000);
    socket.on('data', (chunk: Buffer) => {
      if (!head) {
        pending = Buffer.concat([pending, chunk]);
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        head = pending.subarray(0, end).toString('latin1');
        chunk = pending.subarray(end + 4);
      }
      bodyBytes += chunk.length;
      if (bodyBytes >= maxBytes) {
        clearTimeout(timer);
        resolve();
      }
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.write(request);
  });
  socket.destroy();
  return { head, bodyBytes };
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, 'condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
