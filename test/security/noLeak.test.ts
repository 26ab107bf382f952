// One full scenario with every credential type, then a search of every byte the
// product wrote or returned for every secret and token it handled, in plain,
// base64 and URL-encoded form. A hit names only the secret and the file, never
// the value.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ProxyAgent, request, type Dispatcher } from 'undici';
import { pino } from 'pino';
import { createLogger } from '../../src/log.ts';
import { startAgentProxy, type RunningAgentProxy } from '../../src/runtime/agentProxy.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import { createTestPki } from '../helpers/testPki.ts';
import { startOAuthTokenServer, TOKEN_PATH, type OAuthTokenServer } from '../fixtures/oauthTokenServer.ts';
import { startSalesforceServer, type SalesforceServer } from '../fixtures/salesforceServer.ts';

const CHANNEL = 'C0LEAK';
const ECHO_HOSTS = { bearer: 'bearer.leak.test', basic: 'basic.leak.test', headerKey: 'headerkey.leak.test', queryKey: 'querykey.leak.test' };
const LOGIN_HOST = 'login.salesforce.test';
const WRONG_KEY_HOST = 'test.salesforce.test';
const INSTANCE_HOST = 'acme.my.salesforce.test';
const AUTH_HOST = 'auth.example.test';
const CC_API_HOST = 'api.example.test';
const RT_API_HOST = 'api2.example.test';
const CONSUMER_KEY = '3MVG9LEAK.consumer.key';
const INTEGRATION_USER = 'integration@leak.example';

const appKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const APP_KEY_PEM = appKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const WRONG_KEY_PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();

/** Static secrets by name. Tokens issued during the run are added from the fixtures at the end. */
const STATIC_SECRETS: Record<string, string> = {
  bearerToken: 'leak-bearer-4c1f9e2a7b',
  basicPassword: 'leak pw/+=:7d3e91',
  headerApiKey: 'leak-header-key-82b0c6',
  queryApiKey: 'leak query key/+=5a',
  ccClientSecret: 'leak-cc-secret-19fe07',
  rtClientSecret: 'leak-rt-secret-3a6d55',
  configuredRefreshToken: 'leak-refresh-configured-e40b',
};

/** Returns the base64 body lines of a PEM key, since any one of them in the output is a leak. */
function keyLines(pem: string): string[] {
  return pem.split('\n').filter((line) => line !== '' && !line.startsWith('-----'));
}

/** Returns every form a secret is searched in: plain, URL-encoded, and base64 (both alphabets) at each byte alignment. */
function searchForms(secret: string): string[] {
  const forms = new Set([secret, encodeURIComponent(secret), new URLSearchParams({ v: secret }).toString().slice(2), JSON.stringify(secret).slice(1, -1)]);
  const bytes = Buffer.from(secret, 'utf8');
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const stable = encoded.slice(Math.ceil((8 * offset) / 6), Math.floor((8 * (offset + bytes.length)) / 6));
    forms.add(stable);
    forms.add(stable.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...forms];
}

interface Artifact {
  /** A file path under the data directory, or a label such as `api GET /api/v1/config`. */
  name: string;
  bytes: Buffer;
  database: boolean;
}

interface Hit {
  secret: string;
  artifact: string;
}

function findHits(artifacts: readonly Artifact[], secrets: ReadonlyMap<string, string>): Hit[] {
  const hits: Hit[] = [];
  for (const [name, value] of secrets) {
    const forms = searchForms(value).map((form) => Buffer.from(form, 'utf8'));
    for (const artifact of artifacts) {
      if (forms.some((form) => artifact.bytes.includes(form))) hits.push({ secret: name, artifact: artifact.name });
    }
  }
  return hits;
}

function describeHits(hits: readonly Hit[]): string {
  return hits.map((hit) => `${hit.secret} found in ${hit.artifact}`).join('\n');
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((entry) => path.join(dir, entry))
    .filter((file) => statSync(file).isFile());
}

