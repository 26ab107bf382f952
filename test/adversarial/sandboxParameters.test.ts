// Sandbox-chosen parameters: a sandbox tries to change whom a token is minted for (subject),
// what it may do (scope), whom it is for (audience), where it is minted (token URL) or the
// header the credential goes out in, through anything it controls in a request: headers,
// query, body, path, Host. The token endpoint records every form it receives, and must
// only ever see the configured values.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type http from 'node:http';
import { after, before, describe, test, type TestContext } from 'node:test';
import { createTestPki, type TestPki } from '../helpers/testPki.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import {
  advAssertNoSecretReached,
  advAssertRefused,
  advRequestThroughTunnel,
  advStartEchoOn,
  advStartProxy,
  type AdvProxy,
  type AdvRequest,
} from './helpers.ts';

const CLIENT_SECRET = 'cs-params-6e02b9d4';
const API_KEY = 'ak-params-0f77c3a1';
const API_HOST = 'api.example.test';
const JWT_API_HOST = 'jwt.example.test';
const KEY_API_HOST = 'key.example.test';
const AUTH_HOST = 'auth.example.test';
const ATTACKER_HOST = 'attacker.test';
const ATTACKER_ADDRESS = '127.0.0.2';

const CONFIGURED_FORM = {
  grant_type: 'client_credentials',
  scope: 'api.read',
  audience: 'https://api.example.test',
  client_id: 'client-params',
  client_secret: CLIENT_SECRET,
};
const JWT_SETTINGS = { issuer: 'iss-params', subject: 'integration@params.example', audience: 'https://auth.example.test', scope: 'api.read' };

interface TokenRequest {
  path: string;
  form: Record<string, string>;
  headers: http.IncomingHttpHeaders;
}

let pki: TestPki;
let api: EchoUpstream;
let auth: EchoUpstream;
let attacker: EchoUpstream;
const tokenRequests: TokenRequest[] = [];
const issuedTokens: string[] = [];
const privateKeyPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

function tokenRoute(path: string): http.RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      tokenRequests.push({ path, form: Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))), headers: req.headers });
      const token = `at-params-${issuedTokens.length}-${Date.now()}`;
      issuedTokens.push(token);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 3600 }));
    });
  };
}

before(async () => {
  pki = await createTestPki();
  api = await startEchoUpstream([API_HOST, JWT_API_HOST, KEY_API_HOST], {}, pki);
  auth = await startEchoUpstream([AUTH_HOST], { '/token': tokenRoute('/token'), '/jwt-token': tokenRoute('/jwt-token') }, pki);
  attacker = await advStartEchoOn(ATTACKER_ADDRESS, auth.port, [ATTACKER_HOST, AUTH_HOST], pki);
});

after(async () => {
  await api?.close();
  await auth?.close();
  await attacker?.close();
});

async function startProxy(t: TestContext): Promise<AdvProxy> {
  return advStartProxy(t, {
    records: { [API_HOST]: ['127.0.0.1'], [JWT_API_HOST]: ['127.0.0.1'], [KEY_API_HOST]: ['127.0.0.1'], [AUTH_HOST]: ['127.0.0.1'], [ATTACKER_HOST]: [ATTACKER_ADDRESS] },
    credentials: [
      {
        name: 'client-credentials',
        type: 'oauth2_client_credentials',
        clientId: CONFIGURED_FORM.client_id,
        clientSecret: CLIENT_SECRET,
        tokenUrl: `https://${AUTH_HOST}:${auth.port}/token`,
        scope: CONFIGURED_FORM.scope,
        audience: CONFIGURED_FORM.audience,
        clientAuthMethod: 'body',
        allowedWebsites: [`${API_HOST}:${api.port}`],
      },
      {
        name: 'jwt',
        type: 'oauth2_jwt_bearer',
        ...JWT_SETTINGS,
        privateKey: privateKeyPem,
        tokenUrl: `https://${AUTH_HOST}:${auth.port}/jwt-token`,
        allowedWebsites: [`${JWT_API_HOST}:${api.port}`],
      },
      {
        name: 'api-key',
        type: 'api_key',
        headerName: 'X-Api-Key',
        prefix: 'Key ',
        value: API_KEY,
        allowedWebsites: [`${KEY_API_HOST}:${api.port}`],
      },
    ],
    upstreamCaPem: [pki.caPem],
    egress: { allowPrivateNetworks: ['127.0.0.1/32', `${ATTACKER_ADDRESS}/32`] },
  });
}

function call(proxy: AdvProxy, host: string, request: AdvRequest) {
  return advRequestThroughTunnel(proxy, `${host}:${api.port}`, { servername: host, ca: proxy.proxyCaPem }, {
    ...request,
    headers: { host: `${host}:${api.port}`, ...request.headers },
  });
}

