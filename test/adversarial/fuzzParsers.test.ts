// Property-based tests (fast-check) for the parsers an attacker reaches first: the CONNECT
// authority, host names and patterns, and the egress address classifier. The classifier is
// checked against Node's WHATWG URL parser, because the sandbox's clients parse hosts that
// way: any spelling a URL parser reads as a private address must be refused here too.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatAuthority, parseConnectAuthority } from '../../src/proxy/authority.ts';
import { HostPatternError, matchHostPattern, normalizeHost, parseHostPattern } from '../../src/policy/hostPattern.ts';
import { checkAddress, classifyAddress, parseIpLiteral } from '../../src/policy/ipAddress.ts';
import { findSharedDomainUnderWildcard, MULTI_TENANT_SUFFIXES } from '../../src/policy/multiTenantSuffixes.ts';
import { advAssertRefused, advConnect, advProxyAuthorization, advStartProxy } from './helpers.ts';

const RUNS = { numRuns: 500 };
const HOSTILE_CHARACTERS = [...'abcAZ019.-_:[]@%#?/\\ *\u0000\u00a0\u0430\u3002\uff0e\u200b'];

const hostileString = fc.array(fc.constantFrom(...HOSTILE_CHARACTERS), { maxLength: 40 }).map((characters) => characters.join(''));
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
// The last label is alphabetic, because a name ending in a number is read as an IPv4 address.
const topLevelLabel = fc.stringMatching(/^[a-z]{2,6}$/);
const domainName = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 4 }), topLevelLabel)
  .map(([labels, topLevel]) => [...labels, topLevel].join('.'));
const port = fc.integer({ min: 1, max: 65535 });

function randomCase(text: string, flips: boolean[]): string {
  return [...text].map((character, index) => (flips[index % flips.length] ? character.toUpperCase() : character)).join('');
}

describe('CONNECT authority parser', () => {
  test('authority parse never throws', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), hostileString), (text) => {
        const parsed = parseConnectAuthority(text);
        if (parsed !== null) {
          assert.ok(parsed.host.length > 0);
          assert.ok(Number.isInteger(parsed.port) && parsed.port >= 1 && parsed.port <= 65535);
        }
      }),
      RUNS,
    );
  });

  test('authority round-trips through format', () => {
    fc.assert(
      fc.property(fc.oneof(domainName, fc.ipV4(), fc.ipV6()), port, (host, portNumber) => {
        const parsed = parseConnectAuthority(formatAuthority(host, portNumber));
        assert.deepEqual(parsed, { host, port: portNumber });
      }),
      RUNS,
    );
  });

  test('userinfo and delimiters always rejected', () => {
    fc.assert(
      fc.property(domainName, fc.constantFrom('@', '/', '?', '#', '\\', ' '), domainName, port, (left, delimiter, right, portNumber) => {
        assert.equal(parseConnectAuthority(`${left}${delimiter}${right}:${portNumber}`), null);
      }),
      RUNS,
    );
  });
});

