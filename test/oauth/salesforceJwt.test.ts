// Salesforce JWT bearer credentials through the real proxy and real TLS: the
// Salesforce-compatible test server issues the tokens, the harness runs the proxy in
// process, and undici, curl and Python requests play the sandbox.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProxyAgent, request } from 'undici';
import { startCliServer } from '../helpers/cliServer.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import { createTestPki, type TestPki } from '../helpers/testPki.ts';
import { startSalesforceServer, type SalesforceServer, type SalesforceServerOptions } from '../fixtures/salesforceServer.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';

const CHANNEL = 'C0SALES';
const CONSUMER_KEY = '3MVG9TEST.consumer.key.of.the.connected.app';
const INTEGRATION_USER = 'integration@acme.example';
const UNAPPROVED_USER = 'intern@acme.example';
const ORG_ID = '00DTEST0000001AAAA';
const USER_ID = '005TEST00000001AAA';
const LOGIN_HOST = 'login.salesforce.test';
const INSTANCE_HOST = 'acme.my.salesforce.test';
// A host in the same org that returns a plain 403, which must not count as a rejected token.
const LIMITS_HOST = 'limits.my.salesforce.test';
const QUERY_PATH = `/services/data/v62.0/query?q=${encodeURIComponent('SELECT Id, Name FROM Opportunity ORDER BY LastModifiedDate DESC LIMIT 5')}`;
const SOBJECT_PATH = '/services/data/v62.0/sobjects/Opportunity';
const TOKEN_PATH = '/services/oauth2/token';

const appKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const APP_KEY_PEM = appKeys.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const OTHER_KEY_PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
// A line from the middle of the key's base64 body: no output may contain any part of the key.
const APP_KEY_LINE = APP_KEY_PEM.split('\n')[5]!;

let pki: TestPki;
let limitsUpstream: EchoUpstream;

before(async () => {
  pki = await createTestPki();
  limitsUpstream = await startEchoUpstream(
    [LIMITS_HOST],
    {
      '/limited': (_req, res) => {
        const body = JSON.stringify([{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }]);
        res.writeHead(403, { 'content-type': 'application/json;charset=UTF-8', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
    },
    pki,
  );
});

after(async () => {
  await limitsUpstream?.close();
});

// ---------------------------------------------------------------- set-up helpers

interface Org {
  salesforce: SalesforceServer;
  harness: Harness;
  session: CreatedSession;
  agent: ProxyAgent;
  /** `https://acme.my.salesforce.test:PORT`. */
  instance: string;
  /** Token requests the test server received, successful or not. */
  tokenRequests(): number;
}

interface OrgOptions {
  server?: SalesforceServerOptions;
  /** Fields that replace those of the default credential. A function receives the test server's port. */
  credential?: Record<string, unknown> | ((port: number) => Record<string, unknown>);
}

function salesforceCredential(port: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'salesforce',
    type: 'oauth2_jwt_bearer',
    provider: 'salesforce',
    issuer: CONSUMER_KEY,
    subject: INTEGRATION_USER,
    privateKey: APP_KEY_PEM,
    tokenUrl: `https://${LOGIN_HOST}:${port}${TOKEN_PATH}`,
    allowedWebsites: [`${INSTANCE_HOST}:${port}`, `${LIMITS_HOST}:${limitsUpstream.port}`],
    access: 'read_write',
    ...overrides,
  };
}

function salesforceOptions(options: SalesforceServerOptions = {}): SalesforceServerOptions {
  return {
    pki,
    apps: [{ consumerKey: CONSUMER_KEY, certificate: appKeys.publicKey, approvedUsernames: [INTEGRATION_USER] }],
    users: [
      { username: INTEGRATION_USER, userId: USER_ID, organizationId: ORG_ID, name: 'Integration User' },
      { username: UNAPPROVED_USER, userId: '005TEST00000002AAA', organizationId: ORG_ID },
    ],
    ...options,
  };
}

/** Starts a Salesforce-compatible org and a proxy holding one JWT bearer credential for it, both stopped after the test. */
async function startOrg(t: TestContext, options: OrgOptions = {}): Promise<Org> {
  const salesforce = await startSalesforceServer(salesforceOptions(options.server));
  t.after(() => salesforce.close());
  const port = salesforce.port;

  const overrides = typeof options.credential === 'function' ? options.credential(port) : options.credential;
  const credential = salesforceCredential(port, overrides);
  const harness = await startHarness({
    upstreamCaPem: [pki.caPem],
    pins: [
      { host: LOGIN_HOST, port, address: '127.0.0.1' },
      { host: INSTANCE_HOST, port, address: '127.0.0.1' },
      { host: LIMITS_HOST, port: limitsUpstream.port, address: '127.0.0.1' },
    ],
    config: {
      egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] },
      bundles: [{ name: 'sales', channels: [CHANNEL], credentials: [credential] }],
    },
  });
  t.after(() => harness.close());

  const session = await harness.createSession(CHANNEL);
  const agent = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: readFileSync(session.caBundlePath, 'utf8') } });
  t.after(() => agent.close());

  return {
    salesforce,
    harness,
    session,
    agent,
    instance: `https://${INSTANCE_HOST}:${port}`,
    tokenRequests: () => salesforce.requests.filter((recorded) => recorded.path === TOKEN_PATH).length,
  };
}

