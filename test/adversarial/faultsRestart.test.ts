// Faults that need a real process or a real provider clock. `agent-proxy serve` is killed
// with SIGKILL while it applies a large bundles file and restarted on the same data
// directory. A Salesforce token endpoint's clock rejects the proxy's assertion.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test, type TestContext } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { ProxyAgent, request } from 'undici';
import { fingerprintSecret } from '../../src/credentials/redaction.ts';
import type { ServerInfo } from '../../src/runtime/dataDir.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';
import { startSalesforceServer } from '../fixtures/salesforceServer.ts';
import { REPOSITORY_ROOT } from '../helpers/cliServer.ts';
import { startHarness } from '../helpers/harness.ts';
import { createTestPki } from '../helpers/testPki.ts';
import { recordedRequest, startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';

const CLI_PATH = path.join(REPOSITORY_ROOT, 'bin', 'agent-proxy.js');
const START_TIMEOUT_MS = 20_000;
const HOST_SUFFIX = 'restart.test';

// ---------------------------------------------------------------- serve child process

interface ServeProcess {
  child: ChildProcess;
  info: ServerInfo;
  adminToken: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  admin<T = unknown>(method: 'GET' | 'POST', apiPath: string, body?: unknown): Promise<{ status: number; body: T }>;
}

/**
 * Returns the test process's environment without AGENT_PROXY_* and proxy or CA variables,
 * so the child uses the master key file of its data directory and no outside proxy.
 */
function serveEnvironment(): NodeJS.ProcessEnv {
  const environment: NodeJS.ProcessEnv = {};
  const dropped = /^(AGENT_PROXY_|HTTPS?_PROXY$|ALL_PROXY$|NO_PROXY$|SSL_CERT_|NODE_EXTRA_CA_CERTS$|REQUESTS_CA_BUNDLE$|CURL_CA_BUNDLE$|GIT_SSL_CAINFO$)/i;
  for (const [name, value] of Object.entries(process.env)) {
    if (!dropped.test(name)) environment[name] = value;
  }
  environment.AGENT_PROXY_LOG_LEVEL = 'warn';
  return environment;
}

/**
 * Starts `agent-proxy serve` on `dataDir` and waits until it has written a `server.json`
 * with its own pid, because a process killed earlier leaves its stale `server.json` behind.
 */
async function startServe(dataDir: string, extraArgs: string[]): Promise<ServeProcess> {
  const args = ['--data-dir', dataDir, 'serve', '--proxy-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', ...extraArgs];
  const child = spawn(process.execPath, [CLI_PATH, ...args], { cwd: REPOSITORY_ROOT, env: serveEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));

  const serverInfoPath = path.join(dataDir, 'server.json');
  const readOwnInfo = (): ServerInfo | null => {
    if (!existsSync(serverInfoPath)) return null;
    const info = JSON.parse(readFileSync(serverInfoPath, 'utf8')) as ServerInfo;
    return info.pid === child.pid ? info : null;
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  let info = readOwnInfo();
  while (info === null) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await killServe(child);
      throw new Error(`agent-proxy serve did not start within ${START_TIMEOUT_MS} ms (exit code ${child.exitCode}). Output:\n${output}`);
    }
    await sleep(50);
    info = readOwnInfo();
  }

  const adminToken = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  const admin = async <T>(method: 'GET' | 'POST', apiPath: string, body?: unknown) => {
    const response = await request(`${info.adminUrl}${apiPath}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.body.text();
    return { status: response.statusCode, body: (text ? JSON.parse(text) : null) as T };
  };
  return { child, info, adminToken, output: () => output, admin };
}

/** Sends SIGKILL and waits for the exit, so the process gets no chance to finish or clean up. */
async function killServe(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

// ---------------------------------------------------------------- bundles documents

interface GeneratedConfig {
  label: 'old' | 'new';
  document: unknown;
  /** Secret values by `bundle/credential`, kept in the test only and never printed. */
  secrets: Map<string, Record<string, string>>;
}

const CREDENTIAL_KINDS = ['bearer', 'apikey', 'basic'] as const;
type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

function bundleName(index: number): string {
  return `restart-${String(index).padStart(3, '0')}`;
}

function channelName(index: number): string {
  return `C0RESTART${String(index).padStart(3, '0')}`;
}

// Credential names are unique across all bundles, as the bundles file requires.
function credentialName(index: number, kind: CredentialKind): string {
  return `b${String(index).padStart(3, '0')}-${kind}`;
}

function credentialHost(index: number, kind: CredentialKind): string {
  return `${credentialName(index, kind)}.${HOST_SUFFIX}`;
}

/**
 * Builds a bundles document of `bundleCount` bundles with one bearer token, one API key
 * and one Basic credential each (the first `credentialsPerBundle` of them), on loopback
 * host names that only the pinned hosts resolve. Every secret is random, so the old and
 * the new document share no secret value.
 */
function generateConfig(label: 'old' | 'new', bundleCount: number, credentialsPerBundle: number, upstreamPort: number): GeneratedConfig {
  const secrets = new Map<string, Record<string, string>>();
  const bundles = [];
  for (let index = 0; index < bundleCount; index += 1) {
    const credentials = [];
    for (const kind of CREDENTIAL_KINDS.slice(0, credentialsPerBundle)) {
      const secret = `${label}-${kind}-${index}-${randomBytes(12).toString('hex')}`;
      const base = { name: credentialName(index, kind), allowedWebsites: [`${credentialHost(index, kind)}:${upstreamPort}`] };
      if (kind === 'bearer') {
        credentials.push({ ...base, type: 'bearer_token', token: secret });
        secrets.set(`${bundleName(index)}/${credentialName(index, kind)}`, { token: secret });
      } else if (kind === 'apikey') {
        credentials.push({ ...base, type: 'api_key', headerName: 'X-Api-Key', value: secret });
        secrets.set(`${bundleName(index)}/${credentialName(index, kind)}`, { value: secret });
      } else {
        credentials.push({ ...base, type: 'basic_auth', username: `user-${index}`, password: secret });
        secrets.set(`${bundleName(index)}/${credentialName(index, kind)}`, { password: secret });
      }
    }
    bundles.push({ name: bundleName(index), channels: [channelName(index)], credentials });
  }
  return { label, document: { egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] }, bundles }, secrets };
}

interface RedactedConfig {
  bundles: Array<{ name: string; credentials: Array<{ name: string; secrets: Record<string, { fingerprint: string }> }> }>;
}

/** Reduces a configuration to bundle names, credential names and one fingerprint per secret field. */
function fingerprintView(config: RedactedConfig): Record<string, Record<string, Record<string, string>>> {
  const view: Record<string, Record<string, Record<string, string>>> = {};
  for (const bundle of config.bundles) {
    const credentials: Record<string, Record<string, string>> = {};
    for (const credential of bundle.credentials) {
      credentials[credential.name] = Object.fromEntries(Object.entries(credential.secrets).map(([field, secret]) => [field, secret.fingerprint]));
    }
    view[bundle.name] = credentials;
  }
  return view;
}

/** Builds the fingerprint view GET /api/v1/config must show once `config` is stored. */
function expectedView(config: GeneratedConfig, fingerprintKey: Buffer): Record<string, Record<string, Record<string, string>>> {
  const view: Record<string, Record<string, Record<string, string>>> = {};
  for (const [key, fields] of config.secrets) {
    const [bundle, credential] = key.split('/') as [string, string];
    view[bundle] ??= {};
    view[bundle][credential] = Object.fromEntries(Object.entries(fields).map(([field, value]) => [field, fingerprintSecret(value, fingerprintKey)]));
  }
  return view;
}

/** Describes a stored configuration by its counts and by how many credentials match each expected set, which distinguishes a mix from either set. */
function describeView(view: Record<string, Record<string, Record<string, string>>>, sets: Array<[string, Record<string, Record<string, Record<string, string>>>]>): string {
  const credentialCount = Object.values(view).reduce((total, credentials) => total + Object.keys(credentials).length, 0);
  const matches = sets.map(([label, expected]) => {
    let matching = 0;
    for (const [bundle, credentials] of Object.entries(view)) {
      for (const [credential, fields] of Object.entries(credentials)) {
        if (isDeepStrictEqual(expected[bundle]?.[credential], fields)) matching += 1;
      }
    }
    return `${matching} match the ${label} set`;
  });
  return `${Object.keys(view).length} bundles, ${credentialCount} credentials, ${matches.join(', ')}`;
}

/** Sends the apply request and resolves once its body is written to the socket, with the pending response. */
async function sendApply(serve: ServeProcess, document: unknown): Promise<{ response: Promise<number> }> {
  const body = JSON.stringify(document);
  const outgoing = http.request(`${serve.info.adminUrl}/api/v1/apply`, {
    method: 'POST',
    agent: false,
    headers: { authorization: `Bearer ${serve.adminToken}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  const response = new Promise<number>((resolve, reject) => {
    outgoing.once('response', (incoming) => {
      incoming.resume();
      incoming.once('end', () => resolve(incoming.statusCode ?? 0));
      incoming.once('error', reject);
    });
    outgoing.once('error', reject);
  });
  // A killed server resets the connection, so the round checks the stored result instead.
  response.catch(() => undefined);
  const finished = once(outgoing, 'finish');
  outgoing.end(body);
  await finished;
  return { response };
}

// ---------------------------------------------------------------- process killed during apply

describe('process killed during apply', () => {
  test('SIGKILL mid-apply keeps one configuration', { timeout: 90_000 }, async (t: TestContext) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-restart-'));
    const dataDir = path.join(dir, 'data');
    // Hosts checked for injection after each restart: one per credential type, in bundles both sets contain and in one only the new set has.
    const checkedCredentials: Array<[number, CredentialKind]> = [
      [0, 'bearer'],
      [199, 'apikey'],
      [299, 'basic'],
    ];
    const upstream: EchoUpstream = await startEchoUpstream(checkedCredentials.map(([index, kind]) => credentialHost(index, kind)));
    let serve: ServeProcess | null = null;
    t.after(async () => {
      if (serve !== null) await killServe(serve.child);
      await upstream.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const caFile = path.join(dir, 'upstream-ca.pem');
    writeFileSync(caFile, upstream.pki.caPem);
    const serveArgs = ['--upstream-ca', caFile, ...checkedCredentials.map(([index, kind]) => ['--resolve', `${credentialHost(index, kind)}:${upstream.port}:127.0.0.1`]).flat()];

    // The old set has 200 bundles of 2 credentials and the new one 300 bundles of 3, with the
    // same names for the first 200. A half-written apply shows as counts or fingerprints of both.
    const oldConfig = generateConfig('old', 200, 2, upstream.port);
    const newConfig = generateConfig('new', 300, 3, upstream.port);

    serve = await startServe(dataDir, serveArgs);
    const fingerprintKey = createHash('sha256').update(`fingerprint:${serve.adminToken}`).digest();
    const expected: Array<[string, Record<string, Record<string, Record<string, string>>>]> = [
      ['old', expectedView(oldConfig, fingerprintKey)],
      ['new', expectedView(newConfig, fingerprintKey)],
    ];

    const applyOld = async (current: ServeProcess): Promise<void> => {
      const applied = await current.admin('POST', '/api/v1/apply', oldConfig.document);
      assert.equal(applied.status, 200, `applying the old configuration failed: ${JSON.stringify(applied.body)}`);
    };

    /** Restarts on the same data directory and returns which whole set is stored, failing on a mix or a start error. */
    const restartAndCheck = async (round: string): Promise<GeneratedConfig> => {
      serve = await startServe(dataDir, serveArgs);
      const ready = await serve.admin('GET', '/readyz');
      assert.equal(ready.status, 200, `${round}: the restarted server is not ready`);
      assert.doesNotMatch(serve.output(), /"level":(50|60)/, `${round}: the restarted server logged an error:\n${serve.output()}`);

      const config = await serve.admin<RedactedConfig>('GET', '/api/v1/config');
      assert.equal(config.status, 200);
      const view = fingerprintView(config.body);
      const matchesOld = isDeepStrictEqual(view, expected[0]![1]);
      const matchesNew = isDeepStrictEqual(view, expected[1]![1]);
      assert.ok(matchesOld || matchesNew, `${round}: the stored configuration is neither the old nor the new one: ${describeView(view, expected)}`);
      return matchesNew ? newConfig : oldConfig;
    };

    /** Sends one request per checked credential of `stored` and reads what the upstream received. */
    const assertSecretsInjected = async (round: string, stored: GeneratedConfig): Promise<void> => {
      const current = serve!;
      for (const [index, kind] of checkedCredentials) {
        const secrets = stored.secrets.get(`${bundleName(index)}/${credentialName(index, kind)}`);
        if (secrets === undefined) continue;

        const created = await current.admin<CreatedSession>('POST', '/api/v1/sessions', { channel: channelName(index) });
        assert.equal(created.status, 201, `${round}: session for ${channelName(index)} failed: ${JSON.stringify(created.body)}`);
        const agent = new ProxyAgent({ uri: created.body.proxyUrl, requestTls: { ca: readFileSync(created.body.caPath, 'utf8') } });
        const url = `/check/${round.replace(/\W+/g, '-')}/${kind}`;
        const since = upstream.requests.length;
        try {
          const response = await request(`https://${credentialHost(index, kind)}:${upstream.port}${url}`, { dispatcher: agent });
          await response.body.text();
          assert.equal(response.statusCode, 200, `${round}: request with credential ${bundleName(index)}/${kind} failed`);
        } finally {
          await agent.close();
        }

        const received = recordedRequest(upstream, url, since);
        // Compared without printing: a failure message must not contain the secret.
        if (kind === 'bearer') {
          assert.ok(received.headers.authorization === `Bearer ${secrets.token}`, `${round}: the upstream did not receive the stored bearer token of ${bundleName(index)}`);
        } else if (kind === 'apikey') {
          assert.ok(received.headers['x-api-key'] === secrets.value, `${round}: the upstream did not receive the stored API key of ${bundleName(index)}`);
        } else {
          const basic = `Basic ${Buffer.from(`user-${index}:${secrets.password}`).toString('base64')}`;
          assert.ok(received.headers.authorization === basic, `${round}: the upstream did not receive the stored Basic password of ${bundleName(index)}`);
        }
      }
    };

    await applyOld(serve);

    // An acknowledged apply must survive a SIGKILL that follows the response at once. Its
    // duration also places later kills inside the apply, whatever the machine's speed.
    const started = Date.now();
    const acknowledged = await sendApply(serve, newConfig.document);
    assert.equal(await acknowledged.response, 200);
    const applyMs = Date.now() - started;
    await killServe(serve.child);
    const afterAcknowledged = await restartAndCheck('kill after the 200');
    assert.equal(afterAcknowledged.label, 'new', 'an acknowledged apply was lost after SIGKILL');
    await assertSecretsInjected('kill after the 200', afterAcknowledged);

    // Fixed delays usually land before the write starts and fractions of the measured
    // duration near it. The last round kills as soon as SQLite starts writing the
    // transaction's pages to the WAL file, which lands inside the transaction or its commit.
    const walPath = path.join(dataDir, 'agent-proxy.db-wal');
    // After a checkpoint SQLite rewrites the WAL file from its start without growing it, so
    // a change of size or modification time both count as the first write.
    const walState = (): string => (existsSync(walPath) ? `${statSync(walPath).size}/${statSync(walPath).mtimeMs}` : 'missing');
    const waitForWalWrite = async (): Promise<string> => {
      const baseline = walState();
      const deadline = Date.now() + Math.max(applyMs * 4, 5_000);
      while (Date.now() < deadline) {
        if (walState() !== baseline) return 'WAL written';
        await new Promise((resolve) => setImmediate(resolve));
      }
      return 'WAL not written';
    };
    const killTriggers: Array<[string, () => Promise<string>]> = [0, 20, 50, Math.round(applyMs * 0.3), Math.round(applyMs * 0.5)].map((delayMs) => [
      `kill ${delayMs} ms into apply`,
      async () => {
        await sleep(delayMs);
        return `${delayMs} ms`;
      },
    ]);
    killTriggers.push(['kill at the first WAL write', waitForWalWrite]);

    const outcomes: string[] = [];
    for (const [round, waitForKill] of killTriggers) {
      await applyOld(serve);

      const pending = await sendApply(serve, newConfig.document);
      const trigger = await waitForKill();
      await killServe(serve.child);
      const statusBeforeKill = await pending.response.catch(() => null);

      const stored = await restartAndCheck(round);
      if (statusBeforeKill === 200) {
        assert.equal(stored.label, 'new', `${round}: the apply was acknowledged but the old configuration came back`);
      }
      await assertSecretsInjected(round, stored);
      outcomes.push(`${trigger}: ${stored.label}${statusBeforeKill === 200 ? ' (acknowledged)' : ''}`);
    }
    t.diagnostic(`apply of ${newConfig.secrets.size} credentials took ${applyMs} ms; stored after each kill: ${outcomes.join(', ')}`);
  });
});

// ---------------------------------------------------------------- clock skew at the token endpoint

describe('clock skew at the token endpoint', () => {
  const CHANNEL = 'C0CLOCKSKEW';
  const CONSUMER_KEY = '3MVG9CLOCK.consumer.key.of.the.connected.app';
  const USER = 'integration@clock.example';
  const LOGIN_HOST = 'login.salesforce.test';
  const INSTANCE_HOST = 'acme.my.salesforce.test';
  const TOKEN_PATH = '/services/oauth2/token';

  test('skewed provider clock gives 502 with hint', async (t: TestContext) => {
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pki = await createTestPki();
    // The proxy signs `exp` 180 s ahead. A tolerance of -600 s makes the server treat every
    // assertion as expired, as a server whose clock runs 12 minutes ahead with the default
    // 120 s tolerance would.
    const salesforce = await startSalesforceServer({
      pki,
      clockSkewSeconds: -600,
      apps: [{ consumerKey: CONSUMER_KEY, certificate: keys.publicKey, approvedUsernames: [USER] }],
      users: [{ username: USER, userId: '005CLOCK0000001AAA', organizationId: '00DCLOCK000001AAAA' }],
    });
    t.after(() => salesforce.close());

    const port = salesforce.port;
    const harness = await startHarness({
      upstreamCaPem: [pki.caPem],
      pins: [
        { host: LOGIN_HOST, port, address: '127.0.0.1' },
        { host: INSTANCE_HOST, port, address: '127.0.0.1' },
      ],
      config: {
        egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] },
        bundles: [
          {
            name: 'clock',
            channels: [CHANNEL],
            credentials: [
              {
                name: 'salesforce',
                type: 'oauth2_jwt_bearer',
                provider: 'salesforce',
                issuer: CONSUMER_KEY,
                subject: USER,
                privateKey: keys.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
                tokenUrl: `https://${LOGIN_HOST}:${port}${TOKEN_PATH}`,
                allowedWebsites: [`${INSTANCE_HOST}:${port}`],
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

    const response = await request(`https://${INSTANCE_HOST}:${port}/services/data/v62.0/query?q=SELECT+Id+FROM+Opportunity`, { dispatcher: agent });
    const text = await response.body.text();

    assert.equal(response.statusCode, 502);
    assert.equal(response.headers['x-agent-proxy-error'], 'credential_unavailable');
    assert.equal(response.headers['content-type'], 'application/problem+json');
    const problem = JSON.parse(text) as Record<string, unknown>;
    assert.equal(problem.code, 'credential_unavailable');
    assert.equal(problem.credential, 'salesforce');
    assert.equal(problem.tokenEndpointStatus, 400);
    assert.equal(problem.error, 'invalid_grant');
    assert.equal(problem.error_description, 'expired authorization code');
    assert.equal(problem.hint, 'Salesforce saw an expired assertion: check that the clock of the host running Agent Proxy is right (NTP).');
    assert.match(String(problem.detail), /expired authorization code/);

    // The token endpoint rejected the one assertion, and nothing reached the instance without a token.
    const tokenRequests = salesforce.requests.filter((recorded) => recorded.path === TOKEN_PATH);
    assert.equal(tokenRequests.length, 1);
    assert.equal(tokenRequests[0]?.status, 400);
    assert.equal(salesforce.requests.filter((recorded) => recorded.path.startsWith('/services/data')).length, 0);
    assert.equal(salesforce.mintCount(), 0);

    await harness.proxy.flushAudit();
    const audit = await harness.admin<{ events: Array<{ kind: string; decision: string; errorCode: string | null; status: number | null; subject: string | null; host: string | null; path: string | null }> }>(
      'GET',
      '/api/v1/audit?credential=salesforce',
    );
    assert.equal(audit.status, 200);
    const mints = audit.body.events.filter((event) => event.kind === 'mint');
    assert.equal(mints.length, 1);
    assert.equal(mints[0]?.decision, 'error');
    assert.equal(mints[0]?.errorCode, 'invalid_grant: expired authorization code');
    assert.equal(mints[0]?.status, 400);
    assert.equal(mints[0]?.subject, USER);
    assert.equal(mints[0]?.host, LOGIN_HOST);
    assert.equal(mints[0]?.path, TOKEN_PATH);
    const requests = audit.body.events.filter((event) => event.kind === 'request');
    assert.equal(requests.length, 1);
    assert.equal(requests[0]?.status, 502);
    assert.equal(requests[0]?.errorCode, 'credential_unavailable');
  });
});
