// `npm run bench`: latency and throughput of Agent Proxy on loopback. The proxy runs as
// `agent-proxy serve` in a child process, so the load generator and the proxy do not share
// an event loop. The upstreams (an HTTPS echo server and the Salesforce-compatible fixture)
// run in this process. Every socket stays on 127.0.0.1, and every case has a fixed request
// count and a time limit. Results are printed as a Markdown table.

import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { LookupFunction, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import { AuditLog } from '../src/audit/auditLog.ts';
import { readBundlesFile } from '../src/config/bundlesFile.ts';
import { buildTokenRequest, isOAuthCredential } from '../src/credentials/oauth/grants.ts';
import { TokenManager } from '../src/credentials/oauth/tokenManager.ts';
import type { Credential } from '../src/domain/types.ts';
import { compileConfig } from '../src/policy/compiledConfig.ts';
import { Dialer, systemResolver } from '../src/proxy/dialer.ts';
import { UpstreamPool } from '../src/proxy/upstreamPool.ts';
import { openSqliteStore } from '../src/store/openStore.ts';
import { startEchoUpstream, type EchoUpstream } from '../test/helpers/upstreams.ts';
import { startSalesforceServer } from '../test/fixtures/salesforceServer.ts';

const REPOSITORY_ROOT = fileURLToPath(new URL('../', import.meta.url));
const CLI_PATH = path.join(REPOSITORY_ROOT, 'bin', 'agent-proxy.js');

const WARMUP_REQUESTS = 200;
const MEASURED_REQUESTS = 2_000;
// A new CONNECT plus TLS handshake costs milliseconds, so these cases get fewer requests.
const HANDSHAKE_WARMUP_REQUESTS = 50;
const HANDSHAKE_MEASURED_REQUESTS = 500;
const MINT_WARMUP = 10;
const MINT_COUNT = 200;
const FORCED_REMINT_COUNT = 100;
const CONCURRENCIES = [1, 16];
// A case that overruns this stops early and reports the requests it finished.
const CASE_TIME_LIMIT_MS = 120_000;
const REQUEST_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

const CHANNEL = 'C0BENCH';
const BEARER_TOKEN = 'bench-bearer-token-0123456789';
const CONSUMER_KEY = '3MVG9BENCH.consumer.key';
const INTEGRATION_USER = 'integration@bench.example';
const HOSTS = {
  bearer: 'api.bench.test',
  tunnel: 'tunnel.bench.test',
  login: 'login.salesforce.test',
  instance: 'acme.my.salesforce.test',
};
const SMALL_BODY = '{"ok":true}';
const SOQL = 'SELECT Id FROM Opportunity LIMIT 1';

interface CaseResult {
  name: string;
  concurrency: number;
  requests: number;
  p50: number;
  p99: number;
  requestsPerSecond: number;
  note?: string;
}

interface CreatedSession {
  id: string;
  token: string;
  proxyUrl: string;
}

/** One request of a case: resolves when the whole response body has arrived, throws on any other status than 200. */
type Operation = () => Promise<void>;

// Host names in the benchmark only exist on loopback, so the clients resolve them here
// instead of asking the system resolver.
const loopbackLookup: LookupFunction = (_hostname, options, callback) => {
  if (options.all) {
    (callback as unknown as (error: null, addresses: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  } else {
    callback(null, '127.0.0.1', 4);
  }
};

const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-proxy-bench-'));
const dataDir = path.join(dir, 'data');
const proxyLogPath = path.join(dir, 'proxy.log');
const cleanups: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];

try {
  await main();
} catch (error) {
  process.stderr.write(`benchmark failed; last lines of the proxy log:\n${readLog()}\n`);
  throw error;
} finally {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      process.stderr.write(`cleanup failed: ${(error as Error).message}\n`);
    }
  }
}

