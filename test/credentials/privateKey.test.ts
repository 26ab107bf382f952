import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  certificateMatchesKey,
  parsePrivateKey,
  PrivateKeyError,
  publicKeyFingerprintOfCertificate,
  type PrivateKeyErrorCode,
} from '../../src/credentials/privateKey.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const rsaPkcs1 = rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
const rsaPkcs8 = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const ecSec1 = ec.privateKey.export({ type: 'sec1', format: 'pem' }) as string;
const ecPkcs8 = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const workDir = mkdtempSync(join(tmpdir(), 'agent-proxy-private-key-'));
after(() => rmSync(workDir, { recursive: true, force: true }));

function openssl(args: string[], input?: Buffer | string): Buffer {
  return execFileSync('openssl', args, { input, cwd: workDir });
}

function writeTempFile(name: string, content: string): string {
  const path = join(workDir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

function selfSignedCertificate(keyPem: string, name: string): string {
  const keyPath = writeTempFile(`${name}.key`, keyPem);
  return openssl(['req', '-x509', '-new', '-key', keyPath, '-subj', `/CN=${name}`, '-days', '1']).toString('utf8');
}

function rejection(code: PrivateKeyErrorCode, message: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof PrivateKeyError);
    assert.equal(error.code, code);
    assert.equal(error.message, message);
    return true;
  };
}

function base64Body(pem: string): string {
  return pem.split('\n').filter((line) => line !== '' && !line.startsWith('-----')).join('');
}

const PASTE_WHOLE_KEY = 'Paste the whole key, from its -----BEGIN PRIVATE KEY----- line (or BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY) through its END line.';

describe('parsePrivateKey accepted forms', () => {
  const rsaForms: Record<string, string> = {
    'PKCS#1': rsaPkcs1,
    'PKCS#8': rsaPkcs8,
    'CRLF line ends': rsaPkcs8.replace(/\n/g, '\r\n'),
    'literal \\n escapes': rsaPkcs1.trim().replace(/\n/g, '\\n'),
    'JSON string value': JSON.stringify(rsaPkcs8),
    'surrounding white space': `\n   ${rsaPkcs8}   \n\t`,
    'one line with spaces': rsaPkcs8.trim().replace(/\n/g, ' '),
    'text around the block': `Bag Attributes\n    localKeyID: 01 02\n${rsaPkcs8}`,
  };
  const expected = parsePrivateKey(rsaPkcs8);

  for (const [form, text] of Object.entries(rsaForms)) {
    it(`reads an RSA key given as ${form}`, () => {
      const parsed = parsePrivateKey(text);

      assert.equal(parsed.kind, 'rsa');
      assert.equal(parsed.rsaBits, 2048);
      assert.equal(parsed.curve, undefined);
      assert.equal(parsed.fingerprint, expected.fingerprint);
      assert.equal(parsed.publicKeyFingerprint, expected.publicKeyFingerprint);
    });
  }

  it('reports the format of the BEGIN line', () => {
    assert.equal(parsePrivateKey(rsaPkcs1).format, 'pkcs1');
    assert.equal(parsePrivateKey(rsaPkcs8).format, 'pkcs8');
    assert.equal(parsePrivateKey(ecSec1).format, 'sec1');
    assert.equal(parsePrivateKey(ecPkcs8).format, 'pkcs8');
  });

  it('reads SEC1 and PKCS#8 EC keys alike', () => {
    const sec1 = parsePrivateKey(ecSec1);
    const pkcs8 = parsePrivateKey(ecPkcs8);

    assert.equal(sec1.kind, 'ec');
    assert.equal(sec1.curve, 'P-256');
    assert.equal(sec1.rsaBits, undefined);
    assert.equal(sec1.fingerprint, pkcs8.fingerprint);
    assert.equal(sec1.publicKeyFingerprint, pkcs8.publicKeyFingerprint);
  });

  it('reads SEC1 after an EC PARAMETERS block', () => {
    const ecparamOutput = `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${ecSec1}`;

    assert.equal(parsePrivateKey(ecparamOutput).fingerprint, parsePrivateKey(ecSec1).fingerprint);
  });

  it('reads P-384 and P-521 keys', () => {
    for (const [namedCurve, curve] of [['P-384', 'P-384'], ['P-521', 'P-521']] as const) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve });
      const parsed = parsePrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
      assert.equal(parsed.curve, curve);
    }
  });

  it('keeps a key that fits the algorithm', () => {
    assert.equal(parsePrivateKey(rsaPkcs1, { algorithm: 'PS256' }).kind, 'rsa');
    assert.equal(parsePrivateKey(ecSec1, { algorithm: 'ES256' }).kind, 'ec');
  });

  it('formats fingerprints as SHA256 and hex', () => {
    const parsed = parsePrivateKey(rsaPkcs8);

    assert.match(parsed.fingerprint, /^SHA256:[0-9a-f]{64}$/);
    assert.match(parsed.publicKeyFingerprint, /^SHA256:[0-9a-f]{64}$/);
    assert.notEqual(parsed.fingerprint, parsed.publicKeyFingerprint);
  });
});

