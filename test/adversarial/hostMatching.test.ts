// Host matching attacks: a sandbox names a host that looks like, contains, or spells
// differently a host a credential is allowed on, hoping the proxy injects the credential
// and sends it to a host the attacker runs. The attacker's server listens on the same port
// as the credentialed upstream but at 127.0.0.2, so only the host name tells them apart.

import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { request } from 'undici';
import { createTestPki, type TestPki } from '../helpers/testPki.ts';
import { startEchoUpstream, type EchoUpstream } from '../helpers/upstreams.ts';
import {
  advAbsoluteForm,
  advAssertNoSecretReached,
  advAssertRefused,
  advConnect,
  advProxyAuthorization,
  advRequestThroughTunnel,
  advStartEchoOn,
  advStartProxy,
  type AdvProxy,
} from './helpers.ts';

const SECRET = 'sk-hostmatch-7f3a91c2';
const API_HOST = 'api.example.test';
const TENANT_DOMAIN = 'tenant.example.test';
const ATTACKER_ADDRESS = '127.0.0.2';

let pki: TestPki;
let api: EchoUpstream;
let attacker: EchoUpstream;
let portAttacker: EchoUpstream;

before(async () => {
  pki = await createTestPki();
  api = await startEchoUpstream([API_HOST, `a.${TENANT_DOMAIN}`], {}, pki);
  attacker = await advStartEchoOn(ATTACKER_ADDRESS, api.port, ['attacker.test'], pki);
  portAttacker = await startEchoUpstream(['attacker.test'], {}, pki);
});

after(async () => {
  await api?.close();
  await attacker?.close();
  await portAttacker?.close();
});

// Every attack name resolves to the attacker; the credentialed names resolve to the real upstream.
const ATTACK_NAMES = [
  'api.example.test.attacker.test',
  'evilapi.example.test',
  'api-example.test',
  'apiexample.test',
  'example.test',
  'evil.tenant.example.test.attacker.test',
  'eviltenant.example.test',
  TENANT_DOMAIN,
  'xn--pi-7kc.example.test',
  'xn--80ak6aa92e.example.test',
  'api.example.test-attacker.test',
];

function credential(): Record<string, unknown> {
  return {
    name: 'api',
    type: 'bearer_token',
    token: SECRET,
    allowedWebsites: [`${API_HOST}:${api.port}`, `*.${TENANT_DOMAIN}:${api.port}`],
  };
}

async function startProxy(t: TestContext): Promise<AdvProxy> {
  const records: Record<string, string[]> = { [API_HOST]: ['127.0.0.1'], [`a.${TENANT_DOMAIN}`]: ['127.0.0.1'] };
  for (const name of ATTACK_NAMES) records[name] = [ATTACKER_ADDRESS];
  return advStartProxy(t, {
    records,
    credentials: [credential()],
    upstreamCaPem: [pki.caPem],
    egress: { allowPrivateNetworks: ['127.0.0.1/32', `${ATTACKER_ADDRESS}/32`] },
  });
}

function assertNoLeak(): void {
  advAssertNoSecretReached(attacker, [SECRET], 'the attacker at 127.0.0.2');
  advAssertNoSecretReached(portAttacker, [SECRET], 'the attacker on another port');
}

describe('look-alike names get no credential', () => {
  for (const name of ATTACK_NAMES) {
    test(`look-alike ${name} tunnelled bare`, async (t) => {
      const proxy = await startProxy(t);
      const before = attacker.requests.length;

      // The client speaks TLS straight to whatever the tunnel reaches: a credential added by
      // the proxy would have to come from an intercepted tunnel, which would present the proxy's CA.
      const response = await advRequestThroughTunnel(proxy, `${name}:${api.port}`, { servername: name, ca: pki.caPem, skipNameCheck: true }, {
        headers: { host: `${name}:${api.port}` },
      });

      assert.equal(response.status, 200);
      assert.equal(attacker.requests.length, before + 1, 'the request should reach the attacker through an opaque tunnel');
      assert.equal(attacker.requests.at(-1)?.headers.authorization, undefined);
      assertNoLeak();
    });
  }
});

describe('spellings of the credentialed name', () => {
  const sameHost = [
    { attack: 'upper case', target: 'API.EXAMPLE.TEST' },
    { attack: 'trailing dot', target: 'api.example.test.' },
    { attack: 'mixed case and trailing dot', target: 'Api.Example.Test.' },
  ];
  for (const { attack, target } of sameHost) {
    test(`${attack} reaches only the real host`, async (t) => {
      const proxy = await startProxy(t);
      const before = api.requests.length;

      const response = await advRequestThroughTunnel(proxy, `${target}:${api.port}`, { servername: API_HOST, ca: proxy.proxyCaPem }, {
        headers: { host: `${target}:${api.port}` },
      });

      assert.equal(response.status, 200, response.body);
      assert.equal(api.requests.length, before + 1);
      assert.equal(api.requests.at(-1)?.headers.authorization, `Bearer ${SECRET}`);
      assert.equal(api.requests.at(-1)?.headers.host, `${API_HOST}:${api.port}`, 'the upstream gets the normalised name');
      assert.deepEqual(proxy.dns.lookups.filter((name) => name !== API_HOST), [], 'DNS was asked for the normalised name only');
      assertNoLeak();
    });
  }
});

