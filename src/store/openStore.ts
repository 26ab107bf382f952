import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { KeyFileMasterKeySource, localMasterKey, MASTER_KEY_FILE_NAME, type MasterKeySource } from '../secrets/masterKey.ts';
import { EnvelopeCipher, fixedMasterKeySource } from '../secrets/secretCipher.ts';
import { migrate } from './migrations.ts';
import { SqliteDatabase } from './sqliteDatabase.ts';
import { SqlStore } from './sqlStore.ts';
import type { Store } from './store.ts';

export interface OpenSqliteStoreOptions {
  /**
   * Master key that wraps the data keys. The default is the key file `master-key` next to
   * the database, created with mode 0600 when missing. For `:memory:` it is a random key.
   */
  masterKey?: MasterKeySource;
  now?: () => Date;
}

/**
 * Opens the SQLite database at `path` (creating it, mode 0600, when missing), applies
 * pending migrations, loads the data keys with the master key and returns the store.
 * Throws, with the database closed, when the file cannot be opened, its schema is newer
 * than this release supports, or the master key is invalid or not the one that wrapped
 * the stored data keys (SecretsError).
 */
export async function openSqliteStore(path: string, options: OpenSqliteStoreOptions = {}): Promise<Store> {
  const masterKey = options.masterKey ?? defaultMasterKeySource(path);
  const database = SqliteDatabase.open(path);
  try {
    await migrate(database, { location: path });
    return await SqlStore.open(database, { cipher: new EnvelopeCipher(masterKey), location: path, ...(options.now ? { now: options.now } : {}) });
  } catch (error) {
    await database.close();
    throw error;
  }
}

function defaultMasterKeySource(path: string): MasterKeySource {
  if (path === ':memory:') {
    return fixedMasterKeySource(localMasterKey(randomBytes(32), 'a random key for the in-memory database'));
  }
  return new KeyFileMasterKeySource(join(dirname(path), MASTER_KEY_FILE_NAME), { create: true });
}
