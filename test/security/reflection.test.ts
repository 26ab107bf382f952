// Routes by which an upstream could hand the injected credential back to the
// sandbox: echo endpoints, headers that repeat the request, error pages, compressed
// bodies, TRACE, and the credential's own token endpoint. Each route runs through
// the real proxy over TLS against loopback upstreams. Assertions compare booleans
// and counts, so a failure never prints a secret.

import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { ProxyAgent, request, type Dispatcher } from 'undici';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import { createTestPki, type TestPki } from '../helpers/testPki.ts';
import { startOAuthTokenServer, TOKEN_PATH, type OAuthTokenServer } from '../fixtures/oauthTokenServer.ts';
import { maskInPlace, reflectionPatterns, ReflectionRedactor } from '../../src/proxy/reflectionRedactor.ts';
import type { AuditEvent } from '../../src/domain/types.ts';

const CHANNEL = 'C0SEC';
const BEARER_HOST = 'bearer.example.test';
const BASIC_HOST = 'basic.example.test';
const HEADER_KEY_HOST = 'headerkey.example.test';
const QUERY_KEY_HOST = 'querykey.example.test';
const AUTH_HOST = 'auth.example.test';
const API_HOST = 'api.example.test';

const BEARER_TOKEN = 'bt-reflect-7f3a9c21e5d04b86';
const BASIC_USER = 'svc-reporting';
const BASIC_PASSWORD = 'pw/with+signs=and:colon 42';
const HEADER_KEY = 'hk-reflect-0d9e8f7a6b5c';
const QUERY_KEY = 'qk reflect/needs+escaping=1';
const CLIENT_ID = 'reflect-client';
const CLIENT_SECRET = 'cs-reflect-2b4d6f8h0j';

// ---------------------------------------------------------------- helpers

/** Returns every form in which a secret could be read back: plain, base64 (both alphabets) and URL-encoded. */
function encodings(secret: string): string[] {
  const base64 = Buffer.from(secret, 'utf8').toString('base64');
  return [secret, base64, base64.replace(/=+$/, ''), base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), encodeURIComponent(secret), new URLSearchParams({ v: secret }).toString().slice(2)];
}

function leaks(text: string, secret: string): boolean {
  return encodings(secret).some((form) => text.includes(form));
}

interface Seen {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function send(dispatcher: Dispatcher, url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Seen> {
  const response = await request(url, { dispatcher, method: (options.method ?? 'GET') as Dispatcher.HttpMethod, headers: options.headers, body: options.body });
  return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
}

function visible(seen: Seen): string {
  return `${JSON.stringify(seen.headers)}\n${seen.text}`;
}

function requestDescription(req: IncomingMessage): string {
  return JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
}

/** Upstream routes that reflect the request in the ways real services do. */
const reflectingRoutes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  '/reflect-header': (req, res) => {
    res.writeHead(200, { 'x-echo-authorization': req.headers.authorization ?? '', 'x-echo-key': String(req.headers['x-api-key'] ?? ''), location: `https://elsewhere.test${req.url ?? ''}`, 'content-length': '2' });
    res.end('ok');
  },
  '/error-page': (req, res) => {
    // Sent a few bytes at a time, so an echoed value is split across chunks.
    const page = Buffer.from(`<html><body><h1>500</h1><pre>${requestDescription(req)}</pre></body></html>`);
    res.writeHead(500, { 'content-type': 'text/html', 'content-length': String(page.length) });
    let offset = 0;
    const writeNext = (): void => {
      if (offset >= page.length) {
        res.end();
        return;
      }
      res.write(page.subarray(offset, offset + 7));
      offset += 7;
      setImmediate(writeNext);
    };
    writeNext();
  },
  '/base64-dump': (req, res) => {
    const body = JSON.stringify({ dump: Buffer.from(requestDescription(req)).toString('base64') });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  },
  '/gzip-anyway': (req, res) => {
    const body = zlib.gzipSync(JSON.stringify({ acceptEncoding: req.headers['accept-encoding'] ?? null, echo: requestDescription(req) }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(body.length) });
    res.end(body);
  },
  '/plain': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '14' });
    res.end('nothing echoed');
  },
  '/zstd': (_req, res) => {
    res.writeHead(200, { 'content-encoding': 'zstd', 'content-length': '4' });
    res.end('\x28\xb5\x2f\xfd');
  },
};

// ---------------------------------------------------------------- redactor unit tests

