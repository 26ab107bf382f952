// The encrypted columns of the store. `credentials.secrets` contains `{field: sealed value}`
// JSON and `refresh_token_rotations.refresh_token` one sealed value, each sealed under a
// data key from `data_keys` (src/secrets/envelope.ts describes the format).

import type { CredentialSecrets } from '../domain/types.ts';
import { secretBinding } from '../secrets/envelope.ts';
import type { MasterKey } from '../secrets/masterKey.ts';
import type { DataKeyRecord, EnvelopeCipher, SecretCipher } from '../secrets/secretCipher.ts';
import type { SqlDatabase } from './sqlDatabase.ts';

/** The field name that binds a rotated refresh token, apart from the configured `refreshToken` field. */
export const ROTATED_REFRESH_TOKEN_FIELD = 'refreshToken:rotated';

// Set in `settings` once every secret column contains sealed values. Databases written before
// encryption at rest lack it, and their rows are encrypted when a store first opens them.
const ENCRYPTION_SETTING_KEY = 'secrets_encryption';
const ENCRYPTION_SETTING_VALUE = 'v1';

type SqlInteger = number | string;

interface DataKeyRow {
  id: string;
  wrapped_key: string;
  master_key_id: string;
  created_at: SqlInteger;
  retired_at: SqlInteger | null;
}

/** Seals each secret field of a credential, bound to the credential id and field name; returns the column text. */
export function sealCredentialSecrets(cipher: SecretCipher, credentialId: string, secrets: CredentialSecrets): string {
  const sealed: Record<string, string> = {};
  for (const field of Object.keys(secrets).sort()) {
    sealed[field] = cipher.encrypt(secrets[field] ?? '', secretBinding(credentialId, field));
  }
  return JSON.stringify(sealed);
}

/** Opens the `credentials.secrets` column of the credential `credentialId`. */
export function openCredentialSecrets(cipher: SecretCipher, credentialId: string, column: string): CredentialSecrets {
  const location = `credentials.secrets of ${credentialId}`;
  let sealed: unknown;
  try {
    sealed = JSON.parse(column);
  } catch (error) {
    throw new Error(`Invalid JSON in ${location}; restore the row from a backup or apply the configuration again.`, { cause: error });
  }
  if (sealed === null || typeof sealed !== 'object' || Array.isArray(sealed)) {
    throw new Error(`${location} is not a JSON object; restore the row from a backup or apply the configuration again.`);
  }
  const secrets: CredentialSecrets = {};
  for (const [field, value] of Object.entries(sealed as Record<string, unknown>)) {
    if (typeof value !== 'string') {
      throw new Error(`credentials.secrets.${field} of ${credentialId} is not a string; restore the row from a backup or apply the configuration again.`);
    }
    secrets[field] = cipher.decrypt(value, secretBinding(credentialId, field), `credentials.secrets.${field} of ${credentialId}`);
  }
  return secrets;
}

export function sealRotatedRefreshToken(cipher: SecretCipher, credentialId: string, refreshToken: string): string {
  return cipher.encrypt(refreshToken, secretBinding(credentialId, ROTATED_REFRESH_TOKEN_FIELD));
}

export function openRotatedRefreshToken(cipher: SecretCipher, credentialId: string, column: string): string {
  return cipher.decrypt(column, secretBinding(credentialId, ROTATED_REFRESH_TOKEN_FIELD), `refresh_token_rotations.refresh_token of ${credentialId}`);
}

export async function readDataKeys(database: SqlDatabase): Promise<DataKeyRecord[]> {
  const rows = await database.query<DataKeyRow>('SELECT id, wrapped_key, master_key_id, created_at, retired_at FROM data_keys ORDER BY created_at, id');
  return rows.map((row) => ({
    id: row.id,
    wrappedKey: row.wrapped_key,
    masterKeyId: row.master_key_id,
    createdAt: new Date(Number(row.created_at)),
    retiredAt: row.retired_at === null ? null : new Date(Number(row.retired_at)),
  }));
}

/**
 * Loads the data keys into `cipher`, creating the first one on a new database, and seals
 * the plaintext secrets of a database written before encryption at rest, all in one
 * transaction. Returns the number of rows it sealed. `location` names the database in errors.
 */
