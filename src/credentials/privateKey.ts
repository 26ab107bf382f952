// Private keys for signing JWT bearer assertions, read from text as people paste it into
// a console field, a JSON value, an environment variable or a YAML file.

import { X509Certificate, createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

export type PrivateKeyErrorCode =
  | 'encrypted'
  | 'certificate'
  | 'public_key'
  | 'not_pem'
  | 'weak_key'
  | 'wrong_key_type'
  | 'unsupported_curve'
  | 'invalid_key';

/** A private key that cannot be used, with a message that names what was pasted and what to paste instead. Never contains key material. */
export class PrivateKeyError extends Error {
  readonly code: PrivateKeyErrorCode;

  constructor(code: PrivateKeyErrorCode, message: string) {
    super(message);
    this.name = 'PrivateKeyError';
    this.code = code;
  }
}

export type PrivateKeyFormat = 'pkcs1' | 'pkcs8' | 'sec1';
export type EcCurve = 'P-256' | 'P-384' | 'P-521';

export interface ParsedPrivateKey {
  keyObject: KeyObject;
  kind: 'rsa' | 'ec';
  /** Modulus length of an RSA key. */
  rsaBits?: number;
  /** Curve of an EC key. */
  curve?: EcCurve;
  /** Encoding of the pasted PEM block, from its BEGIN line. */
  format: PrivateKeyFormat;
  /** `SHA256:` and the lowercase hex SHA-256 of the key's PKCS#8 DER encoding, the same for every accepted form of one key. */
  fingerprint: string;
  /**
   * `SHA256:` and the lowercase hex SHA-256 of the DER SubjectPublicKeyInfo. The hex part is what
   * `openssl pkey -pubin -outform DER | openssl dgst -sha256` prints for the matching certificate's public key.
   */
  publicKeyFingerprint: string;
}

export type JwtSigningAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

/** The key each supported JWS algorithm (RFC 7518 §3.1) signs with. */
export const JWT_ALGORITHM_KEYS: Readonly<Record<JwtSigningAlgorithm, { kind: 'rsa' } | { kind: 'ec'; curve: EcCurve }>> = {
  RS256: { kind: 'rsa' },
  RS384: { kind: 'rsa' },
  RS512: { kind: 'rsa' },
  PS256: { kind: 'rsa' },
  PS384: { kind: 'rsa' },
  PS512: { kind: 'rsa' },
  ES256: { kind: 'ec', curve: 'P-256' },
  ES384: { kind: 'ec', curve: 'P-384' },
  ES512: { kind: 'ec', curve: 'P-521' },
};

export function isJwtSigningAlgorithm(algorithm: string): algorithm is JwtSigningAlgorithm {
  return Object.hasOwn(JWT_ALGORITHM_KEYS, algorithm);
}

// RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used" with the RS and PS algorithms.
export const MIN_RSA_BITS = 2048;

const CURVES_BY_OPENSSL_NAME: Readonly<Record<string, EcCurve>> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

const ALGORITHM_FOR_CURVE: Readonly<Record<EcCurve, JwtSigningAlgorithm>> = {
  'P-256': 'ES256',
  'P-384': 'ES384',
  'P-521': 'ES512',
};

const PRIVATE_KEY_LABELS: Readonly<Record<string, PrivateKeyFormat>> = {
  'RSA PRIVATE KEY': 'pkcs1',
  'PRIVATE KEY': 'pkcs8',
  'EC PRIVATE KEY': 'sec1',
};

const FORMAT_NAMES: Readonly<Record<PrivateKeyFormat, string>> = {
  pkcs1: 'PKCS#1 RSA',
  pkcs8: 'PKCS#8',
  sec1: 'SEC1 EC',
};

const ACCEPTED_FORMS = 'BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY';
const PASTE_WHOLE_KEY = `Paste the whole key, from its -----BEGIN PRIVATE KEY----- line (or BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY) through its END line.`;

interface PemBlock {
  label: string;
  /** Text between the BEGIN and END lines, RFC 1421 headers included. */
  body: string;
}

/**
 * Parses a PEM private key in PKCS#1, PKCS#8 or SEC1 form, which must be RSA of 2048 bits or
 * more, or EC on P-256, P-384 or P-521. When `options.algorithm` is given, the key must also fit that JWS
 * algorithm. Text around the PEM block is ignored, as are line breaks and spaces inside its
 * base64 body, so a key pasted on one line or with CRLF line ends reads the same.
 *
 * @throws PrivateKeyError when the text is not such a key. The message never contains key material.
 * @throws RangeError when `options.algorithm` is not a supported JWS algorithm.
 */
export function parsePrivateKey(text: string, options: { algorithm?: string } = {}): ParsedPrivateKey {
  const normalised = normalisePem(text);
  const blocks = findPemBlocks(normalised);
  const keyBlocks = blocks.filter((block) => Object.hasOwn(PRIVATE_KEY_LABELS, block.label));

  if (keyBlocks.length > 1) {
    throw new PrivateKeyError('invalid_key', `The text contains ${keyBlocks.length} private keys. Paste only the one that belongs to this credential.`);
  }
  const keyBlock = keyBlocks[0];
  if (keyBlock === undefined) {
    throw explainMissingPrivateKey(normalised, blocks);
  }

  const format = PRIVATE_KEY_LABELS[keyBlock.label] as PrivateKeyFormat;
  const keyObject = decodePrivateKeyBlock(keyBlock, format);
  const parsed = describeKey(keyObject, format);

  if (options.algorithm !== undefined) {
    if (!isJwtSigningAlgorithm(options.algorithm)) {
      throw new RangeError(`${JSON.stringify(options.algorithm)} is not a supported JWT signing algorithm. Use one of ${Object.keys(JWT_ALGORITHM_KEYS).join(', ')}.`);
    }
    const mismatch = checkKeyFitsAlgorithm(parsed, options.algorithm);
    if (mismatch !== undefined) throw mismatch;
  }
  return parsed;
}

/**
 * Returns the error that explains why `key` cannot sign with `algorithm`, or undefined when it can.
 * RS and PS algorithms need an RSA key of at least 2048 bits. ES256, ES384 and ES512 need an EC key on
 * P-256, P-384 and P-521 respectively (RFC 7518 §3.4).
 */
export function checkKeyFitsAlgorithm(key: ParsedPrivateKey, algorithm: JwtSigningAlgorithm): PrivateKeyError | undefined {
  const needed = JWT_ALGORITHM_KEYS[algorithm];
  const actual = describeKeyKind(key);

  if (needed.kind === 'rsa') {
    if (key.kind === 'rsa' && (key.rsaBits ?? 0) >= MIN_RSA_BITS) return undefined;
    if (key.kind === 'rsa') {
      return new PrivateKeyError('weak_key', `The private key is ${actual}, but algorithm ${algorithm} needs an RSA key of at least ${MIN_RSA_BITS} bits. Paste a key of ${MIN_RSA_BITS} bits or more.`);
    }
    const suggestion = key.curve === undefined ? '' : `, or set algorithm to ${ALGORITHM_FOR_CURVE[key.curve]} to match this key`;
    return new PrivateKeyError('wrong_key_type', `The private key is ${actual}, but algorithm ${algorithm} needs an RSA key. Paste an RSA private key of ${MIN_RSA_BITS} bits or more${suggestion}.`);
  }

  if (key.kind === 'ec' && key.curve === needed.curve) return undefined;
  let suggestion = '';
  if (key.kind === 'rsa') {
    suggestion = ', or set algorithm to RS256 to match this key';
  } else if (key.curve !== undefined) {
    suggestion = `, or set algorithm to ${ALGORITHM_FOR_CURVE[key.curve]} to match this key`;
  }
  return new PrivateKeyError('wrong_key_type', `The private key is ${actual}, but algorithm ${algorithm} needs an EC ${needed.curve} key. Paste an EC ${needed.curve} private key${suggestion}.`);
}

/** Returns the public key fingerprint of a PEM certificate, in the form of `ParsedPrivateKey.publicKeyFingerprint`. */
export function publicKeyFingerprintOfCertificate(certPem: string): string {
  const normalised = normalisePem(certPem);
  const block = findPemBlocks(normalised).find((candidate) => candidate.label === 'CERTIFICATE');
  if (block === undefined) {
    throw new Error('The certificate is not a PEM certificate. Paste it from its -----BEGIN CERTIFICATE----- line through its END line.');
  }

  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(decodeBase64Body(block.body) ?? Buffer.alloc(0));
  } catch {
    throw new Error('The certificate (BEGIN CERTIFICATE) could not be parsed, so its body is probably truncated or altered. Paste the certificate file again, unchanged.');
  }
  return fingerprintPublicKey(certificate.publicKey);
}

