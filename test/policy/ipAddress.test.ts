import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  checkAddress,
  cidrContains,
  classifyAddress,
  formatCidr,
  looksLikeIpLiteral,
  parseCidr,
  parseIpLiteral,
} from '../../src/policy/ipAddress.ts';
import type { AddressClass } from '../../src/policy/ipAddress.ts';

/** Returns the hostname that the WHATWG URL parser gives `host`, without IPv6 brackets, or null when it rejects it. */
function urlHostname(host: string): string | null {
  try {
    return new URL(`http://${host}/`).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return null;
  }
}

describe('parseIpLiteral', () => {
  const ipv4Spellings: Array<[string, string]> = [
    ['127.0.0.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['0x7f.0.0.1', '127.0.0.1'],
    ['0X7F.0.0.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['0x0000000000000000007f.1', '127.0.0.1'],
    ['0', '0.0.0.0'],
    ['0x', '0.0.0.0'],
    ['4294967295', '255.255.255.255'],
    ['169.254.43518', '169.254.169.254'],
    ['0xa9fea9fe', '169.254.169.254'],
    ['10.0.0.5', '10.0.0.5'],
  ];
  for (const [input, expected] of ipv4Spellings) {
    test(`reads IPv4 spelling ${input}`, () => {
      assert.deepEqual(parseIpLiteral(input), { family: 4, address: expected });
    });
  }

  const ipv6Spellings: Array<[string, string]> = [
    ['::1', '::1'],
    ['[::1]', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['[::]', '::'],
    ['::ffff:127.0.0.1', '::ffff:7f00:1'],
    ['::ffff:7f00:1', '::ffff:7f00:1'],
    ['[::FFFF:7F00:1]', '::ffff:7f00:1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0000:0000:0000::0001', '2001:db8::1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'],
    ['fd00:ec2::254', 'fd00:ec2::254'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ];
  for (const [input, expected] of ipv6Spellings) {
    test(`reads IPv6 spelling ${input}`, () => {
      assert.deepEqual(parseIpLiteral(input), { family: 6, address: expected });
    });
  }

  const notLiterals = [
    'example.com',
    '1.example.com',
    '123abc',
    '0x7f.a',
    'localhost',
    '',
    '256.1.1.1',
    '4294967296',
    '1.2.3.4.5',
    '08.0.0.1',
    '1.2.3.0x100',
    '1..2',
    'a.0x7f',
    '127.0.0.1..',
    ' 127.0.0.1',
    'fe80::1%eth0',
    '[fe80::1%25eth0]',
    '[1.2.3.4]',
    '[::1',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '::ffff:127.0.0.01',
    '::ffff:127.1',
    '12345::1',
  ];
  for (const input of notLiterals) {
    test(`returns null for ${JSON.stringify(input)}`, () => {
      assert.equal(parseIpLiteral(input), null);
    });
  }

  test('agrees with the WHATWG URL parser', () => {
    const inputs = [
      ...ipv4Spellings.map(([input]) => input),
      ...notLiterals.filter((input) => !/[\s%[\]]/.test(input) && input !== ''),
      '0.0x100.1',
      '1.0x10000',
      '1.2.0x10000',
      '1.2.0xffff',
      '1.0xffffff',
      '00000000000000000000127.1',
      '09',
      '0x.0x.0x.0x',
    ];
    for (const input of inputs) {
      const expected = urlHostname(input);
      const literal = parseIpLiteral(input);
      if (expected === null || !/^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(expected)) {
        assert.equal(literal, null, `URL parser reads ${input} as ${expected}`);
      } else {
        assert.equal(literal?.address, expected, `URL parser reads ${input} as ${expected}`);
      }
    }
  });

  test('agrees with the URL parser on generated IPv4 spellings', () => {
    // A fixed-seed linear congruential generator keeps the cases the same on every run.
    let seed = 12345;
    const random = (limit: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % limit;
    };
    const spell = (value: number): string => {
      const style = random(3);
      if (style === 0) return String(value);
      if (style === 1) return `0${value.toString(8)}`;
      return `0x${value.toString(16)}`;
    };

    for (let i = 0; i < 2000; i++) {
      const address = random(2 ** 31) * 2 + random(2);
      const bytes = [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256);
      const partCount = 1 + random(4);
      const parts = bytes.slice(0, partCount - 1).map(spell);
      const lastBytes = bytes.slice(partCount - 1);
      parts.push(spell(lastBytes.reduce((total, byte) => total * 256 + byte, 0)));
      const input = parts.join('.');

      assert.equal(parseIpLiteral(input)?.address, urlHostname(input), `spelling ${input}`);
      assert.equal(parseIpLiteral(input)?.address, bytes.join('.'), `spelling ${input}`);
    }
  });

  test('agrees with the URL parser on IPv6 canonical form', () => {
    const inputs = [
      '::ffff:1.2.3.4',
      '1:0:0:2:0:0:0:3',
      '1:0:0:0:2:0:0:3',
      '0:0:1:0:0:0:0:0',
      '1:2:3:4:5:6:7:8',
      'fe80:0:0:0:0:0:0:1',
      '::1.2.3.4',
      '1::',
    ];
    for (const input of inputs) {
      assert.equal(parseIpLiteral(input)?.address, urlHostname(`[${input}]`), `address ${input}`);
    }
  });
});

describe('looksLikeIpLiteral', () => {
  const cases: Array<[string, boolean]> = [
    ['127.0.0.1', true],
    ['256.1.1.1', true],
    ['4294967296', true],
    ['1.2.3.4.5', true],
    ['example.123', true],
    ['example.0x1f', true],
    ['example.123.', true],
    ['09', true],
    ['fe80::1%eth0', true],
    ['[::1]', true],
    ['example.com', false],
    ['123abc', false],
    ['1.example.com', false],
    ['0x7f.a', false],
    ['example.0x1g', false],
    ['.', false],
    ['', false],
  ];
  for (const [input, expected] of cases) {
    test(`returns ${expected} for ${JSON.stringify(input)}`, () => {
      assert.equal(looksLikeIpLiteral(input), expected);
    });
  }
});

describe('classifyAddress', () => {
  const cases: Array<[string, AddressClass, string]> = [
    ['0.0.0.0', 'unspecified', 'unspecified address (0.0.0.0)'],
    ['0.1.2.3', 'unspecified', '"this network" address (0.0.0.0/8)'],
    ['10.20.30.40', 'private', 'private address (10.0.0.0/8)'],
    ['100.64.0.1', 'cgnat', 'carrier-grade NAT shared address (100.64.0.0/10)'],
    ['100.127.255.255', 'cgnat', 'carrier-grade NAT shared address (100.64.0.0/10)'],
    ['100.128.0.0', 'public', 'public address'],
    ['127.0.0.1', 'loopback', 'loopback address (127.0.0.0/8)'],
    ['127.255.255.254', 'loopback', 'loopback address (127.0.0.0/8)'],
    ['169.254.1.1', 'link_local', 'link-local address (169.254.0.0/16)'],
    ['172.16.0.1', 'private', 'private address (172.16.0.0/12)'],
    ['172.31.255.255', 'private', 'private address (172.16.0.0/12)'],
    ['172.32.0.0', 'public', 'public address'],
    ['192.0.0.8', 'reserved', 'IETF protocol assignment (192.0.0.0/24)'],
    ['192.0.2.1', 'documentation', 'documentation address (192.0.2.0/24, TEST-NET-1)'],
    ['192.88.99.1', 'reserved', 'deprecated 6to4 relay anycast address (192.88.99.0/24)'],
    ['192.168.1.1', 'private', 'private address (192.168.0.0/16)'],
    ['198.18.0.1', 'benchmarking', 'benchmarking address (198.18.0.0/15)'],
    ['198.19.255.255', 'benchmarking', 'benchmarking address (198.18.0.0/15)'],
    ['198.51.100.7', 'documentation', 'documentation address (198.51.100.0/24, TEST-NET-2)'],
    ['203.0.113.9', 'documentation', 'documentation address (203.0.113.0/24, TEST-NET-3)'],
    ['224.0.0.1', 'multicast', 'multicast address (224.0.0.0/4)'],
    ['239.255.255.250', 'multicast', 'multicast address (224.0.0.0/4)'],
    ['240.0.0.1', 'reserved', 'reserved address (240.0.0.0/4)'],
    ['255.255.255.254', 'reserved', 'reserved address (240.0.0.0/4)'],
    ['255.255.255.255', 'broadcast', 'limited broadcast address (255.255.255.255)'],
    ['8.8.8.8', 'public', 'public address'],
    ['1.1.1.1', 'public', 'public address'],
    ['2130706433', 'loopback', 'loopback address (127.0.0.0/8)'],

    ['169.254.169.254', 'metadata', 'cloud metadata address (AWS/GCP/Azure/OCI/DigitalOcean/OpenStack instance metadata)'],
    ['169.254.170.2', 'metadata', 'cloud metadata address (AWS ECS task metadata and credentials)'],
    ['169.254.170.23', 'metadata', 'cloud metadata address (AWS EKS Pod Identity credentials)'],
    ['169.254.169.123', 'metadata', 'cloud metadata address (AWS Time Sync Service)'],
    ['100.100.100.200', 'metadata', 'cloud metadata address (Alibaba Cloud instance metadata)'],
    ['168.63.129.16', 'metadata', 'cloud metadata address (Azure WireServer)'],
    ['fd00:ec2::254', 'metadata', 'cloud metadata address (AWS instance metadata over IPv6)'],
    ['fd00:ec2::23', 'metadata', 'cloud metadata address (AWS EKS Pod Identity credentials over IPv6)'],
    ['0xa9fea9fe', 'metadata', 'cloud metadata address (AWS/GCP/Azure/OCI/DigitalOcean/OpenStack instance metadata)'],

    ['::', 'unspecified', 'unspecified address (::)'],
    ['::1', 'loopback', 'loopback address (::1)'],
    ['fe80::1', 'link_local', 'link-local address (fe80::/10)'],
    ['febf:ffff::1', 'link_local', 'link-local address (fe80::/10)'],
    ['fec0::1', 'reserved', 'deprecated site-local address (fec0::/10)'],
    ['fc00::1', 'unique_local', 'unique local address (fc00::/7)'],
    ['fd12:3456::1', 'unique_local', 'unique local address (fc00::/7)'],
    ['ff02::1', 'multicast', 'multicast address (ff00::/8)'],
    ['2001:db8::1', 'documentation', 'documentation address (2001:db8::/32)'],
    ['3fff::1', 'documentation', 'documentation address (3fff::/20)'],
    ['100::1', 'discard', 'discard-only address (100::/64)'],
    ['2001:2::1', 'benchmarking', 'benchmarking address (2001:2::/48)'],
    ['2001:0:4136:e378::1', 'reserved', 'IETF protocol assignment (2001::/23)'],
    ['64:ff9b:1::1', 'reserved', 'local-use IPv4/IPv6 translation address (64:ff9b:1::/48)'],
    ['5f00::1', 'reserved', 'reserved address outside IPv6 global unicast (2000::/3)'],
    ['::2:0:0:1', 'reserved', 'reserved address outside IPv6 global unicast (2000::/3)'],
    ['2606:4700:4700::1111', 'public', 'public address'],
    ['2a00:1450::1', 'public', 'public address'],

    ['::ffff:127.0.0.1', 'loopback', 'loopback address (127.0.0.0/8) embedded in an IPv4-mapped address (::ffff:0:0/96)'],
    ['::ffff:7f00:1', 'loopback', 'loopback address (127.0.0.0/8) embedded in an IPv4-mapped address (::ffff:0:0/96)'],
    [
      '::ffff:169.254.169.254',
      'metadata',
      'cloud metadata address (AWS/GCP/Azure/OCI/DigitalOcean/OpenStack instance metadata) embedded in an IPv4-mapped address (::ffff:0:0/96)',
    ],
    ['::ffff:8.8.8.8', 'public', 'public address embedded in an IPv4-mapped address (::ffff:0:0/96)'],
    ['::10.0.0.1', 'private', 'private address (10.0.0.0/8) embedded in an IPv4-compatible address (::/96)'],
    ['64:ff9b::127.0.0.1', 'loopback', 'loopback address (127.0.0.0/8) embedded in a NAT64 address (64:ff9b::/96)'],
    ['64:ff9b::a9fe:a9fe', 'metadata', 'cloud metadata address (AWS/GCP/Azure/OCI/DigitalOcean/OpenStack instance metadata) embedded in a NAT64 address (64:ff9b::/96)'],
    ['64:ff9b::808:808', 'public', 'public address embedded in a NAT64 address (64:ff9b::/96)'],
    ['2002:c0a8:101::1', 'private', 'private address (192.168.0.0/16) embedded in a 6to4 address (2002::/16)'],
    ['2002:7f00:1::', 'loopback', 'loopback address (127.0.0.0/8) embedded in a 6to4 address (2002::/16)'],
    ['2002:808:808::1', 'public', 'public address embedded in a 6to4 address (2002::/16)'],
  ];
  for (const [address, expectedClass, expectedReason] of cases) {
    test(`classifies ${address} as ${expectedClass}`, () => {
      const classification = classifyAddress(address);
      assert.equal(classification.class, expectedClass);
      assert.equal(classification.reason, expectedReason);
    });
  }

  test('rejects a host name', () => {
    assert.throws(() => classifyAddress('example.com'), {
      message: '"example.com" is not an IP address; resolve the host name first and pass the resolved address',
    });
  });
});

describe('parseCidr', () => {
  const valid: Array<[string, string]> = [
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['192.168.1.7', '192.168.1.7/32'],
    ['192.168.1.7/32', '192.168.1.7/32'],
    ['fc00::/7', 'fc00::/7'],
    ['FD00:EC2::/32', 'fd00:ec2::/32'],
    ['::1', '::1/128'],
    ['::/0', '::/0'],
    ['::ffff:10.0.0.0/104', '::ffff:a00:0/104'],
  ];
  for (const [input, expected] of valid) {
    test(`reads ${input}`, () => {
      assert.equal(formatCidr(parseCidr(input)), expected);
    });
  }

  test('returns family and prefix length', () => {
    assert.deepEqual(parseCidr('172.16.0.0/12'), { family: 4, address: '172.16.0.0', prefixLength: 12 });
    assert.deepEqual(parseCidr('2001:db8::/32'), { family: 6, address: '2001:db8::', prefixLength: 32 });
  });

  const invalidAddress = (text: string, address: string): string =>
    `"${text}" is not a valid CIDR: "${address}" is not an IP address; ` +
    'write an IPv4 address as four decimal numbers (10.0.0.0/8) or an IPv6 address without brackets (fc00::/7)';
  const invalid: Array<[string, string]> = [
    ['10.0.0.0/33', '"10.0.0.0/33" is not a valid CIDR: the prefix length of an IPv4 network is 0 to 32'],
    ['fc00::/129', '"fc00::/129" is not a valid CIDR: the prefix length of an IPv6 network is 0 to 128'],
    ['10.0.0.0/', '"10.0.0.0/" is not a valid CIDR: the prefix length of an IPv4 network is 0 to 32'],
    ['10.0.0.0/-1', '"10.0.0.0/-1" is not a valid CIDR: the prefix length of an IPv4 network is 0 to 32'],
    ['10.0.0.0/8/8', '"10.0.0.0/8/8" is not a valid CIDR: the prefix length of an IPv4 network is 0 to 32'],
    ['10.0.0.1/8', '"10.0.0.1/8" is not a valid CIDR: it has bits set after the prefix; write "10.0.0.0/8"'],
    ['fc00::1/7', '"fc00::1/7" is not a valid CIDR: it has bits set after the prefix; write "fc00::/7"'],
    ['10.1/16', invalidAddress('10.1/16', '10.1')],
    ['010.0.0.0/8', invalidAddress('010.0.0.0/8', '010.0.0.0')],
    ['256.0.0.0/8', invalidAddress('256.0.0.0/8', '256.0.0.0')],
    ['[::1]/128', invalidAddress('[::1]/128', '[::1]')],
    ['example.com/24', invalidAddress('example.com/24', 'example.com')],
    ['', invalidAddress('', '')],
  ];
  for (const [input, message] of invalid) {
    test(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseCidr(input), { message });
    });
  }
});

describe('cidrContains', () => {
  const cases: Array<[string, string, boolean]> = [
    ['10.0.0.0/8', '10.0.0.0', true],
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.0.0.0/8', '9.255.255.255', false],
    ['10.0.0.0/8', '0xa.1', true],
    ['10.0.0.0/8', '::ffff:10.1.2.3', true],
    ['10.0.0.0/8', '::ffff:a01:203', true],
    ['10.0.0.0/8', '::ffff:11.1.2.3', false],
    ['10.0.0.0/8', '::10.1.2.3', false],
    ['10.0.0.0/8', 'fc00::1', false],
    ['::ffff:10.0.0.0/104', '10.1.2.3', true],
    ['::ffff:10.0.0.0/104', '11.1.2.3', false],
    ['192.168.1.7', '192.168.1.7', true],
    ['192.168.1.7', '192.168.1.8', false],
    ['0.0.0.0/0', '203.0.113.1', true],
    ['0.0.0.0/0', '2001:db8::1', false],
    ['::/0', '2001:db8::1', true],
    ['fc00::/7', 'fdff:ffff::1', true],
    ['fc00::/7', 'fe00::1', false],
    ['fc00::/7', '[fd00::1]', true],
    ['fc00::/7', 'example.com', false],
  ];
  for (const [cidr, address, expected] of cases) {
    test(`${cidr} ${expected ? 'contains' : 'excludes'} ${address}`, () => {
      assert.equal(cidrContains(parseCidr(cidr), address), expected);
    });
  }
});

describe('checkAddress', () => {
  test('allows a public address', () => {
    assert.deepEqual(checkAddress('93.184.215.14', []), { allowed: true, class: 'public' });
    assert.deepEqual(checkAddress('2606:4700::1', []), { allowed: true, class: 'public' });
  });

  const rejected: Array<[string, AddressClass, string]> = [
    ['127.0.0.1', 'loopback', 'loopback address (127.0.0.0/8)'],
    ['10.1.2.3', 'private', 'private address (10.0.0.0/8)'],
    ['169.254.169.254', 'metadata', 'cloud metadata address (AWS/GCP/Azure/OCI/DigitalOcean/OpenStack instance metadata)'],
    ['::1', 'loopback', 'loopback address (::1)'],
    ['::ffff:192.168.0.1', 'private', 'private address (192.168.0.0/16) embedded in an IPv4-mapped address (::ffff:0:0/96)'],
    ['0.0.0.0', 'unspecified', 'unspecified address (0.0.0.0)'],
  ];
  for (const [address, expectedClass, reason] of rejected) {
    test(`rejects ${address} without allowed networks`, () => {
      assert.deepEqual(checkAddress(address, []), { allowed: false, class: expectedClass, reason });
    });
  }

  test('allows a private address in an allowed network', () => {
    const networks = [parseCidr('10.0.0.0/8')];
    assert.deepEqual(checkAddress('10.1.2.3', networks), { allowed: true, class: 'private' });
    assert.deepEqual(checkAddress('::ffff:10.1.2.3', networks), { allowed: true, class: 'private' });
    assert.deepEqual(checkAddress('64:ff9b::10.1.2.3', networks), { allowed: true, class: 'private' });
    assert.equal(checkAddress('192.168.0.1', networks).allowed, false);
    assert.equal(checkAddress('127.0.0.1', networks).allowed, false);
  });

  test('rejects metadata under a wider network', () => {
    const networks = [parseCidr('169.254.0.0/16'), parseCidr('0.0.0.0/0')];
    assert.deepEqual(checkAddress('169.254.169.254', networks), {
      allowed: false,
      class: 'metadata',
      reason: 'cloud metadata address (AWS/GCP/Azure/OCI/DigitalOcean/OpenStack instance metadata)',
    });
    assert.deepEqual(checkAddress('169.254.1.1', networks), { allowed: true, class: 'link_local' });
  });

  test('allows metadata named as a single address', () => {
    assert.deepEqual(checkAddress('169.254.169.254', [parseCidr('169.254.169.254')]), {
      allowed: true,
      class: 'metadata',
    });
    assert.deepEqual(checkAddress('::ffff:169.254.169.254', [parseCidr('169.254.169.254/32')]), {
      allowed: true,
      class: 'metadata',
    });
    assert.equal(checkAddress('169.254.170.2', [parseCidr('169.254.169.254/32')]).allowed, false);
  });

  test('rejects a host name', () => {
    assert.throws(() => checkAddress('localhost', []), {
      message: '"localhost" is not an IP address; resolve the host name first and pass the resolved address',
    });
  });
});
