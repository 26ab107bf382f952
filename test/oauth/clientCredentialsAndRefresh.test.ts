// OAuth client credentials and refresh token credentials through the real proxy and
// real TLS, against the generic OAuth test server: what the token endpoint receives, and
// how a rotated refresh token is stored and survives a re-applied bundles file.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, test, type TestContext } from 'node:test';
import { ProxyAgent, request } from 'undici';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { startOAuthTokenServer, type OAuthTokenServer, type OAuthTokenServerOptions } from '../fixtures/oauthTokenServer.ts';
import { createTestPki, type TestPki } from '../helpers/testPki.ts';

const CHANNEL = 'C0REPORTS';
const AUTH_HOST = 'auth.example.test';
const API_HOST = 'api.example.test';
// Characters that RFC 6749 §2.3.1 form-encoding changes: space, ":", "+", "/", "=", "%" and "@".
const CLIENT_ID = 'reporting app:1';
const CLIENT_SECRET = 's3cr+t/=%@ with space';
const FIRST_REFRESH_TOKEN = 'rt-configured-first-5c1e';
const SECOND_REFRESH_TOKEN = 'rt-configured-second-9b7d';

let pki: TestPki;

before(async () => {
  pki = await createTestPki();
});

interface Setup {
  server: OAuthTokenServer;
  harness: Harness;
  agent: ProxyAgent;
  meUrl: string;
  /** Applies the bundles document with this credential again. */
  apply(credential: Record<string, unknown>): Promise<void>;
}

function bundles(credential: Record<string, unknown>): unknown {
  return {
    egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] },
    bundles: [{ name: 'reports', channels: [CHANNEL], credentials: [credential] }],
  };
}

/** Starts the OAuth test server and a proxy holding `credential(server)`, both stopped after the test. */
async function setUp(t: TestContext, serverOptions: OAuthTokenServerOptions, credential: (server: OAuthTokenServer) => Record<string, unknown>): Promise<Setup> {
  const server = await startOAuthTokenServer({ pki, clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }], ...serverOptions });
  t.after(() => server.close());
  const harness = await startHarness({
    upstreamCaPem: [pki.caPem],
    pins: [AUTH_HOST, API_HOST].map((host) => ({ host, port: server.port, address: '127.0.0.1' })),
    config: bundles(credential(server)),
  });
  t.after(() => harness.close());
  const session = await harness.createSession(CHANNEL);
  const agent = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: readFileSync(session.caBundlePath, 'utf8') } });
  t.after(() => agent.close());

  return {
    server,
    harness,
    agent,
    meUrl: `${server.url(API_HOST)}/me`,
    async apply(next) {
      const applied = await harness.admin('POST', '/api/v1/apply', bundles(next));
      assert.equal(applied.status, 200, JSON.stringify(applied.body));
    },
  };
}

function clientCredentials(server: OAuthTokenServer, clientAuthMethod: 'basic' | 'body'): Record<string, unknown> {
  return {
    name: 'reporting',
    type: 'oauth2_client_credentials',
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    tokenUrl: server.tokenUrl,
    scope: 'reports.read reports.export',
    audience: `https://${API_HOST}`,
    clientAuthMethod,
    allowedWebsites: [`${API_HOST}:${server.port}`],
  };
}

function refreshCredential(server: OAuthTokenServer, refreshToken = FIRST_REFRESH_TOKEN): Record<string, unknown> {
  return {
    name: 'reporting',
    type: 'oauth2_refresh_token',
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    refreshToken,
    tokenUrl: server.tokenUrl,
    allowedWebsites: [`${API_HOST}:${server.port}`],
  };
}

interface ClientResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function get(setup: Setup): Promise<ClientResponse> {
  const response = await request(setup.meUrl, { dispatcher: setup.agent });
  return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
}