interface ClientResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function send(agent: ProxyAgent, url: string, init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string | Buffer | Readable } = {}): Promise<ClientResponse> {
  const response = await request(url, { dispatcher: agent, method: init.method ?? 'GET', headers: init.headers, body: init.body });
  return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
}

interface QueryResult {
  totalSize: number;
  done: boolean;
  records: Array<{ Id: string; Name: string }>;
}

interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  credential?: string;
  tokenEndpointStatus?: number | null;
  error?: string | null;
  error_description?: string | null;
  hint?: string | null;
  retryAfterSeconds?: number;
}

interface AuditEventJson {
  kind: string;
  decision: string;
  errorCode: string | null;
  credential: string | null;
  host: string | null;
  path: string | null;
  status: number | null;
  subject: string | null;
}

function parseProblem(response: ClientResponse): Problem {
  assert.equal(response.headers['content-type'], 'application/problem+json');
  return JSON.parse(response.text) as Problem;
}

async function auditEvents(org: Org): Promise<AuditEventJson[]> {
  await org.harness.proxy.flushAudit();
  const audit = await org.harness.admin<{ events: AuditEventJson[] }>('GET', '/api/v1/audit?credential=salesforce');
  assert.equal(audit.status, 200);
  return audit.body.events;
}

/** Asserts the response the sandbox gets when no token could be minted, and returns its problem body. */
function assertCredentialUnavailable(response: ClientResponse): Problem {
  assert.equal(response.status, 502);
  assert.equal(response.headers['x-agent-proxy-error'], 'credential_unavailable');
  const problem = parseProblem(response);
  assert.equal(problem.type, 'urn:agent-proxy:error:credential_unavailable');
  assert.equal(problem.title, 'Credential unavailable');
  assert.equal(problem.status, 502);
  assert.equal(problem.code, 'credential_unavailable');
  assert.equal(problem.credential, 'salesforce');
  assert.match(problem.detail, /credential "salesforce"/);
  return problem;
}

// ---------------------------------------------------------------- injection and caching

