import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ProxyAgent, request } from 'undici';
import { validateBundlesDocument } from '../../src/config/bundlesFile.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { recordedRequest, reflectionMask, startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import { call, type ApiResponse, type Method } from './apiClient.ts';

const HOST = 'api.example.test';
const SECRET = 'tok-SECRET-0123456789abcdef';
const OTHER_SECRET = 'pw-OTHER-SECRET-9876';

let server: Harness;
let upstream: EchoUpstream;
let bundleId: string;
let otherBundleId: string;
/** Every admin API response of this file, searched for secret values at the end. */
const responses: ApiResponse[] = [];

async function api(method: Method, apiPath: string, body?: unknown): Promise<ApiResponse> {
  const response = await call(server, method, apiPath, body);
  responses.push(response);
  return response;
}

function bearerCredential(name: string, overrides: Record<string, unknown> = {}) {
  return { name, type: 'bearer_token', token: SECRET, allowedWebsites: [`${HOST}:${upstream.port}`], ...overrides };
}

/**
 * Sends a GET through the proxy as a fresh session of channel C0ENG. Returns the
 * Authorization header the upstream received and the one the client read in the echo,
 * where the proxy masks an injected secret.
 */
async function authorizationThroughProxy(): Promise<{ received: string | string[] | undefined; echoed: string | undefined }> {
  const session = await server.createSession('C0ENG');
  const agent = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: readFileSync(server.proxy.caPath, 'utf8') } });
  const seenBefore = upstream.requests.length;
  try {
    const response = await request(`https://${HOST}:${upstream.port}/whoami`, { dispatcher: agent });
    const echo = (await response.body.json()) as { headers: Record<string, string> };
    assert.equal(response.statusCode, 200);
    return { received: recordedRequest(upstream, '/whoami', seenBefore).headers.authorization, echoed: echo.headers.authorization };
  } finally {
    await agent.close();
  }
}

before(async () => {
  upstream = await startEchoUpstream([HOST]);
  server = await startHarness({ upstreamCaPem: [upstream.pki.caPem], pins: [{ host: HOST, port: upstream.port, address: '127.0.0.1' }] });
  assert.equal((await api('PUT', '/egress', { default: 'allow', allow: [], allowPrivateNetworks: ['127.0.0.1/32'] })).status, 200);
  bundleId = (await api('POST', '/bundles', { name: 'engineering', channels: ['C0ENG'] })).body.id;
  otherBundleId = (await api('POST', '/bundles', { name: 'parking', channels: ['C0NONE'] })).body.id;
});

after(async () => {
  await server?.close();
  await upstream?.close();
});

