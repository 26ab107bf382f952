import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  HostPatternError,
  matchHostPattern,
  normalizeHost,
  parseHostPattern,
  patternSpecificity,
} from '../../src/policy/hostPattern.ts';

const HTTPS_PORTS = [443] as const;
const EGRESS_PORTS = [80, 443] as const;

describe('normalizeHost', () => {
  const cases: Array<[string, string]> = [
    ['API.Example.COM', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['example.com。', 'example.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['BÜCHER.example', 'xn--bcher-kva.example'],
    ['exаmple.com', 'xn--exmple-4nf.com'],
    ['ＥＸＡＭＰＬＥ.com', 'example.com'],
    ['a_b.example.com', 'a_b.example.com'],
    ['[::1]', '::1'],
    ['[0:0::1]', '::1'],
    ['::ffff:127.0.0.1', '::ffff:7f00:1'],
    ['0x7f.1', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['a..example.com', ''],
    ['.example.com', ''],
    ['example.com..', ''],
    ['', ''],
    ['example.com/.evil.net', ''],
    ['example.com#.evil.net', ''],
    ['example.com?.evil.net', ''],
    ['ex%61mple.com', ''],
    ['user@example.com', ''],
    ['exa mple.com', ''],
    ['*.example.com', ''],
    ['example.com:443', ''],
    ['256.1.1.1', ''],
    ['example.123', ''],
    ['[fe80::1%25eth0]', ''],
    ['[127.0.0.1]', ''],
    ['xn--a.com', ''],
    [`${'a'.repeat(64)}.com`, ''],
    [`${'a.'.repeat(127)}com`, ''],
  ];
  for (const [input, expected] of cases) {
    test(`normalizes ${JSON.stringify(input)}`, () => {
      assert.equal(normalizeHost(input), expected);
    });
  }
});

describe('parseHostPattern', () => {
  const valid: Array<[string, { wildcard: boolean; domain: string; port: number | null }]> = [
    ['api.example.com', { wildcard: false, domain: 'api.example.com', port: null }],
    ['*.example.com', { wildcard: true, domain: 'example.com', port: null }],
    ['api.example.com:8443', { wildcard: false, domain: 'api.example.com', port: 8443 }],
    ['*.example.com:8443', { wildcard: true, domain: 'example.com', port: 8443 }],
    ['API.Example.COM.', { wildcard: false, domain: 'api.example.com', port: null }],
    ['*.EXAMPLE.com.', { wildcard: true, domain: 'example.com', port: null }],
    ['bücher.example', { wildcard: false, domain: 'xn--bcher-kva.example', port: null }],
    ['*.bücher.example', { wildcard: true, domain: 'xn--bcher-kva.example', port: null }],
    ['localhost', { wildcard: false, domain: 'localhost', port: null }],
    ['localhost:8080', { wildcard: false, domain: 'localhost', port: 8080 }],
    ['10.0.0.5', { wildcard: false, domain: '10.0.0.5', port: null }],
    ['10.0.0.5:8080', { wildcard: false, domain: '10.0.0.5', port: 8080 }],
    ['10.0.0.5.', { wildcard: false, domain: '10.0.0.5', port: null }],
    ['[::1]', { wildcard: false, domain: '::1', port: null }],
    ['[::1]:8443', { wildcard: false, domain: '::1', port: 8443 }],
    ['::1', { wildcard: false, domain: '::1', port: null }],
    ['[2001:DB8::1]:1', { wildcard: false, domain: '2001:db8::1', port: 1 }],
    ['example.com:65535', { wildcard: false, domain: 'example.com', port: 65535 }],
    ['  api.example.com ', { wildcard: false, domain: 'api.example.com', port: null }],
  ];
  for (const [input, expected] of valid) {
    test(`parses ${JSON.stringify(input)}`, () => {
      assert.deepEqual(parseHostPattern(input), { raw: input, ...expected });
    });
  }

  const invalid: Array<[string, string]> = [
    ['https://x.com', '"https://x.com" is a URL; give the host name (x.com)'],
    ['https://x.com:8443/api', '"https://x.com:8443/api" is a URL; give the host name (x.com:8443)'],
    ['https://x.com:443/', '"https://x.com:443/" is a URL; give the host name (x.com)'],
    ['http://', '"http://" is a URL; give the host name only'],
    ['x.com/api', '"x.com/api" contains a path; give the host name only'],
    ['*.com', '"*.com" is a wildcard over a top-level domain; name a domain under it'],
    ['*.localhost:8080', '"*.localhost:8080" is a wildcard over a top-level domain; name a domain under it'],
    ['api.*.example.com', '"api.*.example.com" has a wildcard that is not the first label; only "*.domain" is supported'],
    ['*.*.example.com', '"*.*.example.com" has a wildcard that is not the first label; only "*.domain" is supported'],
    ['example.*', '"example.*" has a wildcard that is not the first label; only "*.domain" is supported'],
    ['**.example.com', '"**.example.com" has the invalid wildcard label "**"; only "*.domain" is supported'],
    ['*api.example.com', '"*api.example.com" has the invalid wildcard label "*api"; only "*.domain" is supported'],
    ['*', '"*" matches every host; use the egress default instead'],
    ['*:443', '"*:443" matches every host; use the egress default instead'],
    ['a..b', '"a..b" has an empty label; remove the extra dot'],
    ['*..example.com', '"*..example.com" has an empty label; remove the extra dot'],
    ['example.com..', '"example.com.." has an empty label; remove the extra dot'],
    [
      '.example.com',
      '".example.com" starts with a dot; write "*.example.com" for its subdomains or "example.com" for the domain itself',
    ],
    ['exa mple.com', '"exa mple.com" contains the character " ", which is not allowed in a host name'],
    ['user@x.com', '"user@x.com" contains the character "@", which is not allowed in a host name'],
    ['x.com?a=1', '"x.com?a=1" contains the character "?", which is not allowed in a host name'],
    ['x%2ecom', '"x%2ecom" contains the character "%", which is not allowed in a host name'],
    ['xn--a.com', '"xn--a.com" is not a valid host name; check it for invalid characters or an invalid "xn--" label'],
    [`${'a'.repeat(64)}.com`, `"${'a'.repeat(64)}.com" has the label "${'a'.repeat(64)}", which is longer than 63 characters`],
    ['x.com:0', '"x.com:0" has the invalid port "0"; give a port from 1 to 65535'],
    ['x.com:65536', '"x.com:65536" has the invalid port "65536"; give a port from 1 to 65535'],
    ['x.com:', '"x.com:" has the invalid port ""; give a port from 1 to 65535'],
    ['x.com:https', '"x.com:https" has the invalid port "https"; give a port from 1 to 65535'],
    ['x.com:-1', '"x.com:-1" has the invalid port "-1"; give a port from 1 to 65535'],
    ['[::1]:0', '"[::1]:0" has the invalid port "0"; give a port from 1 to 65535'],
    ['[::1', '"[::1" has "[" without "]"; write an IPv6 address as "[2001:db8::1]"'],
    ['[::1]x', '"[::1]x" has text after "]"; only ":port" may follow an IPv6 address'],
    ['[fe80::1%eth0]', '"[fe80::1%eth0]" is not a valid IPv6 address; write it as "[2001:db8::1]" or "[2001:db8::1]:8443"'],
    ['[10.0.0.5]', '"[10.0.0.5]" is not a valid IPv6 address; write it as "[2001:db8::1]" or "[2001:db8::1]:8443"'],
    [
      '256.1.1.1',
      '"256.1.1.1" ends in a number but is not a valid IPv4 address; give a host name or an address such as "10.0.0.5"',
    ],
    [
      'example.123',
      '"example.123" ends in a number but is not a valid IPv4 address; give a host name or an address such as "10.0.0.5"',
    ],
    ['0x7f.1', '"0x7f.1" is an unusual spelling of 127.0.0.1; write "127.0.0.1"'],
    ['10.1:8080', '"10.1:8080" is an unusual spelling of 10.0.0.1; write "10.0.0.1"'],
    ['*.10.0.0.5', '"*.10.0.0.5" puts a wildcard on an IP address; give the address alone ("10.0.0.5")'],
    ['', 'host pattern is empty; give a host name such as "api.example.com"'],
    ['   ', 'host pattern is empty; give a host name such as "api.example.com"'],
  ];
  for (const [input, message] of invalid) {
    test(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseHostPattern(input), (error: unknown) => {
        assert.ok(error instanceof HostPatternError, `expected HostPatternError, got ${String(error)}`);
        assert.equal(error.name, 'HostPatternError');
        assert.equal(error.message, message);
        return true;
      });
    });
  }
});

describe('matchHostPattern', () => {
  const cases: Array<{ pattern: string; host: string; port?: number; ports?: readonly number[]; expected: boolean }> = [
    // Exact patterns.
    { pattern: 'api.example.com', host: 'api.example.com', expected: true },
    { pattern: 'api.example.com', host: 'API.EXAMPLE.COM', expected: true },
    { pattern: 'api.example.com', host: 'api.example.com.', expected: true },
    { pattern: 'API.example.com.', host: 'api.example.com', expected: true },
    { pattern: 'api.example.com', host: 'example.com', expected: false },
    { pattern: 'api.example.com', host: 'v2.api.example.com', expected: false },
    { pattern: 'api.example.com', host: 'evil-api.example.com', expected: false },
    { pattern: 'api.example.com', host: 'api.example.com.attacker.net', expected: false },
    { pattern: 'api.example.com', host: 'apiexample.com', expected: false },
    { pattern: 'api.example.com', host: 'api.example.co', expected: false },
    { pattern: 'api.example.com', host: 'api.example.com..', expected: false },
    { pattern: 'api.example.com', host: 'api..example.com', expected: false },
    { pattern: 'api.example.com', host: 'api.example.com/.attacker.net', expected: false },
    { pattern: 'api.example.com', host: 'api.example.com#.attacker.net', expected: false },
    { pattern: 'api.example.com', host: 'api%2eexample.com', expected: false },

    // Wildcard patterns.
    { pattern: '*.example.com', host: 'a.example.com', expected: true },
    { pattern: '*.example.com', host: 'a.b.example.com', expected: true },
    { pattern: '*.example.com', host: 'A.Example.Com.', expected: true },
    { pattern: '*.example.com', host: 'example.com', expected: false },
    { pattern: '*.example.com', host: 'evilexample.com', expected: false },
    { pattern: '*.example.com', host: 'example.com.evil.net', expected: false },
    { pattern: '*.example.com', host: 'a.example.com.evil.net', expected: false },
    { pattern: '*.example.com', host: '.example.com', expected: false },
    { pattern: '*.example.com', host: 'a..example.com', expected: false },
    { pattern: '*.example.com', host: '*.example.com', expected: false },
    { pattern: '*.example.com', host: 'example.com.', expected: false },

    // Internationalized names compare after punycode, so a look-alike never matches.
    { pattern: 'example.com', host: 'exаmple.com', expected: false },
    { pattern: '*.example.com', host: 'api.exаmple.com', expected: false },
    { pattern: 'exаmple.com', host: 'xn--exmple-4nf.com', expected: true },
    { pattern: 'exаmple.com', host: 'example.com', expected: false },
    { pattern: 'bücher.example', host: 'BÜCHER.example', expected: true },
    { pattern: 'xn--bcher-kva.example', host: 'bücher.example', expected: true },
    { pattern: 'example.com', host: 'ＥＸＡＭＰＬＥ.com', expected: true },

    // IP literals.
    { pattern: '10.0.0.5', host: '10.0.0.5', expected: true },
    { pattern: '10.0.0.5', host: '0xa.0.0.5', expected: true },
    { pattern: '10.0.0.5', host: '167772165', expected: true },
    { pattern: '10.0.0.5', host: '10.0.0.6', expected: false },
    { pattern: '[::1]', host: '::1', expected: true },
    { pattern: '[::1]', host: '[0:0:0:0:0:0:0:1]', expected: true },
    { pattern: '[::1]', host: '127.0.0.1', expected: false },

    // Ports.
    { pattern: 'api.example.com', host: 'api.example.com', port: 443, ports: HTTPS_PORTS, expected: true },
    { pattern: 'api.example.com', host: 'api.example.com', port: 80, ports: HTTPS_PORTS, expected: false },
    { pattern: 'api.example.com', host: 'api.example.com', port: 80, ports: EGRESS_PORTS, expected: true },
    { pattern: 'api.example.com', host: 'api.example.com', port: 8443, ports: EGRESS_PORTS, expected: false },
    { pattern: 'api.example.com:8443', host: 'api.example.com', port: 8443, expected: true },
    { pattern: 'api.example.com:8443', host: 'api.example.com', port: 443, expected: false },
    { pattern: '*.example.com:8443', host: 'a.example.com', port: 8443, expected: true },
    { pattern: '*.example.com:8443', host: 'a.example.com', port: 443, expected: false },
    { pattern: '[::1]:8443', host: '[::1]', port: 8443, expected: true },
    { pattern: 'api.example.com', host: 'api.example.com', port: 443, ports: [], expected: false },
  ];
  for (const { pattern, host, port = 443, ports = HTTPS_PORTS, expected } of cases) {
    test(`${pattern} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(host)} on port ${port} (default ${ports.join(', ') || 'none'})`, () => {
      assert.equal(matchHostPattern(parseHostPattern(pattern), host, port, ports), expected);
    });
  }

  test('wildcard never matches an IP address', () => {
    // A hand-built pattern, since parseHostPattern rejects "*.0.0.1".
    const pattern = { raw: '*.0.0.1', wildcard: true, domain: '0.0.1', port: null };
    assert.equal(matchHostPattern(pattern, '127.0.0.1', 443, HTTPS_PORTS), false);
  });
});

describe('patternSpecificity', () => {
  const rank = (pattern: string): number => patternSpecificity(parseHostPattern(pattern));

  test('ranks exact host above any wildcard', () => {
    assert.ok(rank('example.com') > rank('*.a.b.c.d.e.f.example.com:8443'));
    const deepestWildcard = `*.${'a.'.repeat(124)}com:1`;
    assert.ok(rank('example.com') > rank(deepestWildcard));
  });

  test('ranks deeper wildcard above shallower', () => {
    assert.ok(rank('*.api.example.com') > rank('*.example.com'));
    assert.ok(rank('*.api.example.com') > rank('*.example.com:8443'));
  });

  test('ranks explicit port above none', () => {
    assert.ok(rank('api.example.com:443') > rank('api.example.com'));
    assert.ok(rank('*.example.com:443') > rank('*.example.com'));
  });

  test('ranks equal patterns equally', () => {
    assert.equal(rank('a.example.com'), rank('b.example.com'));
    assert.equal(rank('*.a.example.com'), rank('*.b.example.com'));
  });

  test('returns documented values', () => {
    assert.equal(rank('*.example.com'), 4);
    assert.equal(rank('*.example.com:8443'), 5);
    assert.equal(rank('api.example.com'), 256);
    assert.equal(rank('api.example.com:8443'), 257);
  });
});