async function main(): Promise<void> {
  const echo = await startEchoUpstream([HOSTS.bearer, HOSTS.tunnel], {
    '/small': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(SMALL_BODY) });
      res.end(SMALL_BODY);
    },
  });
  cleanups.push(() => echo.close());

  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(path.join(dir, 'salesforce.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  const salesforce = await startSalesforceServer({
    pki: echo.pki,
    apps: [{ consumerKey: CONSUMER_KEY, certificate: publicKey, approvedUsernames: [INTEGRATION_USER] }],
    users: [{ username: INTEGRATION_USER, userId: '005BENCH0000001AAA', organizationId: '00DBENCH000001AAAA', name: 'Integration User' }],
    // The default 3,600 logins an hour would stop the mint measurements part-way.
    loginsPerHour: 1_000_000,
  });
  cleanups.push(() => salesforce.close());

  const upstreamCaPath = path.join(dir, 'upstream-ca.pem');
  writeFileSync(upstreamCaPath, echo.pki.caPem);
  const bundlesPath = path.join(dir, 'bundles.yaml');
  writeFileSync(bundlesPath, bundlesYaml(echo.port, salesforce.port));

  const proxy = await startProxyChild(upstreamCaPath, bundlesPath, [
    `${HOSTS.bearer}:${echo.port}:127.0.0.1`,
    `${HOSTS.tunnel}:${echo.port}:127.0.0.1`,
    `${HOSTS.login}:${salesforce.port}:127.0.0.1`,
    `${HOSTS.instance}:${salesforce.port}:127.0.0.1`,
  ]);
  cleanups.push(() => stopChild(proxy.child));
  const rssAtStart = readRssMiB(proxy.child.pid!);

  const session = await createSession(proxy.adminUrl, proxy.adminToken);
  const proxyCa = readFileSync(proxy.caPath, 'utf8');
  const results: CaseResult[] = [];

  const direct = new Agent({ connect: { ca: echo.pki.caPem, lookup: loopbackLookup }, connections: 64, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
  const viaProxy = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: proxyCa }, connections: 64, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
  cleanups.push(() => direct.close());
  cleanups.push(() => viaProxy.close());

  const bearerSmallUrl = `https://${HOSTS.bearer}:${echo.port}/small`;
  await checkBearerInjection(viaProxy, echo, `https://${HOSTS.bearer}:${echo.port}/echo`);

  for (const concurrency of CONCURRENCIES) {
    results.push(await runCase('1. direct keep-alive', concurrency, () => getOk(direct, bearerSmallUrl)));
  }
  let rssAfterWarmup = 0;
  for (const concurrency of CONCURRENCIES) {
    results.push(
      await runCase('2. proxy, intercepted, bearer_token, tunnel kept alive', concurrency, () => getOk(viaProxy, bearerSmallUrl), {
        afterWarmup: () => {
          if (rssAfterWarmup === 0) rssAfterWarmup = readRssMiB(proxy.child.pid!);
        },
      }),
    );
  }

  const proxyAddress = new URL(session.proxyUrl);
  const proxyAuthorization = `Basic ${Buffer.from(`${session.id}:${session.token}`).toString('base64')}`;
  const oneShot = (host: string, ca: string): Operation => () =>
    getThroughNewTunnel({ proxyHost: proxyAddress.hostname, proxyPort: Number(proxyAddress.port), proxyAuthorization, host, port: echo.port, ca, path: '/small' });
  results.push(
    await runCase('3. proxy, opaque tunnel, new CONNECT + TLS per request', 1, oneShot(HOSTS.tunnel, echo.pki.caPem), {
      warmup: HANDSHAKE_WARMUP_REQUESTS,
      measured: HANDSHAKE_MEASURED_REQUESTS,
    }),
  );
  results.push(
    await runCase('4. proxy, intercepted, new CONNECT + TLS per request', 1, oneShot(HOSTS.bearer, proxyCa), {
      warmup: HANDSHAKE_WARMUP_REQUESTS,
      measured: HANDSHAKE_MEASURED_REQUESTS,
    }),
  );

  const queryUrl = `https://${HOSTS.instance}:${salesforce.port}/services/data/v62.0/query?q=${encodeURIComponent(SOQL)}`;
  const mintsBefore = salesforce.mintCount();
  await getOk(viaProxy, queryUrl);
  const proxyToken = salesforce.issuedTokens().at(-1);
  if (salesforce.mintCount() !== mintsBefore + 1 || proxyToken === undefined) {
    throw new Error(`the first Salesforce query through the proxy should mint exactly one token; mints went from ${mintsBefore} to ${salesforce.mintCount()}`);
  }
  // The direct baseline reuses the proxy's token, so both sides hit the same endpoint with the same session.
  const directWithToken = (url: string) => getOk(direct, url, { authorization: `Bearer ${proxyToken}` });
  for (const concurrency of CONCURRENCIES) {
    results.push(await runCase('5a. direct keep-alive, Salesforce query', concurrency, () => directWithToken(queryUrl)));
  }
  for (const concurrency of CONCURRENCIES) {
    results.push(await runCase('5b. proxy, oauth2_jwt_bearer cached token, Salesforce query', concurrency, () => getOk(viaProxy, queryUrl)));
  }
  const mintsDuringCachedRuns = salesforce.mintCount() - mintsBefore - 1;

  const forcedMintsBefore = salesforce.mintCount();
  results.push(
    await runCase(
      '5c. proxy, token expired at the org before each request (401, mint, retry)',
      1,
      async () => {
        salesforce.expireAllSessions();
        await getOk(viaProxy, queryUrl);
      },
      { warmup: MINT_WARMUP, measured: FORCED_REMINT_COUNT },
    ),
  );
  const forcedMints = salesforce.mintCount() - forcedMintsBefore;
  const rssAfterRuns = readRssMiB(proxy.child.pid!);

  const mint = await measureMintsInProcess(bundlesPath, salesforce.port);

  printReport(results, {
    rssAtStart,
    rssAfterWarmup,
    rssAfterRuns,
    mintsDuringCachedRuns,
    forcedMints,
    forcedRequests: MINT_WARMUP + FORCED_REMINT_COUNT,
    mint,
  });
}