describe('salesforce jwt bearer', () => {
  test('query gets the minted token', async (t) => {
    const org = await startOrg(t);

    const response = await send(org.agent, `${org.instance}${QUERY_PATH}`);

    assert.equal(response.status, 200, response.text);
    const result = JSON.parse(response.text) as QueryResult;
    assert.equal(result.totalSize, 5);
    assert.equal(result.records.length, 5);
    const issued = org.salesforce.issuedTokens();
    assert.equal(issued.length, 1);
    const query = org.salesforce.requests.find((recorded) => recorded.path === '/services/data/v62.0/query');
    assert.equal(query?.authorization, `Bearer ${issued[0]}`);
    assert.equal(query?.host, INSTANCE_HOST);
  });

  test('sandbox never sees key or token', async (t) => {
    const org = await startOrg(t);

    const response = await send(org.agent, `${org.instance}${QUERY_PATH}`);
    const userinfo = await send(org.agent, `${org.instance}/services/oauth2/userinfo`);

    assert.equal(response.status, 200);
    assert.equal(userinfo.status, 200);
    const [token] = org.salesforce.issuedTokens();
    assert.ok(token);
    for (const seen of [response, userinfo]) {
      const everything = `${JSON.stringify(seen.headers)}\n${seen.text}`;
      assert.equal(everything.includes(token), false);
      assert.equal(everything.includes(APP_KEY_LINE), false);
    }

    const audit = JSON.stringify(await auditEvents(org));
    assert.equal(audit.includes(token), false);
    assert.equal(audit.includes(APP_KEY_LINE), false);

    const config = await org.harness.admin('GET', '/api/v1/config');
    assert.equal(config.status, 200);
    const configText = JSON.stringify(config.body);
    assert.equal(configText.includes(token), false);
    assert.equal(configText.includes(APP_KEY_LINE), false);
    assert.match(configText, /"privateKey":\{"set":true,"fingerprint":"SHA256:[0-9a-f]{64}"/);
  });

  test('20 sequential requests mint once', async (t) => {
    const org = await startOrg(t);

    for (let index = 0; index < 20; index++) {
      const response = await send(org.agent, `${org.instance}${QUERY_PATH}`);
      assert.equal(response.status, 200, `request ${index}: ${response.text}`);
    }

    assert.equal(org.salesforce.mintCount(), 1);
    assert.equal(org.tokenRequests(), 1);
  });

  test('200 concurrent first requests mint once', async (t) => {
    const org = await startOrg(t);
    // A slow token endpoint keeps the first mint in flight while the other requests arrive.
    org.salesforce.delayTokenEndpoint(300);

    const responses = await Promise.all(Array.from({ length: 200 }, () => send(org.agent, `${org.instance}${QUERY_PATH}`)));

    assert.deepEqual(
      responses.map((response) => response.status),
      responses.map(() => 200),
    );
    assert.equal(org.salesforce.mintCount(), 1);
    assert.equal(org.tokenRequests(), 1);
  });

  // ---------------------------------------------------------------- rejected tokens

  test('expired session re-mints and retries GET', async (t) => {
    const org = await startOrg(t);
    assert.equal((await send(org.agent, `${org.instance}${QUERY_PATH}`)).status, 200);
    org.salesforce.expireAllSessions();

    const response = await send(org.agent, `${org.instance}${QUERY_PATH}`);

    assert.equal(response.status, 200, response.text);
    assert.equal((JSON.parse(response.text) as QueryResult).totalSize, 5);
    assert.equal(org.salesforce.mintCount(), 2);
    const queries = org.salesforce.requests.filter((recorded) => recorded.path === '/services/data/v62.0/query');
    const [first, second] = org.salesforce.issuedTokens();
    assert.deepEqual(
      queries.map((recorded) => [recorded.status, recorded.authorization]),
      [
        [200, `Bearer ${first}`],
        [401, `Bearer ${first}`],
        [200, `Bearer ${second}`],
      ],
    );
  });

  test('small POST is retried with its body', async (t) => {
    const org = await startOrg(t);
    assert.equal((await send(org.agent, `${org.instance}${QUERY_PATH}`)).status, 200);
    org.salesforce.expireAllSessions();
    const body = JSON.stringify({ Name: 'Retry Opportunity', StageName: 'Prospecting', CloseDate: '2025-12-31' });

    const response = await send(org.agent, `${org.instance}${SOBJECT_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

    // The test server implements no record creation, so the retried POST ends in its 404. The 401 never reaches the client.
    assert.equal(response.status, 404, response.text);
    assert.deepEqual(JSON.parse(response.text), [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
    assert.equal(org.salesforce.mintCount(), 2);
    const posts = org.salesforce.requests.filter((recorded) => recorded.method === 'POST' && recorded.path === SOBJECT_PATH);
    const [first, second] = org.salesforce.issuedTokens();
    assert.deepEqual(
      posts.map((recorded) => [recorded.status, recorded.authorization, recorded.body]),
      [
        [401, `Bearer ${first}`, body],
        [404, `Bearer ${second}`, body],
      ],
    );
  });

  test('POST over 64 KiB is not retried', async (t) => {
    const org = await startOrg(t);
    assert.equal((await send(org.agent, `${org.instance}${QUERY_PATH}`)).status, 200);
    org.salesforce.expireAllSessions();
    const body = JSON.stringify({ Description: 'x'.repeat(64 * 1024) });

    const response = await send(org.agent, `${org.instance}${SOBJECT_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

    assert.equal(response.status, 401);
    assert.deepEqual(JSON.parse(response.text), [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
    const posts = org.salesforce.requests.filter((recorded) => recorded.method === 'POST' && recorded.path === SOBJECT_PATH);
    assert.equal(posts.length, 1);
    assert.equal(posts[0]?.body.length, Buffer.byteLength(body));
    // The rejected token is still dropped, so the next request mints.
    assert.equal(org.salesforce.mintCount(), 1);
    assert.equal((await send(org.agent, `${org.instance}${QUERY_PATH}`)).status, 200);
    assert.equal(org.salesforce.mintCount(), 2);
  });

  test('chunked POST is not retried', async (t) => {
    const org = await startOrg(t);
    assert.equal((await send(org.agent, `${org.instance}${QUERY_PATH}`)).status, 200);
    org.salesforce.expireAllSessions();

    const response = await send(org.agent, `${org.instance}${SOBJECT_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: Readable.from([Buffer.from('{"Name":'), Buffer.from('"Chunked"}')]),
    });

    assert.equal(response.status, 401);
    const posts = org.salesforce.requests.filter((recorded) => recorded.method === 'POST' && recorded.path === SOBJECT_PATH);
    assert.deepEqual(
      posts.map((recorded) => recorded.body),
      ['{"Name":"Chunked"}'],
    );
    assert.equal(org.salesforce.mintCount(), 1);
  });

  test('retries at most once', async (t) => {
    // A negative idle timeout makes every session dead on arrival, so each new token is rejected too.
    const org = await startOrg(t, { server: { sessionTimeoutMs: -1 } });

    const response = await send(org.agent, `${org.instance}${QUERY_PATH}`);

    assert.equal(response.status, 401);
    assert.deepEqual(JSON.parse(response.text), [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
    assert.equal(org.salesforce.mintCount(), 2);
    assert.equal(org.salesforce.requests.filter((recorded) => recorded.path === '/services/data/v62.0/query').length, 2);
  });

  test('userinfo Bad_OAuth_Token re-mints', async (t) => {
    const org = await startOrg(t);
    assert.equal((await send(org.agent, `${org.instance}/services/oauth2/userinfo`)).status, 200);
    org.salesforce.expireAllSessions();

    const response = await send(org.agent, `${org.instance}/services/oauth2/userinfo`);

    assert.equal(response.status, 200, response.text);
    const userinfo = JSON.parse(response.text) as { preferred_username: string; organization_id: string };
    assert.equal(userinfo.preferred_username, INTEGRATION_USER);
    assert.equal(userinfo.organization_id, ORG_ID);
    assert.equal(org.salesforce.mintCount(), 2);
    const calls = org.salesforce.requests.filter((recorded) => recorded.path === '/services/oauth2/userinfo');
    assert.deepEqual(
      calls.map((recorded) => recorded.status),
      [200, 403, 200],
    );
  });

  test('plain 403 keeps the token', async (t) => {
    const org = await startOrg(t);
    const limited = `https://${LIMITS_HOST}:${limitsUpstream.port}/limited`;

    const first = await send(org.agent, limited);
    const second = await send(org.agent, limited);

    for (const response of [first, second]) {
      assert.equal(response.status, 403);
      assert.equal(response.headers['x-agent-proxy-error'], undefined);
      assert.deepEqual(JSON.parse(response.text), [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }]);
    }
    assert.equal(org.salesforce.mintCount(), 1);
  });

  // ---------------------------------------------------------------- token endpoint errors

  test('wrong audience returns 502', async (t) => {
    const org = await startOrg(t, { credential: { audience: 'https://acme.my.salesforce.test' } });

    const problem = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));

    assert.equal(problem.tokenEndpointStatus, 400);
    assert.equal(problem.error, 'invalid_grant');
    assert.equal(problem.error_description, 'audience is invalid');
    assert.match(problem.hint ?? '', /^The audience must be exactly https:\/\/login\.salesforce\.com for production/);
    assert.equal(problem.retryAfterSeconds, 1);
  });

  test('expired assertion returns 502', async (t) => {
    // A clock skew below minus the assertion lifetime makes the server see every assertion as expired.
    const org = await startOrg(t, { server: { clockSkewSeconds: -600 } });

    const problem = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));

    assert.equal(problem.tokenEndpointStatus, 400);
    assert.equal(problem.error, 'invalid_grant');
    assert.equal(problem.error_description, 'expired authorization code');
    assert.match(problem.hint ?? '', /clock of the host running Agent Proxy/);
  });

  test('unknown issuer returns 502', async (t) => {
    const org = await startOrg(t, { credential: { issuer: '3MVG9UNKNOWN.consumer.key' } });

    const problem = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));

    assert.equal(problem.tokenEndpointStatus, 400);
    assert.equal(problem.error, 'invalid_client_id');
    assert.equal(problem.error_description, 'client identifier invalid');
    assert.match(problem.hint ?? '', /^The issuer is not a known consumer key/);
  });

  test('unapproved user returns 502', async (t) => {
    const org = await startOrg(t, { credential: { subject: UNAPPROVED_USER } });

    const problem = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));

    assert.equal(problem.tokenEndpointStatus, 400);
    assert.equal(problem.error, 'invalid_grant');
    assert.equal(problem.error_description, "user hasn't approved this consumer");
    assert.match(problem.hint ?? '', /^The user is not pre-authorised for the Connected App/);
  });

  test('wrong key returns 502', async (t) => {
    const org = await startOrg(t, { credential: { privateKey: OTHER_KEY_PEM } });

    const problem = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));

    assert.equal(problem.tokenEndpointStatus, 400);
    assert.equal(problem.error, 'invalid_grant');
    assert.equal(problem.error_description, 'invalid assertion');
    assert.match(problem.hint ?? '', /^The assertion signature did not verify/);
  });

  test('token endpoint 500 returns 502', async (t) => {
    const org = await startOrg(t);
    org.salesforce.failTokenEndpoint({ status: 500, body: 'Internal Server Error', contentType: 'text/html' });

    const problem = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));

    assert.equal(problem.tokenEndpointStatus, 500);
    assert.equal(problem.error, null);
    assert.equal(problem.error_description, null);
    assert.equal(problem.hint, null);
    assert.match(problem.detail, /answered 500 with a body that is not JSON/);
  });

  test('token endpoint garbage returns 502', async (t) => {
    const org = await startOrg(t);
    org.salesforce.failTokenEndpoint({ status: 200, body: '<html>maintenance</html>', contentType: 'text/html' });

    const problem = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));

    assert.equal(problem.tokenEndpointStatus, 200);
    assert.equal(problem.error, null);
    assert.match(problem.detail, /answered 200 with a body that is not JSON/);
  });

  test('failing mints back off', async (t) => {
    const org = await startOrg(t);
    org.salesforce.failTokenEndpoint({ status: 400, body: { error: 'invalid_grant', error_description: 'login rate exceeded' } });

    const first = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));
    assert.equal(first.retryAfterSeconds, 1);
    assert.equal(org.tokenRequests(), 1);

    // Requests within the first one-second backoff reuse the failure without a token request.
    for (let index = 0; index < 5; index++) {
      const problem = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));
      assert.equal(problem.error_description, 'login rate exceeded');
      assert.equal(problem.retryAfterSeconds, 1);
    }
    assert.equal(org.tokenRequests(), 1);

    await sleep(1_100);
    const second = assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));
    assert.equal(second.retryAfterSeconds, 2);
    assert.equal(org.tokenRequests(), 2);

    // The endpoint recovers, but the doubled backoff still blocks the next request.
    org.salesforce.failTokenEndpoint(null);
    assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));
    assert.equal(org.tokenRequests(), 2);
  });

  // ---------------------------------------------------------------- audit

  test('mint audit event names the subject', async (t) => {
    const org = await startOrg(t);
    assert.equal((await send(org.agent, `${org.instance}${QUERY_PATH}`)).status, 200);

    const mints = (await auditEvents(org)).filter((event) => event.kind === 'mint');

    assert.equal(mints.length, 1);
    assert.deepEqual(
      { ...mints[0], durationMs: undefined },
      {
        ...mints[0],
        durationMs: undefined,
        kind: 'mint',
        decision: 'allowed',
        errorCode: null,
        credential: 'salesforce',
        host: LOGIN_HOST,
        path: TOKEN_PATH,
        status: 200,
        subject: INTEGRATION_USER,
      },
    );
  });

  test('failed mint audit has provider error', async (t) => {
    const org = await startOrg(t, { credential: { subject: UNAPPROVED_USER } });
    assertCredentialUnavailable(await send(org.agent, `${org.instance}${QUERY_PATH}`));

    const events = await auditEvents(org);
    const mints = events.filter((event) => event.kind === 'mint');

    assert.equal(mints.length, 1);
    assert.equal(mints[0]?.decision, 'error');
    assert.equal(mints[0]?.status, 400);
    assert.equal(mints[0]?.subject, UNAPPROVED_USER);
    assert.equal(mints[0]?.errorCode, "invalid_grant: user hasn't approved this consumer");
    const requests = events.filter((event) => event.kind === 'request');
    assert.equal(requests.length, 1);
    assert.equal(requests[0]?.status, 502);
    assert.equal(requests[0]?.errorCode, 'credential_unavailable');
  });

  // ---------------------------------------------------------------- test-connection

  test('test-connection shows the user', async (t) => {
    const org = await startOrg(t);

    const result = await org.harness.admin<ConnectionTest>('POST', '/api/v1/credentials/salesforce/test-connection');

    assert.equal(result.status, 200);
    assert.equal(result.body.ok, true, JSON.stringify(result.body.error));
    assert.equal(result.body.token?.subject, INTEGRATION_USER);
    assert.equal(result.body.token?.instanceUrl, org.instance);
    assert.equal(result.body.probe?.url, `${org.instance}/services/oauth2/userinfo`);
    assert.equal(result.body.probe?.status, 200);
    assert.equal(result.body.probe?.identity?.preferred_username, INTEGRATION_USER);
    assert.equal(result.body.probe?.identity?.organization_id, ORG_ID);
    assert.equal(result.body.probe?.identity?.user_id, USER_ID);
    assert.deepEqual(result.body.warnings, []);
    assert.equal(result.body.error, null);
  });

  test('test-connection warns on instance host', async (t) => {
    const org = await startOrg(t, {
      // userinfo also works on the login host, so the probe works while instance_url is not allowed.
      credential: (port) => ({ allowedWebsites: [`${LOGIN_HOST}:${port}`], probeUrl: `https://${LOGIN_HOST}:${port}/services/oauth2/userinfo` }),
    });

    const result = await org.harness.admin<ConnectionTest>('POST', '/api/v1/credentials/salesforce/test-connection');

    assert.equal(result.status, 200);
    assert.equal(result.body.ok, true, JSON.stringify(result.body.error));
    assert.equal(result.body.probe?.identity?.preferred_username, INTEGRATION_USER);
    assert.equal(result.body.warnings.length, 1);
    assert.match(result.body.warnings[0] ?? '', new RegExp(`instance_url ${org.instance.replace(/\./g, '\\.')}, whose host ${INSTANCE_HOST.replace(/\./g, '\\.')} is not among the allowed websites`));
  });

  test('apply checks the key', async (t) => {
    const org = await startOrg(t);
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString();
    const encrypted = appKeys.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'correct horse' }).toString();
    const publicKey = appKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const certificate = (await pki.issueServerCertificate(['key.example.test'])).certPem.split('\n\n')[0]!;

    const cases: Array<[string, string, RegExp]> = [
      ['encrypted key', encrypted, /encrypted/],
      ['certificate', certificate, /certificate/i],
      ['public key', publicKey, /public key/i],
      ['not PEM', 'this is not a key', /PEM|private key/],
      ['1024-bit RSA', rsa1024, /1024-bit RSA key, which is too weak/],
      ['EC key with RS256', ec, /EC P-256 key, but algorithm RS256 needs an RSA key/],
    ];
    for (const [name, pem, message] of cases) {
      const applied = await org.harness.admin<{ error: { code: string; issues: Array<{ path: string; message: string }> } }>('POST', '/api/v1/apply', {
        egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] },
        bundles: [{ name: 'sales', channels: [CHANNEL], credentials: [salesforceCredential(org.salesforce.port, { privateKey: pem })] }],
      });
      assert.equal(applied.status, 400, name);
      assert.equal(applied.body.error.code, 'invalid_config', name);
      const keyIssues = applied.body.error.issues.filter((issue) => issue.path === 'bundles[0].credentials[0].privateKey');
      assert.equal(keyIssues.length, 1, `${name}: ${JSON.stringify(applied.body.error.issues)}`);
      assert.match(keyIssues[0]?.message ?? '', message, name);
      assert.equal(JSON.stringify(applied.body).includes(pem.split('\n')[2] ?? pem), false, `${name}: the answer repeats the key`);
    }

    // The rejected documents changed nothing: the configured key still mints.
    assert.equal((await send(org.agent, `${org.instance}${QUERY_PATH}`)).status, 200);
  });
});