export async function prepareSecretColumns(database: SqlDatabase, cipher: SecretCipher, location: string, now: Date): Promise<number> {
  return database.transaction(async (tx) => {
    await cipher.loadDataKeys(await readDataKeys(tx), location);
    if (!cipher.hasActiveDataKey) {
      await insertDataKey(tx, await cipher.createDataKey(now));
    }

    const marker = await tx.query<{ value: string }>('SELECT value FROM settings WHERE key = $1', [ENCRYPTION_SETTING_KEY]);
    if (marker[0]?.value === ENCRYPTION_SETTING_VALUE) {
      return 0;
    }
    let sealedRows = 0;
    const credentials = await tx.query<{ id: string; secrets: string }>('SELECT id, secrets FROM credentials');
    for (const row of credentials) {
      const plaintext = JSON.parse(row.secrets) as CredentialSecrets;
      await tx.execute('UPDATE credentials SET secrets = $2 WHERE id = $1', [row.id, sealCredentialSecrets(cipher, row.id, plaintext)]);
      sealedRows += 1;
    }
    const rotations = await tx.query<{ credential_id: string; refresh_token: string }>('SELECT credential_id, refresh_token FROM refresh_token_rotations');
    for (const row of rotations) {
      await tx.execute('UPDATE refresh_token_rotations SET refresh_token = $2 WHERE credential_id = $1', [
        row.credential_id,
        sealRotatedRefreshToken(cipher, row.credential_id, row.refresh_token),
      ]);
      sealedRows += 1;
    }
    await tx.execute(
      `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [ENCRYPTION_SETTING_KEY, ENCRYPTION_SETTING_VALUE, now.getTime()],
    );
    return sealedRows;
  });
}

/** Counts and ids of what `rotateMasterKey` changed. */
export interface MasterKeyRotation {
  /** Data keys re-wrapped under the new master key and retired. */
  retiredDataKeys: number;
  newDataKeyId: string;
  /** Secret values decrypted and encrypted again under the new data key. */
  reencryptedValues: number;
}

/**
 * Re-wraps every data key under `next` and re-encrypts every secret under a fresh data key,
 * in one transaction. A failure at any point leaves the database as it was, readable by the
 * old master key only. Success leaves it readable by `next` only. `current` must be able to
 * load the stored data keys, otherwise SecretsError `master_key_mismatch` is thrown.
 * The old data keys are kept, re-wrapped and retired, because a server still running with
 * them in memory may write values under them until it reloads.
 */
export async function rotateMasterKey(database: SqlDatabase, current: EnvelopeCipher, next: MasterKey, location: string, now: Date): Promise<MasterKeyRotation> {
  return database.transaction(async (tx) => {
    const stored = await readDataKeys(tx);
    await current.loadDataKeys(stored, location);
    const { records, cipher } = await current.prepareRotation(next, now);

    let reencryptedValues = 0;
    const credentials = await tx.query<{ id: string; secrets: string }>('SELECT id, secrets FROM credentials ORDER BY id');
    for (const row of credentials) {
      const secrets = openCredentialSecrets(current, row.id, row.secrets);
      await tx.execute('UPDATE credentials SET secrets = $2 WHERE id = $1', [row.id, sealCredentialSecrets(cipher, row.id, secrets)]);
      reencryptedValues += Object.keys(secrets).length;
    }
    const rotations = await tx.query<{ credential_id: string; refresh_token: string }>('SELECT credential_id, refresh_token FROM refresh_token_rotations ORDER BY credential_id');
    for (const row of rotations) {
      const token = openRotatedRefreshToken(current, row.credential_id, row.refresh_token);
      await tx.execute('UPDATE refresh_token_rotations SET refresh_token = $2 WHERE credential_id = $1', [
        row.credential_id,
        sealRotatedRefreshToken(cipher, row.credential_id, token),
      ]);
      reencryptedValues += 1;
    }

    const storedIds = new Set(stored.map((record) => record.id));
    let retiredDataKeys = 0;
    let newDataKeyId = '';
    for (const record of records) {
      if (storedIds.has(record.id)) {
        await tx.execute('UPDATE data_keys SET wrapped_key = $2, master_key_id = $3, retired_at = COALESCE(retired_at, $4) WHERE id = $1', [
          record.id,
          record.wrappedKey,
          record.masterKeyId,
          now.getTime(),
        ]);
        retiredDataKeys += 1;
      } else {
        await insertDataKey(tx, record);
        newDataKeyId = record.id;
      }
    }
    return { retiredDataKeys, newDataKeyId, reencryptedValues };
  });
}

async function insertDataKey(tx: SqlDatabase, record: DataKeyRecord): Promise<void> {
  await tx.execute('INSERT INTO data_keys (id, wrapped_key, master_key_id, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)', [
    record.id,
    record.wrappedKey,
    record.masterKeyId,
    record.createdAt.getTime(),
    record.retiredAt?.getTime() ?? null,
  ]);
}