describe('reflection redactor', () => {
  test('masks a value split at every chunk boundary', async () => {
    const secret = 'tok-1234567890abcdef';
    const patterns = reflectionPatterns([secret]);
    const text = Buffer.from(`before ${secret} middle ${secret} after`);

    for (let split = 1; split < text.length; split++) {
      let found = 0;
      const redactor = new ReflectionRedactor(patterns, (count) => (found += count));
      const chunks: Buffer[] = [];
      const done = Readable.from([text.subarray(0, split), text.subarray(split)]).pipe(redactor);
      for await (const chunk of done) chunks.push(chunk as Buffer);
      const output = Buffer.concat(chunks);

      assert.equal(output.length, text.length, `length changed at split ${split}`);
      assert.equal(output.includes(secret), false, `secret kept at split ${split}`);
      assert.equal(found, 2, `matches at split ${split}`);
      assert.equal(output.toString().startsWith('before '), true);
      assert.equal(output.toString().endsWith(' after'), true);
    }
  });

  test('masks base64 at every alignment', () => {
    const secret = 'pw/with+signs=and:colon 42';
    for (const prefix of ['', 'a', 'ab', 'user:', 'user1:']) {
      const encoded = Buffer.from(Buffer.from(`${prefix}${secret}`).toString('base64'));
      maskInPlace(encoded, reflectionPatterns([secret]));

      const decoded = Buffer.from(encoded.toString().replace(/\*/g, 'A'), 'base64').toString('latin1');
      assert.equal(decoded.includes(secret), false, `base64 with a ${prefix.length}-byte prefix still decodes to the secret`);
    }
  });

  test('short values are not patterns', () => {
    assert.deepEqual(reflectionPatterns(['abc']), []);
    assert.equal(reflectionPatterns(['Bearer abc']).length > 0, true);
  });

  test('body without a match passes unchanged', async () => {
    const redactor = new ReflectionRedactor(reflectionPatterns(['never-present-value']), () => assert.fail('reported a match'));
    const input = Buffer.from('x'.repeat(100_000));
    const chunks: Buffer[] = [];
    for await (const chunk of Readable.from([input.subarray(0, 33_333), input.subarray(33_333)]).pipe(redactor)) chunks.push(chunk as Buffer);

    assert.equal(Buffer.concat(chunks).equals(input), true);
  });
});

// ---------------------------------------------------------------- through the proxy

