// Client-supplied credentials: on a host where the proxy injects a credential, the
// sandbox's own Authorization, API-key headers, cookies and credential query
// parameters are removed, so it cannot act as an account of its own choosing (and
// write the organisation's data there) on a host the policy allows.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type tls from 'node:tls';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from '../helpers/upstreams.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';
import { connectAnswer, exchange, openTlsTunnel, parseRawResponse, startProxy, type ProxyUnderTest } from './rawHttp.ts';

const CHANNEL = 'C0CLIENTCRED';
const BEARER_HOST = 'bearer.client.test';
const KEY_HOST = 'key.client.test';
const QUERY_HOST = 'query.client.test';
const COOKIE_HOST = 'cookies.client.test';
const OPEN_HOST = 'open.client.test';

const BEARER_SECRET = 'sk-org-bearer-31af';
const KEY_SECRET = 'sk-org-key-8c02';
const QUERY_SECRET = 'sk-org-query-55d1';
const COOKIE_SECRET = 'sk-org-cookie-e7b9';
const ATTACKER = 'attacker-own-key-666';

let upstream: EchoUpstream;
let proxy: ProxyUnderTest;
let session: CreatedSession;

before(async () => {
  upstream = await startEchoUpstream([BEARER_HOST, KEY_HOST, QUERY_HOST, COOKIE_HOST, OPEN_HOST]);
  const site = (host: string) => [`${host}:${upstream.port}`];
  proxy = await startProxy({
    upstream,
    hosts: [BEARER_HOST, KEY_HOST, QUERY_HOST, COOKIE_HOST, OPEN_HOST],
    bundles: [
      {
        name: 'client-credentials',
        channels: [CHANNEL],
        credentials: [
          { name: 'bearer', type: 'bearer_token', token: BEARER_SECRET, allowedWebsites: site(BEARER_HOST) },
          { name: 'key', type: 'api_key', headerName: 'X-Org-Key', value: KEY_SECRET, allowedWebsites: site(KEY_HOST) },
          { name: 'query', type: 'api_key', queryParam: 'apikey', value: QUERY_SECRET, allowedWebsites: site(QUERY_HOST) },
          { name: 'cookies', type: 'bearer_token', token: COOKIE_SECRET, allowClientCookies: true, allowedWebsites: site(COOKIE_HOST) },
        ],
      },
    ],
  });
  session = await proxy.createSession(CHANNEL);
});

after(async () => {
  await proxy?.close();
  await upstream?.close();
});

/** Sends one request inside a tunnel to `host` and returns what the echo upstream saw. */
async function echoThrough(host: string, path: string, headers: Array<[string, string]>): Promise<{ status: number; echoed: EchoedRequest | null; raw: string }> {
  const before = upstream.requests.length;
  const tunnel: tls.TLSSocket = await openTlsTunnel(proxy.port, host, upstream.port, session, proxy.caPem);
  const lines = [`GET ${path} HTTP/1.1`, `Host: ${host}:${upstream.port}`, ...headers.map(([name, value]) => `${name}: ${value}`), 'Connection: close'];
  const { raw } = await exchange(tunnel, `${lines.join('\r\n')}\r\n\r\n`);
  tunnel.destroy();
  const parsed = parseRawResponse(raw);
  assert.ok(parsed, `no response: ${raw.slice(0, 200)}`);
  return { status: parsed.status, echoed: upstream.requests.length > before ? upstream.requests.at(-1)! : null, raw };
}

function headerValues(echoed: EchoedRequest, name: string): string[] {
  const values: string[] = [];
  for (let index = 0; index + 1 < echoed.rawHeaders.length; index += 2) {
    if (echoed.rawHeaders[index]!.toLowerCase() === name) values.push(echoed.rawHeaders[index + 1]!);
  }
  return values;
}

function assertNoAttackerValue(echoed: EchoedRequest): void {
  assert.equal(JSON.stringify(echoed).includes(ATTACKER), false, `the sandbox's own credential reached the upstream: ${echoed.url} ${echoed.rawHeaders.join(' | ')}`);
}

describe('client credential headers on a bearer host', () => {
  const cases: Array<[string, Array<[string, string]>]> = [
    ['own Authorization Bearer', [['Authorization', `Bearer ${ATTACKER}`]]],
    ['own Authorization Basic', [['Authorization', `Basic ${Buffer.from(`me:${ATTACKER}`).toString('base64')}`]]],
    ['two Authorization headers', [['Authorization', `Bearer ${ATTACKER}`], ['authorization', `Bearer ${ATTACKER}`]]],
    ['Proxy-Authorization forwarded', [['Proxy-Authorization', `Bearer ${ATTACKER}`]]],
    ['x-api-key header', [['X-Api-Key', ATTACKER]]],
    ['api-key header', [['api-key', ATTACKER]]],
    ['x-auth-token header', [['X-Auth-Token', ATTACKER]]],
    ['private-token header', [['PRIVATE-TOKEN', ATTACKER]]],
    ['Cookie session', [['Cookie', `session=${ATTACKER}`]]],
    ['two Cookie headers', [['Cookie', `a=${ATTACKER}`], ['Cookie', `b=${ATTACKER}`]]],
    ['x-api-key listed in Connection', [['Connection', 'x-api-key'], ['X-Api-Key', ATTACKER]]],
  ];
  for (const [name, headers] of cases) {
    test(`bearer host strips ${name}`, async () => {
      const { status, echoed, raw } = await echoThrough(BEARER_HOST, '/v1/write', headers);

      assert.equal(status, 200);
      assert.ok(echoed);
      assertNoAttackerValue(echoed);
      assert.deepEqual(headerValues(echoed, 'authorization'), [`Bearer ${BEARER_SECRET}`]);
      assert.equal(raw.includes(BEARER_SECRET), false, 'the injected token must not come back to the sandbox');
    });
  }
});

