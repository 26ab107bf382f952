import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createLogger } from '../../src/log.ts';
import { startAgentProxy, type RunningAgentProxy } from '../../src/runtime/agentProxy.ts';
import { startCliServer, type CliServer } from '../helpers/cliServer.ts';

interface Response<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: T;
}

let proxy: RunningAgentProxy;
let dir: string;
const logLines: string[] = [];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-tokens-'));
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logLines.push(...chunk.toString('utf8').split('\n').filter((line) => line !== ''));
      callback();
    },
  });
  proxy = await startAgentProxy({
    dataDir: path.join(dir, 'data'),
    proxyListen: { host: '127.0.0.1', port: 0 },
    adminListen: { host: '127.0.0.1', port: 0 },
    logger: createLogger({ level: 'debug', destination }),
  });
});

after(async () => {
  await proxy.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function api<T = any>(method: string, apiPath: string, options: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {}): Promise<Response<T>> {
  const token = options.token === undefined ? proxy.adminToken : options.token;
  const response = await request(`${proxy.adminUrl}/api/v1${apiPath}`, {
    method: method as 'GET',
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.body.text();
  const json = String(response.headers['content-type']).includes('json');
  return { status: response.statusCode, headers: response.headers, text, body: (json && text ? JSON.parse(text) : null) as T };
}

async function createToken(name: string, role: string, expiresIn?: string): Promise<string> {
  const created = await api('POST', '/admin-tokens', { body: { name, role, ...(expiresIn === undefined ? {} : { expiresIn }) } });
  assert.equal(created.status, 201, created.text);
  return created.body.token as string;
}

function forbiddenBody(method: string, apiPath: string, roles: string, name: string, role: string) {
  return {
    error: {
      code: 'forbidden',
      message:
        `${method} /api/v1${apiPath} needs role ${roles}; this token (name ${name}) has role ${role}. ` +
        `Send a token with role ${roles}, which \`agent-proxy admin-token create --role ${roles.split(' or ')[0]}\` makes.`,
    },
  };
}

describe('admin tokens through the API', () => {
  const created: string[] = [];

  test('bootstrap token is stored as admin', async () => {
    const listed = await api('GET', '/admin-tokens');
    assert.equal(listed.status, 200);
    const bootstrap = listed.body.tokens.find((token: { name: string }) => token.name === 'bootstrap');
    assert.equal(bootstrap.role, 'admin');
    assert.equal(bootstrap.status, 'active');
    assert.equal(bootstrap.expiresAt, null);
    assert.equal(bootstrap.revokedAt, null);
  });

  test('create returns a token once', async () => {
    const response = await api('POST', '/admin-tokens', { body: { name: 'ci-bot', role: 'viewer', expiresIn: '30d' } });
    assert.equal(response.status, 201);
    assert.match(response.body.token, /^apt_[A-Za-z0-9_-]{43}$/);
    assert.equal(response.body.name, 'ci-bot');
    assert.equal(response.body.role, 'viewer');
    assert.equal(response.body.status, 'active');
    assert.equal(response.body.lastUsedAt, null);
    const lifetime = Date.parse(response.body.expiresAt) - Date.parse(response.body.createdAt);
    assert.ok(Math.abs(lifetime - 30 * 86_400_000) < 5_000, `lifetime ${lifetime} ms`);
    created.push(response.body.token);

    const used = await api('GET', '/bundles', { token: response.body.token });
    assert.equal(used.status, 200);
  });

  test('list shows tokens without their values', async () => {
    const listed = await api('GET', '/admin-tokens');
    assert.equal(listed.status, 200);
    const bot = listed.body.tokens.find((token: { name: string }) => token.name === 'ci-bot');
    assert.deepEqual(Object.keys(bot).sort(), ['createdAt', 'expiresAt', 'lastUsedAt', 'name', 'revokedAt', 'role', 'status']);
    assert.notEqual(bot.lastUsedAt, null);
    for (const token of [...created, proxy.adminToken]) {
      assert.ok(!listed.text.includes(token), 'a token value is in the list');
    }
  });

  test('duplicate name is 409', async () => {
    const response = await api('POST', '/admin-tokens', { body: { name: 'ci-bot', role: 'admin' } });
    assert.equal(response.status, 409);
    assert.deepEqual(response.body, {
      error: {
        code: 'conflict',
        message: 'An admin token named "ci-bot" already exists; choose another name, or revoke that token first if it should be replaced.',
        field: 'name',
      },
    });
  });

  test('invalid role and name are 400', async () => {
    const role = await api('POST', '/admin-tokens', { body: { name: 'x', role: 'root' } });
    assert.equal(role.status, 400);
    assert.equal(role.body.error.field, 'role');
    const name = await api('POST', '/admin-tokens', { body: { name: 'has space', role: 'viewer' } });
    assert.equal(name.status, 400);
    assert.equal(name.body.error.field, 'name');
  });

  test('revoked token is 401', async () => {
    const token = await createToken('short-lived', 'admin');
    assert.equal((await api('GET', '/bundles', { token })).status, 200);

    const revoked = await api('DELETE', '/admin-tokens/short-lived');
    assert.equal(revoked.status, 204);

    const response = await api('GET', '/bundles', { token });
    assert.equal(response.status, 401);
    assert.equal(response.body.error.code, 'unauthorized');
    assert.match(response.body.error.message, /^The admin token "short-lived" was revoked at \d{4}-\d\d-\d\dT[\d:.]+Z; ask an admin for a new token \(`agent-proxy admin-token create`\)\.$/);

    const listed = await api('GET', '/admin-tokens');
    const row = listed.body.tokens.find((candidate: { name: string }) => candidate.name === 'short-lived');
    assert.equal(row.status, 'revoked');
  });

  test('revoking an unknown name is 404', async () => {
    const response = await api('DELETE', '/admin-tokens/nobody');
    assert.equal(response.status, 404);
    assert.equal(response.body.error.message, 'No admin token is named "nobody"; GET /api/v1/admin-tokens lists the tokens.');
  });

  test('expired token is 401', async () => {
    const token = await createToken('expiring', 'admin', '1s');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const response = await api('POST', '/bundles', { token, body: { name: 'after-expiry', channels: ['*'] } });
    assert.equal(response.status, 401);
    assert.match(response.body.error.message, /^The admin token "expiring" expired at /);
    assert.deepEqual((await api('GET', '/bundles')).body, { bundles: [] });
  });

  test('revoking a token ends its cookie sessions', async () => {
    const token = await createToken('console-user', 'admin');
    const login = await api('POST', '/login', { token: null, body: { token } });
    assert.equal(login.status, 200);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    assert.equal((await api('GET', '/bundles', { token: null, headers: { cookie } })).status, 200);

    assert.equal((await api('DELETE', '/admin-tokens/console-user')).status, 204);
    const response = await api('GET', '/bundles', { token: null, headers: { cookie } });
    assert.equal(response.status, 401);
  });
});

describe('admin token roles', () => {
  let viewer: string;
  let issuer: string;
  let admin: string;

  before(async () => {
    viewer = await createToken('viewer-bot', 'viewer');
    issuer = await createToken('orchestrator', 'session-issuer');
    admin = await createToken('second-admin', 'admin');
  });

  test('viewer reads but cannot write', async () => {
    assert.equal((await api('GET', '/bundles', { token: viewer })).status, 200);
    assert.equal((await api('GET', '/config', { token: viewer })).status, 200);
    assert.equal((await api('GET', '/admin-audit', { token: viewer })).status, 200);

    const before = await api('GET', '/config');
    const response = await api('POST', '/bundles', { token: viewer, body: { name: 'viewer-made', channels: ['*'] } });
    assert.equal(response.status, 403);
    assert.deepEqual(response.body, forbiddenBody('POST', '/bundles', 'admin', 'viewer-bot', 'viewer'));
    const applied = await api('POST', '/apply', { token: viewer, body: { bundles: [{ name: 'viewer-made', channels: ['*'], credentials: [] }] } });
    assert.equal(applied.status, 403);
    assert.deepEqual((await api('GET', '/config')).body, before.body);
  });

  test('viewer cannot create sessions', async () => {
    const response = await api('POST', '/sessions', { token: viewer, body: { channel: 'C0SALES' } });
    assert.equal(response.status, 403);
    assert.deepEqual(response.body, forbiddenBody('POST', '/sessions', 'admin or session-issuer', 'viewer-bot', 'viewer'));
    assert.equal((await api('GET', '/sessions', { token: viewer })).status, 200);
  });

  test('viewer cannot manage admin tokens', async () => {
    const response = await api('POST', '/admin-tokens', { token: viewer, body: { name: 'escalated', role: 'admin' } });
    assert.equal(response.status, 403);
    assert.deepEqual(response.body, forbiddenBody('POST', '/admin-tokens', 'admin', 'viewer-bot', 'viewer'));
    assert.equal((await api('GET', '/admin-tokens', { token: viewer })).status, 403);
  });

  test('session issuer manages sessions only', async () => {
    const created = await api('POST', '/sessions', { token: issuer, body: { channel: 'C0SALES' } });
    assert.equal(created.status, 201);
    const listed = await api('GET', '/sessions', { token: issuer });
    assert.equal(listed.status, 200);
    assert.ok(listed.body.some((session: { id: string }) => session.id === created.body.id));
    assert.equal((await api('DELETE', `/sessions/${created.body.id}`, { token: issuer })).status, 204);
    assert.equal((await api('GET', '/ca', { token: issuer })).status, 200);

    const read = await api('GET', '/bundles', { token: issuer });
    assert.equal(read.status, 403);
    assert.deepEqual(read.body, forbiddenBody('GET', '/bundles', 'admin or viewer', 'orchestrator', 'session-issuer'));

    const before = await api('GET', '/config');
    const write = await api('PUT', '/egress', { token: issuer, body: { default: 'deny', allow: [], allowPrivateNetworks: [] } });
    assert.equal(write.status, 403);
    assert.deepEqual(write.body, forbiddenBody('PUT', '/egress', 'admin', 'orchestrator', 'session-issuer'));
    assert.deepEqual((await api('GET', '/config')).body, before.body);
    assert.equal((await api('GET', '/audit', { token: issuer })).status, 403);
  });

  test('admin reads, writes and manages sessions', async () => {
    const bundle = await api('POST', '/bundles', { token: admin, body: { name: 'admin-made', channels: ['*'] } });
    assert.equal(bundle.status, 201);
    assert.equal((await api('GET', `/bundles/${bundle.body.id}`, { token: admin })).status, 200);
    const session = await api('POST', '/sessions', { token: admin, body: { channel: 'C0SALES' } });
    assert.equal(session.status, 201);
    assert.equal((await api('DELETE', `/sessions/${session.body.id}`, { token: admin })).status, 204);
    assert.equal((await api('DELETE', `/bundles/${bundle.body.id}`, { token: admin })).status, 204);
  });

  test('cookie session keeps the role of its token', async () => {
    const login = await api('POST', '/login', { token: null, body: { token: viewer } });
    assert.equal(login.status, 200);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const headers = { cookie, 'x-csrf-token': login.body.csrfToken };
    assert.equal((await api('GET', '/bundles', { token: null, headers })).status, 200);
    const response = await api('POST', '/bundles', { token: null, headers, body: { name: 'cookie-viewer', channels: ['*'] } });
    assert.equal(response.status, 403);
    assert.deepEqual(response.body, forbiddenBody('POST', '/bundles', 'admin', 'viewer-bot', 'viewer'));
  });

  test('cookie write without csrf header is 403 and changes nothing', async () => {
    const login = await api('POST', '/login', { token: null, body: { token: admin } });
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const response = await api('POST', '/bundles', { token: null, headers: { cookie }, body: { name: 'csrf-victim', channels: ['*'] } });
    assert.equal(response.status, 403);
    assert.equal(response.body.error.code, 'csrf_token_invalid');
    const listed = await api('GET', '/bundles');
    assert.ok(!listed.body.bundles.some((bundle: { name: string }) => bundle.name === 'csrf-victim'));
  });
});

describe('admin token secrecy', () => {
  test('no token value reaches the log or the admin audit', async () => {
    const token = await createToken('secrecy-check', 'viewer');
    await api('GET', '/bundles', { token });
    await api('POST', '/login', { token: null, body: { token } });
    await api('GET', '/bundles', { token: `${token}x` });

    const audit = await api('GET', '/admin-audit?limit=1000');
    assert.equal(audit.status, 200);
    assert.ok(audit.body.events.some((event: { target: string }) => event.target === 'admin-token/secrecy-check'));
    assert.ok(logLines.some((line) => line.includes('"action":"admin_token.create"')));
    for (const value of [token, proxy.adminToken, token.slice(4), proxy.adminToken.slice(4)]) {
      assert.ok(!audit.text.includes(value), 'a token is in the admin audit');
      assert.ok(!logLines.some((line) => line.includes(value)), 'a token is in the log');
    }
  });
});

describe('admin-token command', () => {
  let server: CliServer;

  before(async () => {
    server = await startCliServer();
  });

  after(async () => {
    await server.stop();
  });

  test('create list and revoke', async () => {
    const created = await server.cli(['admin-token', 'create', '--name', 'orchestrator', '--role', 'session-issuer', '--expires-in', '7d']);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^apt_[A-Za-z0-9_-]{43}$/);
    assert.match(created.stderr, /^Created admin token "orchestrator" with role session-issuer, expiring at \S+Z\. It is shown only now; store it in your secret manager\.\n$/);

    const session = await server.cli(['session', 'create', '--channel', 'C0SALES', '--format', 'json'], { env: { AGENT_PROXY_TOKEN: token } });
    assert.equal(session.code, 0, session.stderr);

    const listed = await server.cli(['admin-token', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trim().split('\n');
    assert.equal(lines[0], 'NAME\tROLE\tSTATUS\tCREATED\tEXPIRES\tLAST USED\tREVOKED');
    assert.match(lines.find((line) => line.startsWith('orchestrator\t'))!, /^orchestrator\tsession-issuer\tactive\t\S+Z\t\S+Z\t\S+Z\t-$/);
    assert.match(lines.find((line) => line.startsWith('bootstrap\t'))!, /^bootstrap\tadmin\tactive\t/);
    assert.ok(!listed.stdout.includes(token));
    assert.ok(!listed.stdout.includes(server.adminToken));

    const revoked = await server.cli(['admin-token', 'revoke', 'orchestrator']);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout, 'revoked orchestrator\n');

    const refused = await server.cli(['session', 'create', '--channel', 'C0SALES'], { env: { AGENT_PROXY_TOKEN: token } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /The admin API answered 401: The admin token "orchestrator" was revoked at /);
  });

  test('invalid role is rejected before any request', async () => {
    const result = await server.cli(['admin-token', 'create', '--name', 'x', '--role', 'root']);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'agent-proxy: --role "root" is invalid: use admin, viewer, session-issuer\n');
  });

  test('admin-audit lists the changes', async () => {
    const result = await server.cli(['admin-audit', '--action', 'admin_token.revoke', '--format', 'json']);
    assert.equal(result.code, 0, result.stderr);
    const events = result.stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(events.length, 1);
    assert.equal(events[0].actor, 'bootstrap');
    assert.equal(events[0].target, 'admin-token/orchestrator');
    assert.equal(events[0].outcome, 'success');
  });
});