/** Returns whether a PEM certificate, such as the one uploaded to a Salesforce Connected App, contains the public half of `key`. */
export function certificateMatchesKey(certPem: string, key: ParsedPrivateKey): boolean {
  return publicKeyFingerprintOfCertificate(certPem) === key.publicKeyFingerprint;
}

/**
 * Undoes the usual damage of copying a PEM through other formats: surrounding white space, CRLF
 * line ends, and the two-character `\n` escapes that a JSON string or an environment variable
 * leaves behind. Base64 contains no backslash, so replacing the escapes cannot alter a key.
 */
function normalisePem(text: string): string {
  return text
    .replace(/\\r\\n|\\n|\\r/g, '\n')
    .replace(/\r\n?/g, '\n')
    .trim();
}

function findPemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  const beginLine = /-----BEGIN ([A-Z0-9 ]+)-----/g;

  for (let match = beginLine.exec(text); match !== null; match = beginLine.exec(text)) {
    const label = match[1] as string;
    const endLine = `-----END ${label}-----`;
    const bodyStart = match.index + match[0].length;
    const endIndex = text.indexOf(endLine, bodyStart);
    if (endIndex === -1) {
      throw new PrivateKeyError(
        'invalid_key',
        `The text starts a PEM block with -----BEGIN ${label}----- but has no matching ${endLine} line. Paste the whole block, including its END line.`,
      );
    }
    blocks.push({ label, body: text.slice(bodyStart, endIndex) });
    beginLine.lastIndex = endIndex + endLine.length;
  }
  return blocks;
}

