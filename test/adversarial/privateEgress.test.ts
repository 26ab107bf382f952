// Private and metadata egress attacks (SSRF, OWASP SSRF Prevention Cheat Sheet): a sandbox
// names a host whose DNS answer, or an IP literal in an unusual spelling, points at a private
// network, a cloud metadata service or the proxy itself. Names resolve through a fake DNS,
// and the connect guard fails the test if the proxy dials anything off loopback, so these
// cases assert that the proxy refuses before it connects.

import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { createTestPki, type TestPki } from '../helpers/testPki.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import {
  advAbsoluteForm,
  advAssertNoSecretReached,
  advAssertRefused,
  advConnect,
  advProxyAuthorization,
  advRequestThroughTunnel,
  advStartProxy,
  type AdvDnsAnswer,
  type AdvProxy,
  type AdvResponse,
} from './helpers.ts';

const SECRET = 'sk-egress-19d0c4e7';
const API_HOST = 'api.example.test';
const TARGET_HOST = 'target.test';

let pki: TestPki;
let api: EchoUpstream;

before(async () => {
  pki = await createTestPki();
  api = await startEchoUpstream([API_HOST, TARGET_HOST], {}, pki);
});

after(async () => {
  await api?.close();
});

async function startProxy(
  t: TestContext,
  options: { records?: Record<string, AdvDnsAnswer>; allowPrivateNetworks?: string[]; egress?: { default?: 'allow' | 'deny'; allow?: string[] } } = {},
): Promise<AdvProxy> {
  return advStartProxy(t, {
    records: { [API_HOST]: ['127.0.0.1'], ...options.records },
    credentials: [{ name: 'api', type: 'bearer_token', token: SECRET, allowedWebsites: [`${API_HOST}:${api.port}`] }],
    upstreamCaPem: [pki.caPem],
    egress: { allowPrivateNetworks: options.allowPrivateNetworks ?? ['127.0.0.1/32'], ...options.egress },
  });
}

async function connect(proxy: AdvProxy, target: string): Promise<AdvResponse> {
  const { response, socket } = await advConnect(proxy.proxyPort, target, advProxyAuthorization(proxy.session));
  socket.destroy();
  return response;
}

function reasonOf(response: AdvResponse): unknown {
  return (JSON.parse(response.body) as { reason?: unknown }).reason;
}

// Each forbidden DNS answer with the class the refusal must name. The metadata addresses are
// those the clouds document: AWS IMDS and ECS/EKS credential endpoints (IPv4 and IPv6), GCP
// (IPv4, and fd20:ce::254 on IPv6-only VMs), Azure IMDS and WireServer, Oracle Cloud (IPv4,
// Classic, IPv6) and Alibaba Cloud.
const FORBIDDEN_ANSWERS: Array<[string, string]> = [
  ['10.0.0.1', 'private'],
  ['172.16.5.4', 'private'],
  ['192.168.1.1', 'private'],
  ['127.0.0.2', 'loopback'],
  ['::1', 'loopback'],
  ['0.0.0.0', 'unspecified'],
  ['::', 'unspecified'],
  ['100.64.0.1', 'cgnat'],
  ['169.254.1.1', 'link_local'],
  ['fe80::1', 'link_local'],
  ['fc00::1', 'unique_local'],
  ['224.0.0.1', 'multicast'],
  ['255.255.255.255', 'broadcast'],
  ['240.0.0.1', 'reserved'],
  ['169.254.169.254', 'metadata'],
  ['169.254.170.2', 'metadata'],
  ['169.254.170.23', 'metadata'],
  ['fd00:ec2::254', 'metadata'],
  ['fd00:ec2::23', 'metadata'],
  ['fd20:ce::254', 'metadata'],
  ['168.63.129.16', 'metadata'],
  ['192.0.0.192', 'metadata'],
  ['fd00:c1::a9fe:a9fe', 'metadata'],
  ['100.100.100.200', 'metadata'],
  ['::ffff:169.254.169.254', 'metadata'],
  ['::ffff:10.0.0.1', 'private'],
  ['64:ff9b::a9fe:a9fe', 'metadata'],
  ['2002:a9fe:a9fe::1', 'metadata'],
  ['::a9fe:a9fe', 'metadata'],
  ['::7f00:1', 'loopback'],
];

describe('forbidden DNS answers', () => {
  for (const [address, addressClass] of FORBIDDEN_ANSWERS) {
    test(`name resolving to ${address} refused`, async (t) => {
      const proxy = await startProxy(t, { records: { [TARGET_HOST]: [address] } });

      const tunnelled = await connect(proxy, `${TARGET_HOST}:443`);
      const absolute = await advAbsoluteForm(proxy, `http://${TARGET_HOST}/latest/meta-data/`);

      advAssertRefused(tunnelled, 403, 'egress_denied');
      advAssertRefused(absolute, 403, 'egress_denied');
      assert.equal(reasonOf(tunnelled), addressClass);
      assert.deepEqual(proxy.guard.dials, [], 'the proxy must refuse before it connects');
    });
  }

  test('GCP metadata name refused', async (t) => {
    const proxy = await startProxy(t, { records: { 'metadata.google.internal': ['169.254.169.254'] } });
    const response = await advAbsoluteForm(proxy, 'http://metadata.google.internal/computeMetadata/v1/', { headers: { 'metadata-flavor': 'Google' } });
    advAssertRefused(response, 403, 'egress_denied');
    assert.equal(reasonOf(response), 'metadata');
    assert.deepEqual(proxy.guard.dials, []);
  });
});

