// The CLI against a `serve` child process: `apply -f` output and validation, secret
// references, `serve --config`, `session create` and `revoke`, and `audit` with its
// filters and `--follow`.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ProxyAgent, request } from 'undici';
import { recordedRequest, reflectionMask, startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import { writeTestPki, type WrittenTestPki } from '../helpers/testPki.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(REPO_ROOT, 'bin/agent-proxy.js');

const API_HOST = 'api.example.test';
const OTHER_HOST = 'other.example.test';
const ALPHA_TOKEN = 'alpha-inline-secret-7d2e';

interface CliResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

interface ServeChild {
  dataDir: string;
  proxyUrl: string;
  adminUrl: string;
  adminToken: string;
  caPath: string;
  /** Runs `agent-proxy --data-dir DIR ARGS…` and waits for it to exit. */
  cli(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Starts a long-running `agent-proxy --data-dir DIR ARGS…`, killed when the test ends. */
  spawnCli(args: string[]): ChildProcess;
  admin<T>(method: 'GET' | 'POST', apiPath: string, body?: unknown): Promise<{ status: number; text: string; body: T }>;
}

interface CreatedSessionJson {
  id: string;
  token: string;
  channel: string;
  proxyUrl: string;
  caPath: string;
  caBundlePath: string;
  /** Only in `session create --format json` output. */
  env?: Record<string, string>;
}

interface AuditEventJson {
  id: number;
  kind: string;
  decision: string;
  sessionId: string | null;
  channel: string | null;
  bundle: string | null;
  credential: string | null;
  method: string | null;
  host: string | null;
  port: number | null;
  path: string | null;
  status: number | null;
}

interface EchoJson {
  url: string;
  headers: Record<string, string | undefined>;
}

let workDir: string;
let pki: WrittenTestPki;
let upstream: EchoUpstream;

/** Builds a bundles file with one bundle per entry. Each token is YAML text, such as an inline string or `{ env: NAME }`. */
function bundlesYaml(bundles: Array<{ name: string; channel: string; credentials: Array<{ name: string; host: string; token: string; access?: string }> }>): string {
  const lines = ['egress:', '  default: allow', '  allowPrivateNetworks: ["127.0.0.1/32"]', 'bundles:'];
  for (const bundle of bundles) {
    lines.push(`  - name: ${bundle.name}`, `    channels: ["${bundle.channel}"]`, '    credentials:');
    for (const credential of bundle.credentials) {
      lines.push(
        `      - name: ${credential.name}`,
        '        type: bearer_token',
        `        token: ${credential.token}`,
        `        allowedWebsites: ["${credential.host}:${upstream.port}"]`,
        `        access: ${credential.access ?? 'read_write'}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

function salesYaml(options: { alphaAccess?: string; withBeta?: boolean } = {}): string {
  const credentials = [{ name: 'alpha', host: API_HOST, token: ALPHA_TOKEN, access: options.alphaAccess }];
  if (options.withBeta ?? true) credentials.push({ name: 'beta', host: OTHER_HOST, token: 'beta-inline-secret-0a9c', access: undefined });
  return bundlesYaml([{ name: 'sales', channel: 'C0SALES', credentials }]);
}

function runProcess(args: string[], env: Record<string, string>): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve({ exitCode, stdout, stderr }));
  });
}

/** Starts `agent-proxy serve` in its own data directory and stops it when the test ends. */
async function startServe(t: TestContext, extraArgs: string[] = []): Promise<ServeChild> {
  const dataDir = mkdtempSync(path.join(workDir, 'data-'));
  const child = spawn(
    process.execPath,
    [
      CLI, 'serve',
      '--data-dir', dataDir,
      '--proxy-listen', '127.0.0.1:0',
      '--admin-listen', '127.0.0.1:0',
      '--upstream-ca', pki.caPath,
      '--resolve', `${API_HOST}:${upstream.port}:127.0.0.1`,
      '--resolve', `${OTHER_HOST}:${upstream.port}:127.0.0.1`,
      ...extraArgs,
    ],
    { cwd: REPO_ROOT, env: { ...process.env, AGENT_PROXY_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keepTail = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout.on('data', keepTail);
  child.stderr.on('data', keepTail);
  const exited = once(child, 'exit');
  const longRunning: ChildProcess[] = [];

  t.after(async () => {
    for (const cliProcess of longRunning) {
      if (cliProcess.exitCode === null && cliProcess.signalCode === null) cliProcess.kill('SIGKILL');
    }
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killTimer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  const serverInfoPath = path.join(dataDir, 'server.json');
  const deadline = Date.now() + 60_000;
  while (!existsSync(serverInfoPath)) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode} before it was ready:\n${output}`);
    if (Date.now() > deadline) throw new Error(`serve wrote no ${serverInfoPath} within 60 s:\n${output}`);
    await sleep(50);
  }
  const info = JSON.parse(readFileSync(serverInfoPath, 'utf8')) as { proxyUrl: string; adminUrl: string; caPath: string };
  const adminToken = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();

  return {
    dataDir,
    proxyUrl: info.proxyUrl,
    adminUrl: info.adminUrl,
    adminToken,
    caPath: info.caPath,
    cli: (args, env = {}) => runProcess(['--data-dir', dataDir, ...args], env),
    spawnCli(args) {
      const cliProcess = spawn(process.execPath, [CLI, '--data-dir', dataDir, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      longRunning.push(cliProcess);
      return cliProcess;
    },
    async admin<T>(method: 'GET' | 'POST', apiPath: string, body?: unknown) {
      const response = await request(`${info.adminUrl}${apiPath}`, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.body.text();
      return { status: response.statusCode, text, body: (text ? JSON.parse(text) : null) as T };
    },
  };
}

function writeFile(name: string, content: string): string {
  const file = path.join(mkdtempSync(path.join(workDir, 'files-')), name);
  writeFileSync(file, content);
  return file;
}

async function applyFile(server: ServeChild, content: string, env: Record<string, string> = {}): Promise<CliResult> {
  const file = writeFile('bundles.yaml', content);
  return server.cli(['apply', '-f', file], env);
}

/** Creates a session through the admin API, which is quicker than starting the CLI. */
async function createSession(server: ServeChild, channel: string): Promise<CreatedSessionJson> {
  const created = await server.admin<CreatedSessionJson>('POST', '/api/v1/sessions', { channel });
  assert.equal(created.status, 201, created.text);
  return created.body;
}

/**
 * Sends a GET through the proxy as the session and returns the upstream's echo of it.
 * The proxy masks injected secrets in the echo, so tests read them from `upstream.requests`.
 */
async function getThroughProxy(server: ServeChild, session: CreatedSessionJson, url: string): Promise<{ status: number; echo: EchoJson }> {
  const agent = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: readFileSync(server.caPath, 'utf8') } });
  try {
    const response = await request(url, { dispatcher: agent });
    return { status: response.statusCode, echo: (await response.body.json()) as EchoJson };
  } finally {
    await agent.close();
  }
}

/** Sends a bare CONNECT with the session's credentials and returns the proxy's status and error code. */
async function connectStatus(server: ServeChild, session: CreatedSessionJson, authority: string): Promise<{ status: number; errorCode: string | undefined }> {
  const proxyAddress = new URL(server.proxyUrl);
  const connect = http.request({
    host: proxyAddress.hostname,
    port: Number(proxyAddress.port),
    method: 'CONNECT',
    path: authority,
    agent: false,
    headers: { host: authority, 'proxy-authorization': `Basic ${Buffer.from(`${session.id}:${session.token}`).toString('base64')}` },
  });
  connect.end();
  const [response, socket] = (await once(connect, 'connect')) as [http.IncomingMessage, net.Socket];
  socket.destroy();
  return { status: response.statusCode ?? 0, errorCode: response.headers['x-agent-proxy-error'] as string | undefined };
}

function parseJsonLines<T>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as T);
}

/** Polls the audit API, which the proxy writes in batches, until `count` events are stored. */
async function waitForAuditCount(server: ServeChild, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { body } = await server.admin<{ events: AuditEventJson[] }>('GET', '/api/v1/audit');
    if (body.events.length >= count) return;
    if (Date.now() > deadline) throw new Error(`the audit log has ${body.events.length} events after 10 s; expected ${count}`);
    await sleep(100);
  }
}

