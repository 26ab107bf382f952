// The proxy's own certificate authority, created on first start and loaded afterwards.
// Sandboxes trust its certificate, and the leaf cache signs one certificate per host with it.

// @peculiar/x509 2.x resolves its algorithms through tsyringe, which needs the Reflect
// metadata polyfill loaded before the library is evaluated.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, randomBytes, verify as verifySignature, webcrypto } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

x509.cryptoProvider.set(webcrypto);

type CryptoKey = webcrypto.CryptoKey;
type EcdsaParams = webcrypto.EcdsaParams;
type RsaHashedImportParams = webcrypto.RsaHashedImportParams;

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';
export const CA_COMMON_NAME = 'Agent Proxy CA';
export const CA_ORGANIZATION = 'Agent Proxy';

const CA_VALIDITY_YEARS = 10;
const CLOCK_SKEW_MS = 60 * 60 * 1000;
const CERT_FILE_MODE = 0o644;
const KEY_FILE_MODE = 0o600;

export type SigningAlgorithm = RsaHashedImportParams | EcdsaParams;

/** A loaded CA. The private key is a non-extractable CryptoKey, so its PEM never leaves this module. */
export interface CertificateAuthority {
  readonly certPem: string;
  readonly certificate: x509.X509Certificate;
  readonly privateKey: CryptoKey;
  /** WebCrypto algorithm, with hash, that signs certificates with `privateKey`. */
  readonly signingAlgorithm: SigningAlgorithm;
}

export interface LoadOrCreateCaOptions {
  /** Clock for validity dates and the expiry check. */
  now?: () => Date;
}

export interface LoadedCa {
  ca: CertificateAuthority;
  certPath: string;
  created: boolean;
}

/**
 * Loads the CA from `dir/ca.pem` and `dir/ca-key.pem`, or creates both when `ca.pem` is absent.
 * Throws an error naming the file and the fix when the files are unusable.
 */
export async function loadOrCreateCa(dir: string, options: LoadOrCreateCaOptions = {}): Promise<LoadedCa> {
  const now = options.now ?? (() => new Date());
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);

  const certText = await readOptionalFile(certPath);
  if (certText === undefined) {
    // A key file without ca.pem is what a crash between the two writes leaves behind. No client
    // can trust a CA whose certificate was never written, so a fresh CA replaces that key.
    const ca = await createCa(dir, certPath, keyPath, now());
    return { ca, certPath, created: true };
  }

  const keyText = await readOptionalFile(keyPath);
  if (keyText === undefined) {
    throw new Error(
      `CA private key ${keyPath} is missing, but CA certificate ${certPath} exists. ` +
        `Restore ${keyPath} from a backup, or delete ${certPath} so that a new CA is created ` +
        `(sandboxes must then trust the new ${CA_CERT_FILE}).`,
    );
  }

  const ca = await parseCa(certText, keyText, certPath, keyPath, now());
  return { ca, certPath, created: false };
}

async function createCa(dir: string, certPath: string, keyPath: string, now: Date): Promise<CertificateAuthority> {
  const algorithm: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
  const signingAlgorithm: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);

  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);

  // The serialNumber attribute gives every installation a distinct subject, so trust stores
  // holding CAs from several installations can tell them apart.
  const installationId = randomBytes(8).toString('hex');
  const name: x509.JsonName = [{ CN: [CA_COMMON_NAME] }, { O: [CA_ORGANIZATION] }, { '2.5.4.5': [installationId] }];

  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });

  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const keyPem = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
  const certPem = certificate.toString('pem');

  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The key goes first, so a crash in between leaves a key without a certificate (replaced on the
  // next start) and never a trusted certificate whose key is lost.
  await writeFileAtomic(keyPath, keyPem, KEY_FILE_MODE);
  await writeFileAtomic(certPath, certPem, CERT_FILE_MODE);
  // NOTE: two processes creating a CA in the same empty directory at once can leave the key of one
  // beside the certificate of the other. The next start then reports the mismatch.

  const { privateKey } = await importSigningKey(createPrivateKey(keyPem), keyPath);
  return { certPem, certificate, privateKey, signingAlgorithm };
}

async function parseCa(
  certText: string,
  keyText: string,
  certPath: string,
  keyPath: string,
  now: Date,
): Promise<CertificateAuthority> {
  const recreateHint = `or delete ${certPath} and ${keyPath} so that a new CA is created (sandboxes must then trust the new ${CA_CERT_FILE})`;

  let certificate: x509.X509Certificate;
  try {
    // The parser also accepts bare base64 and hex, which would turn a stray file into a confusing ASN.1 error.
    if (!certText.includes('-----BEGIN CERTIFICATE-----')) {
      throw new Error('no "-----BEGIN CERTIFICATE-----" line');
    }
    certificate = new x509.X509Certificate(certText);
  } catch (error) {
    throw new Error(
      `CA certificate ${certPath} is not a readable PEM certificate (${errorMessage(error)}). ` +
        `Replace it with the PEM certificate ("-----BEGIN CERTIFICATE-----") of this CA, ${recreateHint}.`,
      { cause: error },
    );
  }

  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(keyText);
  } catch (error) {
    throw new Error(
      `CA private key ${keyPath} is not a readable unencrypted PEM private key (${errorMessage(error)}). ` +
        `Replace it with the PEM private key of ${certPath}, ${recreateHint}.`,
      { cause: error },
    );
  }

  const { privateKey, signingAlgorithm } = await importSigningKey(keyObject, keyPath);
  if (!(await keyMatchesCertificate(privateKey, signingAlgorithm, certificate))) {
    throw new Error(
      `CA private key ${keyPath} does not match CA certificate ${certPath}. ` +
        `Restore the key that belongs to this certificate, ${recreateHint}.`,
    );
  }

  checkCaUsable(certificate, certPath, now, recreateHint);
  return { certPem: certificate.toString('pem'), certificate, privateKey, signingAlgorithm };
}