describe('IP literal spellings', () => {
  const spellings = [
    '0xa.0.0.1',
    '167772161',
    '012.0.0.1',
    '10.1',
    '0xa000001',
    '[::ffff:10.0.0.1]',
    '[::ffff:a00:1]',
    '[0:0:0:0:0:ffff:a00:1]',
    '0',
    '0x0',
    '0.0.0.0',
    '[::]',
    '[::ffff:0.0.0.0]',
    '[fd20:ce::254]',
    '[FD20:00CE:0000::0254]',
    '[fd00:c1::169.254.169.254]',
    '100.100.100.200',
    '0x64.0x64.0x64.0xc8',
    '168.63.129.16',
    '0250.077.0201.020',
  ];
  for (const spelling of spellings) {
    test(`literal ${spelling} refused`, async (t) => {
      const proxy = await startProxy(t);

      const tunnelled = await connect(proxy, `${spelling}:443`);
      const absolute = await advAbsoluteForm(proxy, `http://${spelling}/`);

      advAssertRefused(tunnelled, 403, 'egress_denied');
      advAssertRefused(absolute, 403, 'egress_denied');
      assert.deepEqual(proxy.dns.lookups, [], 'an IP literal is never sent to DNS');
      assert.deepEqual(proxy.guard.dials, []);
    });
  }
});

describe('metadata inside an allowed network', () => {
  const cases: Array<[string, string]> = [
    ['fc00::/7', 'fd20:ce::254'],
    ['fd00::/8', 'fd00:c1::a9fe:a9fe'],
    ['fd00:ec2::/32', 'fd00:ec2::254'],
    ['100.64.0.0/10', '100.100.100.200'],
    ['192.0.0.0/24', '192.0.0.192'],
    ['0.0.0.0/0', '169.254.169.254'],
    ['::/0', 'fd20:ce::254'],
  ];
  for (const [network, address] of cases) {
    test(`${address} refused despite ${network}`, async (t) => {
      const proxy = await startProxy(t, { records: { [TARGET_HOST]: [address] }, allowPrivateNetworks: ['127.0.0.1/32', network] });
      const response = await connect(proxy, `${TARGET_HOST}:80`);
      advAssertRefused(response, 403, 'egress_denied');
      assert.equal(reasonOf(response), 'metadata');
      assert.deepEqual(proxy.guard.dials, []);
    });
  }

  test('unspecified refused despite allowance', async (t) => {
    const proxy = await startProxy(t, { records: { [TARGET_HOST]: ['0.0.0.0'] }, allowPrivateNetworks: ['127.0.0.1/32', '0.0.0.0/8', '::/128'] });
    for (const target of [`${TARGET_HOST}:${api.port}`, `0.0.0.0:${api.port}`, `[::]:${api.port}`]) {
      const response = await connect(proxy, target);
      advAssertRefused(response, 403, 'egress_denied');
      assert.equal(reasonOf(response), 'unspecified');
    }
    assert.deepEqual(proxy.guard.dials, []);
  });
});

describe('mixed DNS answers', () => {
  const mixes: Array<[string, string[]]> = [
    ['allowed then private', ['127.0.0.1', '10.0.0.1']],
    ['private then allowed', ['10.0.0.1', '127.0.0.1']],
    ['allowed then metadata', ['127.0.0.1', '169.254.169.254']],
    ['allowed then IPv6 metadata', ['127.0.0.1', 'fd00:ec2::254']],
    ['allowed then mapped metadata', ['127.0.0.1', '::ffff:a9fe:a9fe']],
  ];
  for (const [attack, answers] of mixes) {
    test(`answers ${attack} refused whole`, async (t) => {
      const proxy = await startProxy(t, { records: { [TARGET_HOST]: answers, [API_HOST]: answers } });

      const tunnelled = await connect(proxy, `${TARGET_HOST}:${api.port}`);
      const intercepted = await connect(proxy, `${API_HOST}:${api.port}`);

      advAssertRefused(tunnelled, 403, 'egress_denied');
      advAssertRefused(intercepted, 403, 'egress_denied');
      assert.deepEqual(proxy.guard.dials, []);
    });
  }

  test('allow list does not bypass address check', async (t) => {
    const proxy = await startProxy(t, { records: { 'internal.test': ['10.1.2.3'] }, egress: { default: 'deny', allow: ['internal.test'] } });
    const response = await connect(proxy, 'internal.test:443');
    advAssertRefused(response, 403, 'egress_denied');
    assert.equal(reasonOf(response), 'private');
    assert.deepEqual(proxy.guard.dials, []);
  });
});

