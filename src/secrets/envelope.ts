// AES-256-GCM envelope encryption of single secret values under a data key.
//
// A sealed value reads `v1:<dataKeyId>:<base64 IV>:<base64 ciphertext and tag>`. The
// associated data binds it to its record (credential id and field name), so a value copied
// to another row or field fails authentication instead of decrypting there.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SecretsError } from './secretsError.ts';

export const SEALED_VALUE_VERSION = 'v1';

// GCM is specified for 96-bit IVs (NIST SP 800-38D, section 8.2). Random IVs stay within
// its limit of 2^32 encryptions per key, and each rotation starts a fresh data key.
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const DATA_KEY_BYTES = 32;

const DATA_KEY_ID_PATTERN = /^dk_[0-9a-f]{24}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;

/** An unwrapped data key and the id it is stored under in `data_keys`. */
export interface DataKey {
  id: string;
  key: Buffer;
}

/** The parts of a sealed value. */
export interface SealedValue {
  dataKeyId: string;
  iv: Buffer;
  /** Ciphertext followed by the 16-byte GCM tag. */
  sealed: Buffer;
}

/** Returns a new random data key with a fresh id. */
export function generateDataKey(): DataKey {
  return { id: `dk_${randomBytes(12).toString('hex')}`, key: randomBytes(DATA_KEY_BYTES) };
}

/** Associated data of a credential's secret field; a rotated refresh token uses the field `refreshToken:rotated`. */
export function secretBinding(credentialId: string, field: string): string {
  // A JSON array keeps the two parts apart even when one contains the separator of the other.
  return JSON.stringify([credentialId, field]);
}

/** Encrypts `plaintext` under `dataKey`, bound to `binding`, with a fresh random IV. */
export function sealValue(dataKey: DataKey, plaintext: string, binding: string): string {
  const { iv, sealed } = aesGcmEncrypt(dataKey.key, Buffer.from(plaintext, 'utf8'), associatedData(dataKey.id, binding));
  return `${SEALED_VALUE_VERSION}:${dataKey.id}:${iv.toString('base64')}:${sealed.toString('base64')}`;
}

/**
 * Parses a sealed value. `location` names the record in the error, such as
 * `credentials.secrets.token of cred_…`.
 */
export function parseSealedValue(text: string, location: string): SealedValue {
  const parts = text.split(':');
  const [version, dataKeyId, iv, sealed] = parts;
  if (parts.length !== 4 || version !== SEALED_VALUE_VERSION || dataKeyId === undefined || iv === undefined || sealed === undefined) {
    throw new SecretsError(
      'secret_decrypt_failed',
      `The encrypted value in ${location} is not in the ${SEALED_VALUE_VERSION}:<data key id>:<IV>:<ciphertext> format; ` +
        'restore the row from a backup or apply the configuration again.',
    );
  }
  if (!DATA_KEY_ID_PATTERN.test(dataKeyId) || !BASE64_PATTERN.test(iv) || !BASE64_PATTERN.test(sealed)) {
    throw new SecretsError(
      'secret_decrypt_failed',
      `The encrypted value in ${location} has an invalid data key id, IV or ciphertext; restore the row from a backup or apply the configuration again.`,
    );
  }
  return { dataKeyId, iv: Buffer.from(iv, 'base64'), sealed: Buffer.from(sealed, 'base64') };
}

/** Decrypts a parsed sealed value with its data key, checking that it is bound to `binding`. */
export function openValue(dataKey: DataKey, value: SealedValue, binding: string, location: string): string {
  try {
    return aesGcmDecrypt(dataKey.key, value.iv, value.sealed, associatedData(dataKey.id, binding)).toString('utf8');
  } catch (error) {
    throw new SecretsError(
      'secret_decrypt_failed',
      `Failed to decrypt ${location} with data key ${dataKey.id}: the value was altered or copied from another credential or field. ` +
        'Apply the configuration again to store the secret afresh.',
      { cause: error },
    );
  }
}

/** Encrypts with AES-256-GCM under a fresh random IV; returns the IV and the ciphertext followed by the tag. */
export function aesGcmEncrypt(key: Buffer, plaintext: Buffer, aad: Buffer): { iv: Buffer; sealed: Buffer } {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, sealed: Buffer.concat([ciphertext, cipher.getAuthTag()]) };
}

/** Decrypts what `aesGcmEncrypt` returned; throws when the key, IV, AAD or any byte differs. */
export function aesGcmDecrypt(key: Buffer, iv: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (iv.length !== IV_BYTES || sealed.length < TAG_BYTES) {
    throw new Error(`expected a ${IV_BYTES}-byte IV and at least ${TAG_BYTES} bytes of ciphertext and tag`);
  }
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
}

// The version and data key id are in the associated data too, so editing the header of a
// sealed value is detected like editing its ciphertext.
function associatedData(dataKeyId: string, binding: string): Buffer {
  return Buffer.from(`${SEALED_VALUE_VERSION}\n${dataKeyId}\n${binding}`, 'utf8');
}
