// A throwaway PKI for tests that run HTTPS upstreams on loopback. It is built on @peculiar/x509
// directly rather than on src/tls, so a bug in the proxy's CA code cannot hide in both sides.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

x509.cryptoProvider.set(webcrypto);

const ONE_HOUR_MS = 60 * 60 * 1000;
const ONE_DAY_MS = 24 * ONE_HOUR_MS;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' };
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' };

export interface ServerCertificate {
  /** The server certificate followed by the test CA certificate, ready for `tls.createServer({ cert })`. */
  certPem: string;
  /** PKCS#8 PEM private key of the server certificate. */
  keyPem: string;
}

export interface TestPki {
  /** Common name of the test CA. */
  name: string;
  caPem: string;
  caCertificate: x509.X509Certificate;
  /** Issues a server certificate for DNS names and IP addresses, each as a SAN. The first name is the CN. */
  issueServerCertificate(names: string[]): Promise<ServerCertificate>;
}

/**
 * Creates a new ECDSA P-256 test CA. Every call makes an independent CA with its own key, so a
 * certificate from one PKI does not verify against another's `caPem`.
 */
export async function createTestPki(name = `Agent Proxy Test CA ${randomBytes(4).toString('hex')}`): Promise<TestPki> {
  const caKeys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, false, ['sign', 'verify']);
  const now = Date.now();
  const caCertificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: [{ CN: [name] }],
    notBefore: new Date(now - ONE_HOUR_MS),
    notAfter: new Date(now + 30 * ONE_DAY_MS),
    keys: caKeys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const caPem = caCertificate.toString('pem');
  const caKeyIdentifier = await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey);

  async function issueServerCertificate(names: string[]): Promise<ServerCertificate> {
    const [firstName] = names;
    if (firstName === undefined) {
      throw new TypeError('Missing names: issueServerCertificate requires at least one DNS name or IP address.');
    }

    const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
    const issuedAt = Date.now();
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialNumber(),
      subject: [{ CN: [firstName] }],
      issuer: caCertificate.subjectName,
      notBefore: new Date(issuedAt - ONE_HOUR_MS),
      notAfter: new Date(issuedAt + 7 * ONE_DAY_MS),
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: isIP(value) ? 'ip' : 'dns', value }))),
        caKeyIdentifier,
      ],
    });

    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    return {
      certPem: `${certificate.toString('pem')}\n${caPem}`,
      keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    };
  }

  return { name, caPem, caCertificate, issueServerCertificate };
}

export interface WrittenTestPki {
  pki: TestPki;
  caPath: string;
  certPath: string;
  keyPath: string;
}

/**
 * Creates a test PKI and a server certificate for `names`, and writes `ca.pem`, `server.pem` and
 * `server-key.pem` into `dir`, for tests that pass file paths (`--upstream-ca`, `SSL_CERT_FILE`).
 */
export async function writeTestPki(dir: string, names: string[] = ['localhost', '127.0.0.1', '::1']): Promise<WrittenTestPki> {
  const pki = await createTestPki();
  const server = await pki.issueServerCertificate(names);

  await mkdir(dir, { recursive: true });
  const caPath = join(dir, 'ca.pem');
  const certPath = join(dir, 'server.pem');
  const keyPath = join(dir, 'server-key.pem');
  await writeFile(caPath, pki.caPem);
  await writeFile(certPath, server.certPem);
  await writeFile(keyPath, server.keyPem, { mode: 0o600 });
  return { pki, caPath, certPath, keyPath };
}

function randomSerialNumber(): string {
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  return serial.toString('hex');
}
