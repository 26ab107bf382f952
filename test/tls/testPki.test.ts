import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect, createServer } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import { createTestPki, writeTestPki } from '../helpers/testPki.ts';

async function handshake(host: string, port: number, caPem: string, servername?: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, ca: caPem, ...(servername === undefined ? {} : { servername }) });
    socket.once('secureConnect', () => {
      const certificate = socket.getPeerCertificate();
      socket.destroy();
      resolve(certificate);
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(error);
    });
  });
}

test('test PKI server certificate verifies', async () => {
  const pki = await createTestPki('Upstream Test CA');
  const { certPem, keyPem } = await pki.issueServerCertificate(['upstream.example.test', '127.0.0.1', '::1']);
  const server = createServer({ cert: certPem, key: keyPem }, (socket) => socket.end());

  for (const host of ['127.0.0.1', '::1']) {
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const byAddress = await handshake(host, port, pki.caPem);
      const byName = await handshake(host, port, pki.caPem, 'upstream.example.test');

      assert.equal(byAddress.subject.CN, 'upstream.example.test');
      assert.equal(byAddress.issuer.CN, 'Upstream Test CA');
      assert.equal(byName.subjectaltname, 'DNS:upstream.example.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
});

test('test PKIs do not trust each other', async () => {
  const pki = await createTestPki();
  const otherPki = await createTestPki();
  const { certPem, keyPem } = await pki.issueServerCertificate(['127.0.0.1']);
  const server = createServer({ cert: certPem, key: keyPem }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    assert.notEqual(pki.name, otherPki.name);
    await assert.rejects(handshake('127.0.0.1', port, otherPki.caPem), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('test PKI rejects an empty name list', async () => {
  const pki = await createTestPki();

  await assert.rejects(pki.issueServerCertificate([]), {
    name: 'TypeError',
    message: 'Missing names: issueServerCertificate requires at least one DNS name or IP address.',
  });
});

test('writeTestPki writes PEM files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'agent-proxy-test-pki-'));
  try {
    const written = await writeTestPki(dir);

    assert.equal(written.caPath, join(dir, 'ca.pem'));
    assert.equal(await readFile(written.caPath, 'utf8'), written.pki.caPem);
    assert.match(await readFile(written.certPath, 'utf8'), /^-----BEGIN CERTIFICATE-----/);
    assert.match(await readFile(written.keyPath, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    assert.equal((await stat(written.keyPath)).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
