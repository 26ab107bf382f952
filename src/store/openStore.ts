import { migrate } from './migrations.ts';
import { SqliteDatabase } from './sqliteDatabase.ts';
import { SqlStore } from './sqlStore.ts';
import type { Store } from './store.ts';

/**
 * Opens the SQLite database at `path` (creating it, mode 0600, when missing), applies
 * pending migrations and returns the store. Throws, with the database closed, when the
 * file cannot be opened or its schema is newer than this release supports.
 */
export async function openSqliteStore(path: string): Promise<Store> {
  const database = SqliteDatabase.open(path);
  try {
    await migrate(database, { location: path });
  } catch (error) {
    await database.close();
    throw error;
  }
  return new SqlStore(database);
}
