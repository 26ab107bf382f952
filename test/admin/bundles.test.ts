import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { call } from './apiClient.ts';

let server: Harness;

before(async () => {
  server = await startHarness();
});

after(async () => {
  await server.close();
});

describe('bundle routes', () => {
  test('create, show, change and delete a bundle', async () => {
    const created = await call(server, 'POST', '/bundles', { name: 'sales', description: 'Sales tools', channels: ['C0SALES'] });
    assert.equal(created.status, 201);
    assert.match(created.body.id, /^bun_[0-9a-f]{24}$/);
    assert.deepEqual(created.body, { id: created.body.id, name: 'sales', description: 'Sales tools', channels: ['C0SALES'], credentialCount: 0 });

    const listed = await call(server, 'GET', '/bundles');
    assert.deepEqual(listed.body, { bundles: [created.body] });

    const shown = await call(server, 'GET', `/bundles/${created.body.id}`);
    assert.deepEqual(shown.body, { id: created.body.id, name: 'sales', description: 'Sales tools', channels: ['C0SALES'], credentials: [] });

    const renamed = await call(server, 'PATCH', `/bundles/${created.body.id}`, { name: 'revenue', channels: ['*'] });
    assert.equal(renamed.status, 200);
    assert.deepEqual(renamed.body, { id: created.body.id, name: 'revenue', description: 'Sales tools', channels: ['*'], credentialCount: 0 });

    assert.equal((await call(server, 'DELETE', `/bundles/${created.body.id}`)).status, 204);
    assert.deepEqual((await call(server, 'GET', '/bundles')).body, { bundles: [] });
  });

  test('duplicate bundle name is 409', async () => {
    const first = await call(server, 'POST', '/bundles', { name: 'dup', channels: ['*'] });
    assert.equal(first.status, 201);
    const second = await call(server, 'POST', '/bundles', { name: 'dup', channels: ['C1'] });
    assert.equal(second.status, 409);
    assert.deepEqual(second.body, { error: { code: 'conflict', message: 'A bundle named "dup" already exists; choose another name.', field: 'name' } });
    await call(server, 'DELETE', `/bundles/${first.body.id}`);
  });

  test('invalid bundle lists every issue', async () => {
    const response = await call(server, 'POST', '/bundles', { name: 'Bad Name', channels: ['*', 'C1'] });
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'invalid_request');
    assert.equal(response.body.error.field, 'name');
    assert.deepEqual(response.body.error.issues, [
      { path: 'name', message: '"Bad Name" is not a valid bundle name; use 1 to 64 lowercase letters, digits, "-" or "_", starting with a letter or digit' },
      { path: 'channels[0]', message: '"*" covers every channel, so give it alone: channels: ["*"]' },
    ]);
    assert.deepEqual((await call(server, 'GET', '/bundles')).body, { bundles: [] });
  });

  test('missing bundle is 404', async () => {
    const response = await call(server, 'GET', '/bundles/bun_missing');
    assert.equal(response.status, 404);
    assert.deepEqual(response.body, {
      error: { code: 'not_found', message: 'Bundle "bun_missing" does not exist; GET /api/v1/bundles lists the bundle ids.', field: 'bundleId' },
    });
    assert.equal((await call(server, 'PATCH', '/bundles/bun_missing', { description: 'x' })).status, 404);
    assert.equal((await call(server, 'DELETE', '/bundles/bun_missing')).status, 404);
  });

  test('non-object body is 400', async () => {
    const response = await call(server, 'POST', '/bundles', ['sales']);
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'invalid_request');
  });

  test('unknown route is a JSON 404', async () => {
    const response = await call(server, 'GET', '/nothing-here');
    assert.equal(response.status, 404);
    assert.equal(response.body.error.code, 'not_found');
  });
});

describe('egress routes', () => {
  test('put and get the egress policy', async () => {
    assert.deepEqual((await call(server, 'GET', '/egress')).body, { default: 'allow', allow: [], allowPrivateNetworks: [] });
    const policy = { default: 'deny', allow: ['pypi.org'], allowPrivateNetworks: ['10.0.0.0/8'] };
    const put = await call(server, 'PUT', '/egress', policy);
    assert.equal(put.status, 200);
    assert.deepEqual(put.body, policy);
    assert.deepEqual((await call(server, 'GET', '/egress')).body, policy);
  });

  test('invalid egress policy is 400', async () => {
    const response = await call(server, 'PUT', '/egress', { default: 'maybe' });
    assert.equal(response.status, 400);
    assert.deepEqual(response.body.error.issues, [{ path: 'default', message: '"maybe" is not an egress default; use allow or deny' }]);
  });
});
