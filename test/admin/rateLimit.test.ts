import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { AuthFailureLimiter, sourceKey } from '../../src/admin/authFailureLimiter.ts';
import { createLogger } from '../../src/log.ts';
import { startAgentProxy, type RunningAgentProxy } from '../../src/runtime/agentProxy.ts';

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Sends one request from `localAddress`, so tests can act as two clients on loopback. */
function send(options: { port: number; method: string; path: string; headers?: Record<string, string>; body?: string; localAddress: string }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: options.port, method: options.method, path: options.path, headers: options.headers, localAddress: options.localAddress, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function basic(sessionId: string, token: string): string {
  return `Basic ${Buffer.from(`${sessionId}:${token}`).toString('base64')}`;
}

describe('failure limiter', () => {
  test('limits after max failures until the window ends', () => {
    let now = 1_000_000;
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const limiter = new AuthFailureLimiter({ listener: 'test', logger, maxFailures: 3, windowMs: 60_000, now: () => now });

    limiter.recordFailure('192.0.2.1');
    limiter.recordFailure('192.0.2.1');
    assert.equal(limiter.retryAfterSeconds('192.0.2.1'), null);
    limiter.recordFailure('192.0.2.1');
    assert.equal(limiter.retryAfterSeconds('192.0.2.1'), 60);
    limiter.recordFailure('192.0.2.1');
    now += 30_500;
    assert.equal(limiter.retryAfterSeconds('192.0.2.1'), 30);
    assert.equal(limiter.retryAfterSeconds('192.0.2.2'), null);
    assert.equal(lines.length, 1);
    assert.deepEqual(
      { ...JSON.parse(lines[0]!), time: undefined, pid: undefined, hostname: undefined },
      {
        level: 40,
        clientAddress: '192.0.2.1',
        source: '192.0.2.1',
        failures: 3,
        windowSeconds: 60,
        listener: 'test',
        msg: 'too many failed authentications on the test; rejecting this source with 429 until its window ends',
        time: undefined,
        pid: undefined,
        hostname: undefined,
      },
    );

    now += 29_500;
    assert.equal(limiter.retryAfterSeconds('192.0.2.1'), null);
    limiter.recordFailure('192.0.2.1');
    assert.equal(limiter.retryAfterSeconds('192.0.2.1'), null);
  });

  test('tracked sources stay under the cap', () => {
    const limiter = new AuthFailureLimiter({ listener: 'test', logger: pino({ level: 'silent' }), maxSources: 100 });
    for (let index = 0; index < 1000; index += 1) {
      limiter.recordFailure(`10.0.${Math.floor(index / 256)}.${index % 256}`);
    }
    assert.equal(limiter.trackedSources, 100);
  });

  test('source keys group IPv6 by /64', () => {
    assert.equal(sourceKey('192.0.2.7'), '192.0.2.7');
    assert.equal(sourceKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('::1'), '0:0:0:0::/64');
    assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  });
});

describe('failed authentication limit', () => {
  let proxy: RunningAgentProxy;
  let dir: string;
  const logLines: string[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-ratelimit-'));
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(...chunk.toString('utf8').split('\n').filter((line) => line !== ''));
        callback();
      },
    });
    proxy = await startAgentProxy({
      dataDir: path.join(dir, 'data'),
      proxyListen: { host: '127.0.0.1', port: 0 },
      adminListen: { host: '127.0.0.1', port: 0 },
      logger: createLogger({ level: 'debug', destination }),
    });
  });

  after(async () => {
    await proxy.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('admin API answers 429 after 20 bad tokens', async () => {
    const badTokens = Array.from({ length: 25 }, (_, index) => `apt_wrong-guess-${index}-${'x'.repeat(30)}`);
    const statuses: number[] = [];
    let last: RawResponse | undefined;
    for (const token of badTokens) {
      last = await send({ port: proxy.adminAddress.port, method: 'GET', path: '/api/v1/bundles', headers: { authorization: `Bearer ${token}` }, localAddress: '127.0.0.1' });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [...Array<number>(20).fill(401), ...Array<number>(5).fill(429)]);
    const retryAfter = Number(last!.headers['retry-after']);
    assert.ok(retryAfter >= 1, `Retry-After ${last!.headers['retry-after']}`);
    assert.ok(retryAfter <= 60, `Retry-After ${last!.headers['retry-after']}`);
    assert.deepEqual(JSON.parse(last!.text), {
      error: {
        code: 'rate_limited',
        message:
          `Too many failed authentications from 127.0.0.1; every request from this address is rejected for ${retryAfter} s more. ` +
          'Check that the client sends a valid admin token, then retry after the time in Retry-After.',
      },
    });

    const limiterLines = logLines.filter((line) => line.includes('too many failed authentications on the admin API'));
    assert.equal(limiterLines.length, 1);
    assert.equal(JSON.parse(limiterLines[0]!).clientAddress, '127.0.0.1');
    assert.equal(JSON.parse(limiterLines[0]!).failures, 20);
    for (const token of badTokens) {
      assert.ok(!logLines.some((line) => line.includes(token)), 'a presented token is in the log');
    }
  });

  test('limited address is refused even with a good token', async () => {
    const response = await send({ port: proxy.adminAddress.port, method: 'GET', path: '/api/v1/bundles', headers: { authorization: `Bearer ${proxy.adminToken}` }, localAddress: '127.0.0.1' });
    assert.equal(response.status, 429);
    const login = await send({
      port: proxy.adminAddress.port,
      method: 'POST',
      path: '/api/v1/login',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: proxy.adminToken }),
      localAddress: '127.0.0.1',
    });
    assert.equal(login.status, 429);
  });

  test('good token from another address works', async () => {
    const response = await send({ port: proxy.adminAddress.port, method: 'GET', path: '/api/v1/bundles', headers: { authorization: `Bearer ${proxy.adminToken}` }, localAddress: '127.0.0.2' });
    assert.equal(response.status, 200);
    assert.deepEqual(JSON.parse(response.text), { bundles: [] });
  });

  test('successful authentications are not counted', async () => {
    for (let index = 0; index < 30; index += 1) {
      const response = await send({ port: proxy.adminAddress.port, method: 'GET', path: '/api/v1/bundles', headers: { authorization: `Bearer ${proxy.adminToken}` }, localAddress: '127.0.0.3' });
      assert.equal(response.status, 200);
    }
  });

  test('proxy answers 429 after 20 bad sessions', async () => {
    const session = await send({
      port: proxy.adminAddress.port,
      method: 'POST',
      path: '/api/v1/sessions',
      headers: { authorization: `Bearer ${proxy.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'C0SALES' }),
      localAddress: '127.0.0.2',
    });
    assert.equal(session.status, 201);
    const { id, token } = JSON.parse(session.text) as { id: string; token: string };

    const badTokens = Array.from({ length: 25 }, (_, index) => `wrong-session-token-${index}`);
    const statuses: number[] = [];
    let last: RawResponse | undefined;
    for (const badToken of badTokens) {
      last = await send({ port: proxy.proxyAddress.port, method: 'GET', path: 'http://example.test/', headers: { host: 'example.test', 'proxy-authorization': basic(id, badToken) }, localAddress: '127.0.0.4' });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [...Array<number>(20).fill(407), ...Array<number>(5).fill(429)]);
    assert.equal(last!.headers['x-agent-proxy-error'], 'rate_limited');
    assert.equal(last!.headers['content-type'], 'application/problem+json');
    const retryAfter = Number(last!.headers['retry-after']);
    assert.ok(retryAfter >= 1, `Retry-After ${last!.headers['retry-after']}`);
    assert.ok(retryAfter <= 60, `Retry-After ${last!.headers['retry-after']}`);
    assert.deepEqual(JSON.parse(last!.text), {
      type: 'urn:agent-proxy:error:rate_limited',
      title: 'Too many failed authentications',
      status: 429,
      code: 'rate_limited',
      detail:
        `Too many failed proxy authentications from 127.0.0.4; every request from this address is rejected for ${retryAfter} s more. ` +
        'Check the session id and token in the proxy URL, or create a new session.',
      retryAfterSeconds: retryAfter,
    });

    const limited = await send({ port: proxy.proxyAddress.port, method: 'GET', path: 'http://127.0.0.1:9/', headers: { host: '127.0.0.1:9', 'proxy-authorization': basic(id, token) }, localAddress: '127.0.0.4' });
    assert.equal(limited.status, 429);
    // Authenticated from another address, the request reaches the egress policy, which refuses loopback.
    const other = await send({ port: proxy.proxyAddress.port, method: 'GET', path: 'http://127.0.0.1:9/', headers: { host: '127.0.0.1:9', 'proxy-authorization': basic(id, token) }, localAddress: '127.0.0.5' });
    assert.equal(other.status, 403);
    assert.equal(other.headers['x-agent-proxy-error'], 'egress_denied');

    const limiterLines = logLines.filter((line) => line.includes('too many failed authentications on the proxy'));
    assert.equal(limiterLines.length, 1);
    assert.equal(JSON.parse(limiterLines[0]!).clientAddress, '127.0.0.4');
    assert.equal(logLines.filter((line) => line.includes('"error":"rate_limited"')).length, 0);
    for (const value of [token, ...badTokens]) {
      assert.ok(!logLines.some((line) => line.includes(value)), 'a session token is in the log');
    }
  });

  test('proxy request without credentials is not counted', async () => {
    for (let index = 0; index < 25; index += 1) {
      const response = await send({ port: proxy.proxyAddress.port, method: 'GET', path: 'http://example.test/', localAddress: '127.0.0.6' });
      assert.equal(response.status, 407);
    }
  });
});