describe('malformed CONNECT authorities', () => {
  const malformed = [
    { attack: 'userinfo before host', target: () => `user@${API_HOST}:${api.port}` },
    { attack: 'credentialed host as userinfo', target: () => `${API_HOST}@attacker.test:${api.port}` },
    { attack: 'userinfo with password', target: () => `a:b@${API_HOST}:${api.port}` },
    { attack: 'backslash before at', target: () => `${API_HOST}\\@attacker.test:${api.port}` },
    { attack: 'fragment in authority', target: () => `attacker.test#${API_HOST}:${api.port}` },
    { attack: 'query in authority', target: () => `attacker.test?${API_HOST}:${api.port}` },
    { attack: 'path in authority', target: () => `${API_HOST}:${api.port}/x` },
    { attack: 'percent-encoded dot', target: () => `api%2eexample.test:${api.port}` },
    { attack: 'encoded NUL', target: () => `${API_HOST}%00.attacker.test:${api.port}` },
    { attack: 'double trailing dot', target: () => `${API_HOST}..:${api.port}` },
    { attack: 'empty inner label', target: () => `api..example.test:${api.port}` },
    { attack: 'leading dot', target: () => `.${API_HOST}:${api.port}` },
    { attack: 'semicolon in name', target: () => `${API_HOST};attacker.test:${api.port}` },
    { attack: 'comma in name', target: () => `${API_HOST},attacker.test:${api.port}` },
    { attack: 'wildcard in name', target: () => `*.${TENANT_DOMAIN}:${api.port}` },
    { attack: 'port zero', target: () => `${API_HOST}:0` },
    { attack: 'port above range', target: () => `${API_HOST}:65536` },
    { attack: 'signed port', target: () => `${API_HOST}:+${api.port}` },
    { attack: 'hex port', target: () => `${API_HOST}:0x${api.port.toString(16)}` },
    { attack: 'two ports', target: () => `${API_HOST}:${api.port}:${api.port}` },
    { attack: 'missing port', target: () => API_HOST },
    { attack: 'empty port', target: () => `${API_HOST}:` },
    { attack: 'missing host', target: () => `:${api.port}` },
    { attack: 'bracketed name', target: () => `[${API_HOST}]:${api.port}` },
    { attack: 'unclosed bracket', target: () => `[::1:${api.port}` },
    { attack: 'IPv6 zone id', target: () => `[fe80::1%25lo]:${api.port}` },
    { attack: 'name ending in number', target: () => `attacker.123:${api.port}` },
    { attack: 'five-part dotted number', target: () => `127.0.0.0.1:${api.port}` },
    { attack: 'octet above 255', target: () => `127.0.0.256:${api.port}` },
    { attack: 'over-long label', target: () => `${'a'.repeat(64)}.example.test:${api.port}` },
  ];
  for (const { attack, target } of malformed) {
    test(`CONNECT with ${attack} gets 400`, async (t) => {
      const proxy = await startProxy(t);
      const { response, socket } = await advConnect(proxy.proxyPort, target(), advProxyAuthorization(proxy.session));
      socket.destroy();

      advAssertRefused(response, 400, 'bad_request');
      assert.deepEqual(proxy.guard.dials, [], 'nothing may be dialled for a malformed target');
      assertNoLeak();
    });
  }
});

describe('ports and IP literals', () => {
  test('other port of credentialed host bare', async (t) => {
    const proxy = await startProxy(t);

    const response = await advRequestThroughTunnel(proxy, `${API_HOST}:${portAttacker.port}`, { servername: API_HOST, ca: pki.caPem, skipNameCheck: true }, {
      headers: { host: `${API_HOST}:${portAttacker.port}` },
    });

    assert.equal(response.status, 200);
    assert.equal(portAttacker.requests.at(-1)?.headers.authorization, undefined);
    assertNoLeak();
  });

  for (const literal of ['127.0.0.1', '2130706433', '0x7f.1', '0177.0.0.1', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]']) {
    test(`IP literal ${literal} selects no credential`, async (t) => {
      const proxy = await startProxy(t);
      const before = api.requests.length;

      // The SNI and Host name the credentialed host, which must not matter for an IP target.
      const response = await advRequestThroughTunnel(proxy, `${literal}:${api.port}`, { servername: API_HOST, ca: pki.caPem }, {
        headers: { host: `${API_HOST}:${api.port}` },
      });

      assert.equal(response.status, 200);
      assert.equal(api.requests.length, before + 1);
      assert.equal(api.requests.at(-1)?.headers.authorization, undefined, 'an IP-literal tunnel is opaque');
      advAssertNoSecretReached({ requests: api.requests.slice(before) }, [SECRET], 'the upstream behind an IP literal');
    });
  }
});