describe('fingerprints against openssl', () => {
  for (const [name, keyPem] of [['rsa', rsaPkcs1], ['ec', ecSec1]] as const) {
    it(`matches the ${name} certificate public key digest`, () => {
      const certPem = selfSignedCertificate(keyPem, `fingerprint-${name}`);
      const publicKeyPem = openssl(['x509', '-pubkey', '-noout'], certPem);
      const publicKeyDer = openssl(['pkey', '-pubin', '-outform', 'DER'], publicKeyPem);
      const digest = openssl(['dgst', '-sha256', '-r'], publicKeyDer).toString('utf8').split(' ')[0];

      const parsed = parsePrivateKey(keyPem);

      assert.equal(parsed.publicKeyFingerprint, `SHA256:${digest}`);
      assert.equal(publicKeyFingerprintOfCertificate(certPem), `SHA256:${digest}`);
    });
  }

  it('matches the digest of the PKCS#8 DER', () => {
    const keyPath = writeTempFile('pkcs8-source.key', rsaPkcs1);
    const pkcs8Der = openssl(['pkcs8', '-topk8', '-nocrypt', '-in', keyPath, '-outform', 'DER']);
    const digest = openssl(['dgst', '-sha256', '-r'], pkcs8Der).toString('utf8').split(' ')[0];

    assert.equal(parsePrivateKey(rsaPkcs1).fingerprint, `SHA256:${digest}`);
  });
});

describe('certificateMatchesKey', () => {
  const certPem = selfSignedCertificate(rsaPkcs8, 'connected-app');

  it('accepts the certificate of the key', () => {
    assert.equal(certificateMatchesKey(certPem, parsePrivateKey(rsaPkcs1)), true);
  });

  it('accepts a certificate pasted with CRLF', () => {
    assert.equal(certificateMatchesKey(certPem.replace(/\n/g, '\r\n'), parsePrivateKey(rsaPkcs1)), true);
  });

  it('rejects the certificate of another key', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

    assert.equal(certificateMatchesKey(certPem, parsePrivateKey(other)), false);
  });

  it('throws on text without a certificate', () => {
    assert.throws(() => publicKeyFingerprintOfCertificate(rsaPkcs8), {
      message: 'The certificate is not a PEM certificate. Paste it from its -----BEGIN CERTIFICATE----- line through its END line.',
    });
  });
});