function decodeJwtPayload(assertion: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

function assertNothingElsewhere(): void {
  advAssertNoSecretReached(attacker, [CLIENT_SECRET, API_KEY, ...issuedTokens], 'the attacker');
  advAssertNoSecretReached(api, [CLIENT_SECRET], 'the resource server (the client secret belongs to the token endpoint)');
}

const HOSTILE_REQUESTS: Array<[string, AdvRequest]> = [
  [
    'X-Agent-Proxy override headers',
    {
      headers: {
        'x-agent-proxy-subject': 'attacker@evil.example',
        'x-agent-proxy-scope': 'admin',
        'x-agent-proxy-audience': 'https://attacker.test',
        'x-agent-proxy-token-url': `https://${ATTACKER_HOST}/token`,
        'x-agent-proxy-credential': 'jwt',
      },
    },
  ],
  ['OAuth query parameters', { path: `/data?sub=attacker&scope=admin&audience=evil&client_id=evil&token_url=https://${ATTACKER_HOST}/token&grant_type=password` }],
  ['form body with grant fields', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password&username=attacker&scope=admin&audience=evil&sub=attacker' }],
  ['JSON body with grant fields', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ scope: 'admin', sub: 'attacker', token_url: `https://${ATTACKER_HOST}/token` }) }],
  ['forged Authorization', { headers: { authorization: 'Bearer forged-by-sandbox' } }],
  ['token endpoint path', { method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials&scope=admin' }],
  ['OAuth-looking headers', { headers: { 'x-oauth-scope': 'admin', 'x-subject': 'attacker', dpop: 'forged', 'x-forwarded-host': ATTACKER_HOST } }],
];

describe('client credentials mint uses configured values', () => {
  for (const [attack, request] of HOSTILE_REQUESTS) {
    test(`${attack} cannot change the grant`, async (t) => {
      const proxy = await startProxy(t);
      const tokensBefore = tokenRequests.length;
      const apiBefore = api.requests.length;

      const response = await call(proxy, API_HOST, { path: '/data', ...request });

      assert.equal(response.status, 200, response.body);
      const minted = tokenRequests.slice(tokensBefore);
      assert.equal(minted.length, 1, 'one token request per fresh credential');
      assert.equal(minted[0]?.path, '/token');
      assert.deepEqual(minted[0]?.form, CONFIGURED_FORM);
      const forwarded = api.requests.slice(apiBefore);
      assert.equal(forwarded.length, 1);
      assert.equal(forwarded[0]?.headers.authorization, `Bearer ${issuedTokens.at(-1)}`);
      assert.deepEqual(
        Object.keys(forwarded[0]?.headers ?? {}).filter((name) => name.startsWith('x-agent-proxy-')),
        [],
        'the proxy strips its own headers',
      );
      assertNothingElsewhere();
    });
  }

  test('Host naming token endpoint gets 421', async (t) => {
    const proxy = await startProxy(t);
    const tokensBefore = tokenRequests.length;

    const response = await call(proxy, API_HOST, { method: 'POST', path: '/token', headers: { host: `${AUTH_HOST}:${auth.port}` }, body: 'scope=admin' });

    advAssertRefused(response, 421, 'misdirected_request');
    assert.equal(tokenRequests.length, tokensBefore);
    assertNothingElsewhere();
  });
});

describe('JWT bearer assertion uses configured claims', () => {
  for (const [attack, request] of HOSTILE_REQUESTS.slice(0, 4)) {
    test(`${attack} cannot change the assertion`, async (t) => {
      const proxy = await startProxy(t);
      const tokensBefore = tokenRequests.length;

      const response = await call(proxy, JWT_API_HOST, { path: '/data', ...request });

      assert.equal(response.status, 200, response.body);
      const minted = tokenRequests.slice(tokensBefore);
      assert.equal(minted.length, 1);
      assert.equal(minted[0]?.path, '/jwt-token');
      assert.deepEqual(Object.keys(minted[0]?.form ?? {}).sort(), ['assertion', 'grant_type']);
      assert.equal(minted[0]?.form.grant_type, 'urn:ietf:params:oauth:grant-type:jwt-bearer');
      const claims = decodeJwtPayload(minted[0]?.form.assertion ?? '');
      assert.equal(claims.iss, JWT_SETTINGS.issuer);
      assert.equal(claims.sub, JWT_SETTINGS.subject);
      assert.equal(claims.aud, JWT_SETTINGS.audience);
      assert.equal(claims.scope, JWT_SETTINGS.scope);
      assertNothingElsewhere();
    });
  }
});

describe('header template', () => {
  test('sandbox API key header replaced', async (t) => {
    const proxy = await startProxy(t);
    const apiBefore = api.requests.length;

    const response = await call(proxy, KEY_API_HOST, { rawHeaders: ['Host', `${KEY_API_HOST}:${api.port}`, 'X-Api-Key', 'attacker-key', 'x-api-key', 'Bearer other', 'X-Agent-Proxy-Prefix', 'None'] });

    assert.equal(response.status, 200, response.body);
    const forwarded = api.requests.slice(apiBefore);
    assert.equal(forwarded.length, 1);
    assert.equal(forwarded[0]?.headers['x-api-key'], `Key ${API_KEY}`, 'exactly the configured prefix and value, once');
    assert.ok(!JSON.stringify(forwarded[0]?.rawHeaders).includes('attacker-key'));
    assertNothingElsewhere();
  });
});