/** Removes RFC 1421 header lines (`Proc-Type: …`, `DEK-Info: …`), which legacy OpenSSL keys put before the base64. */
function stripPemHeaders(body: string): string {
  return body.replace(/^[ \t]*[A-Za-z-]+:[^\n]*\n/gm, '');
}

/**
 * Decodes a PEM body to DER, or returns undefined when it is not base64. All white space is
 * dropped first, because base64 never contains any, so a body pasted on one line with spaces
 * for line breaks decodes the same as the original.
 */
function decodeBase64Body(body: string): Buffer | undefined {
  const base64 = stripPemHeaders(body).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 !== 0) return undefined;
  return Buffer.from(base64, 'base64');
}

function decodePrivateKeyBlock(block: PemBlock, format: PrivateKeyFormat): KeyObject {
  // OpenSSL's legacy encryption marks PKCS#1 and SEC1 keys with this header (RFC 1421 §4.6.1.1).
  if (/Proc-Type:\s*4,\s*ENCRYPTED/i.test(block.body)) {
    const tool = format === 'sec1' ? 'openssl ec' : 'openssl rsa';
    throw new PrivateKeyError(
      'encrypted',
      `The private key is encrypted (BEGIN ${block.label} with Proc-Type: 4,ENCRYPTED), and the proxy cannot use a key that needs a passphrase. Decrypt it first (${tool} -in key.pem -out key-decrypted.pem) and paste the decrypted key.`,
    );
  }

  const der = decodeBase64Body(block.body);
  if (der === undefined) {
    throw new PrivateKeyError(
      'invalid_key',
      `The private key (BEGIN ${block.label}) has text between its BEGIN and END lines that is not base64. Paste the key file again, unchanged.`,
    );
  }

  try {
    return createPrivateKey({ key: der, format: 'der', type: format });
  } catch {
    throw new PrivateKeyError(
      'invalid_key',
      `The private key (BEGIN ${block.label}) is not a valid ${FORMAT_NAMES[format]} key, so its body is probably truncated or altered. Paste the key file again, unchanged.`,
    );
  }
}