describe('parsePrivateKey rejections', () => {
  it('rejects an encrypted PKCS#8 key', () => {
    const encrypted = rsa.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string;

    assert.throws(
      () => parsePrivateKey(encrypted),
      rejection(
        'encrypted',
        'The private key is encrypted (BEGIN ENCRYPTED PRIVATE KEY), and the proxy cannot use a key that needs a passphrase. Decrypt it first (openssl pkey -in key.pem -out key-decrypted.pem) and paste the decrypted key.',
      ),
    );
  });

  it('rejects an encrypted PKCS#1 key', () => {
    const encrypted = rsa.privateKey.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string;
    assert.match(encrypted, /Proc-Type: 4,ENCRYPTED/);

    assert.throws(
      () => parsePrivateKey(encrypted),
      rejection(
        'encrypted',
        'The private key is encrypted (BEGIN RSA PRIVATE KEY with Proc-Type: 4,ENCRYPTED), and the proxy cannot use a key that needs a passphrase. Decrypt it first (openssl rsa -in key.pem -out key-decrypted.pem) and paste the decrypted key.',
      ),
    );
  });

  it('rejects an encrypted SEC1 key', () => {
    const encrypted = ec.privateKey.export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string;

    assert.throws(
      () => parsePrivateKey(encrypted),
      rejection(
        'encrypted',
        'The private key is encrypted (BEGIN EC PRIVATE KEY with Proc-Type: 4,ENCRYPTED), and the proxy cannot use a key that needs a passphrase. Decrypt it first (openssl ec -in key.pem -out key-decrypted.pem) and paste the decrypted key.',
      ),
    );
  });

  it('rejects a certificate', () => {
    const certPem = selfSignedCertificate(rsaPkcs8, 'pasted-certificate');

    assert.throws(
      () => parsePrivateKey(certPem),
      rejection(
        'certificate',
        'This is a certificate (BEGIN CERTIFICATE), not a private key. The certificate is what you upload to the provider, such as a Salesforce Connected App. Paste the private key that was generated with it (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).',
      ),
    );
  });

  it('rejects a certificate without armour', () => {
    const certPem = selfSignedCertificate(rsaPkcs8, 'bare-certificate');

    assert.throws(
      () => parsePrivateKey(base64Body(certPem)),
      rejection(
        'certificate',
        'This looks like a base64 DER certificate without its PEM armour, not a private key. The certificate is what you upload to the provider, such as a Salesforce Connected App. Paste the private key that was generated with it (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).',
      ),
    );
  });

  it('rejects a certificate signing request', () => {
    const keyPath = writeTempFile('csr.key', rsaPkcs8);
    const csr = openssl(['req', '-new', '-key', keyPath, '-subj', '/CN=csr']).toString('utf8');

    assert.throws(
      () => parsePrivateKey(csr),
      rejection(
        'certificate',
        'This is a certificate signing request (BEGIN CERTIFICATE REQUEST), not a private key. Paste the private key that the request was made with (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).',
      ),
    );
  });

  it('rejects a public key', () => {
    const publicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;

    assert.throws(
      () => parsePrivateKey(publicPem),
      rejection(
        'public_key',
        'This is a public key (BEGIN PUBLIC KEY), not a private key. The proxy signs with the private key, so paste the private key that this public key belongs to (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).',
      ),
    );
  });

  it('rejects a PKCS#1 public key', () => {
    const publicPem = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string;

    assert.throws(
      () => parsePrivateKey(publicPem),
      rejection(
        'public_key',
        'This is a public key (BEGIN RSA PUBLIC KEY), not a private key. The proxy signs with the private key, so paste the private key that this public key belongs to (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).',
      ),
    );
  });

  it('rejects an OpenSSH public key line', () => {
    assert.throws(
      () => parsePrivateKey('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleOnly user@host'),
      rejection(
        'public_key',
        'This is an OpenSSH public key, not a private key. The proxy signs with the private key, so paste the private key instead (BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY).',
      ),
    );
  });

  it('rejects an OpenSSH private key', () => {
    const keyPath = join(workDir, 'openssh');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', keyPath]);
    const opensshPem = readFileSync(keyPath, 'utf8');

    assert.throws(
      () => parsePrivateKey(opensshPem),
      rejection(
        'not_pem',
        'This is an OpenSSH private key (BEGIN OPENSSH PRIVATE KEY), a format the proxy does not read. Convert a copy of the key file to PEM with ssh-keygen -p -m PEM -f key (it rewrites the file in place, and works for RSA and ECDSA keys only) and paste the result.',
      ),
    );
  });

  it('rejects an RSA key under 2048 bits', () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;

    assert.throws(
      () => parsePrivateKey(weak),
      rejection(
        'weak_key',
        'The private key is a 1024-bit RSA key, which is too weak. JWT signing needs RSA keys of at least 2048 bits. Generate a new key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem), upload its certificate to the provider and paste the new key.',
      ),
    );
  });

  it('rejects an EC key for RS256', () => {
    assert.throws(
      () => parsePrivateKey(ecSec1, { algorithm: 'RS256' }),
      rejection(
        'wrong_key_type',
        'The private key is an EC P-256 key, but algorithm RS256 needs an RSA key. Paste an RSA private key of 2048 bits or more, or set algorithm to ES256 to match this key.',
      ),
    );
  });

  it('rejects an RSA key for ES256', () => {
    assert.throws(
      () => parsePrivateKey(rsaPkcs8, { algorithm: 'ES256' }),
      rejection(
        'wrong_key_type',
        'The private key is a 2048-bit RSA key, but algorithm ES256 needs an EC P-256 key. Paste an EC P-256 private key, or set algorithm to RS256 to match this key.',
      ),
    );
  });

  it('rejects a P-384 key for ES256', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string;

    assert.throws(
      () => parsePrivateKey(p384, { algorithm: 'ES256' }),
      rejection(
        'wrong_key_type',
        'The private key is an EC P-384 key, but algorithm ES256 needs an EC P-256 key. Paste an EC P-256 private key, or set algorithm to ES384 to match this key.',
      ),
    );
  });

  it('rejects an Ed25519 key', () => {
    const ed25519 = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

    assert.throws(
      () => parsePrivateKey(ed25519),
      rejection(
        'wrong_key_type',
        'The private key is an Ed25519 key, but JWT bearer assertions are signed with RSA or EC keys. Paste an RSA key of 2048 bits or more, or an EC key on P-256, P-384 or P-521.',
      ),
    );
  });

  it('rejects a secp256k1 key', () => {
    const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string;

    assert.throws(
      () => parsePrivateKey(secp256k1),
      rejection(
        'unsupported_curve',
        'The private key is an EC key on curve secp256k1, which JWT signing does not support. Paste an EC key on P-256, P-384 or P-521, or an RSA key.',
      ),
    );
  });

  it('rejects an unknown algorithm', () => {
    assert.throws(() => parsePrivateKey(rsaPkcs8, { algorithm: 'HS256' }), {
      name: 'RangeError',
      message: '"HS256" is not a supported JWT signing algorithm. Use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512.',
    });
  });

  it('rejects empty text', () => {
    assert.throws(() => parsePrivateKey('  \r\n '), rejection('not_pem', `The private key is empty. ${PASTE_WHOLE_KEY}`));
  });

  it('rejects text that is not PEM', () => {
    assert.throws(() => parsePrivateKey('my-consumer-secret'), rejection('not_pem', `The private key is not in PEM format. ${PASTE_WHOLE_KEY}`));
  });

  it('rejects a service account key file', () => {
    const keyFile = JSON.stringify({ type: 'service_account', client_email: 'robot@example.iam.gserviceaccount.com', private_key: '(elided)' });

    assert.throws(
      () => parsePrivateKey(keyFile),
      rejection(
        'not_pem',
        'This is a JSON key file, such as a Google service account key, not a PEM private key. Paste the value of its private_key field, which starts with -----BEGIN PRIVATE KEY-----.',
      ),
    );
  });

  it('rejects other JSON', () => {
    assert.throws(() => parsePrivateKey('{"key": "value"}'), rejection('not_pem', `This is JSON, not a PEM private key. ${PASTE_WHOLE_KEY}`));
  });

  it('rejects PKCS#8 DER base64 without armour', () => {
    assert.throws(
      () => parsePrivateKey(base64Body(rsaPkcs8)),
      rejection(
        'not_pem',
        'This looks like a base64 DER private key without its PEM armour. Add a -----BEGIN PRIVATE KEY----- line before it and an -----END PRIVATE KEY----- line after it, or paste the original PEM file.',
      ),
    );
  });

  it('rejects PKCS#1 DER base64 without armour', () => {
    assert.throws(
      () => parsePrivateKey(base64Body(rsaPkcs1)),
      rejection(
        'not_pem',
        'This looks like a base64 DER private key without its PEM armour. Add a -----BEGIN RSA PRIVATE KEY----- line before it and an -----END RSA PRIVATE KEY----- line after it, or paste the original PEM file.',
      ),
    );
  });

  it('rejects a key without its END line', () => {
    const truncated = rsaPkcs8.slice(0, rsaPkcs8.indexOf('-----END'));

    assert.throws(
      () => parsePrivateKey(truncated),
      rejection(
        'invalid_key',
        'The text starts a PEM block with -----BEGIN PRIVATE KEY----- but has no matching -----END PRIVATE KEY----- line. Paste the whole block, including its END line.',
      ),
    );
  });

  it('rejects a truncated body', () => {
    const lines = rsaPkcs8.trim().split('\n');
    const truncated = [...lines.slice(0, 5), lines.at(-1)].join('\n');

    assert.throws(
      () => parsePrivateKey(truncated),
      rejection(
        'invalid_key',
        'The private key (BEGIN PRIVATE KEY) is not a valid PKCS#8 key, so its body is probably truncated or altered. Paste the key file again, unchanged.',
      ),
    );
  });

  it('rejects a body that is not base64', () => {
    assert.throws(
      () => parsePrivateKey('-----BEGIN RSA PRIVATE KEY-----\nnot*base64!\n-----END RSA PRIVATE KEY-----'),
      rejection(
        'invalid_key',
        'The private key (BEGIN RSA PRIVATE KEY) has text between its BEGIN and END lines that is not base64. Paste the key file again, unchanged.',
      ),
    );
  });

  it('rejects two private keys', () => {
    assert.throws(
      () => parsePrivateKey(`${rsaPkcs8}${ecSec1}`),
      rejection('invalid_key', 'The text contains 2 private keys. Paste only the one that belongs to this credential.'),
    );
  });

  it('rejects an unrelated PEM block', () => {
    assert.throws(
      () => parsePrivateKey('-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----'),
      rejection('not_pem', `This is a PEM block of type X509 CRL, not a private key. ${PASTE_WHOLE_KEY}`),
    );
  });

  it('keeps key material out of every message', () => {
    const secretLines = [rsaPkcs8, ecSec1].flatMap((pem) => pem.split('\n').filter((line) => line.length > 20 && !line.startsWith('-----')));
    const broken = [
      rsaPkcs8.slice(0, rsaPkcs8.indexOf('-----END')),
      base64Body(rsaPkcs8),
      rsaPkcs8.replace(/\n(.{10})/, '\n*$1'),
      `${rsaPkcs8}${ecSec1}`,
    ];

    for (const text of broken) {
      const error = captureError(() => parsePrivateKey(text));
      for (const line of secretLines) {
        assert.ok(!error.message.includes(line.slice(0, 16)), 'a message contains part of the key');
      }
    }
  });
});

function captureError(action: () => unknown): Error {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail('expected an error');
}