describe('no secret leaks', () => {
  const artifacts: Artifact[] = [];
  const secrets = new Map<string, string>();
  let dir: string;
  let logFile: string;
  let salesforce: SalesforceServer;
  let oauth: OAuthTokenServer;
  let echo: EchoUpstream;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-noleak-'));
    const dataDir = path.join(dir, 'data');
    logFile = path.join(dataDir, 'debug.log');
    const pki = await createTestPki();
    writeFileSync(path.join(dir, 'upstream-ca.pem'), pki.caPem);

    salesforce = await startSalesforceServer({
      pki,
      apps: [{ consumerKey: CONSUMER_KEY, certificate: appKey.publicKey, approvedUsernames: [INTEGRATION_USER] }],
      users: [{ username: INTEGRATION_USER, userId: '005LEAK00000001AAA', organizationId: '00DLEAK0000001AAAA' }],
    });
    oauth = await startOAuthTokenServer({
      pki,
      hostnames: [AUTH_HOST, CC_API_HOST, RT_API_HOST],
      clients: [
        { clientId: 'cc-client', clientSecret: STATIC_SECRETS.ccClientSecret! },
        { clientId: 'rt-client', clientSecret: STATIC_SECRETS.rtClientSecret! },
      ],
      refreshTokens: [{ refreshToken: STATIC_SECRETS.configuredRefreshToken!, clientId: 'rt-client' }],
      rotateRefreshTokens: true,
    });
    echo = await startEchoUpstream(
      Object.values(ECHO_HOSTS),
      {
        '/reflect-header': (req, res) => {
          res.writeHead(200, { 'x-echo-authorization': req.headers.authorization ?? '', 'x-echo-key': String(req.headers['x-api-key'] ?? ''), location: req.url ?? '', 'content-length': '2' });
          res.end('ok');
        },
        '/base64-dump': (req, res) => {
          const body = Buffer.from(JSON.stringify({ url: req.url, headers: req.headers })).toString('base64');
          res.writeHead(500, { 'content-type': 'text/plain', 'content-length': String(body.length) });
          res.end(body);
        },
      },
      pki,
    );

    const pin = (host: string, port: number) => ({ host, port, address: '127.0.0.1' });
    // The product's own logger at debug level, writing into the data directory next to the database.
    const proxy: RunningAgentProxy = await startAgentProxy({
      dataDir,
      proxyListen: { host: '127.0.0.1', port: 0 },
      adminListen: { host: '127.0.0.1', port: 0 },
      upstreamCaFiles: [path.join(dir, 'upstream-ca.pem')],
      resolvePins: [
        ...Object.values(ECHO_HOSTS).map((host) => pin(host, echo.port)),
        ...[LOGIN_HOST, WRONG_KEY_HOST, INSTANCE_HOST].map((host) => pin(host, salesforce.port)),
        ...[AUTH_HOST, CC_API_HOST, RT_API_HOST].map((host) => pin(host, oauth.port)),
      ],
      logger: createLogger({ level: 'debug', destination: pino.destination({ dest: logFile, mkdir: true, sync: true }) }),
    });

    const saved = (name: string, text: string) => artifacts.push({ name, bytes: Buffer.from(text, 'utf8'), database: false });
    const admin = async (method: 'GET' | 'POST', apiPath: string, body?: unknown): Promise<{ status: number; text: string }> => {
      const response = await request(`${proxy.adminUrl}${apiPath}`, {
        method,
        headers: { authorization: `Bearer ${proxy.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.body.text();
      saved(`api ${method} ${apiPath}`, `${JSON.stringify(response.headers)}\n${text}`);
      return { status: response.statusCode, text };
    };

    try {
      const echoSite = (host: string) => [`${host}:${echo.port}`];
      const applied = await admin('POST', '/api/v1/apply', {
        egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] },
        bundles: [
          {
            name: 'everything',
            channels: [CHANNEL],
            credentials: [
              { name: 'bearer', type: 'bearer_token', token: STATIC_SECRETS.bearerToken, allowedWebsites: echoSite(ECHO_HOSTS.bearer), access: 'read_write' },
              { name: 'basic', type: 'basic_auth', username: 'svc', password: STATIC_SECRETS.basicPassword, allowedWebsites: echoSite(ECHO_HOSTS.basic) },
              { name: 'header-key', type: 'api_key', headerName: 'X-Api-Key', value: STATIC_SECRETS.headerApiKey, allowedWebsites: echoSite(ECHO_HOSTS.headerKey) },
              { name: 'query-key', type: 'api_key', queryParam: 'key', value: STATIC_SECRETS.queryApiKey, allowedWebsites: echoSite(ECHO_HOSTS.queryKey) },
              {
                name: 'salesforce',
                type: 'oauth2_jwt_bearer',
                provider: 'salesforce',
                issuer: CONSUMER_KEY,
                subject: INTEGRATION_USER,
                privateKey: APP_KEY_PEM,
                tokenUrl: `https://${LOGIN_HOST}:${salesforce.port}/services/oauth2/token`,
                allowedWebsites: [`${INSTANCE_HOST}:${salesforce.port}`, `${LOGIN_HOST}:${salesforce.port}`],
              },
              {
                name: 'salesforce-wrong-key',
                type: 'oauth2_jwt_bearer',
                provider: 'salesforce',
                issuer: CONSUMER_KEY,
                subject: INTEGRATION_USER,
                privateKey: WRONG_KEY_PEM,
                tokenUrl: `https://${LOGIN_HOST}:${salesforce.port}/services/oauth2/token`,
                allowedWebsites: [`${WRONG_KEY_HOST}:${salesforce.port}`],
              },
              {
                name: 'client-credentials',
                type: 'oauth2_client_credentials',
                clientId: 'cc-client',
                clientSecret: STATIC_SECRETS.ccClientSecret,
                tokenUrl: oauth.tokenUrl,
                clientAuthMethod: 'basic',
                allowedWebsites: [`${CC_API_HOST}:${oauth.port}`, `${AUTH_HOST}:${oauth.port}`],
                access: 'read_write',
              },
              {
                name: 'refresh',
                type: 'oauth2_refresh_token',
                clientId: 'rt-client',
                clientSecret: STATIC_SECRETS.rtClientSecret,
                refreshToken: STATIC_SECRETS.configuredRefreshToken,
                tokenUrl: oauth.tokenUrl,
                allowedWebsites: [`${RT_API_HOST}:${oauth.port}`],
              },
            ],
          },
        ],
      });
      assert.equal(applied.status, 200, 'the bundles file was rejected');

      const created = await admin('POST', '/api/v1/sessions', { channel: CHANNEL });
      const session = JSON.parse(created.text) as { proxyUrl: string; caBundlePath: string };
      const agent = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: readFileSync(session.caBundlePath, 'utf8') } });
      const sandbox = async (label: string, url: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<number> => {
        try {
          const response = await request(url, { dispatcher: agent as Dispatcher, method: (options.method ?? 'GET') as Dispatcher.HttpMethod, body: options.body, headers: options.headers });
          const text = await response.body.text();
          saved(`sandbox ${label}`, `${response.statusCode}\n${JSON.stringify(response.headers)}\n${text}`);
          return response.statusCode;
        } catch (error) {
          saved(`sandbox ${label} (error)`, String(error));
          return 0;
        }
      };

      const echoUrl = (host: string, route: string) => `https://${host}:${echo.port}${route}`;
      for (const host of Object.values(ECHO_HOSTS)) {
        await sandbox(`${host} echo`, echoUrl(host, '/anything?page=1'));
        await sandbox(`${host} header`, echoUrl(host, '/reflect-header'));
        await sandbox(`${host} base64`, echoUrl(host, '/base64-dump'));
      }
      await sandbox('bearer TRACE', echoUrl(ECHO_HOSTS.bearer, '/anything'), { method: 'TRACE' });
      await sandbox('bearer write refused', echoUrl(ECHO_HOSTS.basic, '/anything'), { method: 'POST', body: 'x' });

      const queryPath = `/services/data/v62.0/query?q=${encodeURIComponent('SELECT Id, Name FROM Opportunity LIMIT 2')}`;
      await sandbox('salesforce query', `https://${INSTANCE_HOST}:${salesforce.port}${queryPath}`);
      await sandbox('salesforce token endpoint', `https://${LOGIN_HOST}:${salesforce.port}/services/oauth2/token`, { method: 'POST', body: 'grant_type=password' });
      await sandbox('salesforce wrong key', `https://${WRONG_KEY_HOST}:${salesforce.port}${queryPath}`);

      await sandbox('client credentials', `https://${CC_API_HOST}:${oauth.port}/me`);
      await sandbox('client credentials token endpoint', `https://${AUTH_HOST}:${oauth.port}${TOKEN_PATH}`, { method: 'POST', body: 'grant_type=client_credentials' });
      await sandbox('refresh', `https://${RT_API_HOST}:${oauth.port}/me`);
      // A rejected token makes the proxy refresh again, so the provider rotates the refresh token a second time.
      oauth.expireAccessTokens();
      await sandbox('refresh after expiry', `https://${RT_API_HOST}:${oauth.port}/me`);
      oauth.expireAccessTokens();
      // A provider that prints the client secret it received in its error description.
      oauth.failTokenEndpoint({ status: 401, body: { error: 'invalid_client', error_description: `client secret ${STATIC_SECRETS.ccClientSecret} rejected` } });
      await sandbox('client credentials failed mint', `https://${CC_API_HOST}:${oauth.port}/me`);
      oauth.failTokenEndpoint(null);

      const bundles = JSON.parse((await admin('GET', '/api/v1/bundles')).text) as { bundles: Array<{ id: string }> };
      for (const bundle of bundles.bundles) {
        await admin('GET', `/api/v1/bundles/${bundle.id}`);
        const credentials = JSON.parse((await admin('GET', `/api/v1/bundles/${bundle.id}/credentials`)).text) as { credentials?: Array<{ id: string }> } | Array<{ id: string }>;
        const list = Array.isArray(credentials) ? credentials : (credentials.credentials ?? []);
        for (const credential of list) {
          await admin('GET', `/api/v1/bundles/${bundle.id}/credentials/${credential.id}`);
          await admin('POST', `/api/v1/bundles/${bundle.id}/credentials/${credential.id}/test-connection`);
        }
      }
      await proxy.flushAudit();
      for (const apiPath of ['/api/v1/config', '/api/v1/egress', '/api/v1/audit?limit=1000', '/api/v1/sessions', '/api/v1/presets', '/api/v1/openapi.json', '/healthz', '/readyz', '/metrics', '/']) {
        await admin('GET', apiPath);
      }
      const page = artifacts.at(-1)!.bytes.toString('utf8');
      for (const asset of page.match(/\/assets\/[^"']+/g) ?? []) {
        await admin('GET', asset);
      }
      await agent.close();

      // Read once while running, for the -wal and -shm files, and once after the stop.
      for (const file of listFiles(dataDir)) {
        artifacts.push({ name: `${path.relative(dir, file)} (running)`, bytes: readFileSync(file), database: /\.db(-wal|-shm|-journal)?$/.test(file) });
      }
    } finally {
      await proxy.stop();
    }
    for (const file of listFiles(dataDir)) {
      artifacts.push({ name: path.relative(dir, file), bytes: readFileSync(file), database: /\.db(-wal|-shm|-journal)?$/.test(file) });
    }

    for (const [name, value] of Object.entries(STATIC_SECRETS)) secrets.set(name, value);
    keyLines(APP_KEY_PEM).forEach((line, index) => secrets.set(`salesforcePrivateKey line ${index + 1}`, line));
    keyLines(WRONG_KEY_PEM).forEach((line, index) => secrets.set(`wrongPrivateKey line ${index + 1}`, line));
    salesforce.issuedTokens().forEach((token, index) => secrets.set(`salesforce access token ${index + 1}`, token));
    oauth.issuedAccessTokens().forEach((token, index) => secrets.set(`oauth access token ${index + 1}`, token));
    oauth.issuedRefreshTokens().forEach((token, index) => secrets.set(`rotated refresh token ${index + 1}`, token));
  });

  after(async () => {
    await salesforce?.close();
    await oauth?.close();
    await echo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('search finds a planted secret', () => {
    const planted = new Map([['planted', 'planted-secret-value']]);
    const encoded = Buffer.from(`Authorization: Basic ${Buffer.from('user:planted-secret-value').toString('base64')}`);

    assert.deepEqual(findHits([{ name: 'sample', bytes: encoded, database: false }], planted), [{ secret: 'planted', artifact: 'sample' }]);
    assert.deepEqual(findHits([{ name: 'sample', bytes: Buffer.from('q=planted-secret-value'), database: false }], planted).length, 1);
  });

  test('scenario minted and rotated tokens', () => {
    assert.equal(salesforce.issuedTokens().length >= 1, true);
    assert.equal(oauth.issuedAccessTokens().length >= 3, true);
    assert.equal(oauth.issuedRefreshTokens().length >= 2, true);
    assert.equal(salesforce.requests.some((recorded) => recorded.status === 400), true, 'the wrong key should have failed a mint');
  });

  test('debug log was written', () => {
    const log = readFileSync(logFile, 'utf8');

    assert.equal(log.includes('"level":20') || log.includes('"level":30'), true);
    assert.equal(log.includes('token minted'), true);
    assert.equal(log.includes('token mint failed'), true);
  });

  test('every data directory file was read', () => {
    const names = artifacts.filter((artifact) => !artifact.name.includes(' ')).map((artifact) => path.basename(artifact.name));

    assert.equal(names.includes('agent-proxy.db'), true);
    assert.equal(names.includes('debug.log'), true);
    assert.equal(artifacts.some((artifact) => artifact.name.endsWith('.db-wal (running)')), true);
  });

  test('no secret in logs, API or sandbox responses', () => {
    const hits = findHits(artifacts.filter((artifact) => !artifact.database), secrets);

    assert.equal(hits.length, 0, describeHits(hits));
  });

  test('no secret in database files', () => {
    const hits = findHits(artifacts.filter((artifact) => artifact.database), secrets);

    assert.equal(hits.length, 0, describeHits(hits));
  });
});
