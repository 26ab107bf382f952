import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { call } from './apiClient.ts';

const SECRET = 'tok-AUDIT-SECRET-0123456789abcdef';
const NEW_SECRET = 'tok-AUDIT-ROTATED-fedcba9876543210';
const PASSWORD = 'pw-AUDIT-SECRET-5555';

let server: Harness;

interface AuditEventView {
  id: number;
  time: string;
  actor: string;
  action: string;
  target: string | null;
  fields: string[];
  outcome: string;
  clientAddress: string | null;
}

/** Returns the admin audit events recorded after `afterId`, without their ids and times. */
async function eventsAfter(afterId: number): Promise<Omit<AuditEventView, 'id' | 'time'>[]> {
  const response = await call<{ events: AuditEventView[] }>(server, 'GET', `/admin-audit?afterId=${afterId}`);
  assert.equal(response.status, 200);
  return response.body.events.map(({ id: _id, time: _time, ...rest }) => rest);
}

async function lastEventId(): Promise<number> {
  const response = await call<{ events: AuditEventView[] }>(server, 'GET', '/admin-audit?limit=1');
  return response.body.events[0]?.id ?? 0;
}

const document = {
  egress: { default: 'allow', allow: [], allowPrivateNetworks: [] },
  bundles: [
    {
      name: 'sales',
      channels: ['C0SALES'],
      credentials: [
        { name: 'salesforce', type: 'bearer_token', token: SECRET, allowedWebsites: ['api.example.test'], access: 'read' },
        { name: 'legacy', type: 'basic_auth', username: 'integration', password: PASSWORD, allowedWebsites: ['legacy.example.test'] },
      ],
    },
  ],
};

before(async () => {
  server = await startHarness();
});

after(async () => {
  await server.close();
});