function bundlesYaml(echoPort: number, salesforcePort: number): string {
  return `egress:
  default: deny
  allow: ["${HOSTS.tunnel}:${echoPort}"]
  allowPrivateNetworks: ["127.0.0.1/32"]
bundles:
  - name: bench
    channels: ["${CHANNEL}"]
    credentials:
      - name: api-bearer
        type: bearer_token
        token: "${BEARER_TOKEN}"
        allowedWebsites: ["${HOSTS.bearer}:${echoPort}"]
      - name: salesforce
        type: oauth2_jwt_bearer
        provider: salesforce
        issuer: "${CONSUMER_KEY}"
        subject: "${INTEGRATION_USER}"
        privateKey: { file: ./salesforce.key }
        tokenUrl: https://${HOSTS.login}:${salesforcePort}/services/oauth2/token
        allowedWebsites: ["${HOSTS.instance}:${salesforcePort}"]
        access: read
`;
}

interface ProxyChild {
  child: ChildProcess;
  adminUrl: string;
  adminToken: string;
  caPath: string;
}

async function startProxyChild(upstreamCaPath: string, bundlesPath: string, pins: string[]): Promise<ProxyChild> {
  const args = [CLI_PATH, '--data-dir', dataDir, 'serve', '--proxy-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--upstream-ca', upstreamCaPath, '--config', bundlesPath];
  for (const pin of pins) args.push('--resolve', pin);

  // The proxy logs JSON lines at its default level to a file, so the benchmark process
  // spends no CPU reading them.
  const logFd = openSync(proxyLogPath, 'w');
  const child = spawn(process.execPath, args, { cwd: dir, env: childEnvironment(), stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);

  const serverInfoPath = path.join(dataDir, 'server.json');
  const deadline = performance.now() + START_TIMEOUT_MS;
  while (!existsSync(serverInfoPath) && child.exitCode === null && performance.now() < deadline) {
    await sleep(50);
  }
  if (!existsSync(serverInfoPath)) {
    await stopChild(child);
    throw new Error(`agent-proxy serve did not write ${serverInfoPath} within ${START_TIMEOUT_MS} ms (exit code ${child.exitCode}); log:\n${readLog()}`);
  }
  const info = JSON.parse(readFileSync(serverInfoPath, 'utf8')) as { adminUrl: string; caPath: string };
  const adminToken = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  return { child, adminUrl: info.adminUrl, adminToken, caPath: info.caPath };
}

/** Copies this environment without proxy settings or Agent Proxy variables, which would change what the child does. */
function childEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('AGENT_PROXY_') || /^(https?|all|no)_proxy$/i.test(name)) continue;
    env[name] = value;
  }
  return env;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
  if (!stopped) {
    process.stderr.write(`agent-proxy serve (pid ${child.pid}) did not stop within ${STOP_TIMEOUT_MS} ms of SIGTERM; sending SIGKILL\n`);
    child.kill('SIGKILL');
    await exited;
  }
}

