// Request smuggling and HTTP parsing, on the proxy listener and inside an
// intercepted TLS tunnel: every request whose framing two parsers could read
// differently is refused with 400 (431 for oversized headers) before anything is
// sent upstream, and upstream connections are never shared between credentials.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';
import { assertRefusal, exchange, openTlsTunnel, parseRawResponse, proxyAuthorization, rawInTunnel, rawToProxy, startProxy, type ProxyUnderTest } from './rawHttp.ts';

const API_HOST = 'api.smuggling.test';
const OTHER_HOST = 'other.smuggling.test';
const CHANNEL = 'C0SMUGGLE';
const SECRET = 'sk-smuggle-7d21c9';
const OTHER_SECRET = 'sk-smuggle-other-0b4e';

let upstream: EchoUpstream;
let proxy: ProxyUnderTest;
let session: CreatedSession;

before(async () => {
  upstream = await startEchoUpstream([API_HOST, OTHER_HOST], {
    // Returns the client port of the upstream connection, so tests can tell connections apart.
    '/connection': (req, res) => {
      const port = String(req.socket.remotePort);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': port.length });
      res.end(port);
    },
  });
  proxy = await startProxy({
    upstream,
    hosts: [API_HOST, OTHER_HOST],
    bundles: [
      {
        name: 'smuggling',
        channels: [CHANNEL],
        credentials: [
          { name: 'api', type: 'bearer_token', token: SECRET, allowedWebsites: [`${API_HOST}:${upstream.port}`] },
          { name: 'other', type: 'bearer_token', token: OTHER_SECRET, allowedWebsites: [`${OTHER_HOST}:${upstream.port}`] },
        ],
      },
    ],
  });
  session = await proxy.createSession(CHANNEL);
});

after(async () => {
  await proxy?.close();
  await upstream?.close();
});

function hostHeader(host = API_HOST): string {
  return `${host}:${upstream.port}`;
}

interface MalformedCase {
  name: string;
  /** The request head after the request line's target, as sent. `{auth}` and `{host}` are filled in. */
  build: (target: string, auth: string, host: string) => string;
  status: number;
  code: string;
}

const CHUNKED_HELLO = '5\r\nhello\r\n0\r\n\r\n';

// Node's llhttp (Node 20) rejects most of these itself; the proxy answers them with
// its own problem response. The last rows are accepted by llhttp and refused by the proxy.
const MALFORMED: MalformedCase[] = [
  { name: 'CL.TE content-length then chunked', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`, status: 400, code: 'bad_request' },
  { name: 'TE.CL chunked then content-length', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'conflicting duplicate content-length', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, status: 400, code: 'bad_request' },
  { name: 'identical duplicate content-length', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, status: 400, code: 'bad_request' },
  { name: 'content-length list value', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Content-Length: 5, 5\r\n\r\nhello`, status: 400, code: 'bad_request' },
  { name: 'negative content-length', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Content-Length: -1\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'signed content-length', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Content-Length: +5\r\n\r\nhello`, status: 400, code: 'bad_request' },
  { name: 'overflowing content-length', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Content-Length: 99999999999999999999999\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'TE chunked, identity', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: chunked, identity\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'TE repeated header', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'TE xchunked', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: xchunked\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'TE trailing comma', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: chunked,\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'TE space before colon', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding : chunked\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'TE vertical tab', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: \x0bchunked\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'obsolete line folding', build: (t, a, h) => `GET ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}X-Folded: one\r\n two\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'folded transfer-encoding', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding:\r\n chunked\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'bare LF line endings', build: (t, a, h) => `GET ${t} HTTP/1.1\nHost: ${h}\n${a.replace('\r\n', '\n')}\n`, status: 400, code: 'bad_request' },
  { name: 'bare LF inside headers', build: (t, a, h) => `GET ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}X-One: a\nX-Two: b\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'bare CR in header value', build: (t, a, h) => `GET ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}X-Value: a\rb\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'NUL in header value', build: (t, a, h) => `GET ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}X-Value: a\x00b\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'space in header name', build: (t, a, h) => `GET ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}X Value: a\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'chunk extension with bare LF', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'hex-prefixed chunk size', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'chunks with bare LF', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n`, status: 400, code: 'bad_request' },
  { name: 'HTTP/1.2 version', build: (t, a, h) => `GET ${t} HTTP/1.2\r\nHost: ${h}\r\n${a}\r\n`, status: 400, code: 'bad_request' },
  { name: 'TE gzip, chunked', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: gzip, chunked\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'TE identity, chunked', build: (t, a, h) => `POST ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Transfer-Encoding: identity, chunked\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'TE on HTTP/1.0', build: (t, a, h) => `POST ${t} HTTP/1.0\r\nHost: ${h}\r\n${a}Transfer-Encoding: chunked\r\n\r\n${CHUNKED_HELLO}`, status: 400, code: 'bad_request' },
  { name: 'h2c upgrade', build: (t, a, h) => `GET ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`, status: 400, code: 'bad_request' },
  { name: 'one header over 16 KiB', build: (t, a, h) => `GET ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}X-Large: ${'a'.repeat(17 * 1024)}\r\n\r\n`, status: 431, code: 'request_header_fields_too_large' },
  { name: 'many headers over 16 KiB', build: (t, a, h) => `GET ${t} HTTP/1.1\r\nHost: ${h}\r\n${a}${Array.from({ length: 400 }, (_, i) => `X-Header-${i}: ${'b'.repeat(40)}\r\n`).join('')}\r\n`, status: 431, code: 'request_header_fields_too_large' },
];