describe('admin audit trail', () => {
  test('apply records each object with field names', async () => {
    const start = await lastEventId();
    const applied = await call(server, 'POST', '/apply', document);
    assert.equal(applied.status, 200);

    const base = { actor: 'bootstrap', action: 'config.apply', outcome: 'success', clientAddress: '127.0.0.1' };
    assert.deepEqual(await eventsAfter(start), [
      { ...base, target: 'bundle/sales', fields: ['channels', 'description', 'name'] },
      { ...base, target: 'bundle/sales/credential/legacy', fields: ['access', 'allowedWebsites', 'bundle', 'name', 'password', 'type', 'username'] },
      { ...base, target: 'bundle/sales/credential/salesforce', fields: ['access', 'allowedWebsites', 'bundle', 'name', 'token', 'type'] },
    ]);
  });

  test('apply of a changed secret names the field', async () => {
    const start = await lastEventId();
    const changed = structuredClone(document);
    changed.bundles[0]!.credentials[1]!.password = `${PASSWORD}-2`;
    assert.equal((await call(server, 'POST', '/apply', changed)).status, 200);
    assert.deepEqual(await eventsAfter(start), [
      { actor: 'bootstrap', action: 'config.apply', outcome: 'success', clientAddress: '127.0.0.1', target: 'bundle/sales/credential/legacy', fields: ['password'] },
    ]);
    assert.equal((await call(server, 'POST', '/apply', document)).status, 200);
  });

  test('dry run records nothing', async () => {
    const start = await lastEventId();
    assert.equal((await call(server, 'POST', '/apply?dryRun=true', { bundles: [] })).status, 200);
    assert.deepEqual(await eventsAfter(start), []);
  });

  test('credential patch records changed field names', async () => {
    const bundles = await call(server, 'GET', '/bundles');
    const bundleId = bundles.body.bundles.find((bundle: { name: string }) => bundle.name === 'sales').id;
    const credentials = await call(server, 'GET', `/bundles/${bundleId}/credentials`);
    const credentialId = credentials.body.credentials.find((credential: { name: string }) => credential.name === 'salesforce').id;

    const start = await lastEventId();
    const patched = await call(server, 'PATCH', `/bundles/${bundleId}/credentials/${credentialId}`, { token: NEW_SECRET, access: 'read_write' });
    assert.equal(patched.status, 200);
    assert.deepEqual(await eventsAfter(start), [
      {
        actor: 'bootstrap',
        action: 'credential.update',
        target: 'bundle/sales/credential/salesforce',
        fields: ['access', 'token'],
        outcome: 'success',
        clientAddress: '127.0.0.1',
      },
    ]);
  });

  test('bundle, egress and session changes are recorded', async () => {
    const start = await lastEventId();
    const bundle = await call(server, 'POST', '/bundles', { name: 'support', channels: ['C0HELP'] });
    assert.equal(bundle.status, 201);
    assert.equal((await call(server, 'PATCH', `/bundles/${bundle.body.id}`, { channels: ['C0HELP', 'C0OPS'] })).status, 200);
    assert.equal((await call(server, 'DELETE', `/bundles/${bundle.body.id}`)).status, 204);
    assert.equal((await call(server, 'PUT', '/egress', { default: 'deny', allow: ['pypi.org'], allowPrivateNetworks: [] })).status, 200);
    const session = await call(server, 'POST', '/sessions', { channel: 'C0SALES', ttl: '1h' });
    assert.equal(session.status, 201);
    assert.equal((await call(server, 'DELETE', `/sessions/${session.body.id}`)).status, 204);

    const base = { actor: 'bootstrap', outcome: 'success', clientAddress: '127.0.0.1' };
    assert.deepEqual(await eventsAfter(start), [
      { ...base, action: 'bundle.create', target: 'bundle/support', fields: ['channels', 'description', 'name'] },
      { ...base, action: 'bundle.update', target: 'bundle/support', fields: ['channels'] },
      { ...base, action: 'bundle.delete', target: 'bundle/support', fields: [] },
      { ...base, action: 'egress.update', target: 'egress', fields: ['allow', 'default'] },
      { ...base, action: 'session.create', target: `session/${session.body.id}`, fields: ['channel', 'ttl'] },
      { ...base, action: 'session.revoke', target: `session/${session.body.id}`, fields: [] },
    ]);
  });

  test('refused and failed writes are recorded', async () => {
    const viewer = await call(server, 'POST', '/admin-tokens', { name: 'auditor', role: 'viewer' });
    assert.equal(viewer.status, 201);

    const start = await lastEventId();
    const denied = await call(server, 'POST', '/bundles', { name: 'nope', channels: ['*'] }, { auth: viewer.body.token });
    assert.equal(denied.status, 403);
    const invalid = await call(server, 'POST', '/bundles', { name: 'sales', channels: ['*'] });
    assert.equal(invalid.status, 409);
    const unauthenticated = await call(server, 'POST', '/bundles', { name: 'nope', channels: ['*'] }, { auth: 'apt_not-a-token' });
    assert.equal(unauthenticated.status, 401);

    assert.deepEqual(await eventsAfter(start), [
      { actor: 'auditor', action: 'bundle.create', target: '/api/v1/bundles', fields: [], outcome: 'denied', clientAddress: '127.0.0.1' },
      { actor: 'bootstrap', action: 'bundle.create', target: '/api/v1/bundles', fields: [], outcome: 'failure', clientAddress: '127.0.0.1' },
    ]);
  });

  test('token changes and logins are recorded', async () => {
    const start = await lastEventId();
    const created = await call(server, 'POST', '/admin-tokens', { name: 'console-user', role: 'admin', expiresIn: '1d' });
    assert.equal(created.status, 201);
    const login = await call(server, 'POST', '/login', { token: created.body.token }, { auth: null });
    assert.equal(login.status, 200);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const logout = await call(server, 'POST', '/logout', undefined, { auth: null, headers: { cookie, 'x-csrf-token': login.body.csrfToken } });
    assert.equal(logout.status, 204);
    assert.equal((await call(server, 'DELETE', '/admin-tokens/console-user')).status, 204);
    const refusedLogin = await call(server, 'POST', '/login', { token: created.body.token }, { auth: null });
    assert.equal(refusedLogin.status, 401);

    const base = { outcome: 'success', clientAddress: '127.0.0.1' };
    assert.deepEqual(await eventsAfter(start), [
      { ...base, actor: 'bootstrap', action: 'admin_token.create', target: 'admin-token/console-user', fields: ['expiresAt', 'role'] },
      { ...base, actor: 'console-user', action: 'login', target: 'admin-token/console-user', fields: [] },
      { ...base, actor: 'console-user', action: 'logout', target: 'admin-token/console-user', fields: [] },
      { ...base, actor: 'bootstrap', action: 'admin_token.revoke', target: 'admin-token/console-user', fields: [] },
      { ...base, actor: 'console-user', action: 'login', target: 'admin-token/console-user', fields: [], outcome: 'failure' },
    ]);
  });

  test('viewer reads the trail and a session issuer cannot', async () => {
    const viewer = await call(server, 'POST', '/admin-tokens', { name: 'reader', role: 'viewer' });
    const issuer = await call(server, 'POST', '/admin-tokens', { name: 'issuer', role: 'session-issuer' });
    assert.equal((await call(server, 'GET', '/admin-audit', undefined, { auth: viewer.body.token })).status, 200);
    const refused = await call(server, 'GET', '/admin-audit', undefined, { auth: issuer.body.token });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'forbidden');
  });

  test('pages back with nextBeforeId', async () => {
    const first = await call<{ events: AuditEventView[]; nextBeforeId: number | null }>(server, 'GET', '/admin-audit?limit=2');
    assert.equal(first.body.events.length, 2);
    assert.equal(first.body.nextBeforeId, first.body.events[0]!.id);
    const older = await call<{ events: AuditEventView[] }>(server, 'GET', `/admin-audit?limit=2&beforeId=${first.body.nextBeforeId}`);
    assert.ok(older.body.events.every((event) => event.id < first.body.nextBeforeId!));
    const filtered = await call<{ events: AuditEventView[] }>(server, 'GET', '/admin-audit?action=login&actor=console-user');
    assert.equal(filtered.body.events.length, 2);
  });

  test('no secret value is in the stored rows', async () => {
    await server.proxy.flushAudit();
    const database = new Database(server.proxy.dataDir.databasePath, { readonly: true, fileMustExist: true });
    try {
      const rows = database.prepare('SELECT * FROM admin_audit_events').all();
      assert.ok(rows.length > 20, `only ${rows.length} rows`);
      const raw = JSON.stringify(rows);
      for (const secret of [SECRET, NEW_SECRET, PASSWORD, server.proxy.adminToken]) {
        for (const form of [secret, Buffer.from(secret).toString('base64'), encodeURIComponent(secret)]) {
          assert.ok(!raw.includes(form), 'a secret value is in admin_audit_events');
        }
      }
    } finally {
      database.close();
    }
  });
});