describe('DNS rebinding between check and connect', () => {
  // First answer allowed, every later one private: a proxy that checks one lookup and lets the
  // socket resolve again would dial the private address (the classic rebinding SSRF).
  const rebinding: AdvDnsAnswer = (previousLookups) => (previousLookups === 0 ? ['127.0.0.1'] : ['10.0.0.1']);

  test('rebinding tunnel dials checked address', async (t) => {
    const proxy = await startProxy(t, { records: { [TARGET_HOST]: rebinding } });

    const response = await advRequestThroughTunnel(proxy, `${TARGET_HOST}:${api.port}`, { servername: TARGET_HOST, ca: pki.caPem }, {
      headers: { host: `${TARGET_HOST}:${api.port}` },
    });

    assert.equal(response.status, 200, response.body);
    assert.deepEqual(proxy.guard.dials, [`127.0.0.1:${api.port}`]);
  });

  test('rebinding credentialed host refused', async (t) => {
    const proxy = await startProxy(t, { records: { [API_HOST]: rebinding } });
    const before = api.requests.length;

    const response = await advRequestThroughTunnel(proxy, `${API_HOST}:${api.port}`, { servername: API_HOST, ca: proxy.proxyCaPem }, {
      headers: { host: `${API_HOST}:${api.port}` },
    });

    // The upstream connection resolves the name again and must check that answer too.
    advAssertRefused(response, 403, 'egress_denied');
    assert.equal(api.requests.length, before);
    assert.ok(proxy.guard.dials.every((dial) => dial.startsWith('127.0.0.1:')), JSON.stringify(proxy.guard.dials));
  });

  test('rebinding absolute-form refused', async (t) => {
    const proxy = await startProxy(t, { records: { [TARGET_HOST]: rebinding } });
    const response = await advAbsoluteForm(proxy, `http://${TARGET_HOST}:${api.port}/`);
    advAssertRefused(response, 403, 'egress_denied');
    assert.deepEqual(proxy.guard.dials, []);
  });

  test('rebinding to metadata refused', async (t) => {
    const proxy = await startProxy(t, { records: { [API_HOST]: (previous) => (previous === 0 ? ['127.0.0.1'] : ['169.254.169.254']) } });
    const response = await advRequestThroughTunnel(proxy, `${API_HOST}:${api.port}`, { servername: API_HOST, ca: proxy.proxyCaPem }, {
      headers: { host: `${API_HOST}:${api.port}` },
    });
    advAssertRefused(response, 403, 'egress_denied');
    assert.equal(reasonOf(response), 'metadata');
  });
});

describe("the proxy's own listeners", () => {
  // The admin API must never be reachable from a sandbox, even where loopback is allowed
  // for other services, and a request to the proxy port through the proxy would loop.
  const targets: Array<[string, (proxy: AdvProxy) => string]> = [
    ['admin port by address', (proxy) => `127.0.0.1:${proxy.adminPort}`],
    ['admin port by name', (proxy) => `localhost:${proxy.adminPort}`],
    ['admin port by mapped IPv6', (proxy) => `[::ffff:127.0.0.1]:${proxy.adminPort}`],
    ['admin port by decimal', (proxy) => `2130706433:${proxy.adminPort}`],
    ['admin port by other loopback', (proxy) => `127.0.0.9:${proxy.adminPort}`],
    ['admin port by IPv6 loopback', (proxy) => `[::1]:${proxy.adminPort}`],
    ['proxy port by address', (proxy) => `127.0.0.1:${proxy.proxyPort}`],
  ];
  for (const [attack, target] of targets) {
    test(`${attack} refused`, async (t) => {
      const proxy = await startProxy(t, { records: { localhost: ['127.0.0.1'] }, allowPrivateNetworks: ['127.0.0.0/8', '::1/128'] });

      const tunnelled = await connect(proxy, target(proxy));
      const absolute = await advAbsoluteForm(proxy, `http://${target(proxy)}/api/v1/bundles`);

      advAssertRefused(tunnelled, 403, 'egress_denied');
      advAssertRefused(absolute, 403, 'egress_denied');
      assert.equal(reasonOf(tunnelled), 'proxy_listener');
      assert.deepEqual(proxy.guard.dials, []);
    });
  }

  test('credential on admin port refused', async (t) => {
    const proxy = await startProxy(t);
    const applied = await proxy.harness.admin('POST', '/api/v1/apply', {
      egress: { default: 'allow', allowPrivateNetworks: ['127.0.0.1/32'] },
      bundles: [{ name: 'adversarial', channels: ['C0ADV'], credentials: [{ name: 'admin', type: 'bearer_token', token: SECRET, allowedWebsites: [`127.0.0.1:${proxy.adminPort}`] }] }],
    });
    assert.equal(applied.status, 200);

    const response = await connect(proxy, `127.0.0.1:${proxy.adminPort}`);

    advAssertRefused(response, 403, 'egress_denied');
    assert.deepEqual(proxy.guard.dials, []);
    advAssertNoSecretReached(api, [], 'nothing');
  });
});
