// Faults around the proxy: a token endpoint that is down, slow or answers garbage,
// and an upstream that resets mid-response. The sandbox gets a clear refusal or a
// truncated response, never a secret, and the proxy keeps serving afterwards. A
// locked database file fails apply with an error naming the file and writes nothing.

import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import { assertRefusal, exchange, openTlsTunnel, parseRawResponse, startProxy, type ProxyUnderTest } from './rawHttp.ts';

const CHANNEL = 'C0FAULTS';
const CLIENT_SECRET = 'cs-faults-4b7e19';
const STATIC_SECRET = 'sk-faults-static-90d2';
const TOKEN_HOST = 'login.faults.test';
const DOWN_HOST = 'down.faults.test';
const API_HOSTS = { down: 'down-api.faults.test', garbage: 'garbage-api.faults.test', error: 'error-api.faults.test', slow: 'slow-api.faults.test', reset: 'reset.faults.test' };

let upstream: EchoUpstream;
let proxy: ProxyUnderTest;
let session: CreatedSession;
let closedPort: number;
const hanging: net.Socket[] = [];

before(async () => {
  // A port with nothing listening: bind, note the port, close.
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  closedPort = (probe.address() as net.AddressInfo).port;
  probe.close();

  upstream = await startEchoUpstream([TOKEN_HOST, ...Object.values(API_HOSTS)], {
    '/token/garbage': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"access_token": <html>not json');
    },
    '/token/error': (_req, res) => {
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end('<html>Internal Server Error</html>');
    },
    '/token/slow': (req) => {
      // Never answers; the proxy's token request timeout (15 s) must end the wait.
      hanging.push(req.socket);
    },
    '/reset': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1_000_000 });
      res.write(Buffer.alloc(64 * 1024, 0x62));
      setTimeout(() => res.socket?.destroy(), 50);
    },
  });

  const clientCredentials = (name: string, host: string, tokenUrl: string) => ({
    name,
    type: 'oauth2_client_credentials',
    clientId: `client-${name}`,
    clientSecret: CLIENT_SECRET,
    tokenUrl,
    allowedWebsites: [`${host}:${upstream.port}`],
  });
  proxy = await startProxy({
    upstream,
    hosts: [TOKEN_HOST, ...Object.values(API_HOSTS)],
    extraPins: [{ host: DOWN_HOST, port: closedPort, address: '127.0.0.1' }],
    bundles: [
      {
        name: 'faults',
        channels: [CHANNEL],
        credentials: [
          clientCredentials('down', API_HOSTS.down, `https://${DOWN_HOST}:${closedPort}/token`),
          clientCredentials('garbage', API_HOSTS.garbage, `https://${TOKEN_HOST}:${upstream.port}/token/garbage`),
          clientCredentials('error', API_HOSTS.error, `https://${TOKEN_HOST}:${upstream.port}/token/error`),
          clientCredentials('slow', API_HOSTS.slow, `https://${TOKEN_HOST}:${upstream.port}/token/slow`),
          { name: 'reset', type: 'bearer_token', token: STATIC_SECRET, allowedWebsites: [`${API_HOSTS.reset}:${upstream.port}`] },
        ],
      },
    ],
  });
  session = await proxy.createSession(CHANNEL);
});

after(async () => {
  for (const socket of hanging) socket.destroy();
  await proxy?.close();
  await upstream?.close();
});

async function getThrough(host: string, path: string, timeoutMs = 10_000): Promise<{ raw: string; closed: boolean }> {
  const tunnel = await openTlsTunnel(proxy.port, host, upstream.port, session, proxy.caPem);
  const result = await exchange(tunnel, `GET ${path} HTTP/1.1\r\nHost: ${host}:${upstream.port}\r\nConnection: close\r\n\r\n`, timeoutMs, { untilClose: true });
  tunnel.destroy();
  return result;
}

function assertNoSecret(raw: string): void {
  assert.equal(raw.includes(CLIENT_SECRET), false, 'the client secret reached the sandbox');
  assert.equal(raw.includes(STATIC_SECRET), false, 'the static token reached the sandbox');
}