describe('credential routes', () => {
  test('create returns a redacted view', async () => {
    const created = await api('POST', `/bundles/${bundleId}/credentials`, bearerCredential('echo-api', { access: 'read' }));
    assert.equal(created.status, 201);
    assert.match(created.body.id, /^cred_[0-9a-f]{24}$/);
    assert.match(created.body.secrets.token.fingerprint, /^hmac-sha256:[0-9a-f]{16}$/);
    assert.deepEqual(created.body, {
      id: created.body.id,
      bundleId,
      name: 'echo-api',
      type: 'bearer_token',
      settings: {},
      secrets: { token: { set: true, fingerprint: created.body.secrets.token.fingerprint } },
      allowedWebsites: [`${HOST}:${upstream.port}`],
      access: 'read',
      rules: [],
      extraHeaders: {},
      lastUsedAt: null,
      lastMint: null,
    });
    assert.deepEqual((await api('GET', `/bundles/${bundleId}/credentials/${created.body.id}`)).body, created.body);
    assert.deepEqual((await api('GET', `/bundles/${bundleId}/credentials`)).body, { credentials: [created.body] });
    assert.equal((await api('GET', '/bundles')).body.bundles[0].credentialCount, 1);
  });

  test('created credential is injected at once', async () => {
    const authorization = await authorizationThroughProxy();
    assert.equal(authorization.received, `Bearer ${SECRET}`);
    assert.equal(authorization.echoed, `Bearer ${reflectionMask(SECRET)}`);
  });

  test('patch without secret keeps it', async () => {
    const [stored] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    const patched = await api('PATCH', `/bundles/${bundleId}/credentials/${stored.id}`, { extraHeaders: { 'X-Api-Version': '2024-01-01' } });
    assert.equal(patched.status, 200);
    assert.deepEqual(patched.body.extraHeaders, { 'X-Api-Version': '2024-01-01' });
    assert.deepEqual(patched.body.secrets, stored.secrets);
    const authorization = await authorizationThroughProxy();
    assert.equal(authorization.received, `Bearer ${SECRET}`);
    assert.equal(authorization.echoed, `Bearer ${reflectionMask(SECRET)}`);
  });

  test('lastUsedAt comes from the audit log', async () => {
    await server.proxy.flushAudit();
    const [stored] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    assert.match(stored.lastUsedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(stored.lastMint, null);
  });

  test('patch with a new secret changes the fingerprint', async () => {
    const [stored] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    const patched = await api('PATCH', `/bundles/${bundleId}/credentials/${stored.id}`, { token: `${SECRET}-v2` });
    assert.notEqual(patched.body.secrets.token.fingerprint, stored.secrets.token.fingerprint);
    const authorization = await authorizationThroughProxy();
    assert.equal(authorization.received, `Bearer ${SECRET}-v2`);
    assert.equal(authorization.echoed, `Bearer ${reflectionMask(`${SECRET}-v2`)}`);
    await api('PATCH', `/bundles/${bundleId}/credentials/${stored.id}`, { token: SECRET });
  });

  test('patch rename keeps the id', async () => {
    const [stored] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    const renamed = await api('PATCH', `/bundles/${bundleId}/credentials/${stored.id}`, { name: 'echo-renamed' });
    assert.equal(renamed.status, 200);
    assert.equal(renamed.body.id, stored.id);
    assert.equal(renamed.body.name, 'echo-renamed');
    await api('PATCH', `/bundles/${bundleId}/credentials/${stored.id}`, { name: 'echo-api' });
  });

  test('patch cannot change the type', async () => {
    const [stored] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    const response = await api('PATCH', `/bundles/${bundleId}/credentials/${stored.id}`, { type: 'basic_auth' });
    assert.equal(response.status, 400);
    assert.deepEqual(response.body, {
      error: {
        code: 'invalid_request',
        message: 'The type of credential "echo-api" is bearer_token and cannot change; create a new credential of type "basic_auth" and delete this one.',
        field: 'type',
      },
    });
  });

  test('invalid patch stores nothing', async () => {
    const before = (await api('GET', '/config')).text;
    const [stored] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    const response = await api('PATCH', `/bundles/${bundleId}/credentials/${stored.id}`, { allowedWebsites: [], token: null });
    assert.equal(response.status, 400);
    assert.deepEqual(
      response.body.error.issues.map((issue: { path: string }) => issue.path),
      ['allowedWebsites', 'token'],
    );
    assert.equal((await api('GET', '/config')).text, before);
  });

  test('bad credential lists every issue and stores nothing', async () => {
    const before = (await api('GET', '/config')).text;
    const bad = { name: 'broken', type: 'basic_auth', password: OTHER_SECRET, allowedWebsites: ['https://api.example.com/v1'] };
    const response = await api('POST', `/bundles/${bundleId}/credentials`, bad);
    assert.equal(response.status, 400);

    // The messages and paths are those `apply` gives, relative to the credential.
    const applied = validateBundlesDocument({ bundles: [{ name: 'b', channels: ['*'], credentials: [bad] }] });
    assert.equal(applied.ok, false);
    const expected = applied.ok ? [] : applied.issues.map((issue) => ({ path: issue.path.replace(/^bundles\[0\]\.credentials\[0\]\.?/, ''), message: issue.message }));
    assert.deepEqual(
      expected.map((issue) => issue.path).sort(),
      ['allowedWebsites[0]', 'username'],
    );
    assert.equal(response.body.error.code, 'invalid_request');
    assert.equal(response.body.error.field, expected[0]!.path);
    assert.deepEqual(response.body.error.issues, expected);
    assert.equal((await api('GET', '/config')).text, before);
  });

  test('duplicate credential name is 409', async () => {
    const response = await api('POST', `/bundles/${otherBundleId}/credentials`, bearerCredential('echo-api'));
    assert.equal(response.status, 409);
    assert.deepEqual(response.body, {
      error: {
        code: 'conflict',
        message: 'A credential named "echo-api" already exists in bundle "engineering"; credential names are unique across all bundles, so choose another name.',
        field: 'name',
      },
    });
  });

  test('credential of another bundle is 404', async () => {
    const [stored] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    const response = await api('GET', `/bundles/${otherBundleId}/credentials/${stored.id}`);
    assert.equal(response.status, 404);
    assert.equal(response.body.error.code, 'not_found');
    assert.equal(response.body.error.field, 'credentialId');
  });

  test('concurrent patches of two credentials both survive', async () => {
    const second = await api('POST', `/bundles/${bundleId}/credentials`, { name: 'second', type: 'basic_auth', username: 'robot', password: OTHER_SECRET, allowedWebsites: ['reports.example.com'] });
    assert.equal(second.status, 201);
    const [first] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;

    const results = await Promise.all([
      api('PATCH', `/bundles/${bundleId}/credentials/${first.id}`, { access: 'read_write' }),
      api('PATCH', `/bundles/${bundleId}/credentials/${second.body.id}`, { username: 'robot2' }),
      api('PATCH', `/bundles/${bundleId}/credentials/${first.id}`, { rules: [{ methods: ['GET'] }] }),
    ]);
    assert.deepEqual(results.map((result) => result.status), [200, 200, 200]);

    const credentials = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    const byName = Object.fromEntries(credentials.map((credential: { name: string }) => [credential.name, credential]));
    assert.equal(byName['echo-api'].access, 'read_write');
    assert.deepEqual(byName['echo-api'].rules, [{ methods: ['GET'] }]);
    assert.deepEqual(byName['second'].settings, { username: 'robot2' });
  });

  test('move to another bundle keeps the id', async () => {
    const second = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials.find((credential: { name: string }) => credential.name === 'second');
    const moved = await api('POST', `/bundles/${bundleId}/credentials/${second.id}/move`, { bundleId: otherBundleId });
    assert.equal(moved.status, 200);
    assert.equal(moved.body.id, second.id);
    assert.equal(moved.body.bundleId, otherBundleId);
    assert.equal((await api('GET', `/bundles/${otherBundleId}`)).body.credentials.length, 1);
    const missingTarget = await api('POST', `/bundles/${otherBundleId}/credentials/${second.id}/move`, { bundleId: 'bun_missing' });
    assert.equal(missingTarget.status, 404);
    assert.equal(missingTarget.body.error.field, 'bundleId');
  });

  test('test-connection calls the probe URL', async () => {
    const [stored] = (await api('GET', `/bundles/${bundleId}/credentials`)).body.credentials;
    await api('PATCH', `/bundles/${bundleId}/credentials/${stored.id}`, { probeUrl: `https://${HOST}:${upstream.port}/me` });
    const response = await api('POST', `/bundles/${bundleId}/credentials/${stored.id}/test-connection`);
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, {
      ok: true,
      credential: 'echo-api',
      type: 'bearer_token',
      token: null,
      probe: { url: `https://${HOST}:${upstream.port}/me`, status: 200, identity: null },
      warnings: [],
      error: null,
    });
  });

  test('delete removes the credential', async () => {
    const second = (await api('GET', `/bundles/${otherBundleId}/credentials`)).body.credentials[0];
    assert.equal((await api('DELETE', `/bundles/${otherBundleId}/credentials/${second.id}`)).status, 204);
    assert.deepEqual((await api('GET', `/bundles/${otherBundleId}/credentials`)).body, { credentials: [] });
    assert.equal((await api('DELETE', `/bundles/${otherBundleId}/credentials/${second.id}`)).status, 404);
  });

  test('no response contains a secret value', () => {
    assert.ok(responses.length > 40);
    for (const response of responses) {
      assert.equal(response.text.includes(SECRET), false, response.text);
      assert.equal(response.text.includes(OTHER_SECRET), false, response.text);
    }
  });
});