function upstreamSawSecret(): boolean {
  return upstream.requests.some((request) => JSON.stringify(request).includes(SECRET));
}

describe('malformed request on the proxy listener', () => {
  for (const malformed of MALFORMED) {
    test(`listener refuses ${malformed.name}`, async () => {
      const before = upstream.requests.length;
      const target = `http://${hostHeader()}/smuggle`;
      const auth = `Proxy-Authorization: ${proxyAuthorization(session)}\r\n`;
      const response = await rawToProxy(proxy.port, malformed.build(target, auth, hostHeader()));

      assertRefusal(response, malformed.status, malformed.code);
      assert.equal(upstream.requests.length, before, 'nothing may reach the upstream');
      assert.equal(response.raw.includes(SECRET), false);
    });
  }
});

describe('malformed request inside an intercepted tunnel', () => {
  for (const malformed of MALFORMED) {
    test(`tunnel refuses ${malformed.name}`, async () => {
      const before = upstream.requests.length;
      const response = await rawInTunnel(proxy, session, API_HOST, upstream.port, malformed.build('/smuggle', '', hostHeader()));

      assertRefusal(response, malformed.status, malformed.code);
      assert.equal(upstream.requests.length, before, 'nothing may reach the upstream');
      assert.equal(upstreamSawSecret(), false);
      assert.equal(response.raw.includes(SECRET), false);
    });
  }
});

describe('upgrades inside an intercepted tunnel', () => {
  const refused: Array<[string, string]> = [
    ['WebSocket upgrade with POST', `POST /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n`],
    ['WebSocket upgrade with a body', `GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello`],
    ['upgrade to websocket and h2c', `GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\r\n`],
    ['upgrade to an unknown protocol', `GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: TLS/1.0\r\n\r\n`],
    ['WebSocket upgrade to another host', `GET /ws HTTP/1.1\r\nHost: ${OTHER_HOST}:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`],
  ];
  for (const [name, template] of refused) {
    test(`tunnel refuses ${name}`, async () => {
      const before = upstream.requests.length;
      const bytes = template.replace('{host}', hostHeader()).replace('{port}', String(upstream.port));
      const response = await rawInTunnel(proxy, session, API_HOST, upstream.port, bytes);

      const expected = name.includes('another host') ? { status: 421, code: 'misdirected_request' } : { status: 400, code: 'bad_request' };
      assertRefusal(response, expected.status, expected.code);
      assert.equal(upstream.requests.length, before);
      assert.equal(response.raw.includes(SECRET), false);
    });
  }
});