describe('responses that echo the injected credential', () => {
  let pki: TestPki;
  let upstream: EchoUpstream;
  let oauth: OAuthTokenServer;
  let harness: Harness;
  let agent: ProxyAgent;
  let base: (host: string) => string;

  before(async () => {
    pki = await createTestPki();
    upstream = await startEchoUpstream([BEARER_HOST, BASIC_HOST, HEADER_KEY_HOST, QUERY_KEY_HOST], reflectingRoutes, pki);
    oauth = await startOAuthTokenServer({ pki, clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }] });
    const upstreamHosts = [BEARER_HOST, BASIC_HOST, HEADER_KEY_HOST, QUERY_KEY_HOST];
    const allowed = (host: string) => [`${host}:${upstream.port}`];

    harness = await startHarness({
      upstreamCaPem: [pki.caPem],
      pins: [
        ...upstreamHosts.map((host) => ({ host, port: upstream.port, address: '127.0.0.1' })),
        ...[AUTH_HOST, API_HOST].map((host) => ({ host, port: oauth.port, address: '127.0.0.1' })),
      ],
      config: {
        egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] },
        bundles: [
          {
            name: 'reflection',
            channels: [CHANNEL],
            credentials: [
              { name: 'bearer', type: 'bearer_token', token: BEARER_TOKEN, allowedWebsites: allowed(BEARER_HOST), access: 'read_write' },
              { name: 'basic', type: 'basic_auth', username: BASIC_USER, password: BASIC_PASSWORD, allowedWebsites: allowed(BASIC_HOST), access: 'read_write' },
              { name: 'header-key', type: 'api_key', headerName: 'X-Api-Key', value: HEADER_KEY, allowedWebsites: allowed(HEADER_KEY_HOST) },
              { name: 'query-key', type: 'api_key', queryParam: 'key', value: QUERY_KEY, allowedWebsites: allowed(QUERY_KEY_HOST) },
              {
                name: 'oauth',
                type: 'oauth2_client_credentials',
                clientId: CLIENT_ID,
                clientSecret: CLIENT_SECRET,
                tokenUrl: oauth.tokenUrl,
                clientAuthMethod: 'body',
                // The token endpoint's host is also an allowed website, the riskiest set-up.
                allowedWebsites: [`${AUTH_HOST}:${oauth.port}`, `${API_HOST}:${oauth.port}`],
                access: 'read_write',
              },
            ],
          },
        ],
      },
    });
    const session = await harness.createSession(CHANNEL);
    agent = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: readFileSync(session.caBundlePath, 'utf8') } });
    base = (host: string) => `https://${host}:${upstream.port}`;
  });

  after(async () => {
    await agent?.close();
    await harness?.close();
    await upstream?.close();
    await oauth?.close();
  });

  async function auditEvents(): Promise<AuditEvent[]> {
    await harness.proxy.flushAudit();
    const response = await harness.admin<{ events: AuditEvent[] }>('GET', '/api/v1/audit?limit=500');
    return response.body.events;
  }

  test('echoed bearer token is masked', async () => {
    const seen = await send(agent, `${base(BEARER_HOST)}/anything`);

    assert.equal(seen.status, 200);
    assert.equal(leaks(visible(seen), BEARER_TOKEN), false, 'the sandbox read the bearer token');
    assert.equal(seen.text.includes('Bearer *'), true, 'the masked header should stay recognisable');
    assert.equal(seen.headers['content-length'], String(Buffer.byteLength(seen.text)));
    const received = upstream.requests.at(-1)!;
    assert.equal(received.headers.authorization === `Bearer ${BEARER_TOKEN}`, true, 'the upstream did not get the real token');
  });

  test('redaction is audited on the request', async () => {
    await send(agent, `${base(BEARER_HOST)}/audited-echo`);

    const event = (await auditEvents()).filter((candidate) => candidate.path === '/audited-echo').at(-1);
    assert.equal(event?.kind, 'request');
    assert.equal(event?.decision, 'allowed');
    assert.equal(event?.errorCode, 'response_redacted');
    assert.equal(event?.status, 200);
  });

  test('response without the credential is not marked', async () => {
    const seen = await send(agent, `${base(HEADER_KEY_HOST)}/plain`);

    assert.equal(seen.status, 200);
    assert.equal(seen.text, 'nothing echoed');
    const event = (await auditEvents()).filter((candidate) => candidate.path === '/plain').at(-1);
    assert.equal(event?.decision, 'allowed');
    assert.equal(event?.errorCode, null);
  });

  test('reflected response headers are masked', async () => {
    const seen = await send(agent, `${base(BEARER_HOST)}/reflect-header`);

    assert.equal(seen.status, 200);
    assert.equal(typeof seen.headers['x-echo-authorization'], 'string');
    assert.equal(leaks(visible(seen), BEARER_TOKEN), false, 'a response header repeated the token');
    assert.equal(seen.text, 'ok');
  });

  test('basic password and its base64 are masked', async () => {
    const seen = await send(agent, `${base(BASIC_HOST)}/anything`);
    const dump = await send(agent, `${base(BASIC_HOST)}/base64-dump`);

    assert.equal(seen.status, 200);
    assert.equal(leaks(visible(seen), BASIC_PASSWORD), false, 'the echo showed the password');
    assert.equal(leaks(visible(seen), `${BASIC_USER}:${BASIC_PASSWORD}`), false, 'the echo showed the user:password pair');
    const decoded = Buffer.from((JSON.parse(dump.text) as { dump: string }).dump.replace(/\*/g, 'A'), 'base64').toString('latin1');
    assert.equal(decoded.includes(BASIC_PASSWORD), false, 'a base64 dump of the request still held the password');
    assert.equal(leaks(decoded, BASIC_PASSWORD), false, 'a base64 dump of the request still held the Authorization value');
  });

  test('query api key is masked in echo and location', async () => {
    const seen = await send(agent, `${base(QUERY_KEY_HOST)}/anything?page=2`);
    const header = await send(agent, `${base(QUERY_KEY_HOST)}/reflect-header?page=2`);

    assert.equal(seen.status, 200);
    assert.equal(leaks(visible(seen), QUERY_KEY), false, 'the echoed URL showed the key');
    assert.equal(leaks(visible(header), QUERY_KEY), false, 'the Location header showed the key');
    assert.equal(String(header.headers.location).includes('page=2'), true);
  });

  test('error page split across chunks is masked', async () => {
    const seen = await send(agent, `${base(HEADER_KEY_HOST)}/error-page`);

    assert.equal(seen.status, 500);
    assert.equal(seen.text.includes('<h1>500</h1>'), true);
    assert.equal(leaks(visible(seen), HEADER_KEY), false, 'the error page printed the key');
    assert.equal(seen.headers['content-length'], String(Buffer.byteLength(seen.text)));
  });

  test('credentialed request asks for identity encoding', async () => {
    const seen = await send(agent, `${base(BEARER_HOST)}/anything`, { headers: { 'accept-encoding': 'gzip, br' } });

    const received = upstream.requests.at(-1)!;
    assert.equal(seen.status, 200);
    assert.equal(received.headers['accept-encoding'], 'identity');
  });

  test('gzip sent anyway is decoded and masked', async () => {
    const seen = await send(agent, `${base(BEARER_HOST)}/gzip-anyway`, { headers: { 'accept-encoding': 'gzip' } });

    assert.equal(seen.status, 200);
    assert.equal(seen.headers['content-encoding'], undefined);
    const body = JSON.parse(seen.text) as { acceptEncoding: string; echo: string };
    assert.equal(body.acceptEncoding, 'identity');
    assert.equal(body.echo.includes('Bearer *'), true);
    assert.equal(leaks(visible(seen), BEARER_TOKEN), false, 'the decoded body showed the token');
  });

  test('unknown encoding is refused', async () => {
    const seen = await send(agent, `${base(BEARER_HOST)}/zstd`);

    assert.equal(seen.status, 502);
    assert.equal(seen.headers['x-agent-proxy-error'], 'response_not_inspectable');
    assert.equal((JSON.parse(seen.text) as { contentEncoding: string }).contentEncoding, 'zstd');
  });

  test('TRACE never reaches the upstream', async () => {
    const before = upstream.requests.length;
    const seen = await send(agent, `${base(BEARER_HOST)}/anything`, { method: 'TRACE' });

    assert.equal(seen.status, 403);
    assert.equal(seen.headers['x-agent-proxy-error'], 'method_not_allowed_by_credential');
    assert.equal(JSON.parse(seen.text).method, 'TRACE');
    assert.equal(upstream.requests.length, before);
  });

  test('TRACK never reaches the upstream', async () => {
    const before = upstream.requests.length;
    // Node's HTTP parser has no TRACK method, so the proxy may close the connection without a response.
    const outcome = await send(agent, `${base(BASIC_HOST)}/anything`, { method: 'TRACK' }).then(
      (seen) => seen.status,
      () => 'connection closed',
    );

    assert.notEqual(outcome, 200);
    assert.equal(upstream.requests.length, before);
  });

  test('token endpoint is not reachable by the sandbox', async () => {
    const warm = await send(agent, `https://${API_HOST}:${oauth.port}/me`);
    assert.equal(warm.status, 200);
    const mintsBefore = oauth.tokenRequests().length;

    const seen = await send(agent, `https://${AUTH_HOST}:${oauth.port}${TOKEN_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&client_id=${CLIENT_ID}`,
    });
    const variant = await send(agent, `https://${AUTH_HOST}:${oauth.port}/OAuth/%74oken/`, { method: 'POST', body: 'grant_type=client_credentials' });

    assert.equal(seen.status, 403);
    assert.equal(seen.headers['x-agent-proxy-error'], 'method_not_allowed_by_credential');
    assert.equal(variant.status, 403);
    assert.equal(oauth.tokenRequests().length, mintsBefore, 'a sandbox request reached the token endpoint');
    for (const token of oauth.issuedAccessTokens()) {
      assert.equal(leaks(visible(warm), token) || leaks(visible(seen), token), false, 'an access token reached the sandbox');
    }
  });

  test('token error echoing the secret is masked', async () => {
    oauth.failTokenEndpoint({ status: 401, body: { error: 'invalid_client', error_description: `client_secret ${CLIENT_SECRET} is not valid for ${CLIENT_ID}` } });
    try {
      oauth.expireAccessTokens();
      const seen = await send(agent, `https://${API_HOST}:${oauth.port}/me`);

      assert.equal(seen.status, 502);
      assert.equal(seen.headers['x-agent-proxy-error'], 'credential_unavailable');
      assert.equal(JSON.parse(seen.text).error, 'invalid_client');
      assert.equal(leaks(visible(seen), CLIENT_SECRET), false, 'the problem body repeated the client secret');
      const mint = (await auditEvents()).filter((event) => event.kind === 'mint').at(-1);
      assert.equal(mint?.decision, 'error');
      assert.equal(leaks(JSON.stringify(mint), CLIENT_SECRET), false, 'the mint audit event repeated the client secret');
    } finally {
      oauth.failTokenEndpoint(null);
    }
  });
});
