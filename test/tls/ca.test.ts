import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadOrCreateCa } from '../../src/tls/ca.ts';

x509.cryptoProvider.set(webcrypto);

const HOUR_MS = 60 * 60 * 1000;

let root: string;
let directoryCount = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'agent-proxy-ca-test-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

function newDirectory(): string {
  directoryCount += 1;
  return join(root, `ca-${directoryCount}`);
}

/** Returns the current time rounded down to a whole second, because certificate dates have one-second precision. */
function fixedClock(): Date {
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}

test('loadOrCreateCa creates a P-256 CA', async () => {
  const dir = newDirectory();
  const now = fixedClock();

  const { ca, certPath, created } = await loadOrCreateCa(dir, { now: () => now });

  assert.equal(created, true);
  assert.equal(certPath, join(dir, 'ca.pem'));
  assert.equal(await readFile(certPath, 'utf8'), ca.certPem);

  const certificate = new x509.X509Certificate(ca.certPem);
  assert.equal(certificate.subject, certificate.issuer);
  assert.deepEqual(certificate.subjectName.getField('CN'), ['Agent Proxy CA']);
  assert.deepEqual(certificate.subjectName.getField('O'), ['Agent Proxy']);
  assert.match(certificate.subjectName.getField('2.5.4.5')[0] ?? '', /^[0-9a-f]{16}$/);
  assert.equal(certificate.notBefore.getTime(), now.getTime() - HOUR_MS);
  const tenYearsLater = new Date(now);
  tenYearsLater.setUTCFullYear(now.getUTCFullYear() + 10);
  assert.equal(certificate.notAfter.getTime(), tenYearsLater.getTime());
  assert.deepEqual(certificate.publicKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
  assert.equal(await certificate.verify({ date: now }), true);

  const basicConstraints = certificate.getExtension(x509.BasicConstraintsExtension);
  assert.equal(basicConstraints?.critical, true);
  assert.equal(basicConstraints?.ca, true);
  assert.equal(basicConstraints?.pathLength, 0);

  const keyUsage = certificate.getExtension(x509.KeyUsagesExtension);
  assert.equal(keyUsage?.critical, true);
  assert.equal(keyUsage?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);

  const subjectKeyIdentifier = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  const expectedKeyIdentifier = await x509.SubjectKeyIdentifierExtension.create(certificate.publicKey);
  assert.equal(subjectKeyIdentifier?.keyId, expectedKeyIdentifier.keyId);

  assert.equal(ca.privateKey.type, 'private');
  assert.equal(ca.privateKey.extractable, false);
});

test('loadOrCreateCa reloads the same CA', async () => {
  const dir = newDirectory();
  const first = await loadOrCreateCa(dir);
  const keyBefore = await readFile(join(dir, 'ca-key.pem'), 'utf8');

  const second = await loadOrCreateCa(dir);

  assert.equal(second.created, false);
  assert.equal(second.certPath, first.certPath);
  assert.equal(second.ca.certPem, first.ca.certPem);
  assert.equal(second.ca.certificate.serialNumber, first.ca.certificate.serialNumber);
  assert.equal(await readFile(join(dir, 'ca-key.pem'), 'utf8'), keyBefore);
  assert.deepEqual(second.ca.signingAlgorithm, { name: 'ECDSA', hash: 'SHA-256' });
});

test('CA files have modes 0600 and 0644', async () => {
  const dir = newDirectory();
  await loadOrCreateCa(dir);

  assert.equal((await stat(join(dir, 'ca-key.pem'))).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, 'ca.pem'))).mode & 0o777, 0o644);
  assert.deepEqual((await readdir(dir)).sort(), ['ca-key.pem', 'ca.pem']);
});

test('two CAs have distinct subjects and keys', async () => {
  const first = await loadOrCreateCa(newDirectory());
  const second = await loadOrCreateCa(newDirectory());

  assert.notEqual(first.ca.certificate.subject, second.ca.certificate.subject);
  assert.notEqual(first.ca.certificate.serialNumber, second.ca.certificate.serialNumber);
  assert.notDeepEqual(
    Buffer.from(first.ca.certificate.publicKey.rawData),
    Buffer.from(second.ca.certificate.publicKey.rawData),
  );
});

test('missing CA key file is rejected', async () => {
  const dir = newDirectory();
  await loadOrCreateCa(dir);
  await rm(join(dir, 'ca-key.pem'));

  await assert.rejects(loadOrCreateCa(dir), {
    message:
      `CA private key ${join(dir, 'ca-key.pem')} is missing, but CA certificate ${join(dir, 'ca.pem')} exists. ` +
      `Restore ${join(dir, 'ca-key.pem')} from a backup, or delete ${join(dir, 'ca.pem')} so that a new CA is created ` +
      '(sandboxes must then trust the new ca.pem).',
  });
});

