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

/** Logs in and returns the session cookie and CSRF token. */
async function login(): Promise<{ cookie: string; csrfToken: string }> {
  const response = await call<{ csrfToken: string }>(server, 'POST', '/login', { token: server.proxy.adminToken }, { auth: null });
  assert.equal(response.status, 200);
  const setCookie = String(response.headers['set-cookie']);
  return { cookie: setCookie.split(';')[0]!, csrfToken: response.body.csrfToken };
}

describe('admin API authentication', () => {
  test('wrong bearer token is 401', async () => {
    const response = await call(server, 'GET', '/bundles', undefined, { auth: 'not-the-token' });
    assert.equal(response.status, 401);
    assert.equal(response.body.error.code, 'unauthorized');
  });

  test('missing credentials are 401', async () => {
    const response = await call(server, 'GET', '/bundles', undefined, { auth: null });
    assert.equal(response.status, 401);
    assert.equal(response.body.error.code, 'unauthorized');
  });

  test('login with wrong token is 401 and sets no cookie', async () => {
    const response = await call(server, 'POST', '/login', { token: 'wrong' }, { auth: null });
    assert.equal(response.status, 401);
    assert.deepEqual(response.body, {
      error: { code: 'unauthorized', message: 'The admin token is not valid; copy it from the admin-token file in the data directory.', field: 'token' },
    });
    assert.equal(response.headers['set-cookie'], undefined);
  });

  test('login sets a strict HttpOnly cookie without Secure over http', async () => {
    const response = await call(server, 'POST', '/login', { token: server.proxy.adminToken }, { auth: null });
    assert.equal(response.status, 200);
    const cookie = String(response.headers['set-cookie']);
    assert.match(cookie, /^ap_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/);
    assert.match(response.body.csrfToken, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(response.headers['cache-control'], 'no-store');
  });

  test('me returns the csrf token of the cookie session', async () => {
    const { cookie, csrfToken } = await login();
    const response = await call(server, 'GET', '/me', undefined, { auth: null, headers: { cookie } });
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { authenticated: true, csrfToken });
  });

  test('me without a session is 401', async () => {
    const response = await call(server, 'GET', '/me', undefined, { auth: null, headers: { cookie: 'ap_session=unknown' } });
    assert.equal(response.status, 401);
  });

  test('cookie GET needs no csrf token', async () => {
    const { cookie } = await login();
    const response = await call(server, 'GET', '/bundles', undefined, { auth: null, headers: { cookie } });
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { bundles: [] });
  });

  test('cookie POST without csrf token is 403 and changes nothing', async () => {
    const { cookie } = await login();
    const response = await call(server, 'POST', '/bundles', { name: 'csrf-victim', channels: ['*'] }, { auth: null, headers: { cookie } });
    assert.equal(response.status, 403);
    assert.equal(response.body.error.code, 'csrf_token_invalid');
    const wrong = await call(server, 'POST', '/bundles', { name: 'csrf-victim', channels: ['*'] }, { auth: null, headers: { cookie, 'x-csrf-token': 'x'.repeat(43) } });
    assert.equal(wrong.status, 403);
    const listed = await call(server, 'GET', '/bundles');
    assert.deepEqual(listed.body, { bundles: [] });
  });

  test('cookie POST with csrf token succeeds', async () => {
    const { cookie, csrfToken } = await login();
    const response = await call(server, 'POST', '/bundles', { name: 'csrf-ok', channels: ['*'] }, { auth: null, headers: { cookie, 'x-csrf-token': csrfToken } });
    assert.equal(response.status, 201);
    assert.equal(response.body.name, 'csrf-ok');
    const removed = await call(server, 'DELETE', `/bundles/${response.body.id}`, undefined, { auth: null, headers: { cookie, 'x-csrf-token': csrfToken } });
    assert.equal(removed.status, 204);
  });

  test('csrf token of another session is rejected', async () => {
    const first = await login();
    const second = await login();
    const response = await call(server, 'POST', '/bundles', { name: 'cross', channels: ['*'] }, { auth: null, headers: { cookie: first.cookie, 'x-csrf-token': second.csrfToken } });
    assert.equal(response.status, 403);
  });

  test('logout ends the session', async () => {
    const { cookie, csrfToken } = await login();
    const withoutCsrf = await call(server, 'POST', '/logout', undefined, { auth: null, headers: { cookie } });
    assert.equal(withoutCsrf.status, 403);
    const response = await call(server, 'POST', '/logout', undefined, { auth: null, headers: { cookie, 'x-csrf-token': csrfToken } });
    assert.equal(response.status, 204);
    assert.match(String(response.headers['set-cookie']), /^ap_session=; .*Max-Age=0$/);
    const me = await call(server, 'GET', '/me', undefined, { auth: null, headers: { cookie } });
    assert.equal(me.status, 401);
  });

  test('bearer request needs no csrf token', async () => {
    const response = await call(server, 'POST', '/bundles', { name: 'bearer-ok', channels: ['*'] });
    assert.equal(response.status, 201);
    assert.equal((await call(server, 'DELETE', `/bundles/${response.body.id}`)).status, 204);
  });

  test('cross-origin preflight gets no CORS headers', async () => {
    const response = await call(server, 'GET', '/bundles', undefined, { headers: { origin: 'https://evil.example' } });
    assert.equal(response.headers['access-control-allow-origin'], undefined);
  });
});