describe('absolute-form targets', () => {
  const cases = [
    { attack: 'credentialed host as userinfo', url: () => `https://${API_HOST}@attacker.test:${api.port}/` },
    { attack: 'userinfo before credentialed host', url: () => `https://user:pass@${API_HOST}:${api.port}/` },
    { attack: 'empty userinfo', url: () => `https://@${API_HOST}:${api.port}/` },
    { attack: 'backslash before at', url: () => `https://attacker.test\\@${API_HOST}:${api.port}/` },
  ];
  for (const { attack, url } of cases) {
    test(`absolute-form ${attack} gets 400`, async (t) => {
      const proxy = await startProxy(t);
      const response = await advAbsoluteForm(proxy, url());
      advAssertRefused(response, 400, 'bad_request');
      assert.deepEqual(proxy.guard.dials, []);
      assertNoLeak();
    });
  }
});

describe('shared-domain wildcards', () => {
  const refused = [
    '*.my.salesforce.com',
    '*.sandbox.my.salesforce.com',
    '*.salesforce.com',
    '*.force.com',
    '*.atlassian.net',
    '*.zendesk.com',
    '*.herokuapp.com',
    '*.github.io',
    '*.vercel.app',
    '*.ATLASSIAN.NET.',
  ];

  test('shared wildcards refused in bundles file', async (t) => {
    const proxy = await startProxy(t);
    for (const pattern of refused) {
      const applied = await proxy.harness.admin<ApiErrorBody>('POST', '/api/v1/apply', bundlesWith([pattern]));
      assert.equal(applied.status, 400, `${pattern} was accepted`);
      assert.equal(applied.body.error.code, 'invalid_config');
      const issue = applied.body.error.issues?.find((entry) => entry.path.endsWith('allowedWebsites[0]'));
      assert.ok(issue, `${pattern}: ${JSON.stringify(applied.body)}`);
      assert.match(issue.message, /many customers share/);
      assert.match(issue.message, /unsafeAllowSharedDomainWildcard: true/);
      assert.match(issue.message, /"yourcompany\./);
    }
  });

  test('tenant hosts and opt-out accepted', async (t) => {
    const proxy = await startProxy(t);
    for (const pattern of ['acme.my.salesforce.com', '*.acme.my.salesforce.com', 'acme.atlassian.net', '*.googleapis.com']) {
      const applied = await proxy.harness.admin('POST', '/api/v1/apply', bundlesWith([pattern]));
      assert.equal(applied.status, 200, `${pattern}: ${JSON.stringify(applied.body)}`);
    }
    const optedOut = await proxy.harness.admin('POST', '/api/v1/apply', bundlesWith(['*.atlassian.net'], { unsafeAllowSharedDomainWildcard: true }));
    assert.equal(optedOut.status, 200, JSON.stringify(optedOut.body));
  });

  test('shared wildcard refused by admin API', async (t) => {
    const proxy = await startProxy(t);
    const bundles = await proxy.harness.admin<Array<{ id: string }> | { bundles: Array<{ id: string }> }>('GET', '/api/v1/bundles');
    const list = Array.isArray(bundles.body) ? bundles.body : bundles.body.bundles;
    const bundleId = list[0]!.id;

    const created = await proxy.harness.admin<ApiErrorBody>('POST', `/api/v1/bundles/${bundleId}/credentials`, {
      name: 'jira',
      type: 'bearer_token',
      token: 'sk-jira',
      allowedWebsites: ['*.atlassian.net'],
    });
    assert.equal(created.status, 400);
    assert.equal(created.body.error.code, 'invalid_request');
    assert.match(created.body.error.message, /many customers share/);

    const credentials = await proxy.harness.admin<Array<{ id: string; name: string }> | { credentials: Array<{ id: string; name: string }> }>(
      'GET',
      `/api/v1/bundles/${bundleId}/credentials`,
    );
    const credentialList = Array.isArray(credentials.body) ? credentials.body : credentials.body.credentials;
    const stored = credentialList.find((entry) => entry.name === 'api')!;
    const patched = await request(`${proxy.harness.proxy.adminUrl}/api/v1/bundles/${bundleId}/credentials/${stored.id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${proxy.harness.proxy.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ allowedWebsites: ['*.zendesk.com'] }),
    });
    const patchedBody = (await patched.body.json()) as ApiErrorBody;
    assert.equal(patched.statusCode, 400, JSON.stringify(patchedBody));
    assert.match(patchedBody.error.message, /many customers share/);
  });
});

interface ApiErrorBody {
  error: { code: string; message: string; issues?: Array<{ path: string; message: string }> };
}

function bundlesWith(allowedWebsites: string[], extra: Record<string, unknown> = {}): unknown {
  return {
    egress: { default: 'allow' },
    bundles: [{ name: 'adversarial', channels: ['C0ADV'], credentials: [{ name: 'api', type: 'bearer_token', token: SECRET, allowedWebsites, ...extra }] }],
  };
}
