import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { auditDecision, pathForAudit } from '../../src/audit/auditLog.ts';
import { applyQueryInjection, DefaultCredentialInjector } from '../../src/credentials/injection.ts';
import type { Credential, CredentialSettings } from '../../src/domain/types.ts';
import { formatAuthority, parseConnectAuthority } from '../../src/proxy/authority.ts';
import { parseResolvePin } from '../../src/proxy/dialer.ts';
import { downstreamResponseHeaders, upstreamRequestHeaders } from '../../src/proxy/headers.ts';
import { normalizeRequestTarget } from '../../src/proxy/tlsInterceptor.ts';
import { hashSessionToken, sessionTokenMatches, generateSessionToken } from '../../src/sessions/sessionToken.ts';

describe('parseConnectAuthority', () => {
  const cases: Array<[string, { host: string; port: number } | null]> = [
    ['api.example.test:443', { host: 'api.example.test', port: 443 }],
    ['[2001:db8::7]:8443', { host: '2001:db8::7', port: 8443 }],
    ['2001:db8::7:443', { host: '2001:db8::7', port: 443 }],
    ['api.example.test', null],
    ['api.example.test:0', null],
    ['api.example.test:65536', null],
    ['user@api.example.test:443', null],
    ['api.example.test:443/path', null],
    ['[not-ipv6]:443', null],
    [':443', null],
    ['', null],
  ];
  for (const [input, expected] of cases) {
    test(`${JSON.stringify(input)}`, () => {
      assert.deepEqual(parseConnectAuthority(input), expected);
    });
  }

  test('formatAuthority brackets IPv6 and drops the default port', () => {
    assert.equal(formatAuthority('::1', 8443), '[::1]:8443');
    assert.equal(formatAuthority('api.test', 443, 443), 'api.test');
    assert.equal(formatAuthority('api.test', 8443, 443), 'api.test:8443');
  });
});

describe('parseResolvePin', () => {
  test('accepts host, port and address', () => {
    assert.deepEqual(parseResolvePin('API.example.test:443:127.0.0.1'), { host: 'api.example.test', port: 443, address: '127.0.0.1' });
    assert.deepEqual(parseResolvePin('api.example.test:8443:[::1]'), { host: 'api.example.test', port: 8443, address: '::1' });
  });

  test('rejects a value without an address with the expected form', () => {
    assert.throws(() => parseResolvePin('api.example.test:443'), {
      message: '--resolve "api.example.test:443" is invalid: give HOST:PORT:ADDRESS, for example api.example.com:443:127.0.0.1',
    });
    assert.throws(() => parseResolvePin('api.example.test:443:not-an-ip'), /is invalid/);
  });
});

describe('headers', () => {
  test('upstream headers drop hop-by-hop, proxy-owned and listed headers', () => {
    const raw = [
      'Host', 'evil.test',
      'Connection', 'keep-alive, X-Drop-Me',
      'X-Drop-Me', '1',
      'Proxy-Authorization', 'Basic abc',
      'X-Agent-Proxy-Error', 'forged',
      'Transfer-Encoding', 'chunked',
      'Expect', '100-continue',
      'TE', 'trailers',
      'Authorization', 'Bearer client',
      'Accept', 'a',
      'Accept', 'b',
    ];
    const headers = upstreamRequestHeaders(raw, { host: 'api.test', remove: new Set(['authorization']) });

    assert.deepEqual(headers, [
      ['host', 'api.test'],
      ['TE', 'trailers'],
      ['Accept', 'a'],
      ['Accept', 'b'],
    ]);
  });

  test('downstream headers keep duplicates and drop proxy-owned ones', () => {
    const headers = downstreamResponseHeaders({
      'set-cookie': ['a=1', 'b=2'],
      'x-agent-proxy-error': 'forged',
      'proxy-authenticate': 'Basic',
      connection: 'close',
      'content-type': 'text/plain',
    });

    assert.deepEqual(headers, [
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['content-type', 'text/plain'],
    ]);
  });
});

describe('injection', () => {
  function credentialOf(settings: CredentialSettings, secrets: Record<string, string>): Credential {
    return { id: 'c', bundleId: 'b', name: 'n', settings, secrets, allowedWebsites: ['x.test'], access: 'read_write', rules: [], extraHeaders: { 'X-Version': '2' } };
  }

  test('bearer, basic and api_key headers', async () => {
    const injector = new DefaultCredentialInjector();

    assert.deepEqual((await injector.prepare(credentialOf({ type: 'bearer_token' }, { token: 'tok' }))).headers, [['authorization', 'Bearer tok'], ['X-Version', '2']]);
    assert.deepEqual((await injector.prepare(credentialOf({ type: 'basic_auth', username: 'me@x.test' }, { password: 'pw' }))).headers[0], [
      'authorization',
      `Basic ${Buffer.from('me@x.test:pw').toString('base64')}`,
    ]);
    assert.deepEqual((await injector.prepare(credentialOf({ type: 'api_key', headerName: 'X-Api-Key', prefix: 'Key ' }, { value: 'v' }))).headers[0], ['X-Api-Key', 'Key v']);
    assert.deepEqual((await injector.prepare(credentialOf({ type: 'api_key', queryParam: 'api_key' }, { value: 'v' }))).query, { name: 'api_key', value: 'v' });
  });

  test('token types fail closed with credential_unavailable', async () => {
    const injector = new DefaultCredentialInjector();
    const settings: CredentialSettings = { type: 'oauth2_client_credentials', clientId: 'id', tokenUrl: 'https://t.test/token' };

    await assert.rejects(injector.prepare(credentialOf(settings, { clientSecret: 's' })), { code: 'credential_unavailable' });
  });

  test('query injection replaces the client value and keeps the rest byte for byte', () => {
    assert.equal(applyQueryInjection('/x?a=1%2B1&api_key=mine&b=%7E', { name: 'api_key', value: 'real value' }), '/x?a=1%2B1&b=%7E&api_key=real%20value');
    assert.equal(applyQueryInjection('/x', { name: 'k', value: 'v' }), '/x?k=v');
    assert.equal(applyQueryInjection('/x?a=1', null), '/x?a=1');
  });
});

describe('request targets and audit paths', () => {
  test('dot segments are resolved before rules see the path', () => {
    assert.equal(normalizeRequestTarget('/services/data/v60.0/../../admin?x=1', 'h'), '/services/admin?x=1');
    assert.equal(normalizeRequestTarget('/a/%2e%2e/b', 'h'), '/b');
  });

  test('a request target that is not origin-form is refused', () => {
    const result = normalizeRequestTarget('*', 'h');

    assert.ok(typeof result !== 'string');
    assert.equal(result.code, 'bad_request');
  });

  test('audit decision follows code and status', () => {
    assert.equal(auditDecision(null, 200), 'allowed');
    assert.equal(auditDecision('egress_denied', 403), 'denied');
    assert.equal(auditDecision('proxy_auth_required', null), 'denied');
    assert.equal(auditDecision('upstream_unreachable', 502), 'error');
  });

  test('audit paths keep query keys and drop values', () => {
    assert.equal(pathForAudit('/search?q=secret&page=2&flag'), '/search?q=&page=&flag=');
    assert.equal(pathForAudit('/plain'), '/plain');
  });
});

describe('session tokens', () => {
  test('tokens carry 256 bits and match only their hash', () => {
    const token = generateSessionToken();

    assert.equal(Buffer.from(token, 'base64url').length, 32);
    assert.equal(sessionTokenMatches(token, hashSessionToken(token)), true);
    assert.equal(sessionTokenMatches(`${token}x`, hashSessionToken(token)), false);
  });
});