describe('framing the proxy accepts', () => {
  test('tunnel forwards upper-case chunked once', async () => {
    const before = upstream.requests.length;
    const response = await rawInTunnel(
      proxy,
      session,
      API_HOST,
      upstream.port,
      `POST /chunked HTTP/1.1\r\nHost: ${hostHeader()}\r\nTransfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n${CHUNKED_HELLO}`,
    );

    assert.equal(response.status, 200);
    assert.equal(upstream.requests.length, before + 1, 'exactly one request reaches the upstream');
    const echoed = upstream.requests.at(-1)!;
    assert.equal(echoed.body, 'hello');
    assert.equal(echoed.headers.authorization, `Bearer ${SECRET}`);
    assert.equal(response.raw.includes(SECRET), false);
  });

  test('smuggled second request stays body bytes', async () => {
    // A body that looks like a request must reach the upstream as body bytes of one request, never as a second request.
    const smuggled = `GET /admin HTTP/1.1\r\nHost: ${hostHeader()}\r\n\r\n`;
    const before = upstream.requests.length;
    const response = await rawInTunnel(
      proxy,
      session,
      API_HOST,
      upstream.port,
      `POST /outer HTTP/1.1\r\nHost: ${hostHeader()}\r\nContent-Length: ${smuggled.length}\r\nConnection: close\r\n\r\n${smuggled}`,
    );

    assert.equal(response.status, 200);
    assert.equal(upstream.requests.length, before + 1);
    assert.equal(upstream.requests.at(-1)!.url, '/outer');
    assert.equal(upstream.requests.at(-1)!.body, smuggled);
  });

  test('listener keeps insecureHTTPParser off', () => {
    // Node's lenient parser would accept the ambiguous framing above (CVE-2022-32215); a process-wide flag turns it on.
    assert.equal(process.execArgv.includes('--insecure-http-parser'), false);
    assert.equal(process.env.NODE_OPTIONS?.includes('--insecure-http-parser') ?? false, false);
  });
});

describe('upstream connection isolation', () => {
  async function connectionPort(host: string, tunnelSocket: import('node:tls').TLSSocket): Promise<string> {
    const { raw } = await exchange(tunnelSocket, `GET /connection HTTP/1.1\r\nHost: ${hostHeader(host)}\r\n\r\n`, 3_000);
    const parsed = parseRawResponse(raw);
    assert.ok(parsed);
    assert.equal(parsed.status, 200, parsed.body);
    tunnelSocket.removeAllListeners('data');
    return parsed.body;
  }

  test('two credentials never share a connection', async () => {
    const ports = new Map<string, Set<string>>([
      [API_HOST, new Set()],
      [OTHER_HOST, new Set()],
    ]);
    // Alternate the hosts so that a shared pool would hand a freed connection of one credential to the other.
    for (let round = 0; round < 4; round += 1) {
      for (const host of [API_HOST, OTHER_HOST]) {
        const tunnel = await openTlsTunnel(proxy.port, host, upstream.port, session, proxy.caPem);
        ports.get(host)!.add(await connectionPort(host, tunnel));
        tunnel.destroy();
      }
    }

    const shared = [...ports.get(API_HOST)!].filter((port) => ports.get(OTHER_HOST)!.has(port));
    assert.deepEqual(shared, []);
    // Fewer ports than rounds shows that the pool did reuse connections, so the check above could have seen sharing.
    assert.ok(ports.get(API_HOST)!.size < 4, `no keep-alive reuse observed: ${[...ports.get(API_HOST)!].join(', ')}`);
  });

  test('uncredentialed request never reuses a credential connection', async () => {
    // An absolute-form https:// request to the credentialed host still takes the credential's pool; plain http:// takes the anonymous one.
    const credentialed = await openTlsTunnel(proxy.port, API_HOST, upstream.port, session, proxy.caPem);
    const credentialedPort = await connectionPort(API_HOST, credentialed);
    credentialed.destroy();

    const plain = await new Promise<string>((resolve, reject) => {
      const outgoing = http.request(
        { host: '127.0.0.1', port: proxy.port, method: 'GET', path: `http://${hostHeader()}/connection`, headers: { 'proxy-authorization': proxyAuthorization(session) }, agent: false },
        (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.on('end', () => resolve(`${response.statusCode}:${body}`));
        },
      );
      outgoing.on('error', reject);
      outgoing.end();
    });
    // The echo upstream speaks TLS only, so plain HTTP fails upstream; what matters is that it did not ride the credential's connection.
    assert.notEqual(plain, `200:${credentialedPort}`);
    assert.equal(upstreamSawSecret() && upstream.requests.some((request) => request.url === '/connection' && !request.headers.authorization), false);
  });
});