/** Asserts that nothing the token endpoint returned appears in what the sandbox received. */
function assertNoTokens(setup: Setup, responses: ClientResponse[]): void {
  const tokens = [...setup.server.issuedAccessTokens(), ...setup.server.issuedRefreshTokens(), FIRST_REFRESH_TOKEN, SECOND_REFRESH_TOKEN];
  for (const response of responses) {
    const seen = `${JSON.stringify(response.headers)}\n${response.text}`;
    for (const token of tokens) {
      assert.equal(seen.includes(token), false, 'a token from the token endpoint reached the sandbox');
    }
  }
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

describe('client credentials', () => {
  test('basic auth sends form-encoded pair', async (t) => {
    const setup = await setUp(t, {}, (server) => clientCredentials(server, 'basic'));

    const response = await get(setup);

    assert.equal(response.status, 200, response.text);
    assert.deepEqual(JSON.parse(response.text), { client_id: CLIENT_ID, grant_type: 'client_credentials', scope: 'reports.read reports.export', audience: `https://${API_HOST}` });
    const [tokenRequest, ...others] = setup.server.tokenRequests();
    assert.equal(others.length, 0);
    assert.equal(tokenRequest?.method, 'POST');
    assert.equal(tokenRequest?.host, AUTH_HOST);
    assert.equal(tokenRequest?.contentType, 'application/x-www-form-urlencoded');
    assert.equal(tokenRequest?.clientAuthentication, 'basic');
    assert.deepEqual(tokenRequest?.form, { grant_type: 'client_credentials', scope: 'reports.read reports.export', audience: `https://${API_HOST}` });
    const expected = `Basic ${Buffer.from(`${formEncode(CLIENT_ID)}:${formEncode(CLIENT_SECRET)}`).toString('base64')}`;
    assert.equal(tokenRequest?.authorization === expected, true, 'the Authorization header is not the RFC 6749 §2.3.1 encoding of the client id and secret');
    assert.equal(tokenRequest.status, 200);
    assertNoTokens(setup, [response]);
  });

  test('body auth sends id and secret', async (t) => {
    const setup = await setUp(t, {}, (server) => clientCredentials(server, 'body'));

    const response = await get(setup);

    assert.equal(response.status, 200, response.text);
    const [tokenRequest, ...others] = setup.server.tokenRequests();
    assert.equal(others.length, 0);
    assert.equal(tokenRequest?.contentType, 'application/x-www-form-urlencoded');
    assert.equal(tokenRequest?.clientAuthentication, 'body');
    assert.equal(tokenRequest?.authorization, undefined);
    assert.deepEqual(Object.keys(tokenRequest?.form ?? {}).sort(), ['audience', 'client_id', 'client_secret', 'grant_type', 'scope']);
    assert.equal(tokenRequest?.form.grant_type, 'client_credentials');
    assert.equal(tokenRequest?.form.client_id, CLIENT_ID);
    assert.equal(tokenRequest?.form.client_secret === CLIENT_SECRET, true, 'client_secret differs from the configured secret');
    assert.equal(tokenRequest?.form.scope, 'reports.read reports.export');
    assert.equal(tokenRequest?.form.audience, `https://${API_HOST}`);
    assert.equal(tokenRequest?.status, 200);
  });

  test('resource receives the token once minted', async (t) => {
    const setup = await setUp(t, {}, (server) => clientCredentials(server, 'basic'));

    const first = await get(setup);
    const second = await get(setup);

    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const [token] = setup.server.issuedAccessTokens();
    const calls = setup.server.requests.filter((recorded) => recorded.path === '/me');
    assert.deepEqual(
      calls.map((recorded) => recorded.authorization === `Bearer ${token}`),
      [true, true],
    );
    assert.equal(setup.server.tokenRequests().length, 1);
  });

  test('apply reaches an open tunnel', async (t) => {
    const setup = await setUp(t, {}, (server) => clientCredentials(server, 'basic'));
    assert.equal((await get(setup)).status, 200);

    // The same ProxyAgent keeps its tunnel open, so the next request rides the CONNECT made before the apply.
    await setup.apply({ ...clientCredentials(setup.server, 'basic'), name: 'other', allowedWebsites: [`${AUTH_HOST}:${setup.server.port}`] });
    const response = await get(setup);

    assert.equal(response.status, 403);
    assert.equal(response.headers['x-agent-proxy-error'], 'egress_denied');
    assert.equal(setup.server.requests.filter((recorded) => recorded.path === '/me').length, 1);
  });

  test('wrong secret returns 502', async (t) => {
    const setup = await setUp(t, {}, (server) => ({ ...clientCredentials(server, 'basic'), clientSecret: 'not-the-secret' }));

    const response = await get(setup);

    assert.equal(response.status, 502);
    assert.equal(response.headers['x-agent-proxy-error'], 'credential_unavailable');
    const problem = JSON.parse(response.text) as Record<string, unknown>;
    assert.equal(problem.code, 'credential_unavailable');
    assert.equal(problem.credential, 'reporting');
    assert.equal(problem.tokenEndpointStatus, 401);
    assert.equal(problem.error, 'invalid_client');
    assert.equal(problem.error_description, 'Client authentication failed.');
    assert.equal(response.text.includes('not-the-secret'), false);
  });
});

describe('refresh token', () => {
  const rotating: OAuthTokenServerOptions = { rotateRefreshTokens: true, refreshTokens: [{ refreshToken: FIRST_REFRESH_TOKEN, clientId: CLIENT_ID }] };

  test('rotated refresh token is used next', async (t) => {
    const setup = await setUp(t, rotating, (server) => refreshCredential(server));

    const first = await get(setup);
    setup.server.expireAccessTokens();
    const second = await get(setup);

    assert.equal(first.status, 200, first.text);
    assert.equal(second.status, 200, second.text);
    const rotated = setup.server.issuedRefreshTokens();
    assert.equal(rotated.length, 2);
    const presented = setup.server.tokenRequests().map((recorded) => [recorded.status, recorded.form.refresh_token]);
    assert.deepEqual(presented, [
      [200, FIRST_REFRESH_TOKEN],
      [200, rotated[0]],
    ]);
    assert.deepEqual(
      setup.server.tokenRequests().map((recorded) => [recorded.form.grant_type, recorded.form.client_id, recorded.clientAuthentication]),
      [
        ['refresh_token', CLIENT_ID, 'body'],
        ['refresh_token', CLIENT_ID, 'body'],
      ],
    );
    assertNoTokens(setup, [first, second]);
  });

  test('re-applied file keeps the rotated token', async (t) => {
    const setup = await setUp(t, rotating, (server) => refreshCredential(server));
    assert.equal((await get(setup)).status, 200);

    await setup.apply(refreshCredential(setup.server));
    setup.server.expireAccessTokens();
    const response = await get(setup);

    assert.equal(response.status, 200, response.text);
    const rotated = setup.server.issuedRefreshTokens();
    assert.deepEqual(
      setup.server.tokenRequests().map((recorded) => [recorded.status, recorded.form.refresh_token]),
      [
        [200, FIRST_REFRESH_TOKEN],
        [200, rotated[0]],
      ],
    );
  });

  test('new refresh token in file starts over', async (t) => {
    const setup = await setUp(t, rotating, (server) => refreshCredential(server));
    assert.equal((await get(setup)).status, 200);
    setup.server.addRefreshToken(SECOND_REFRESH_TOKEN, CLIENT_ID);

    await setup.apply(refreshCredential(setup.server, SECOND_REFRESH_TOKEN));
    const afterApply = await get(setup);
    setup.server.expireAccessTokens();
    const afterExpiry = await get(setup);

    assert.equal(afterApply.status, 200, afterApply.text);
    assert.equal(afterExpiry.status, 200, afterExpiry.text);
    const rotated = setup.server.issuedRefreshTokens();
    assert.deepEqual(
      setup.server.tokenRequests().map((recorded) => [recorded.status, recorded.form.refresh_token]),
      [
        [200, FIRST_REFRESH_TOKEN],
        [200, SECOND_REFRESH_TOKEN],
        [200, rotated[1]],
      ],
    );
    assertNoTokens(setup, [afterApply, afterExpiry]);
  });

  test('refresh without rotation keeps the token', async (t) => {
    const setup = await setUp(t, { refreshTokens: [{ refreshToken: FIRST_REFRESH_TOKEN, clientId: CLIENT_ID }] }, (server) => refreshCredential(server));

    assert.equal((await get(setup)).status, 200);
    setup.server.expireAccessTokens();
    assert.equal((await get(setup)).status, 200);

    assert.deepEqual(
      setup.server.tokenRequests().map((recorded) => [recorded.status, recorded.form.refresh_token]),
      [
        [200, FIRST_REFRESH_TOKEN],
        [200, FIRST_REFRESH_TOKEN],
      ],
    );
  });

  test('revoked refresh token returns 502', async (t) => {
    const setup = await setUp(t, { rotateRefreshTokens: true }, (server) => refreshCredential(server));

    const response = await get(setup);

    assert.equal(response.status, 502);
    assert.equal(response.headers['x-agent-proxy-error'], 'credential_unavailable');
    const problem = JSON.parse(response.text) as Record<string, unknown>;
    assert.equal(problem.credential, 'reporting');
    assert.equal(problem.tokenEndpointStatus, 400);
    assert.equal(problem.error, 'invalid_grant');
    assert.equal(problem.error_description, 'The refresh token is invalid, expired or revoked.');
    assertNoTokens(setup, [response]);
  });
});