function readLog(): string {
  return existsSync(proxyLogPath) ? readFileSync(proxyLogPath, 'utf8').slice(-4_000) : '(no log)';
}

/** Reads the resident set size of a process from /proc, in MiB (Linux only). */
function readRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(match[1]) / 1024;
}

async function createSession(adminUrl: string, adminToken: string): Promise<CreatedSession> {
  const response = await request(`${adminUrl}/api/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel: CHANNEL, ttl: '1h' }),
  });
  const text = await response.body.text();
  if (response.statusCode !== 201) throw new Error(`POST /api/v1/sessions failed with ${response.statusCode}: ${text}`);
  return JSON.parse(text) as CreatedSession;
}

async function getOk(dispatcher: Dispatcher, url: string, headers: Record<string, string> = {}): Promise<void> {
  const response = await request(url, { dispatcher, headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const body = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`GET ${url} returned ${response.statusCode}: ${body.slice(0, 300)}`);
}

/**
 * Fails unless the upstream received the bearer token, so the intercepted cases measure
 * injection and not a plain relay. It reads the upstream's record of the request,
 * because the proxy masks the token in the echo that the client receives.
 */
async function checkBearerInjection(dispatcher: Dispatcher, upstream: EchoUpstream, echoUrl: string): Promise<void> {
  const echoPath = new URL(echoUrl).pathname;
  const seenBefore = upstream.requests.length;
  const response = await request(echoUrl, { dispatcher, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  await response.body.text();
  const received = upstream.requests.slice(seenBefore).find((echoed) => echoed.url === echoPath);
  if (response.statusCode !== 200 || received?.headers.authorization !== `Bearer ${BEARER_TOKEN}`) {
    // The received value is not printed, because it may be a secret.
    let seen = 'the upstream recorded no request';
    if (received !== undefined) {
      seen = received.headers.authorization === undefined ? 'the upstream received no Authorization header' : 'the upstream received another Authorization value';
    }
    throw new Error(`the proxy did not inject the bearer token into GET ${echoUrl}: status ${response.statusCode}, ${seen}`);
  }
}

interface TunnelRequest {
  proxyHost: string;
  proxyPort: number;
  proxyAuthorization: string;
  host: string;
  port: number;
  ca: string;
  path: string;
}

/**
 * Sends one GET the way a one-shot CLI client such as curl does: a new CONNECT, a full TLS
 * handshake without a cached session, one request with `Connection: close`, then close.
 */
async function getThroughNewTunnel(target: TunnelRequest): Promise<void> {
  const authority = `${target.host}:${target.port}`;
  const connect = http.request({
    host: target.proxyHost,
    port: target.proxyPort,
    method: 'CONNECT',
    path: authority,
    agent: false,
    headers: { host: authority, 'proxy-authorization': target.proxyAuthorization },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  connect.end();
  const [response, rawSocket] = (await once(connect, 'connect')) as [http.IncomingMessage, Socket];
  if (response.statusCode !== 200) {
    rawSocket.destroy();
    throw new Error(`CONNECT ${authority} returned ${response.statusCode} (${String(response.headers['x-agent-proxy-error'] ?? 'no error code')})`);
  }

  const secure = tls.connect({ socket: rawSocket, servername: target.host, ca: target.ca, ALPNProtocols: ['http/1.1'] });
  try {
    await once(secure, 'secureConnect');
    const get = http.request({
      createConnection: () => secure,
      host: target.host,
      port: target.port,
      path: target.path,
      headers: { host: authority, connection: 'close' },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    get.end();
    const [answer] = (await once(get, 'response')) as [http.IncomingMessage];
    answer.resume();
    await once(answer, 'end');
    if (answer.statusCode !== 200) throw new Error(`GET https://${authority}${target.path} through a new tunnel returned ${answer.statusCode}`);
  } finally {
    secure.destroy();
  }
}

