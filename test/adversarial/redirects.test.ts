// Redirect and replay attacks: an upstream (or whoever controls one of its responses)
// answers with a Location or a pagination link to another host, hoping the proxy follows it
// with the credential attached. The proxy never follows a redirect, so the credential
// reaches another host only if the sandbox's own follow-up request gets one, which it must
// not. A token request redirected with 307/308 is never re-sent: a 307 makes a client re-post
// the credentials it sent to wherever the Location points (the "307 Redirect" attack of RFC 9700).

import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, before, describe, test, type TestContext } from 'node:test';
import { createTestPki, type TestPki } from '../helpers/testPki.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import {
  advAbsoluteForm,
  advAssertNoSecretReached,
  advAssertRefused,
  advRequestThroughTunnel,
  advStartEchoOn,
  advStartProxy,
  type AdvProxy,
  type AdvRequest,
} from './helpers.ts';

const SECRET = 'sk-redirect-3b7c55e0';
const CLIENT_SECRET = 'cs-redirect-a41f09';
const API_HOST = 'api.example.test';
const ATTACKER_HOST = 'attacker.test';
const ATTACKER_ADDRESS = '127.0.0.2';

let pki: TestPki;
let api: EchoUpstream;
let attacker: EchoUpstream;
const routeHits = new Map<string, number>();

function attackerUrl(path: string): string {
  return `https://${ATTACKER_HOST}:${api.port}${path}`;
}

function counted(path: string, handler: http.RequestListener): [string, http.RequestListener] {
  return [
    path,
    (req, res) => {
      routeHits.set(path, (routeHits.get(path) ?? 0) + 1);
      req.resume();
      req.on('end', () => handler(req, res));
    },
  ];
}

function redirect(status: number, location: () => string): http.RequestListener {
  return (_req, res) => {
    res.writeHead(status, { location: location(), 'content-length': 0 });
    res.end();
  };
}

before(async () => {
  pki = await createTestPki();
  api = await startEchoUpstream(
    [API_HOST],
    Object.fromEntries([
      counted('/redirect-301', redirect(301, () => attackerUrl('/steal'))),
      counted('/redirect-302', redirect(302, () => attackerUrl('/steal'))),
      counted('/redirect-303', redirect(303, () => attackerUrl('/steal'))),
      counted('/redirect-307', redirect(307, () => attackerUrl('/steal'))),
      counted('/redirect-308', redirect(308, () => attackerUrl('/steal'))),
      counted('/redirect-same-host', redirect(302, () => '/landing')),
      counted('/landing', (_req, res) => res.end('landed')),
      counted('/page', (_req, res) => {
        const body = JSON.stringify({ records: [], nextRecordsUrl: attackerUrl('/page2') });
        res.writeHead(200, { 'content-type': 'application/json', link: `<${attackerUrl('/page2')}>; rel="next"` });
        res.end(body);
      }),
      counted('/token-307', redirect(307, () => attackerUrl('/token'))),
      counted('/token-308', redirect(308, () => attackerUrl('/token'))),
      counted('/token-302-same-host', redirect(302, () => '/token-ok')),
      counted('/token-ok', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'at-should-not-be-minted', token_type: 'Bearer', expires_in: 3600 }));
      }),
    ]),
    pki,
  );
  attacker = await advStartEchoOn(ATTACKER_ADDRESS, api.port, [ATTACKER_HOST], pki);
});

after(async () => {
  await api?.close();
  await attacker?.close();
});

async function startProxy(t: TestContext, credentials?: unknown[]): Promise<AdvProxy> {
  return advStartProxy(t, {
    records: { [API_HOST]: ['127.0.0.1'], [ATTACKER_HOST]: [ATTACKER_ADDRESS] },
    credentials: credentials ?? [{ name: 'api', type: 'bearer_token', token: SECRET, allowedWebsites: [`${API_HOST}:${api.port}`] }],
    upstreamCaPem: [pki.caPem],
    egress: { allowPrivateNetworks: ['127.0.0.1/32', `${ATTACKER_ADDRESS}/32`] },
  });
}

function callApi(proxy: AdvProxy, request: AdvRequest) {
  return advRequestThroughTunnel(proxy, `${API_HOST}:${api.port}`, { servername: API_HOST, ca: proxy.proxyCaPem }, {
    ...request,
    headers: { host: `${API_HOST}:${api.port}`, ...request.headers },
  });
}

function assertAttackerGotNoSecret(): void {
  advAssertNoSecretReached(attacker, [SECRET, CLIENT_SECRET], 'the redirect target');
}