describe('host names and patterns', () => {
  test('normalize never throws and is idempotent', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), hostileString), (text) => {
        const normalized = normalizeHost(text);
        if (normalized !== '') {
          assert.equal(normalizeHost(normalized), normalized);
          assert.ok(!/[A-Z@/\\%#?\s]/.test(normalized), normalized);
        }
      }),
      RUNS,
    );
  });

  test('pattern parse throws only HostPatternError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), hostileString), (text) => {
        try {
          parseHostPattern(text);
        } catch (error) {
          assert.ok(error instanceof HostPatternError, String(error));
        }
      }),
      RUNS,
    );
  });

  test('match ignores case and trailing dot', () => {
    fc.assert(
      fc.property(domainName, fc.array(fc.boolean(), { minLength: 1 }), fc.boolean(), (domain, flips, trailingDot) => {
        const host = `${randomCase(domain, flips)}${trailingDot ? '.' : ''}`;
        assert.ok(matchHostPattern(parseHostPattern(domain), host, 443, [443]));
        assert.ok(matchHostPattern(parseHostPattern(`*.${domain}`), `x.${host}`, 443, [443]));
        assert.ok(matchHostPattern(parseHostPattern(randomCase(domain, flips.map((flip) => !flip))), host, 443, [443]));
      }),
      RUNS,
    );
  });

  test('wildcard matches only below a dot', () => {
    fc.assert(
      fc.property(domainName, label, label, (domain, prefix, suffix) => {
        const pattern = parseHostPattern(`*.${domain}`);
        assert.ok(matchHostPattern(pattern, `${prefix}.${domain}`, 443, [443]));
        assert.ok(!matchHostPattern(pattern, domain, 443, [443]), 'the apex is not below itself');
        assert.ok(!matchHostPattern(pattern, `${prefix}${domain}`, 443, [443]), 'no match without a label boundary');
        assert.ok(!matchHostPattern(pattern, `${prefix}.${domain}.${suffix}`, 443, [443]), 'no match when the domain is followed by more labels');
        assert.ok(!matchHostPattern(pattern, `${prefix}.${domain}`, 8443, [443]), 'no match on another port');
      }),
      RUNS,
    );
  });

  test('exact pattern rejects look-alikes', () => {
    fc.assert(
      fc.property(domainName, label, fc.constantFrom('.', '-', ''), (domain, extra, joiner) => {
        const pattern = parseHostPattern(domain);
        assert.ok(!matchHostPattern(pattern, `${domain}${joiner}${extra}`, 443, [443]) || `${domain}${joiner}${extra}` === domain);
        assert.ok(!matchHostPattern(pattern, `${extra}${joiner}${domain}`, 443, [443]) || `${extra}${joiner}${domain}` === domain);
      }),
      RUNS,
    );
  });

  test('match never throws on hostile hosts', () => {
    const patterns = ['api.example.test', '*.example.test', '10.0.0.5', '[::1]:8443'].map((text) => parseHostPattern(text));
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), hostileString), port, (host, portNumber) => {
        for (const pattern of patterns) matchHostPattern(pattern, host, portNumber, [443]);
      }),
      RUNS,
    );
  });

  test('shared-domain wildcard found at any depth', () => {
    const suffixes = [...MULTI_TENANT_SUFFIXES];
    fc.assert(
      fc.property(fc.constantFrom(...suffixes), label, (suffix, tenant) => {
        assert.equal(findSharedDomainUnderWildcard(suffix), suffix);
        const parent = suffix.split('.').slice(1).join('.');
        if (parent.includes('.')) assert.notEqual(findSharedDomainUnderWildcard(parent), null, `*.${parent} covers ${suffix}`);
        const tenantDomain = `${tenant}.${suffix}`;
        if (!MULTI_TENANT_SUFFIXES.has(tenantDomain) && ![...MULTI_TENANT_SUFFIXES].some((other) => other.endsWith(`.${tenantDomain}`))) {
          assert.equal(findSharedDomainUnderWildcard(tenantDomain), null, `*.${tenantDomain} covers one tenant only`);
        }
      }),
      RUNS,
    );
  });
});

// IPv4 networks that must never be reached without an allowance, as [first address, size].
const PRIVATE_IPV4_BLOCKS: Array<[number, number]> = [
  [0x0a000000, 2 ** 24],
  [0xac100000, 2 ** 20],
  [0xc0a80000, 2 ** 16],
  [0x7f000000, 2 ** 24],
  [0xa9fe0000, 2 ** 16],
  [0x00000000, 2 ** 24],
  [0x64400000, 2 ** 22],
];

const privateIpv4 = fc
  .tuple(fc.constantFrom(...PRIVATE_IPV4_BLOCKS), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }))
  .map(([[start, size], fraction]) => start + Math.floor(fraction * size));

function dotted(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
}

/** Writes `value` in one of the IPv4 spellings inet_aton and WHATWG URL accept: 1 to 4 parts, each decimal, octal or hex. */
function spellIpv4(value: number, partCount: number, radixes: number[]): string {
  const bytes = [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff);
  const parts: number[] = [...bytes.slice(0, partCount - 1)];
  const restBytes = bytes.slice(partCount - 1);
  parts.push(restBytes.reduce((total, byte) => total * 256 + byte, 0));
  return parts
    .map((part, index) => {
      const radix = radixes[index % radixes.length];
      if (radix === 16) return `0x${part.toString(16)}`;
      if (radix === 8) return `0${part.toString(8)}`;
      return String(part);
    })
    .join('.');
}

