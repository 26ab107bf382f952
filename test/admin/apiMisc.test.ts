import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditEvent } from '../../src/domain/types.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { call } from './apiClient.ts';

let server: Harness;

before(async () => {
  server = await startHarness();
});

after(async () => {
  await server.close();
});

function auditEvent(overrides: Partial<AuditEvent>): AuditEvent {
  return {
    time: new Date('2030-01-01T00:00:00.000Z'),
    kind: 'request',
    decision: 'allowed',
    errorCode: null,
    sessionId: null,
    channel: 'C0AUDIT',
    thread: null,
    bundle: 'audit',
    credential: 'audited',
    method: 'GET',
    host: 'api.example.com',
    port: 443,
    path: '/',
    status: 200,
    bytesIn: 0,
    bytesOut: 0,
    durationMs: 1,
    subject: null,
    clientAddress: null,
    ...overrides,
  };
}

describe('session routes', () => {
  test('create, list and revoke a session', async () => {
    const created = await call(server, 'POST', '/sessions', { channel: 'C0SALES', thread: 'T1', ttl: '1h' });
    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys(created.body).sort(), ['caBundlePath', 'caPath', 'channel', 'expiresAt', 'id', 'proxyUrl', 'thread', 'token']);
    const listed = await call(server, 'GET', '/sessions');
    assert.deepEqual(listed.body.map((session: { id: string }) => session.id), [created.body.id]);
    assert.equal(listed.text.includes(created.body.token), false);
    assert.equal((await call(server, 'DELETE', `/sessions/${created.body.id}`)).status, 204);
    assert.deepEqual((await call(server, 'GET', '/sessions')).body, []);
  });

  test('invalid ttl is 400', async () => {
    const response = await call(server, 'POST', '/sessions', { channel: 'C0SALES', ttl: 'soon' });
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'invalid_request');
    assert.equal(response.body.error.field, 'ttl');
  });

  test('missing channel is 400', async () => {
    const response = await call(server, 'POST', '/sessions', {});
    assert.equal(response.status, 400);
    assert.equal(response.body.error.field, 'channel');
  });

  test('revoking an unknown session is 404', async () => {
    const response = await call(server, 'DELETE', '/sessions/nope');
    assert.equal(response.status, 404);
    assert.equal(response.body.error.code, 'not_found');
  });
});

describe('audit route', () => {
  test('pages back with beforeId', async () => {
    await server.proxy.store.appendAudit([1, 2, 3, 4, 5].map((index) => auditEvent({ path: `/page/${index}`, credential: 'paged' })));
    const newest = await call(server, 'GET', '/audit?credential=paged&limit=2');
    assert.equal(newest.status, 200);
    assert.deepEqual(newest.body.events.map((event: { path: string }) => event.path), ['/page/4', '/page/5']);
    assert.equal(newest.body.events[0].time, '2030-01-01T00:00:00.000Z');
    assert.equal(newest.body.nextBeforeId, newest.body.events[0].id);

    const older = await call(server, 'GET', `/audit?credential=paged&limit=2&beforeId=${newest.body.nextBeforeId}`);
    assert.deepEqual(older.body.events.map((event: { path: string }) => event.path), ['/page/2', '/page/3']);

    const oldest = await call(server, 'GET', `/audit?credential=paged&limit=2&beforeId=${older.body.nextBeforeId}`);
    assert.deepEqual(oldest.body.events.map((event: { path: string }) => event.path), ['/page/1']);
    assert.equal(oldest.body.nextBeforeId, null);
  });

  test('afterId reads forward', async () => {
    const all = await call(server, 'GET', '/audit?credential=paged');
    const response = await call(server, 'GET', `/audit?credential=paged&afterId=${all.body.events[2].id}`);
    assert.deepEqual(response.body.events.map((event: { path: string }) => event.path), ['/page/4', '/page/5']);
    assert.equal(response.body.nextBeforeId, null);
  });

  test('invalid decision is 400', async () => {
    const response = await call(server, 'GET', '/audit?decision=maybe');
    assert.equal(response.status, 400);
    assert.equal(response.body.error.field, 'decision');
  });

  test('afterId with beforeId is 400', async () => {
    const response = await call(server, 'GET', '/audit?afterId=1&beforeId=3');
    assert.equal(response.status, 400);
    assert.equal(response.body.error.field, 'beforeId');
  });

  test('lastMint comes from the latest mint event', async () => {
    const bundle = await call(server, 'POST', '/bundles', { name: 'audit', channels: ['C0AUDIT'] });
    const credential = await call(server, 'POST', `/bundles/${bundle.body.id}/credentials`, { name: 'audited', type: 'bearer_token', token: 'secret-audited', allowedWebsites: ['api.example.com'] });
    assert.equal(credential.status, 201);
    await server.proxy.store.appendAudit([
      auditEvent({ kind: 'mint', decision: 'allowed', status: 200, time: new Date('2030-01-01T00:00:01.000Z') }),
      auditEvent({ kind: 'request', time: new Date('2030-01-01T00:00:02.000Z') }),
      auditEvent({ kind: 'mint', decision: 'error', status: 400, errorCode: 'credential_unavailable', time: new Date('2030-01-01T00:00:03.000Z') }),
    ]);
    const shown = await call(server, 'GET', `/bundles/${bundle.body.id}/credentials/${credential.body.id}`);
    assert.equal(shown.body.lastUsedAt, '2030-01-01T00:00:02.000Z');
    assert.deepEqual(shown.body.lastMint, { at: '2030-01-01T00:00:03.000Z', status: 400, decision: 'error', error: 'credential_unavailable' });
  });
});