describe('redirects from the credentialed upstream', () => {
  for (const [status, method] of [
    [301, 'GET'],
    [302, 'GET'],
    [303, 'POST'],
    [307, 'POST'],
    [308, 'PUT'],
  ] as const) {
    test(`${status} after ${method} returned unfollowed`, async (t) => {
      const proxy = await startProxy(t);
      const path = `/redirect-${status}`;
      const hitsBefore = routeHits.get(path) ?? 0;
      const attackerBefore = attacker.requests.length;

      const response = await callApi(proxy, { method, path, body: method === 'GET' ? undefined : 'amount=100', headers: method === 'GET' ? {} : { 'content-type': 'application/x-www-form-urlencoded' } });

      assert.equal(response.status, status);
      assert.equal(response.headers.location, attackerUrl('/steal'), 'the Location goes back to the client as sent');
      assert.equal(routeHits.get(path), hitsBefore + 1, 'the request was sent once, never replayed');
      assert.equal(attacker.requests.length, attackerBefore, 'the proxy did not follow the redirect');
    });
  }

  test('same-host redirect not followed', async (t) => {
    const proxy = await startProxy(t);
    const landingBefore = routeHits.get('/landing') ?? 0;

    const response = await callApi(proxy, { path: '/redirect-same-host' });

    assert.equal(response.status, 302);
    assert.equal(response.headers.location, '/landing');
    assert.equal(routeHits.get('/landing') ?? 0, landingBefore);
  });

  test('absolute-form redirect returned unfollowed', async (t) => {
    const proxy = await startProxy(t);
    const attackerBefore = attacker.requests.length;

    const response = await advAbsoluteForm(proxy, `https://${API_HOST}:${api.port}/redirect-302`, { headers: { host: `${API_HOST}:${api.port}` } });

    assert.equal(response.status, 302);
    assert.equal(response.headers.location, attackerUrl('/steal'));
    assert.equal(attacker.requests.length, attackerBefore);
  });

  test('client following Location gets no credential', async (t) => {
    const proxy = await startProxy(t);
    const redirected = await callApi(proxy, { method: 'POST', path: '/redirect-307', body: 'amount=100' });
    const location = new URL(String(redirected.headers.location));
    const attackerBefore = attacker.requests.length;

    // The sandbox's client re-sends the request where the Location points, through the proxy.
    const followed = await advRequestThroughTunnel(proxy, location.host, { servername: location.hostname, ca: pki.caPem }, {
      method: 'POST',
      path: location.pathname,
      headers: { host: location.host },
      body: 'amount=100',
    });

    assert.equal(followed.status, 200);
    assert.equal(attacker.requests.length, attackerBefore + 1);
    assert.equal(attacker.requests.at(-1)?.headers.authorization, undefined);
    assertAttackerGotNoSecret();
  });

  test('client following Location absolute-form gets none', async (t) => {
    const proxy = await startProxy(t);
    const attackerBefore = attacker.requests.length;

    const followed = await advAbsoluteForm(proxy, attackerUrl('/steal'), { headers: { host: `${ATTACKER_HOST}:${api.port}` } });

    assert.equal(followed.status, 200, followed.body);
    assert.equal(attacker.requests.length, attackerBefore + 1);
    assertAttackerGotNoSecret();
  });
});

describe('pagination links', () => {
  test('next-page link to another host gets none', async (t) => {
    const proxy = await startProxy(t);
    const page = await callApi(proxy, { path: '/page' });
    assert.equal(page.status, 200);
    const fromBody = new URL((JSON.parse(page.body) as { nextRecordsUrl: string }).nextRecordsUrl);
    const fromLink = new URL(/<([^>]+)>/.exec(String(page.headers.link))![1]!);
    const attackerBefore = attacker.requests.length;

    for (const next of [fromBody, fromLink]) {
      const response = await advRequestThroughTunnel(proxy, next.host, { servername: next.hostname, ca: pki.caPem }, { path: next.pathname, headers: { host: next.host } });
      assert.equal(response.status, 200);
    }

    assert.equal(attacker.requests.length, attackerBefore + 2);
    assertAttackerGotNoSecret();
  });
});

describe('token endpoint redirects', () => {
  function clientCredentials(tokenPath: string): unknown {
    return {
      name: 'oauth',
      type: 'oauth2_client_credentials',
      clientId: 'client-redirect',
      clientSecret: CLIENT_SECRET,
      tokenUrl: `https://${API_HOST}:${api.port}${tokenPath}`,
      clientAuthMethod: 'body',
      allowedWebsites: [`${API_HOST}:${api.port}`],
    };
  }

  for (const tokenPath of ['/token-307', '/token-308', '/token-302-same-host']) {
    test(`token ${tokenPath.slice(7)} redirect never re-sent`, async (t) => {
      const proxy = await startProxy(t, [clientCredentials(tokenPath)]);
      const hitsBefore = routeHits.get(tokenPath) ?? 0;
      const okBefore = routeHits.get('/token-ok') ?? 0;
      const attackerBefore = attacker.requests.length;

      const response = await callApi(proxy, { path: '/data' });

      advAssertRefused(response, 502, 'credential_unavailable');
      assert.equal(routeHits.get(tokenPath), hitsBefore + 1, 'the token request was sent once');
      assert.equal(routeHits.get('/token-ok') ?? 0, okBefore, 'a same-host redirect is not followed either');
      assert.equal(attacker.requests.length, attackerBefore, 'the client secret was not re-posted to the Location');
      assert.ok(!response.body.includes(CLIENT_SECRET));
      assertAttackerGotNoSecret();
    });
  }
});
