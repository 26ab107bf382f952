// Real clients (curl, Python requests, Node's undici, git) run through
// `agent-proxy run` against an `agent-proxy serve` child process, both started from
// the real CLI, so the environment that `run` builds is what the clients read.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCliServer, type CliResult, type CliServer } from '../helpers/cliServer.ts';
import { recordedRequest, reflectionMask, startEchoUpstream, type EchoedRequest, type EchoUpstream } from '../helpers/upstreams.ts';

const BEARER_SECRET = 'sk-bearer-7f3a9c1e';
const HEADER_KEY_SECRET = 'hk-5d2b8e';
const QUERY_KEY_SECRET = 'qk/9+e=1';
const BASIC_USER = 'svc-reporting';
const BASIC_PASSWORD = 'p@ss:w0rd';
const CLIENT_AUTHORIZATION = 'Bearer client-own-token';

const HOSTS = {
  bearer: 'api.example.test',
  neighbour: 'other.example.test',
  suffix: 'evilapi.example.test',
  headerKey: 'keys.example.test',
  queryKey: 'query.example.test',
  basic: 'basic.example.test',
  git: 'git.example.test',
};

// Object id in the ref advertisement. No object is ever fetched, because git ls-remote only prints it.
const GIT_COMMIT = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

let upstream: EchoUpstream;
let server: CliServer;
let upstreamCaPath: string;
const gitAuthorizations: Array<string | undefined> = [];

before(async () => {
  upstream = await startEchoUpstream(Object.values(HOSTS), {
    '/repo.git/info/refs': (req, res) => {
      gitAuthorizations.push(req.headers.authorization);
      const body = gitRefAdvertisement();
      res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement', 'content-length': body.length, 'cache-control': 'no-cache' });
      res.end(body);
    },
  });
  const port = upstream.port;

  server = await startCliServer({
    upstreamCaPem: upstream.pki.caPem,
    resolve: Object.values(HOSTS).map((host) => `${host}:${port}:127.0.0.1`),
    config: {
      egress: { default: 'allow', allowPrivateNetworks: ['127.0.0.1/32'] },
      bundles: [
        {
          name: 'engineering',
          channels: ['C0ENG'],
          credentials: [
            { name: 'api-bearer', type: 'bearer_token', token: BEARER_SECRET, allowedWebsites: [`${HOSTS.bearer}:${port}`, `${HOSTS.git}:${port}`] },
            { name: 'header-key', type: 'api_key', headerName: 'X-Api-Key', prefix: 'key-', value: HEADER_KEY_SECRET, allowedWebsites: [`${HOSTS.headerKey}:${port}`] },
            { name: 'query-key', type: 'api_key', queryParam: 'api_key', value: QUERY_KEY_SECRET, allowedWebsites: [`${HOSTS.queryKey}:${port}`] },
            { name: 'reporting-basic', type: 'basic_auth', username: BASIC_USER, password: BASIC_PASSWORD, allowedWebsites: [`${HOSTS.basic}:${port}`] },
          ],
        },
      ],
    },
  });
  upstreamCaPath = path.join(server.dir, 'upstream-ca.pem');
});

after(async () => {
  await server?.stop();
  await upstream?.close();
});

function url(host: string, pathWithQuery: string): string {
  return `https://${host}:${upstream.port}${pathWithQuery}`;
}

interface ClientRequest {
  url: string;
  headers: Record<string, string>;
  /** CA file that replaces the session's CA bundle, for hosts the proxy only tunnels. */
  caFile?: string;
}

interface Client {
  name: string;
  /** Command that exits 0 when the client is installed. */
  probe: string[];
  command(request: ClientRequest): string[];
}

/** Returns a skip reason when `probe` fails, so a machine without the client skips its tests. */
function missing(probe: string[]): string | false {
  const result = spawnSync(probe[0]!, probe.slice(1), { stdio: 'ignore' });
  return result.status === 0 ? false : `${probe.join(' ')} failed; the client is not installed`;
}

const PYTHON_REQUESTS = [
  'import json, sys, requests',
  'url, ca, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])',
  // verify=True makes requests read REQUESTS_CA_BUNDLE, which `run` sets.
  'response = requests.get(url, headers=headers, verify=ca or True, timeout=10)',
  'sys.stdout.write(response.text)',
].join('\n');

const NODE_UNDICI = [
  "import { readFileSync } from 'node:fs';",
  "import { ProxyAgent, request } from 'undici';",
  'const [url, ca, headers] = process.argv.slice(1);',
  "const agent = new ProxyAgent({ uri: process.env.HTTPS_PROXY, requestTls: { ca: readFileSync(ca || process.env.SSL_CERT_FILE, 'utf8') } });",
  'const response = await request(url, { dispatcher: agent, headers: JSON.parse(headers) });',
  'process.stdout.write(await response.body.text());',
  'await agent.close();',
].join('\n');