function checkCaUsable(certificate: x509.X509Certificate, certPath: string, now: Date, recreateHint: string): void {
  if (certificate.notAfter.getTime() <= now.getTime()) {
    throw new Error(`CA certificate ${certPath} expired on ${certificate.notAfter.toISOString()}. Renew it, ${recreateHint}.`);
  }
  if (certificate.notBefore.getTime() > now.getTime()) {
    throw new Error(
      `CA certificate ${certPath} is not valid before ${certificate.notBefore.toISOString()}. ` +
        `Check this host's clock, ${recreateHint}.`,
    );
  }

  const basicConstraints = certificate.getExtension(x509.BasicConstraintsExtension);
  if (!basicConstraints?.ca) {
    throw new Error(`CA certificate ${certPath} is not a CA certificate (basicConstraints cA is not set). Use a CA certificate, ${recreateHint}.`);
  }
  const keyUsage = certificate.getExtension(x509.KeyUsagesExtension);
  if (keyUsage && (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new Error(`CA certificate ${certPath} does not allow certificate signing (keyUsage lacks keyCertSign). Use a CA certificate, ${recreateHint}.`);
  }
}

/** Converts a parsed private key into a non-extractable WebCrypto signing key. */
async function importSigningKey(
  keyObject: KeyObject,
  keyPath: string,
): Promise<{ privateKey: CryptoKey; signingAlgorithm: SigningAlgorithm }> {
  const pkcs8 = keyObject.export({ format: 'der', type: 'pkcs8' });

  if (keyObject.asymmetricKeyType === 'rsa') {
    const signingAlgorithm: RsaHashedImportParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, signingAlgorithm, false, ['sign']);
    return { privateKey, signingAlgorithm };
  }

  if (keyObject.asymmetricKeyType === 'ec') {
    const curve = EC_CURVES[keyObject.asymmetricKeyDetails?.namedCurve ?? ''];
    if (curve) {
      const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: curve.namedCurve }, false, ['sign']);
      return { privateKey, signingAlgorithm: { name: 'ECDSA', hash: curve.hash } };
    }
  }

  const keyType = keyObject.asymmetricKeyType === 'ec' ? `EC ${keyObject.asymmetricKeyDetails?.namedCurve}` : keyObject.asymmetricKeyType;
  throw new Error(`CA private key ${keyPath} has unsupported key type ${keyType}. Use an RSA key or an EC key on P-256, P-384 or P-521.`);
}

/** OpenSSL curve names mapped to WebCrypto curve names and the hash conventionally paired with each. */
const EC_CURVES: Record<string, { namedCurve: string; hash: string }> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
  secp521r1: { namedCurve: 'P-521', hash: 'SHA-512' },
};

/** Signs a random probe with the key and verifies it with the certificate's public key. */
async function keyMatchesCertificate(
  privateKey: CryptoKey,
  signingAlgorithm: SigningAlgorithm,
  certificate: x509.X509Certificate,
): Promise<boolean> {
  const probe = randomBytes(32);
  let signature: ArrayBuffer;
  try {
    signature = await webcrypto.subtle.sign(signingAlgorithm, privateKey, probe);
  } catch {
    // A key whose algorithm differs from the certificate's cannot be the certificate's key.
    return false;
  }

  const publicKey = createPublicKey({ key: Buffer.from(certificate.publicKey.rawData), format: 'der', type: 'spki' });
  const hash = typeof signingAlgorithm.hash === 'string' ? signingAlgorithm.hash : signingAlgorithm.hash.name;
  // WebCrypto returns ECDSA signatures as r||s (IEEE P1363), not DER.
  const dsaEncoding = signingAlgorithm.name === 'ECDSA' ? 'ieee-p1363' : undefined;
  try {
    return verifySignature(hash.replace('-', '').toLowerCase(), probe, { key: publicKey, dsaEncoding }, Buffer.from(signature));
  } catch {
    return false;
  }
}

/** Returns a random 16-byte certificate serial number in hex. RFC 5280 section 4.1.2.2 requires a positive one of at most 20 bytes. */
export function randomSerialNumber(): string {
  const serial = randomBytes(16);
  // A clear top bit keeps the DER INTEGER positive without a padding byte, and a set
  // second-highest bit keeps it at the full 16 bytes.
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;
  return serial.toString('hex');
}

/**
 * Writes a file through a temporary file and a rename, so readers see the old or the whole new
 * content. The directory is synced afterwards, so the rename survives a crash before the next write.
 */
async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
  const temporaryPath = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporaryPath, 'wx', mode);
  try {
    await handle.writeFile(content);
    // The process umask may have narrowed `mode` at creation.
    await handle.chmod(mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporaryPath, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporaryPath, path);

  const directory = await open(dirname(path), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

async function readOptionalFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw error;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