test('CA key of another CA is rejected', async () => {
  const dir = newDirectory();
  const otherDir = newDirectory();
  await loadOrCreateCa(dir);
  await loadOrCreateCa(otherDir);
  await copyFile(join(otherDir, 'ca-key.pem'), join(dir, 'ca-key.pem'));

  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca-key.pem');
  await assert.rejects(loadOrCreateCa(dir), {
    message:
      `CA private key ${keyPath} does not match CA certificate ${certPath}. ` +
      `Restore the key that belongs to this certificate, or delete ${certPath} and ${keyPath} so that a new CA is created ` +
      '(sandboxes must then trust the new ca.pem).',
  });
});

test('unreadable CA certificate is rejected', async () => {
  const dir = newDirectory();
  await loadOrCreateCa(dir);
  const certPath = join(dir, 'ca.pem');
  await writeFile(certPath, 'not a certificate\n');

  await assert.rejects(loadOrCreateCa(dir), {
    message:
      `CA certificate ${certPath} is not a readable PEM certificate (no "-----BEGIN CERTIFICATE-----" line). ` +
      'Replace it with the PEM certificate ("-----BEGIN CERTIFICATE-----") of this CA, ' +
      `or delete ${certPath} and ${join(dir, 'ca-key.pem')} so that a new CA is created (sandboxes must then trust the new ca.pem).`,
  });
});

test('unreadable CA key is rejected', async () => {
  const dir = newDirectory();
  await loadOrCreateCa(dir);
  const keyPath = join(dir, 'ca-key.pem');
  await writeFile(keyPath, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');

  await assert.rejects(loadOrCreateCa(dir), (error: Error) => {
    assert.ok(error.message.startsWith(`CA private key ${keyPath} is not a readable unencrypted PEM private key (`), error.message);
    assert.ok(error.message.includes(`Replace it with the PEM private key of ${join(dir, 'ca.pem')}`), error.message);
    return true;
  });
});

test('expired CA is rejected', async () => {
  const dir = newDirectory();
  const elevenYearsAgo = fixedClock();
  elevenYearsAgo.setUTCFullYear(elevenYearsAgo.getUTCFullYear() - 11);
  const { ca } = await loadOrCreateCa(dir, { now: () => elevenYearsAgo });
  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca-key.pem');

  await assert.rejects(loadOrCreateCa(dir), {
    message:
      `CA certificate ${certPath} expired on ${ca.certificate.notAfter.toISOString()}. ` +
      `Renew it, or delete ${certPath} and ${keyPath} so that a new CA is created (sandboxes must then trust the new ca.pem).`,
  });
});

test('CA key without certificate is replaced', async () => {
  const dir = newDirectory();
  await loadOrCreateCa(dir);
  const orphanKey = await readFile(join(dir, 'ca-key.pem'), 'utf8');
  await rm(join(dir, 'ca.pem'));

  const { created } = await loadOrCreateCa(dir);
  const reloaded = await loadOrCreateCa(dir);

  assert.equal(created, true);
  assert.notEqual(await readFile(join(dir, 'ca-key.pem'), 'utf8'), orphanKey);
  assert.equal(reloaded.created, false);
});

test('non-CA certificate is rejected', async () => {
  const dir = newDirectory();
  await loadOrCreateCa(dir);
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: ['not a ca'] }],
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca-key.pem');
  await writeFile(certPath, leaf.toString('pem'));
  await writeFile(keyPath, x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'));

  await assert.rejects(loadOrCreateCa(dir), {
    message:
      `CA certificate ${certPath} is not a CA certificate (basicConstraints cA is not set). ` +
      `Use a CA certificate, or delete ${certPath} and ${keyPath} so that a new CA is created (sandboxes must then trust the new ca.pem).`,
  });
});

test('RSA CA from an administrator loads', async () => {
  const dir = newDirectory();
  const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: ['Organisation CA'] }],
    keys,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'ca.pem'), certificate.toString('pem'));
  await writeFile(join(dir, 'ca-key.pem'), x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'));

  const { ca, created } = await loadOrCreateCa(dir);

  assert.equal(created, false);
  assert.equal(ca.certPem, certificate.toString('pem'));
  assert.deepEqual(ca.signingAlgorithm, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
});