describe('client credential query parameters', () => {
  const paths: Array<[string, string]> = [
    ['access_token parameter', `/v1/write?access_token=${ATTACKER}&a=1`],
    ['api_key parameter', `/v1/write?a=1&api_key=${ATTACKER}`],
    ['key parameter', `/v1/write?key=${ATTACKER}`],
    ['token parameter', `/v1/write?token=${ATTACKER}&token=${ATTACKER}`],
    ['percent-encoded access_token name', `/v1/write?%61ccess_token=${ATTACKER}&a=1`],
    ['upper-case ACCESS_TOKEN name', `/v1/write?ACCESS_TOKEN=${ATTACKER}&a=1`],
  ];
  for (const [name, path] of paths) {
    test(`bearer host strips ${name}`, async () => {
      const { status, echoed } = await echoThrough(BEARER_HOST, path, []);

      assert.equal(status, 200);
      assert.ok(echoed);
      assertNoAttackerValue(echoed);
      assert.equal(echoed.url.startsWith('/v1/write'), true);
      if (path.includes('a=1')) assert.match(echoed.url, /[?&]a=1(&|$)/);
    });
  }

  test('query host replaces own apikey parameter', async () => {
    const { status, echoed } = await echoThrough(QUERY_HOST, `/v1/write?apikey=${ATTACKER}&key=${ATTACKER}&page=2`, [['Authorization', `Bearer ${ATTACKER}`]]);

    assert.equal(status, 200);
    assert.ok(echoed);
    assertNoAttackerValue(echoed);
    assert.equal(echoed.url, `/v1/write?page=2&apikey=${QUERY_SECRET}`);
  });

  test('unrelated parameters kept byte for byte', async () => {
    const { echoed } = await echoThrough(BEARER_HOST, '/v1/read?q=a%2Bb&pageToken=abc&monkey=1', []);

    assert.ok(echoed);
    assert.equal(echoed.url, '/v1/read?q=a%2Bb&pageToken=abc&monkey=1');
  });
});

describe('client credential headers on an api_key host', () => {
  const cases: Array<[string, Array<[string, string]>]> = [
    ['own X-Org-Key', [['X-Org-Key', ATTACKER]]],
    ['own X-Org-Key in other case', [['x-org-key', ATTACKER]]],
    ['own Authorization beside the key', [['Authorization', `Bearer ${ATTACKER}`]]],
    ['own x-api-key beside the key', [['X-Api-Key', ATTACKER]]],
  ];
  for (const [name, headers] of cases) {
    test(`key host strips ${name}`, async () => {
      const { status, echoed } = await echoThrough(KEY_HOST, '/v1/write', headers);

      assert.equal(status, 200);
      assert.ok(echoed);
      assertNoAttackerValue(echoed);
      assert.deepEqual(headerValues(echoed, 'x-org-key'), [KEY_SECRET]);
      assert.deepEqual(headerValues(echoed, 'authorization'), []);
    });
  }
});

describe('allowClientCookies', () => {
  test('cookie kept when the credential allows it', async () => {
    const { echoed } = await echoThrough(COOKIE_HOST, '/v1/read', [['Cookie', 'csrftoken=abc'], ['Authorization', `Bearer ${ATTACKER}`]]);

    assert.ok(echoed);
    assert.deepEqual(headerValues(echoed, 'cookie'), ['csrftoken=abc']);
    assert.deepEqual(headerValues(echoed, 'authorization'), [`Bearer ${COOKIE_SECRET}`]);
    assertNoAttackerValue(echoed);
  });

  test('allowClientCookies must be a boolean', async () => {
    const applied = await proxy.proxy.apply(
      {
        bundles: [{ name: 'bad', channels: ['*'], credentials: [{ name: 'c', type: 'bearer_token', token: 't', allowClientCookies: 'yes', allowedWebsites: ['x.example.test'] }] }],
      },
      true,
    );
    assert.equal(applied.ok, false);
  });
});

describe('hosts without a credential', () => {
  test('uncredentialed host is an opaque tunnel', async () => {
    // With no credential injected the proxy relays bytes and never sees the sandbox's headers, so there is nothing to strip.
    const before = upstream.requests.length;
    const { response, socket } = await connectAnswer(proxy.port, `${OPEN_HOST}:${upstream.port}`, session);
    socket.destroy();
    assert.equal(response.status, 200);
    assert.equal(upstream.requests.length, before);
  });
});