describe('preset routes', () => {
  test('list and show presets', async () => {
    const listed = await call(server, 'GET', '/presets');
    assert.equal(listed.status, 200);
    assert.ok(listed.body.presets.some((preset: { id: string }) => preset.id === 'github'));
    const shown = await call(server, 'GET', '/presets/github');
    assert.equal(shown.status, 200);
    assert.equal(shown.body.id, 'github');
  });

  test('unknown preset is 404', async () => {
    const response = await call(server, 'GET', '/presets/nope');
    assert.equal(response.status, 404);
    assert.deepEqual(response.body, {
      error: { code: 'not_found', message: 'Preset "nope" does not exist; GET /api/v1/presets lists the preset ids.', field: 'presetId' },
    });
  });

  test('create a credential from a preset', async () => {
    const bundle = await call(server, 'POST', '/bundles', { name: 'code', channels: ['C0CODE'] });
    const token = 'ghp_presetSecret123';
    const created = await call(server, 'POST', '/presets/github/credential', { bundleId: bundle.body.id, name: 'github', values: { token } });
    assert.equal(created.status, 201);
    assert.equal(created.body.bundleId, bundle.body.id);
    assert.equal(created.body.type, 'bearer_token');
    assert.deepEqual(created.body.allowedWebsites, ['api.github.com']);
    assert.equal(created.body.access, 'read');
    assert.equal(created.body.secrets.token.set, true);
    assert.equal(created.text.includes(token), false);
  });

  test('preset credential with write access', async () => {
    const bundle = (await call(server, 'POST', '/bundles', { name: 'code-writers', channels: ['C0WRITE'] })).body;
    const created = await call(server, 'POST', '/presets/github/credential', {
      bundleId: bundle.id,
      name: 'github-writer',
      values: { token: 'ghp_presetWriter456' },
      access: 'read_write',
    });

    assert.equal(created.status, 201);
    assert.equal(created.body.access, 'read_write');
  });

  test('bad preset values are 400', async () => {
    const bundle = (await call(server, 'GET', '/bundles')).body.bundles.find((candidate: { name: string }) => candidate.name === 'code');
    const response = await call(server, 'POST', '/presets/github/credential', { bundleId: bundle.id, name: 'github-two', values: { token: 'not-a-token' } });
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'invalid_request');
    assert.deepEqual(response.body.error.issues.map((issue: { path: string }) => issue.path), ['token']);
    assert.equal((await call(server, 'GET', `/bundles/${bundle.id}`)).body.credentials.length, 1);
  });
});

describe('openapi document', () => {
  test('lists the routes as OpenAPI 3.1', async () => {
    const response = await call(server, 'GET', '/openapi.json', undefined, { auth: null });
    assert.equal(response.status, 200);
    assert.equal(response.body.openapi, '3.1.0');
    for (const path of [
      '/bundles',
      '/bundles/{bundleId}',
      '/bundles/{bundleId}/credentials',
      '/bundles/{bundleId}/credentials/{credentialId}',
      '/bundles/{bundleId}/credentials/{credentialId}/move',
      '/bundles/{bundleId}/credentials/{credentialId}/test-connection',
      '/presets',
      '/presets/{presetId}',
      '/presets/{presetId}/credential',
      '/egress',
      '/sessions',
      '/sessions/{id}',
      '/audit',
      '/apply',
      '/login',
      '/me',
      '/logout',
    ]) {
      assert.ok(response.body.paths[path], `missing ${path}`);
    }
    assert.deepEqual(Object.keys(response.body.paths['/bundles/{bundleId}/credentials/{credentialId}']).sort(), ['delete', 'get', 'patch']);
    const credentialBody = response.body.paths['/bundles/{bundleId}/credentials'].post.requestBody.content['application/json'].schema;
    assert.equal(credentialBody.oneOf.length, 6);
  });

  test('API responses are not cached', async () => {
    const response = await call(server, 'GET', '/bundles');
    assert.equal(response.headers['cache-control'], 'no-store');
  });
});
