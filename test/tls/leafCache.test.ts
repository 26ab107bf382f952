import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkServerIdentity, connect, createServer as createTlsServer, TLSSocket } from 'node:tls';
import type { DetailedPeerCertificate, SecureContext, Server as TlsServer } from 'node:tls';
import { loadOrCreateCa } from '../../src/tls/ca.ts';
import type { CertificateAuthority } from '../../src/tls/ca.ts';
import { LeafCertificateCache } from '../../src/tls/leafCache.ts';
import { createTestPki } from '../helpers/testPki.ts';

x509.cryptoProvider.set(webcrypto);

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

let dataDir: string;
let ca: CertificateAuthority;

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'agent-proxy-leaf-test-'));
  ({ ca } = await loadOrCreateCa(dataDir));
});

after(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

/** Returns the current time rounded down to a whole second, because certificate dates have one-second precision. */
function fixedClock(): Date {
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}

/** Starts a TLS server on loopback that picks its certificate by SNI, as the proxy does. */
async function startSniServer(cache: LeafCertificateCache): Promise<TlsServer> {
  const server = createTlsServer({
    SNICallback: (servername, callback) => {
      cache.secureContextFor(servername).then(
        (context) => callback(null, context),
        (error: Error) => callback(error),
      );
    },
  });
  server.on('secureConnection', (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/**
 * Starts a TCP server on `host` that terminates TLS with the context for `targetName`, as the
 * proxy does after CONNECT when the client sends no SNI (clients send none for IP addresses).
 */
async function startTargetServer(cache: LeafCertificateCache, host: string, targetName: string): Promise<NetServer> {
  const server = createNetServer((socket) => {
    cache.secureContextFor(targetName).then(
      (secureContext: SecureContext) => {
        const tlsSocket = new TLSSocket(socket, { isServer: true, secureContext });
        tlsSocket.on('secure', () => tlsSocket.end());
        tlsSocket.on('error', () => socket.destroy());
      },
      () => socket.destroy(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return server;
}

async function closeServer(server: NetServer): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

interface HandshakeOptions {
  host: string;
  port: number;
  servername?: string;
  caPem?: string;
  checkServerIdentity?: typeof checkServerIdentity;
}

/** Completes a TLS handshake and returns the peer's certificate chain, or rejects with the verification error. */
async function handshake(options: HandshakeOptions): Promise<DetailedPeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: options.host,
      port: options.port,
      ...(options.servername === undefined ? {} : { servername: options.servername }),
      ...(options.caPem === undefined ? { rejectUnauthorized: false } : { ca: options.caPem }),
      ...(options.checkServerIdentity === undefined ? {} : { checkServerIdentity: options.checkServerIdentity }),
    });
    socket.once('secureConnect', () => {
      const chain = socket.getPeerCertificate(true);
      socket.destroy();
      resolve(chain);
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(error);
    });
  });
}

test('leaf for a DNS name verifies against the CA', async () => {
  const cache = new LeafCertificateCache(ca);
  const server = await startSniServer(cache);
  const { port } = server.address() as AddressInfo;
  try {
    const chain = await handshake({ host: '127.0.0.1', port, servername: 'api.example.test', caPem: ca.certPem });

    assert.equal(chain.subject.CN, 'api.example.test');
    assert.equal(chain.subjectaltname, 'DNS:api.example.test');
  } finally {
    await closeServer(server);
  }
});

test('leaf fails verification for another name', async () => {
  const cache = new LeafCertificateCache(ca);
  const server = await startSniServer(cache);
  const { port } = server.address() as AddressInfo;
  try {
    const attempt = handshake({
      host: '127.0.0.1',
      port,
      servername: 'api.example.test',
      caPem: ca.certPem,
      checkServerIdentity: (_host, certificate) => checkServerIdentity('other.example.test', certificate),
    });

    await assert.rejects(attempt, {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      reason: "Host: other.example.test. is not in the cert's altnames: DNS:api.example.test",
    });
  } finally {
    await closeServer(server);
  }
});

test('leaf fails verification against another CA', async () => {
  const cache = new LeafCertificateCache(ca);
  const otherPki = await createTestPki();
  const server = await startSniServer(cache);
  const { port } = server.address() as AddressInfo;
  try {
    const attempt = handshake({ host: '127.0.0.1', port, servername: 'api.example.test', caPem: otherPki.caPem });

    // The server sends the proxy CA after the leaf, so OpenSSL reports that untrusted root.
    await assert.rejects(attempt, { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  } finally {
    await closeServer(server);
  }
});

for (const address of ['127.0.0.1', '::1']) {
  test(`leaf for IP address ${address} verifies`, async () => {
    const cache = new LeafCertificateCache(ca);
    const server = await startTargetServer(cache, address, address);
    const { port } = server.address() as AddressInfo;
    try {
      const chain = await handshake({ host: address, port, caPem: ca.certPem });

      assert.equal(chain.subject.CN, address);
      assert.equal(chain.subjectaltname, address === '::1' ? 'IP Address:0:0:0:0:0:0:0:1' : 'IP Address:127.0.0.1');
    } finally {
      await closeServer(server);
    }
  });
}

test('leaf for a name longer than a CN verifies', async () => {
  const longName = `${'a'.repeat(60)}.${'b'.repeat(20)}.example.test`;
  const cache = new LeafCertificateCache(ca);
  const server = await startSniServer(cache);
  const { port } = server.address() as AddressInfo;
  try {
    const chain = await handshake({ host: '127.0.0.1', port, servername: longName, caPem: ca.certPem });
    const leaf = new x509.X509Certificate(chain.raw);

    assert.equal(leaf.subject, '');
    assert.equal(leaf.getExtension(x509.SubjectAlternativeNameExtension)?.critical, true);
    assert.equal(chain.subjectaltname, `DNS:${longName}`);
  } finally {
    await closeServer(server);
  }
});

test('leaf carries the expected extensions and chain', async () => {
  const now = fixedClock();
  const cache = new LeafCertificateCache(ca, { now: () => now });
  const server = await startSniServer(cache);
  const { port } = server.address() as AddressInfo;
  try {
    // Without a trusted CA, the issuer in the returned chain can only come from the server.
    const chain = await handshake({ host: '127.0.0.1', port, servername: 'api.example.test' });
    const leaf = new x509.X509Certificate(chain.raw);

    assert.deepEqual(chain.issuerCertificate.raw, Buffer.from(ca.certificate.rawData));
    assert.equal(leaf.issuer, ca.certificate.subject);
    assert.equal(await leaf.verify({ publicKey: ca.certificate.publicKey, date: now }), true);
    assert.equal(leaf.notBefore.getTime(), now.getTime() - HOUR_MS);
    assert.equal(leaf.notAfter.getTime(), now.getTime() + 30 * DAY_MS);
    assert.deepEqual(leaf.publicKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });

    assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    const keyUsage = leaf.getExtension(x509.KeyUsagesExtension);
    assert.equal(keyUsage?.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(keyUsage?.critical, true);
    assert.deepEqual([...(leaf.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])], [x509.ExtendedKeyUsage.serverAuth]);

    const caKeyIdentifier = ca.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    assert.equal(typeof caKeyIdentifier, 'string');
    assert.equal(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, caKeyIdentifier);
    const leafKeyIdentifier = leaf.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    assert.equal(typeof leafKeyIdentifier, 'string');
    assert.notEqual(leafKeyIdentifier, caKeyIdentifier);
  } finally {
    await closeServer(server);
  }
});

test('two hosts share one leaf key', async () => {
  const cache = new LeafCertificateCache(ca);
  const server = await startSniServer(cache);
  const { port } = server.address() as AddressInfo;
  try {
    const first = await handshake({ host: '127.0.0.1', port, servername: 'one.example.test', caPem: ca.certPem });
    const second = await handshake({ host: '127.0.0.1', port, servername: 'two.example.test', caPem: ca.certPem });

    assert.equal(first.subject.CN, 'one.example.test');
    assert.equal(second.subject.CN, 'two.example.test');
    assert.notEqual(first.serialNumber, second.serialNumber);
    assert.deepEqual(first.pubkey, second.pubkey);
    assert.notDeepEqual(first.pubkey, Buffer.from(ca.certificate.publicKey.rawData));
    assert.deepEqual(cache.stats(), { mints: 2, hits: 0, size: 2 });
  } finally {
    await closeServer(server);
  }
});

test('separate caches use separate leaf keys', async () => {
  const firstServer = await startSniServer(new LeafCertificateCache(ca));
  const secondServer = await startSniServer(new LeafCertificateCache(ca));
  try {
    const servername = 'api.example.test';
    const first = await handshake({ host: '127.0.0.1', port: (firstServer.address() as AddressInfo).port, servername });
    const second = await handshake({ host: '127.0.0.1', port: (secondServer.address() as AddressInfo).port, servername });

    assert.notDeepEqual(first.pubkey, second.pubkey);
  } finally {
    await closeServer(firstServer);
    await closeServer(secondServer);
  }
});

test('cache counts hits and mints', async () => {
  const cache = new LeafCertificateCache(ca);

  const first = await cache.secureContextFor('api.example.test');
  assert.deepEqual(cache.stats(), { mints: 1, hits: 0, size: 1 });

  const second = await cache.secureContextFor('api.example.test');
  assert.equal(second, first);
  assert.deepEqual(cache.stats(), { mints: 1, hits: 1, size: 1 });

  await cache.secureContextFor('other.example.test');
  assert.deepEqual(cache.stats(), { mints: 2, hits: 1, size: 2 });
});

test('equivalent spellings share one entry', async () => {
  const cache = new LeafCertificateCache(ca);

  const lowerCase = await cache.secureContextFor('api.example.test');
  const mixedCaseWithDot = await cache.secureContextFor('API.Example.Test.');
  const ipv6 = await cache.secureContextFor('::1');
  const ipv6Long = await cache.secureContextFor('0:0:0:0:0:0:0:1');
  const ipv6Bracketed = await cache.secureContextFor('[::1]');

  assert.equal(mixedCaseWithDot, lowerCase);
  assert.equal(ipv6Long, ipv6);
  assert.equal(ipv6Bracketed, ipv6);
  assert.deepEqual(cache.stats(), { mints: 2, hits: 3, size: 2 });
});

test('concurrent calls share one mint', async () => {
  const cache = new LeafCertificateCache(ca);

  const contexts = await Promise.all(Array.from({ length: 20 }, () => cache.secureContextFor('burst.example.test')));

  assert.equal(new Set(contexts).size, 1);
  assert.deepEqual(cache.stats(), { mints: 1, hits: 19, size: 1 });
});

test('least recently used entry is evicted', async () => {
  const cache = new LeafCertificateCache(ca, { maxEntries: 2 });

  const first = await cache.secureContextFor('a.example.test');
  await cache.secureContextFor('b.example.test');
  await cache.secureContextFor('a.example.test');
  await cache.secureContextFor('c.example.test');
  assert.deepEqual(cache.stats(), { mints: 3, hits: 1, size: 2 });

  assert.equal(await cache.secureContextFor('a.example.test'), first);
  assert.deepEqual(cache.stats(), { mints: 3, hits: 2, size: 2 });

  await cache.secureContextFor('b.example.test');
  assert.deepEqual(cache.stats(), { mints: 4, hits: 2, size: 2 });
});

test('leaf is renewed in its last day', async () => {
  const start = fixedClock().getTime();
  let now = start;
  const cache = new LeafCertificateCache(ca, { validityDays: 30, now: () => new Date(now) });

  const first = await cache.secureContextFor('api.example.test');

  now = start + 28 * DAY_MS;
  assert.equal(await cache.secureContextFor('api.example.test'), first);
  assert.deepEqual(cache.stats(), { mints: 1, hits: 1, size: 1 });

  now = start + 29 * DAY_MS + 60_000;
  const renewed = await cache.secureContextFor('api.example.test');
  assert.notEqual(renewed, first);
  assert.deepEqual(cache.stats(), { mints: 2, hits: 1, size: 1 });
});

test('leaf validity ends with the CA', async () => {
  const now = fixedClock();
  const cache = new LeafCertificateCache(ca, { validityDays: 365 * 20, now: () => now });
  const server = await startSniServer(cache);
  const { port } = server.address() as AddressInfo;
  try {
    const chain = await handshake({ host: '127.0.0.1', port, servername: 'api.example.test' });

    assert.equal(new x509.X509Certificate(chain.raw).notAfter.getTime(), ca.certificate.notAfter.getTime());
  } finally {
    await closeServer(server);
  }
});

test('invalid names are rejected', async () => {
  const cache = new LeafCertificateCache(ca);
  const dnsHint =
    'expected an IP address or a DNS host name of at most 253 characters made of dot-separated labels of 1 to 63 letters, ' +
    'digits, "-" or "_" (convert international names to punycode first).';

  for (const name of ['', 'bad host.example.test', 'a..example.test', '*.example.test', 'bücher.example', `${'a'.repeat(64)}.test`]) {
    await assert.rejects(cache.secureContextFor(name), { name: 'TypeError', message: `Invalid certificate name "${name}": ${dnsHint}` });
  }
  await assert.rejects(cache.secureContextFor('fe80::1%eth0'), {
    name: 'TypeError',
    message: 'Invalid certificate name "fe80::1%eth0": an IPv6 zone id cannot appear in a certificate. Pass the address without "%eth0".',
  });
  assert.deepEqual(cache.stats(), { mints: 0, hits: 0, size: 0 });
});

test('invalid options are rejected', () => {
  assert.throws(() => new LeafCertificateCache(ca, { maxEntries: 0 }), {
    name: 'RangeError',
    message: 'Invalid maxEntries 0: expected a positive integer.',
  });
  assert.throws(() => new LeafCertificateCache(ca, { validityDays: 1 }), {
    name: 'RangeError',
    message: 'Invalid validityDays 1: expected more than 1, because a leaf is renewed when less than a day of validity remains.',
  });
});