/**
 * Runs `warmup` unmeasured requests, then `measured` requests with `concurrency` workers,
 * and returns their latency percentiles and throughput. Any failed request aborts the run.
 */
async function runCase(
  name: string,
  concurrency: number,
  operation: Operation,
  options: { warmup?: number; measured?: number; afterWarmup?: () => void } = {},
): Promise<CaseResult> {
  const warmup = options.warmup ?? WARMUP_REQUESTS;
  const measured = options.measured ?? MEASURED_REQUESTS;
  const deadline = performance.now() + CASE_TIME_LIMIT_MS;

  await runWorkers(warmup, concurrency, operation, deadline, null);
  options.afterWarmup?.();

  const latencies: number[] = [];
  const started = performance.now();
  await runWorkers(measured, concurrency, operation, deadline, latencies);
  const elapsedMs = performance.now() - started;

  latencies.sort((a, b) => a - b);
  const result: CaseResult = {
    name,
    concurrency,
    requests: latencies.length,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    requestsPerSecond: (latencies.length / elapsedMs) * 1000,
  };
  if (latencies.length < measured) result.note = `stopped after ${CASE_TIME_LIMIT_MS / 1000} s`;
  process.stderr.write(`${name} (c=${concurrency}): p50 ${result.p50.toFixed(2)} ms, ${result.requestsPerSecond.toFixed(0)} req/s\n`);
  return result;
}