function describeKey(keyObject: KeyObject, format: PrivateKeyFormat): ParsedPrivateKey {
  const fingerprints = {
    fingerprint: sha256Fingerprint(keyObject.export({ type: 'pkcs8', format: 'der' })),
    publicKeyFingerprint: fingerprintPublicKey(createPublicKey(keyObject)),
  };

  if (keyObject.asymmetricKeyType === 'rsa') {
    const rsaBits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
    if (rsaBits < MIN_RSA_BITS) {
      throw new PrivateKeyError(
        'weak_key',
        `The private key is a ${rsaBits}-bit RSA key, which is too weak. JWT signing needs RSA keys of at least ${MIN_RSA_BITS} bits. Generate a new key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem), upload its certificate to the provider and paste the new key.`,
      );
    }
    return { keyObject, kind: 'rsa', rsaBits, format, ...fingerprints };
  }

  if (keyObject.asymmetricKeyType === 'ec') {
    const curveName = keyObject.asymmetricKeyDetails?.namedCurve ?? 'unknown';
    const curve = CURVES_BY_OPENSSL_NAME[curveName];
    if (curve === undefined) {
      throw new PrivateKeyError(
        'unsupported_curve',
        `The private key is an EC key on curve ${curveName}, which JWT signing does not support. Paste an EC key on P-256, P-384 or P-521, or an RSA key.`,
      );
    }
    return { keyObject, kind: 'ec', curve, format, ...fingerprints };
  }

  // Node names RSASSA-PSS-only keys 'rsa-pss'. They cannot sign RS256, so they are rejected with the other types.
  const typeName = KEY_TYPE_NAMES[keyObject.asymmetricKeyType ?? ''] ?? keyObject.asymmetricKeyType ?? 'unknown';
  throw new PrivateKeyError(
    'wrong_key_type',
    `The private key is ${typeName} key, but JWT bearer assertions are signed with RSA or EC keys. Paste an RSA key of ${MIN_RSA_BITS} bits or more, or an EC key on P-256, P-384 or P-521.`,
  );
}

const KEY_TYPE_NAMES: Readonly<Record<string, string>> = {
  'rsa-pss': 'an RSA-PSS',
  dsa: 'a DSA',
  dh: 'a Diffie-Hellman',
  ed25519: 'an Ed25519',
  ed448: 'an Ed448',
  x25519: 'an X25519',
  x448: 'an X448',
};

function describeKeyKind(key: ParsedPrivateKey): string {
  return key.kind === 'rsa' ? `a ${key.rsaBits ?? 0}-bit RSA key` : `an EC ${key.curve ?? 'unknown curve'} key`;
}

function fingerprintPublicKey(publicKey: KeyObject): string {
  return sha256Fingerprint(publicKey.export({ type: 'spki', format: 'der' }));
}

function sha256Fingerprint(der: Buffer): string {
  return `SHA256:${createHash('sha256').update(der).digest('hex')}`;
}

/** Builds the error for text that contains no private key PEM block, naming what the text is instead. */
function explainMissingPrivateKey(text: string, blocks: PemBlock[]): PrivateKeyError {
  for (const block of blocks) {
    const error = explainOtherBlock(block.label);
    if (error !== undefined) return error;
  }
  const firstBlock = blocks[0];
  if (firstBlock !== undefined) {
    return new PrivateKeyError('not_pem', `This is a PEM block of type ${firstBlock.label}, not a private key. ${PASTE_WHOLE_KEY}`);
  }

  if (text === '') {
    return new PrivateKeyError('not_pem', `The private key is empty. ${PASTE_WHOLE_KEY}`);
  }
  if (/^(ssh-rsa|ssh-ed25519|ssh-dss|ecdsa-sha2-nistp\d+) /.test(text)) {
    return new PrivateKeyError(
      'public_key',
      `This is an OpenSSH public key, not a private key. The proxy signs with the private key, so paste the private key instead (${ACCEPTED_FORMS}).`,
    );
  }
  if (text.startsWith('{')) {
    return explainJson(text);
  }
  return explainBareBase64(text) ?? new PrivateKeyError('not_pem', `The private key is not in PEM format. ${PASTE_WHOLE_KEY}`);
}