// Each test starts its own server, so two run at a time to halve the time spent starting Node processes.
describe('CLI against a serve process', { timeout: 180_000, concurrency: 2 }, () => {
  before(async () => {
    workDir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-cli-'));
    pki = await writeTestPki(path.join(workDir, 'pki'), [API_HOST, OTHER_HOST]);
    upstream = await startEchoUpstream([API_HOST, OTHER_HOST], {}, pki.pki);
  });

  after(async () => {
    await upstream?.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  test('apply prints created, changed, deleted', async (t) => {
    const server = await startServe(t);
    const file = writeFile('bundles.yaml', salesYaml());

    const first = await server.cli(['apply', '-f', file]);
    assert.equal(first.exitCode, 0, first.stderr);
    assert.equal(
      first.stdout,
      [
        'created bundle/sales',
        'created bundle/sales/credential/alpha',
        'created bundle/sales/credential/beta',
        'changed egress',
        '3 created, 1 changed, 0 deleted.',
        '',
      ].join('\n'),
    );
    assert.equal(first.stderr, '');

    const again = await server.cli(['apply', '-f', file]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal(again.stdout, `No changes: the stored configuration already matches ${file}.\n`);

    writeFileSync(file, salesYaml({ alphaAccess: 'read' }));
    const changed = await server.cli(['apply', '-f', file]);
    assert.equal(changed.exitCode, 0, changed.stderr);
    assert.equal(changed.stdout, 'changed bundle/sales/credential/alpha\n0 created, 1 changed, 0 deleted.\n');

    writeFileSync(file, salesYaml({ alphaAccess: 'read', withBeta: false }));
    const deleted = await server.cli(['apply', '-f', file]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    assert.equal(deleted.stdout, 'deleted bundle/sales/credential/beta\n0 created, 0 changed, 1 deleted.\n');

    const { body } = await server.admin<{ bundles: Array<{ name: string; credentials: Array<{ name: string; access: string }> }> }>('GET', '/api/v1/config');
    assert.deepEqual(
      body.bundles.map((bundle) => [bundle.name, bundle.credentials.map((credential) => [credential.name, credential.access])]),
      [['sales', [['alpha', 'read']]]],
    );
  });

  test('apply rejects invalid file unchanged', async (t) => {
    const server = await startServe(t);
    const applied = await applyFile(server, salesYaml());
    assert.equal(applied.exitCode, 0, applied.stderr);
    const before = await server.admin('GET', '/api/v1/config');

    // Three independent errors, and a new bundle that would show up if anything were applied.
    const badFile = writeFile(
      'bad.yaml',
      [
        'bundles:',
        '  - name: support',
        '    channels: ["C0SUPPORT"]',
        '    credentials:',
        '      - name: zendesk',
        '        type: bearer_token',
        '        token: zendesk-secret',
        '        colour: blue',
        '        allowedWebsites: ["https://api.example.test/v2"]',
        '      - name: intercom',
        '        type: bearer_token',
        '        token: { env: AP_TEST_MISSING_TOKEN }',
        '        allowedWebsites: ["other.example.test"]',
        '',
      ].join('\n'),
    );
    const result = await server.cli(['apply', '-f', badFile]);

    assert.equal(result.exitCode, 1);
    assert.equal(result.stdout, '');
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines[0], `agent-proxy: ${badFile} is invalid (3 errors); nothing was changed:`);
    assert.equal(lines.length, 4, result.stderr);
    const byPath = new Map(lines.slice(1).map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]));
    assert.deepEqual([...byPath.keys()].sort(), [
      'bundles[0].credentials[0].allowedWebsites[0]',
      'bundles[0].credentials[0].colour',
      'bundles[0].credentials[1].token',
    ]);
    assert.match(byPath.get('bundles[0].credentials[0].allowedWebsites[0]')!, /"https:\/\/api\.example\.test\/v2" is a URL/);
    assert.match(byPath.get('bundles[0].credentials[0].colour')!, /unknown field "colour"/);
    assert.match(byPath.get('bundles[0].credentials[1].token')!, /AP_TEST_MISSING_TOKEN is not set/);
    assert.doesNotMatch(result.stderr, /zendesk-secret/);

    const after = await server.admin('GET', '/api/v1/config');
    assert.equal(after.status, 200);
    assert.deepEqual(after.body, before.body);
  });

  test('apply resolves file and env secrets', async (t) => {
    const server = await startServe(t);
    const secretFile = writeFile('alpha-token', 'alpha-from-file-31b8\n');
    const yaml = bundlesYaml([
      {
        name: 'sales',
        channel: 'C0SALES',
        credentials: [
          { name: 'alpha', host: API_HOST, token: `{ file: ${secretFile} }` },
          { name: 'beta', host: OTHER_HOST, token: '{ env: AP_TEST_BETA_TOKEN }' },
        ],
      },
    ]);
    const file = writeFile('bundles.yaml', yaml);

    const applied = await server.cli(['apply', '-f', file], { AP_TEST_BETA_TOKEN: 'beta-from-env-94c0' });
    assert.equal(applied.exitCode, 0, applied.stderr);
    const session = await createSession(server, 'C0SALES');
    const alpha = await getThroughProxy(server, session, `https://${API_HOST}:${upstream.port}/file-secret`);
    const beta = await getThroughProxy(server, session, `https://${OTHER_HOST}:${upstream.port}/env-secret`);
    assert.equal(alpha.status, 200);
    assert.equal(recordedRequest(upstream, '/file-secret').headers.authorization, 'Bearer alpha-from-file-31b8');
    assert.equal(alpha.echo.headers.authorization, `Bearer ${reflectionMask('alpha-from-file-31b8')}`);
    assert.equal(beta.status, 200);
    assert.equal(recordedRequest(upstream, '/env-secret').headers.authorization, 'Bearer beta-from-env-94c0');
    assert.equal(beta.echo.headers.authorization, `Bearer ${reflectionMask('beta-from-env-94c0')}`);

    const configBefore = await server.admin<{ bundles: Array<{ credentials: Array<{ name: string; secrets: Record<string, unknown> }> }> }>('GET', '/api/v1/config');
    const betaSecretBefore = configBefore.body.bundles[0]!.credentials.find((credential) => credential.name === 'beta')!.secrets.token as { set: boolean; fingerprint: string };
    assert.equal(betaSecretBefore.set, true);
    assert.match(betaSecretBefore.fingerprint, /^hmac-sha256:[0-9a-f]{16}$/);

    const rotated = await server.cli(['apply', '-f', file], { AP_TEST_BETA_TOKEN: 'beta-rotated-5e77' });
    assert.equal(rotated.exitCode, 0, rotated.stderr);
    assert.equal(rotated.stdout, 'changed bundle/sales/credential/beta\n0 created, 1 changed, 0 deleted.\n');
    const configAfter = await server.admin<typeof configBefore.body>('GET', '/api/v1/config');
    const betaSecretAfter = configAfter.body.bundles[0]!.credentials.find((credential) => credential.name === 'beta')!.secrets.token as { set: boolean; fingerprint: string };
    assert.notEqual(betaSecretAfter.fingerprint, betaSecretBefore.fingerprint);
    const rotatedBeta = await getThroughProxy(server, session, `https://${OTHER_HOST}:${upstream.port}/env-secret-rotated`);
    assert.equal(recordedRequest(upstream, '/env-secret-rotated').headers.authorization, 'Bearer beta-rotated-5e77');
    assert.equal(rotatedBeta.echo.headers.authorization, `Bearer ${reflectionMask('beta-rotated-5e77')}`);

    for (const secret of ['alpha-from-file-31b8', 'beta-from-env-94c0', 'beta-rotated-5e77']) {
      for (const output of [applied.stdout, applied.stderr, rotated.stdout, rotated.stderr, configBefore.text, configAfter.text]) {
        assert.equal(output.includes(secret), false, `a secret value appears in: ${output}`);
      }
    }
  });

  test('serve --config applies at start', async (t) => {
    const configFile = writeFile('bundles.yaml', salesYaml());
    const server = await startServe(t, ['--config', configFile]);

    const { body } = await server.admin<{ bundles: Array<{ name: string; channels: string[]; credentials: Array<{ name: string }> }> }>('GET', '/api/v1/config');
    assert.deepEqual(
      body.bundles.map((bundle) => [bundle.name, bundle.channels, bundle.credentials.map((credential) => credential.name)]),
      [['sales', ['C0SALES'], ['alpha', 'beta']]],
    );
    const session = await createSession(server, 'C0SALES');
    const response = await getThroughProxy(server, session, `https://${API_HOST}:${upstream.port}/from-config`);
    assert.equal(response.status, 200);
    assert.equal(recordedRequest(upstream, '/from-config').headers.authorization, `Bearer ${ALPHA_TOKEN}`);
    assert.equal(response.echo.headers.authorization, `Bearer ${reflectionMask(ALPHA_TOKEN)}`);
  });

  test('session create prints json and env', async (t) => {
    const server = await startServe(t, ['--config', writeFile('bundles.yaml', salesYaml())]);
    const proxyAddress = new URL(server.proxyUrl).host;
    const caBundlePath = path.join(server.dataDir, 'ca-bundle.pem');

    const jsonOutput = await server.cli(['session', 'create', '--channel', 'C0SALES', '--format', 'json']);
    assert.equal(jsonOutput.exitCode, 0, jsonOutput.stderr);
    const session = JSON.parse(jsonOutput.stdout) as CreatedSessionJson;
    assert.match(session.id, /^ses_/);
    assert.equal(session.channel, 'C0SALES');
    assert.equal(session.proxyUrl, `http://${session.id}:${session.token}@${proxyAddress}`);
    assert.equal(session.caPath, server.caPath);
    assert.equal(session.caBundlePath, caBundlePath);
    const expectedJsonEnv = {
      HTTPS_PROXY: session.proxyUrl,
      https_proxy: session.proxyUrl,
      HTTP_PROXY: session.proxyUrl,
      http_proxy: session.proxyUrl,
      NO_PROXY: 'localhost,127.0.0.1,::1',
      no_proxy: 'localhost,127.0.0.1,::1',
      SSL_CERT_FILE: caBundlePath,
      NODE_EXTRA_CA_CERTS: server.caPath,
      REQUESTS_CA_BUNDLE: caBundlePath,
      CURL_CA_BUNDLE: caBundlePath,
      GIT_SSL_CAINFO: caBundlePath,
    };
    for (const [name, value] of Object.entries(expectedJsonEnv)) {
      assert.equal(session.env?.[name], value, name);
    }

    const envOutput = await server.cli(['session', 'create', '--channel', 'C0SALES', '--format', 'env']);
    assert.equal(envOutput.exitCode, 0, envOutput.stderr);
    const exported = new Map<string, string>();
    for (const line of envOutput.stdout.trimEnd().split('\n')) {
      const match = /^export ([A-Za-z_]+)='([^']*)'$/.exec(line);
      assert.ok(match, `not a shell export: ${line}`);
      exported.set(match[1]!, match[2]!);
    }
    const envSessionId = exported.get('AGENT_PROXY_SESSION');
    assert.ok(envSessionId);
    assert.notEqual(envSessionId, session.id);
    const envProxyUrl = exported.get('HTTPS_PROXY')!;
    assert.match(envProxyUrl, new RegExp(`^http://${envSessionId}:[A-Za-z0-9_-]+@${proxyAddress.replace(/\./g, '\\.')}$`));
    for (const [name, value] of Object.entries({ ...expectedJsonEnv, HTTPS_PROXY: envProxyUrl, https_proxy: envProxyUrl, HTTP_PROXY: envProxyUrl, http_proxy: envProxyUrl })) {
      assert.equal(exported.get(name), value, name);
    }

    // curl with nothing but the exported variables reaches the upstream and gets the credential.
    const curl = spawn('curl', ['--silent', '--show-error', `https://${API_HOST}:${upstream.port}/env-session`], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...Object.fromEntries(exported) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let curlStdout = '';
    let curlStderr = '';
    curl.stdout.on('data', (chunk: Buffer) => (curlStdout += chunk.toString('utf8')));
    curl.stderr.on('data', (chunk: Buffer) => (curlStderr += chunk.toString('utf8')));
    const [curlExitCode] = (await once(curl, 'close')) as [number | null];
    assert.equal(curlExitCode, 0, curlStderr);
    const echo = JSON.parse(curlStdout) as EchoJson;
    assert.equal(echo.url, '/env-session');
    assert.equal(recordedRequest(upstream, '/env-session').headers.authorization, `Bearer ${ALPHA_TOKEN}`);
    assert.equal(echo.headers.authorization, `Bearer ${reflectionMask(ALPHA_TOKEN)}`);
  });

  test('session revoke makes requests 407', async (t) => {
    const server = await startServe(t, ['--config', writeFile('bundles.yaml', salesYaml())]);
    const session = await createSession(server, 'C0SALES');
    const authority = `${API_HOST}:${upstream.port}`;
    assert.deepEqual(await connectStatus(server, session, authority), { status: 200, errorCode: undefined });

    const revoked = await server.cli(['session', 'revoke', session.id]);
    assert.equal(revoked.exitCode, 0, revoked.stderr);
    assert.equal(revoked.stdout, `revoked ${session.id}\n`);

    assert.deepEqual(await connectStatus(server, session, authority), { status: 407, errorCode: 'proxy_auth_required' });
    await assert.rejects(getThroughProxy(server, session, `https://${authority}/after-revoke`), /407/);
  });

  test('audit json shows request without query values', async (t) => {
    const server = await startServe(t, ['--config', writeFile('bundles.yaml', salesYaml())]);
    const session = await createSession(server, 'C0SALES');
    const response = await getThroughProxy(server, session, `https://${API_HOST}:${upstream.port}/x?q=query-secret-61f3`);
    assert.equal(response.status, 200);
    assert.equal(response.echo.url, '/x?q=query-secret-61f3');
    await waitForAuditCount(server, 1);

    const result = await server.cli(['audit', '--format', 'json']);
    assert.equal(result.exitCode, 0, result.stderr);
    const events = parseJsonLines<AuditEventJson>(result.stdout);
    assert.equal(events.length, 1, result.stdout);
    const [event] = events;
    assert.equal(event!.kind, 'request');
    assert.equal(event!.decision, 'allowed');
    assert.equal(event!.sessionId, session.id);
    assert.equal(event!.channel, 'C0SALES');
    assert.equal(event!.bundle, 'sales');
    assert.equal(event!.credential, 'alpha');
    assert.equal(event!.method, 'GET');
    assert.equal(event!.host, API_HOST);
    assert.equal(event!.port, upstream.port);
    assert.equal(event!.path, '/x?q=');
    assert.equal(event!.status, 200);
    assert.equal(result.stdout.includes('query-secret-61f3'), false);
  });

  test('audit filters by channel and credential', async (t) => {
    const yaml = bundlesYaml([
      { name: 'sales', channel: 'C0SALES', credentials: [{ name: 'alpha', host: API_HOST, token: ALPHA_TOKEN }] },
      { name: 'ops', channel: 'C0OPS', credentials: [{ name: 'beta', host: OTHER_HOST, token: 'beta-ops-secret-c4d1' }] },
    ]);
    const server = await startServe(t, ['--config', writeFile('bundles.yaml', yaml)]);
    const salesSession = await createSession(server, 'C0SALES');
    const opsSession = await createSession(server, 'C0OPS');
    assert.equal((await getThroughProxy(server, salesSession, `https://${API_HOST}:${upstream.port}/sales-call`)).status, 200);
    assert.equal((await getThroughProxy(server, opsSession, `https://${OTHER_HOST}:${upstream.port}/ops-call`)).status, 200);
    await waitForAuditCount(server, 2);

    const byChannel = await server.cli(['audit', '--format', 'json', '--channel', 'C0OPS']);
    assert.equal(byChannel.exitCode, 0, byChannel.stderr);
    assert.deepEqual(
      parseJsonLines<AuditEventJson>(byChannel.stdout).map((event) => [event.channel, event.credential, event.path]),
      [['C0OPS', 'beta', '/ops-call']],
    );

    const byCredential = await server.cli(['audit', '--format', 'json', '--credential', 'alpha']);
    assert.equal(byCredential.exitCode, 0, byCredential.stderr);
    assert.deepEqual(
      parseJsonLines<AuditEventJson>(byCredential.stdout).map((event) => [event.channel, event.credential, event.path]),
      [['C0SALES', 'alpha', '/sales-call']],
    );
  });

  test('audit --follow prints later events', async (t) => {
    const server = await startServe(t, ['--config', writeFile('bundles.yaml', salesYaml())]);
    const session = await createSession(server, 'C0SALES');
    assert.equal((await getThroughProxy(server, session, `https://${API_HOST}:${upstream.port}/before-follow`)).status, 200);
    await waitForAuditCount(server, 1);

    const follow = server.spawnCli(['audit', '--follow', '--format', 'json']);
    let output = '';
    let errors = '';
    follow.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString('utf8')));
    const printedPaths = () => parseJsonLines<AuditEventJson>(output.slice(0, output.lastIndexOf('\n') + 1)).map((event) => event.path);
    const waitForPaths = async (expected: string[]) => {
      const deadline = Date.now() + 15_000;
      while (printedPaths().length < expected.length) {
        if (follow.exitCode !== null) throw new Error(`audit --follow exited with ${follow.exitCode}: ${errors}`);
        if (Date.now() > deadline) throw new Error(`audit --follow printed ${JSON.stringify(printedPaths())} within 15 s; expected ${JSON.stringify(expected)}`);
        await sleep(50);
      }
      assert.deepEqual(printedPaths(), expected);
    };
    follow.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));

    // The first event is printed at start; the second exists only after that, so only polling can print it.
    await waitForPaths(['/before-follow']);
    assert.equal((await getThroughProxy(server, session, `https://${API_HOST}:${upstream.port}/during-follow?page=2`)).status, 200);
    await waitForPaths(['/before-follow', '/during-follow?page=']);

    const exited = once(follow, 'exit');
    follow.kill('SIGTERM');
    await exited;
  });
});