const CLIENTS: Client[] = [
  {
    name: 'curl',
    probe: ['curl', '--version'],
    command: (request) => [
      'curl',
      '--silent',
      '--show-error',
      '--max-time',
      '10',
      ...(request.caFile ? ['--cacert', request.caFile] : []),
      ...Object.entries(request.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
      request.url,
    ],
  },
  {
    name: 'python requests',
    probe: ['python3', '-c', 'import requests'],
    command: (request) => ['python3', '-c', PYTHON_REQUESTS, request.url, request.caFile ?? '', JSON.stringify(request.headers)],
  },
  {
    name: 'undici ProxyAgent',
    probe: ['node', '--version'],
    command: (request) => ['node', '--input-type=module', '-e', NODE_UNDICI, request.url, request.caFile ?? '', JSON.stringify(request.headers)],
  },
];

async function runAs(channel: string, command: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return server.cli(['run', '--channel', channel, '--', ...command], { env });
}

/** Parses the echo upstream's JSON from a client's output, showing the whole run when it is not JSON. */
function parseEcho(result: CliResult): EchoedRequest {
  assert.equal(result.code, 0, `run exited with ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  try {
    return JSON.parse(result.stdout) as EchoedRequest;
  } catch {
    assert.fail(`the client did not print the echo JSON\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
}

function headerValues(echo: EchoedRequest, name: string): string[] {
  const values: string[] = [];
  for (let index = 0; index + 1 < echo.rawHeaders.length; index += 2) {
    if (echo.rawHeaders[index]!.toLowerCase() === name) values.push(echo.rawHeaders[index + 1]!);
  }
  return values;
}

for (const client of CLIENTS) {
  describe(`run with ${client.name}`, { skip: missing(client.probe) }, () => {
    test('bearer injected on allowed host', async () => {
      const request = { url: url(HOSTS.bearer, '/v1/items?limit=2'), headers: { authorization: CLIENT_AUTHORIZATION, 'x-trace-id': 'trace-1' } };
      const seenBefore = upstream.requests.length;

      const echo = parseEcho(await runAs('C0ENG', client.command(request)));
      const received = recordedRequest(upstream, '/v1/items?limit=2', seenBefore);

      assert.equal(received.method, 'GET');
      assert.deepEqual(headerValues(received, 'authorization'), [`Bearer ${BEARER_SECRET}`]);
      assert.deepEqual(headerValues(received, 'x-trace-id'), ['trace-1']);
      assert.deepEqual(headerValues(received, 'host'), [`${HOSTS.bearer}:${upstream.port}`]);
      assert.deepEqual(headerValues(received, 'proxy-authorization'), []);
      // The client reads the echo through the proxy, which masks the injected token in it.
      assert.equal(echo.url, '/v1/items?limit=2');
      assert.deepEqual(headerValues(echo, 'authorization'), [`Bearer ${reflectionMask(BEARER_SECRET)}`]);
    });

    test('neighbouring host tunnelled without credential', async () => {
      // Trusting only the upstream's CA proves the proxy did not intercept the tunnel.
      const request = { url: url(HOSTS.neighbour, '/v1/items'), headers: { authorization: CLIENT_AUTHORIZATION }, caFile: upstreamCaPath };

      const result = await runAs('C0ENG', client.command(request));
      const echo = parseEcho(result);

      assert.deepEqual(headerValues(echo, 'authorization'), [CLIENT_AUTHORIZATION]);
      assert.equal(result.stdout.includes(BEARER_SECRET), false);
    });

    test('host ending in allowed name tunnelled without credential', async () => {
      const request = { url: url(HOSTS.suffix, '/v1/items'), headers: { authorization: CLIENT_AUTHORIZATION }, caFile: upstreamCaPath };

      const result = await runAs('C0ENG', client.command(request));
      const echo = parseEcho(result);

      assert.deepEqual(headerValues(echo, 'authorization'), [CLIENT_AUTHORIZATION]);
      assert.equal(result.stdout.includes(BEARER_SECRET), false);
    });

    test('channel outside bundle scope gets no credential', async () => {
      const request = { url: url(HOSTS.bearer, '/v1/items'), headers: { authorization: CLIENT_AUTHORIZATION }, caFile: upstreamCaPath };

      const result = await runAs('C0OTHER', client.command(request));
      const echo = parseEcho(result);

      assert.deepEqual(headerValues(echo, 'authorization'), [CLIENT_AUTHORIZATION]);
      assert.equal(result.stdout.includes(BEARER_SECRET), false);
    });
  });
}

describe('run with curl and other credential types', { skip: missing(CLIENTS[0]!.probe) }, () => {
  const curl = CLIENTS[0]!;

  test('api_key header replaces client copy', async () => {
    const request = { url: url(HOSTS.headerKey, '/v2/data'), headers: { 'X-Api-Key': 'client-own-key' } };
    const seenBefore = upstream.requests.length;

    const echo = parseEcho(await runAs('C0ENG', curl.command(request)));
    const received = recordedRequest(upstream, '/v2/data', seenBefore);

    assert.deepEqual(headerValues(received, 'x-api-key'), [`key-${HEADER_KEY_SECRET}`]);
    assert.deepEqual(headerValues(received, 'authorization'), []);
    assert.deepEqual(headerValues(echo, 'x-api-key'), [`key-${reflectionMask(HEADER_KEY_SECRET)}`]);
  });

  test('api_key query parameter replaces client copy', async () => {
    const request = { url: url(HOSTS.queryKey, '/v2/search?q=a%20b&api_key=client-own-key&page=2'), headers: {} };
    const seenBefore = upstream.requests.length;

    const echo = parseEcho(await runAs('C0ENG', curl.command(request)));
    const [received, ...others] = upstream.requests.slice(seenBefore);

    assert.equal(others.length, 0);
    assert.equal(received?.url, `/v2/search?q=a%20b&page=2&api_key=${encodeURIComponent(QUERY_KEY_SECRET)}`);
    assert.equal(received?.url, '/v2/search?q=a%20b&page=2&api_key=qk%2F9%2Be%3D1');
    // The proxy masks the URL-encoded form of the key in the echo.
    assert.equal(echo.url, `/v2/search?q=a%20b&page=2&api_key=${reflectionMask(encodeURIComponent(QUERY_KEY_SECRET))}`);
  });

  test('basic_auth header replaces client copy', async () => {
    const request = { url: url(HOSTS.basic, '/reports'), headers: { authorization: CLIENT_AUTHORIZATION } };
    const seenBefore = upstream.requests.length;

    const echo = parseEcho(await runAs('C0ENG', curl.command(request)));
    const received = recordedRequest(upstream, '/reports', seenBefore);

    const expected = `Basic ${Buffer.from(`${BASIC_USER}:${BASIC_PASSWORD}`).toString('base64')}`;
    assert.equal(expected, 'Basic c3ZjLXJlcG9ydGluZzpwQHNzOncwcmQ=');
    assert.deepEqual(headerValues(received, 'authorization'), [expected]);
    // Only the base64 characters that encode password bits alone are masked. The username
    // part stays, and so does the final `Q`, whose bits would change with a byte after the password.
    assert.deepEqual(headerValues(echo, 'authorization'), ['Basic c3ZjLXJlcG9ydGluZzp***********Q=']);
  });
});

describe('run lifecycle', () => {
  test('exit status passed on', async () => {
    const result = await runAs('C0ENG', ['sh', '-c', 'exit 7']);

    assert.equal(result.code, 7);
  });

  test('session revoked after exit', { skip: missing(CLIENTS[0]!.probe) }, async () => {
    const script = [
      'echo "$AGENT_PROXY_SESSION"',
      'echo "$HTTPS_PROXY"',
      `curl --silent --output /dev/null --write-out '%{http_code}\\n' '${url(HOSTS.bearer, '/ping')}'`,
      'exit 3',
    ].join('; ');

    const result = await runAs('C0ENG', ['sh', '-c', script]);

    assert.equal(result.code, 3, result.stderr);
    const [sessionId, proxyUrl, statusDuringRun] = result.stdout.trim().split('\n');
    assert.match(sessionId ?? '', /\S/);
    assert.equal(statusDuringRun, '200');

    const listed = await server.admin<Array<{ id: string }>>('GET', '/api/v1/sessions');
    assert.equal(listed.status, 200);
    assert.equal(listed.body.some((session) => session.id === sessionId), false);

    const status = await connectStatus(proxyUrl!, `${HOSTS.bearer}:${upstream.port}`);
    assert.equal(status, 'HTTP/1.1 407 Proxy Authentication Required');
  });

  test('git ls-remote gets bearer', { skip: missing(['git', '--version']) }, async () => {
    const before = gitAuthorizations.length;

    const result = await runAs('C0ENG', ['git', 'ls-remote', url(HOSTS.git, '/repo.git')], { GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: server.dir });

    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${GIT_COMMIT}\tHEAD\n${GIT_COMMIT}\trefs/heads/main\n`);
    assert.deepEqual(gitAuthorizations.slice(before), [`Bearer ${BEARER_SECRET}`]);
  });
});

/** Sends a CONNECT with the credentials of `proxyUrl` and returns the response's status line. */
async function connectStatus(proxyUrl: string, target: string): Promise<string> {
  const proxy = new URL(proxyUrl);
  const credentials = Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64');
  const socket = net.connect(Number(proxy.port), proxy.hostname);
  await once(socket, 'connect');
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: Basic ${credentials}\r\n\r\n`);

  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  await once(socket, 'end');
  socket.destroy();
  return received.split('\r\n', 1)[0]!;
}

/** Builds a smart-HTTP ref advertisement (git's protocol v0) with HEAD and main. */
function gitRefAdvertisement(): Buffer {
  const packetLine = (text: string) => `${(Buffer.byteLength(text) + 4).toString(16).padStart(4, '0')}${text}`;
  const flush = '0000';
  return Buffer.from(
    packetLine('# service=git-upload-pack\n') +
      flush +
      packetLine(`${GIT_COMMIT} HEAD\0symref=HEAD:refs/heads/main\n`) +
      packetLine(`${GIT_COMMIT} refs/heads/main\n`) +
      flush,
  );
}