function explainOtherBlock(label: string): PrivateKeyError | undefined {
  if (label === 'ENCRYPTED PRIVATE KEY') {
    return new PrivateKeyError(
      'encrypted',
      'The private key is encrypted (BEGIN ENCRYPTED PRIVATE KEY), and the proxy cannot use a key that needs a passphrase. Decrypt it first (openssl pkey -in key.pem -out key-decrypted.pem) and paste the decrypted key.',
    );
  }
  if (label === 'OPENSSH PRIVATE KEY') {
    // OpenSSL 3.0 cannot read this format, so only ssh-keygen converts it. Ed25519 keys have no PEM form that the proxy accepts.
    return new PrivateKeyError(
      'not_pem',
      'This is an OpenSSH private key (BEGIN OPENSSH PRIVATE KEY), a format the proxy does not read. Convert a copy of the key file to PEM with ssh-keygen -p -m PEM -f key (it rewrites the file in place, and works for RSA and ECDSA keys only) and paste the result.',
    );
  }
  if (label === 'CERTIFICATE' || label === 'TRUSTED CERTIFICATE' || label === 'X509 CERTIFICATE') {
    return new PrivateKeyError(
      'certificate',
      `This is a certificate (BEGIN ${label}), not a private key. The certificate is what you upload to the provider, such as a Salesforce Connected App. Paste the private key that was generated with it (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).`,
    );
  }
  if (label === 'CERTIFICATE REQUEST' || label === 'NEW CERTIFICATE REQUEST') {
    return new PrivateKeyError(
      'certificate',
      `This is a certificate signing request (BEGIN ${label}), not a private key. Paste the private key that the request was made with (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).`,
    );
  }
  if (label === 'PUBLIC KEY' || label === 'RSA PUBLIC KEY' || label === 'EC PUBLIC KEY') {
    return new PrivateKeyError(
      'public_key',
      `This is a public key (BEGIN ${label}), not a private key. The proxy signs with the private key, so paste the private key that this public key belongs to (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).`,
    );
  }
  if (label === 'DSA PRIVATE KEY') {
    return new PrivateKeyError(
      'wrong_key_type',
      `The private key is a DSA key (BEGIN DSA PRIVATE KEY), but JWT bearer assertions are signed with RSA or EC keys. Paste an RSA key of ${MIN_RSA_BITS} bits or more, or an EC key on P-256, P-384 or P-521.`,
    );
  }
  return undefined;
}

function explainJson(text: string): PrivateKeyError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return new PrivateKeyError('not_pem', `The private key is not in PEM format. ${PASTE_WHOLE_KEY}`);
  }
  if (typeof value === 'object' && value !== null && 'private_key' in value) {
    return new PrivateKeyError(
      'not_pem',
      'This is a JSON key file, such as a Google service account key, not a PEM private key. Paste the value of its private_key field, which starts with -----BEGIN PRIVATE KEY-----.',
    );
  }
  return new PrivateKeyError('not_pem', `This is JSON, not a PEM private key. ${PASTE_WHOLE_KEY}`);
}

/** Recognises a DER key or certificate pasted as base64 without its BEGIN and END lines. */
function explainBareBase64(text: string): PrivateKeyError | undefined {
  const base64 = text.replace(/\s+/g, '');
  // Every DER key and certificate is an ASN.1 SEQUENCE, whose tag byte 0x30 encodes as a leading "M".
  if (!base64.startsWith('M') || base64.length < 64 || base64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
    return undefined;
  }
  const der = Buffer.from(base64, 'base64');

  // OpenSSL 3.0 also reads PKCS#8 DER when asked for PKCS#1 or SEC1, so PKCS#8 is tried first.
  const candidates: Array<[string, PrivateKeyFormat]> = [['PRIVATE KEY', 'pkcs8'], ['RSA PRIVATE KEY', 'pkcs1'], ['EC PRIVATE KEY', 'sec1']];
  for (const [label, format] of candidates) {
    try {
      createPrivateKey({ key: der, format: 'der', type: format });
    } catch {
      continue;
    }
    return new PrivateKeyError(
      'not_pem',
      `This looks like a base64 DER private key without its PEM armour. Add a -----BEGIN ${label}----- line before it and an -----END ${label}----- line after it, or paste the original PEM file.`,
    );
  }

  try {
    new X509Certificate(der);
  } catch {
    return new PrivateKeyError('not_pem', `This looks like base64 without PEM armour, and it is not a private key the proxy recognises. ${PASTE_WHOLE_KEY}`);
  }
  return new PrivateKeyError(
    'certificate',
    'This looks like a base64 DER certificate without its PEM armour, not a private key. The certificate is what you upload to the provider, such as a Salesforce Connected App. Paste the private key that was generated with it (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY).',
  );
}