async function runWorkers(count: number, concurrency: number, operation: Operation, deadline: number, latencies: number[] | null): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count && performance.now() < deadline) {
      next++;
      const started = performance.now();
      await operation();
      latencies?.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

interface MintMeasurement {
  signOnlyPerSecond: number;
  signOnlyP50: number;
  mintsPerSecond: number;
  mintP50: number;
  mintP99: number;
  mints: number;
}

/**
 * Measures the JWT bearer flow with a TokenManager in this process, against the Salesforce
 * fixture, which also runs in this process. `invalidate` after each token forces the next
 * call to mint again, so every iteration signs an assertion and POSTs it to the token endpoint
 * over a pooled TLS connection. Mints are sequential because a TokenManager allows one mint
 * in flight per credential.
 */
async function measureMintsInProcess(bundlesPath: string, salesforcePort: number): Promise<MintMeasurement> {
  const logger = pino({ level: 'silent' });
  const store = await openSqliteStore(path.join(dir, 'mint-bench.sqlite'));
  cleanups.push(() => store.close());
  await store.replaceConfig(readBundlesFile(bundlesPath));
  const compiled = compileConfig(await store.loadConfig());
  const credential = compiled.credentials.find((entry) => entry.credential.name === 'salesforce')?.credential as Credential | undefined;
  if (!credential || !isOAuthCredential(credential)) throw new Error('the bundles file has no oauth2_jwt_bearer credential named "salesforce"');

  const audit = new AuditLog(store, logger);
  const dialer = new Dialer({
    resolver: systemResolver,
    pins: [{ host: HOSTS.login, port: salesforcePort, address: '127.0.0.1' }],
    upstreamCa: [readFileSync(path.join(dir, 'upstream-ca.pem'), 'utf8')],
    connectTimeoutMs: REQUEST_TIMEOUT_MS,
  });
  const pool = new UpstreamPool(dialer, () => compiled.allowedNetworks);
  cleanups.push(() => pool.close());
  const tokens = new TokenManager({ pool, store, audit, logger });

  const signLatencies: number[] = [];
  const signStarted = performance.now();
  for (let i = 0; i < MINT_COUNT; i++) {
    const started = performance.now();
    await buildTokenRequest(credential, null);
    signLatencies.push(performance.now() - started);
  }
  const signElapsed = performance.now() - signStarted;

  const mintOnce = async () => {
    const token = await tokens.token(credential);
    tokens.invalidate(credential.id, token.accessToken);
  };
  for (let i = 0; i < MINT_WARMUP; i++) await mintOnce();
  const mintCountBefore = tokens.mintCount;
  const latencies: number[] = [];
  const deadline = performance.now() + CASE_TIME_LIMIT_MS;
  const started = performance.now();
  for (let i = 0; i < MINT_COUNT && performance.now() < deadline; i++) {
    const iterationStarted = performance.now();
    await mintOnce();
    latencies.push(performance.now() - iterationStarted);
  }
  const elapsed = performance.now() - started;
  await audit.flush();

  signLatencies.sort((a, b) => a - b);
  latencies.sort((a, b) => a - b);
  return {
    signOnlyPerSecond: (MINT_COUNT / signElapsed) * 1000,
    signOnlyP50: percentile(signLatencies, 0.5),
    mintsPerSecond: (latencies.length / elapsed) * 1000,
    mintP50: percentile(latencies, 0.5),
    mintP99: percentile(latencies, 0.99),
    mints: tokens.mintCount - mintCountBefore,
  };
}

interface ReportExtras {
  rssAtStart: number;
  rssAfterWarmup: number;
  rssAfterRuns: number;
  mintsDuringCachedRuns: number;
  forcedMints: number;
  forcedRequests: number;
  mint: MintMeasurement;
}

function printReport(results: CaseResult[], extras: ReportExtras): void {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const lines = [
    // Other processes on the machine skew every figure, so the load average goes with the numbers.
    `Machine: ${os.availableParallelism()} CPUs (${cpu}), Node ${process.version}, ${new Date().toISOString()}, load average ${os.loadavg().map((load) => load.toFixed(1)).join(' ')}`,
    '',
    '| Case | Concurrency | Requests | p50 (ms) | p99 (ms) | req/s |',
    '|---|---:|---:|---:|---:|---:|',
    ...results.map(
      (result) =>
        `| ${result.name}${result.note ? ` (${result.note})` : ''} | ${result.concurrency} | ${result.requests} | ${result.p50.toFixed(2)} | ${result.p99.toFixed(2)} | ${result.requestsPerSecond.toFixed(0)} |`,
    ),
    '',
    '| OAuth token minting (in-process TokenManager, sequential) | Value |',
    '|---|---:|',
    `| JWT assertion signing only (RS256, 2048-bit), p50 | ${extras.mint.signOnlyP50.toFixed(2)} ms |`,
    `| JWT assertion signing only, per second | ${extras.mint.signOnlyPerSecond.toFixed(0)} |`,
    `| Full mint (sign + POST to fixture token endpoint), p50 / p99 | ${extras.mint.mintP50.toFixed(2)} / ${extras.mint.mintP99.toFixed(2)} ms |`,
    `| Full mints per second (${extras.mint.mints} mints) | ${extras.mint.mintsPerSecond.toFixed(0)} |`,
    '',
    '| Proxy process | Value |',
    '|---|---:|',
    `| RSS after start | ${extras.rssAtStart.toFixed(1)} MiB |`,
    `| RSS after warm-up of case 2 | ${extras.rssAfterWarmup.toFixed(1)} MiB |`,
    `| RSS after all proxy runs | ${extras.rssAfterRuns.toFixed(1)} MiB |`,
    `| Mints during the cached-token runs (5b) | ${extras.mintsDuringCachedRuns} |`,
    `| Mints during ${extras.forcedRequests} forced-expiry requests (5c) | ${extras.forcedMints} |`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