describe('egress address classifier', () => {
  test('URL-accepted spellings of private IPv4 refused', () => {
    fc.assert(
      fc.property(privateIpv4, fc.integer({ min: 1, max: 4 }), fc.array(fc.constantFrom(8, 10, 16), { minLength: 1, maxLength: 4 }), fc.boolean(), (value, partCount, radixes, trailingDot) => {
        const spelling = `${spellIpv4(value, partCount, radixes)}${trailingDot ? '.' : ''}`;
        const canonical = dotted(value);
        assert.equal(new URL(`http://${spelling}/`).hostname, canonical, 'the WHATWG URL parser reads the spelling as this address');
        assert.equal(parseIpLiteral(spelling)?.address, canonical);
        assert.equal(checkAddress(spelling, []).allowed, false);
      }),
      RUNS,
    );
  });

  test('IPv4 parse agrees with WHATWG URL', () => {
    const ipv4ish = fc.array(fc.constantFrom(...'0123456789abcdefxX.'), { minLength: 1, maxLength: 20 }).map((characters) => characters.join(''));
    fc.assert(
      fc.property(ipv4ish, (text) => {
        let hostname: string | null = null;
        try {
          hostname = new URL(`http://${text}/`).hostname;
        } catch {
          hostname = null;
        }
        const literal = parseIpLiteral(text);
        if (literal !== null) {
          assert.equal(hostname, literal.address, `${text}: the URL parser reads another host`);
        } else if (hostname !== null) {
          assert.ok(!/^\d+\.\d+\.\d+\.\d+$/.test(hostname), `${text}: the URL parser reads the address ${hostname}, which parseIpLiteral missed`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('IPv6 forms embedding private IPv4 refused', () => {
    fc.assert(
      fc.property(privateIpv4, fc.constantFrom('::ffff:', '64:ff9b::', '::'), (value, prefix) => {
        const address = `${prefix}${dotted(value)}`;
        assert.notEqual(classifyAddress(address).class, 'public', address);
        assert.equal(checkAddress(address, []).allowed, false, address);
        assert.equal(checkAddress(`[${address}]`, []).allowed, false, address);
      }),
      RUNS,
    );
  });

  test('classifier never throws on addresses', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.ipV6()), (address) => {
        const literal = parseIpLiteral(address);
        assert.ok(literal, `${address} should parse`);
        classifyAddress(literal.address);
        checkAddress(address, []);
      }),
      RUNS,
    );
  });
});

describe('live proxy fuzz', () => {
  test('hostile CONNECT targets never dialled', async (t) => {
    // Every name resolves to a private address, so no target may be dialled or accepted.
    const anyName = new Proxy({}, { get: () => ['10.0.0.1'] }) as Record<string, readonly string[]>;
    const proxy = await advStartProxy(t, { records: anyName, upstreamCaPem: [] });
    const targets = fc.sample(fc.tuple(fc.oneof(hostileString, domainName, fc.ipV4Extended()), fc.oneof(port.map(String), hostileString)), { numRuns: 60, seed: 6 });

    for (const [host, portText] of targets) {
      const target = `${host}:${portText}`.replace(/[\r\n ]/g, '');
      // A public IP literal would rightly be dialled, and the connect guard keeps tests on loopback.
      const parsed = parseConnectAuthority(target);
      const literal = parsed ? parseIpLiteral(parsed.host) : null;
      if (target === '' || (literal !== null && classifyAddress(literal.address).class === 'public')) continue;
      const { response, socket } = await advConnect(proxy.proxyPort, target, advProxyAuthorization(proxy.session));
      socket.destroy();
      assert.notEqual(response.status, 200, `CONNECT ${JSON.stringify(target)} was accepted`);
      if (response.status === 403) advAssertRefused(response, 403, 'egress_denied');
      else assert.ok([400, 403].includes(response.status), `${JSON.stringify(target)}: ${response.status} ${response.body}`);
    }
    assert.deepEqual(proxy.guard.dials, []);
  });
});
