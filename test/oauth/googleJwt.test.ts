// Google service-account JWT bearer credentials through the real proxy and real TLS,
// against the Google-compatible token server and its protected `/v1/whoami` resource.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { ProxyAgent, request } from 'undici';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { startGoogleTokenServer, type GoogleTokenServer, type GoogleTokenServerOptions } from '../fixtures/googleTokenServer.ts';

const CHANNEL = 'C0DATA';
const TOKEN_HOST = 'oauth2.googleapis.test';
const API_HOST = 'www.googleapis.test';
const CLIENT_EMAIL = 'reporter@acme-project.iam.gserviceaccount.com';
const KEY_ID = '0123456789abcdef0123456789abcdef01234567';
const SCOPE = 'https://www.googleapis.com/auth/bigquery.readonly';
const WORKSPACE_USER = 'analyst@acme.example';

const accountKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ACCOUNT_KEY_PEM = accountKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

interface Setup {
  google: GoogleTokenServer;
  harness: Harness;
  agent: ProxyAgent;
  whoamiUrl: string;
}

/** Starts the Google test server and a proxy holding one service-account credential for it, both stopped after the test. */
async function setUp(t: TestContext, serverOptions: GoogleTokenServerOptions = {}, overrides: Record<string, unknown> = {}): Promise<Setup> {
  const google = await startGoogleTokenServer({
    serviceAccounts: [{ clientEmail: CLIENT_EMAIL, keys: [{ keyId: KEY_ID, publicKey: accountKeys.publicKey }], delegatedScopes: [SCOPE] }],
    domainUsers: [WORKSPACE_USER],
    ...serverOptions,
  });
  t.after(() => google.close());
  const harness = await startHarness({
    upstreamCaPem: [google.caPem],
    pins: [TOKEN_HOST, API_HOST].map((host) => ({ host, port: google.port, address: '127.0.0.1' })),
    config: {
      egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] },
      bundles: [
        {
          name: 'data',
          channels: [CHANNEL],
          credentials: [
            {
              name: 'bigquery',
              type: 'oauth2_jwt_bearer',
              // The `.test` token host is not one Agent Proxy recognises as Google's, so the provider is named.
              provider: 'google',
              issuer: CLIENT_EMAIL,
              privateKey: ACCOUNT_KEY_PEM,
              keyId: KEY_ID,
              tokenUrl: google.tokenUrl(TOKEN_HOST),
              scope: SCOPE,
              allowedWebsites: [`${API_HOST}:${google.port}`],
              access: 'read',
              ...overrides,
            },
          ],
        },
      ],
    },
  });
  t.after(() => harness.close());
  const session = await harness.createSession(CHANNEL);
  const agent = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: readFileSync(session.caBundlePath, 'utf8') } });
  t.after(() => agent.close());
  return { google, harness, agent, whoamiUrl: `${google.url(API_HOST)}/v1/whoami` };
}

async function get(setup: Setup): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const response = await request(setup.whoamiUrl, { dispatcher: setup.agent });
  return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
}

function tokenRequests(google: GoogleTokenServer) {
  return google.requests.filter((recorded) => recorded.path === '/token');
}

describe('google service account', () => {
  test('resource receives the minted token', async (t) => {
    const setup = await setUp(t);

    const response = await get(setup);

    assert.equal(response.status, 200, response.text);
    assert.deepEqual(JSON.parse(response.text), { email: CLIENT_EMAIL, subject: null, scope: SCOPE });
    const [token] = setup.google.issuedTokens();
    assert.ok(token);
    const calls = setup.google.requests.filter((recorded) => recorded.path === '/v1/whoami');
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.authorization === `Bearer ${token}`, true, 'whoami did not receive the minted token');
    assert.equal(`${JSON.stringify(response.headers)}${response.text}`.includes(token), false, 'the token reached the sandbox');
  });

  test('assertion has Google claims', async (t) => {
    const setup = await setUp(t);

    assert.equal((await get(setup)).status, 200);

    const [tokenRequest] = tokenRequests(setup.google);
    const form = new URLSearchParams(tokenRequest?.body ?? '');
    assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:jwt-bearer');
    const assertion = form.get('assertion') ?? '';
    assert.deepEqual(decodeProtectedHeader(assertion), { alg: 'RS256', typ: 'JWT', kid: KEY_ID });
    const claims = decodeJwt(assertion);
    assert.equal(claims.iss, CLIENT_EMAIL);
    assert.equal(claims.aud, setup.google.tokenUrl(TOKEN_HOST));
    assert.equal(claims.scope, SCOPE);
    assert.equal(claims.sub, undefined);
    assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 3600);
  });

  test('subject impersonates a Workspace user', async (t) => {
    const setup = await setUp(t, {}, { subject: WORKSPACE_USER });

    const response = await get(setup);

    assert.equal(response.status, 200, response.text);
    assert.deepEqual(JSON.parse(response.text), { email: CLIENT_EMAIL, subject: WORKSPACE_USER, scope: SCOPE });
    assert.equal(setup.google.mintCount(WORKSPACE_USER), 1);
  });

  test('expires_in keeps the token cached', async (t) => {
    const setup = await setUp(t);

    const first = await get(setup);
    const second = await get(setup);

    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.equal(setup.google.mintCount(), 1);
    assert.equal(tokenRequests(setup.google).length, 1);
  });

  test('short expires_in re-mints before expiry', async (t) => {
    // A 2-second token is replaced after 1.8 seconds (a tenth of its lifetime early), so no request carries an expired one.
    const setup = await setUp(t, { tokenLifetimeSeconds: 2 });

    assert.equal((await get(setup)).status, 200);
    await sleep(1_900);
    const response = await get(setup);

    assert.equal(response.status, 200, response.text);
    assert.equal(setup.google.mintCount(), 2);
    const calls = setup.google.requests.filter((recorded) => recorded.path === '/v1/whoami');
    assert.deepEqual(
      calls.map((recorded) => recorded.status),
      [200, 200],
    );
  });

  test('revoked token re-mints and retries', async (t) => {
    const setup = await setUp(t);
    assert.equal((await get(setup)).status, 200);
    setup.google.expireAllTokens();

    const response = await get(setup);

    assert.equal(response.status, 200, response.text);
    assert.equal(setup.google.mintCount(), 2);
  });

  test('wrong key returns 502', async (t) => {
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const setup = await setUp(t, {}, { privateKey: otherKey });

    const response = await get(setup);

    assert.equal(response.status, 502);
    assert.equal(response.headers['x-agent-proxy-error'], 'credential_unavailable');
    const problem = JSON.parse(response.text) as Record<string, unknown>;
    assert.equal(problem.credential, 'bigquery');
    assert.equal(problem.tokenEndpointStatus, 400);
    assert.equal(problem.error, 'invalid_grant');
    assert.equal(problem.error_description, 'Invalid JWT Signature.');
    assert.match(String(problem.hint), /service account's current key/);
  });
});