describe('token endpoint faults', () => {
  const cases: Array<[string, keyof typeof API_HOSTS, RegExp, number]> = [
    ['token endpoint refusing connections', 'down', /could not be reached|ECONNREFUSED/i, 10_000],
    ['token endpoint answering garbage', 'garbage', /not JSON/i, 10_000],
    ['token endpoint answering 500 HTML', 'error', /500/, 10_000],
    ['token endpoint never answering', 'slow', /could not be reached|timeout/i, 25_000],
  ];
  for (const [name, key, detail, timeoutMs] of cases) {
    test(`${name} gives 502 credential_unavailable`, async () => {
      const before = upstream.requests.filter((request) => request.url.startsWith('/api')).length;
      const started = Date.now();
      const { raw } = await getThrough(API_HOSTS[key], '/api/records', timeoutMs);
      const response = parseRawResponse(raw);

      assert.ok(response, `no response after ${Date.now() - started} ms`);
      assertRefusal(response, 502, 'credential_unavailable');
      assert.match(response.body, detail);
      assertNoSecret(raw);
      assert.equal(upstream.requests.filter((request) => request.url.startsWith('/api')).length, before, 'no request may go out without its credential');
    });
  }

  test('token failure does not stop other credentials', async () => {
    const { raw } = await getThrough(API_HOSTS.reset, '/ok');
    assert.equal(parseRawResponse(raw)?.status, 200);
  });
});

describe('upstream faults', () => {
  test('upstream reset mid-response truncates the body', async () => {
    const { raw, closed } = await getThrough(API_HOSTS.reset, '/reset');
    const response = parseRawResponse(raw);

    assert.ok(response);
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-length'], '1000000');
    assert.equal(closed, true);
    assert.ok(Buffer.byteLength(response.body, 'latin1') < 1_000_000, 'the client must see a truncated body, not a complete one');
    assertNoSecret(raw);
  });

  test('proxy serves after an upstream reset', async () => {
    for (let round = 0; round < 3; round += 1) {
      await getThrough(API_HOSTS.reset, '/reset');
    }
    const { raw } = await getThrough(API_HOSTS.reset, '/after-reset');
    const response = parseRawResponse(raw);
    assert.equal(response?.status, 200);
    const echoed = upstream.requests.at(-1)!;
    assert.equal(echoed.url, '/after-reset');
    assert.equal(echoed.headers.authorization, `Bearer ${STATIC_SECRET}`, 'the credential still reaches its own host');
  });

  test('upstream refusing connections gives 502', async () => {
    const small = await startProxy({
      upstream,
      hosts: [],
      extraPins: [{ host: API_HOSTS.reset, port: closedPort, address: '127.0.0.1' }],
      bundles: [{ name: 'gone', channels: [CHANNEL], credentials: [{ name: 'gone', type: 'bearer_token', token: STATIC_SECRET, allowedWebsites: [`${API_HOSTS.reset}:${closedPort}`] }] }],
    });
    try {
      const other = await small.createSession(CHANNEL);
      const tunnel = await openTlsTunnel(small.port, API_HOSTS.reset, closedPort, other, small.caPem);
      const { raw } = await exchange(tunnel, `GET / HTTP/1.1\r\nHost: ${API_HOSTS.reset}:${closedPort}\r\nConnection: close\r\n\r\n`, 10_000, { untilClose: true });
      tunnel.destroy();

      const response = parseRawResponse(raw);
      assert.ok(response);
      assertRefusal(response, 502, 'upstream_unreachable');
      assertNoSecret(raw);
    } finally {
      await small.close();
    }
  });
});

describe('database faults', () => {
  test('locked database fails apply and keeps proxying', async () => {
    const locker = new Database(proxy.proxy.dataDir.databasePath);
    locker.exec('BEGIN EXCLUSIVE');
    try {
      await assert.rejects(
        proxy.proxy.apply({ bundles: [{ name: 'replacement', channels: [CHANNEL], credentials: [{ name: 'new', type: 'bearer_token', token: 'sk-new-unwritten', allowedWebsites: ['new.faults.test'] }] }] }),
        (error: Error) => {
          assert.ok(error.message.includes(proxy.proxy.dataDir.databasePath), error.message);
          assert.match(error.message, /locked.*Nothing was written/);
          return true;
        },
      );

      // The configuration in memory is untouched, so credentialed requests still work while the file is locked.
      const { raw } = await getThrough(API_HOSTS.reset, '/while-locked');
      assert.equal(parseRawResponse(raw)?.status, 200);
      assert.equal(upstream.requests.at(-1)!.headers.authorization, `Bearer ${STATIC_SECRET}`);
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }

    // Nothing of the failed apply reached the file.
    const config = await proxy.proxy.store.loadConfig();
    assert.deepEqual(
      config.bundles.map((bundle) => bundle.name),
      ['faults'],
    );
  });
});