interface ConnectionTest {
  ok: boolean;
  token: { subject: string; instanceUrl: string | null; expiresAt: string } | null;
  probe: { url: string; status: number; identity: Record<string, string> | null } | null;
  warnings: string[];
  error: unknown;
}

// ---------------------------------------------------------------- real clients

describe('salesforce jwt through agent-proxy run', () => {
  test('curl and python list 5 records', async (t) => {
    const salesforce = await startSalesforceServer(salesforceOptions());
    t.after(() => salesforce.close());
    const port = salesforce.port;
    const server = await startCliServer({
      upstreamCaPem: pki.caPem,
      resolve: [`${LOGIN_HOST}:${port}:127.0.0.1`, `${INSTANCE_HOST}:${port}:127.0.0.1`],
      config: {
        egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] },
        bundles: [{ name: 'sales', channels: [CHANNEL], credentials: [salesforceCredential(port, { allowedWebsites: [`${INSTANCE_HOST}:${port}`], access: 'read' })] }],
      },
    });
    t.after(() => server.stop());
    const url = `https://${INSTANCE_HOST}:${port}${QUERY_PATH}`;
    const python = ['import sys, requests', 'response = requests.get(sys.argv[1], timeout=10)', 'sys.stdout.write(response.text)'].join('\n');

    const curl = await server.cli(['run', '--channel', CHANNEL, '--', 'curl', '--silent', '--show-error', '--fail-with-body', '--max-time', '10', url]);
    const requests = await server.cli(['run', '--channel', CHANNEL, '--', 'python3', '-c', python, url]);

    for (const [name, result] of [['curl', curl], ['python requests', requests]] as const) {
      assert.equal(result.code, 0, `${name}: ${result.stderr}`);
      const body = JSON.parse(result.stdout) as QueryResult;
      assert.equal(body.totalSize, 5, name);
      assert.equal(body.records.length, 5, name);
      assert.equal(result.stdout.includes(salesforce.issuedTokens()[0] ?? '\u0000'), false, name);
    }
    assert.equal(salesforce.mintCount(), 1);
  });
});
