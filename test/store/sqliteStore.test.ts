import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DEFAULT_EGRESS } from '../../src/domain/types.ts';
import { LATEST_SCHEMA_VERSION, MIGRATIONS, SchemaTooNewError, migrate, readSchemaVersion } from '../../src/store/migrations.ts';
import { openSqliteStore } from '../../src/store/openStore.ts';
import type { SqlDatabase } from '../../src/store/sqlDatabase.ts';
import { SqliteDatabase } from '../../src/store/sqliteDatabase.ts';
import { SqlStore } from '../../src/store/sqlStore.ts';
import { EnvironmentMasterKeySource } from '../../src/secrets/masterKey.ts';
import { EnvelopeCipher } from '../../src/secrets/secretCipher.ts';
import { runStoreContract, sampleConfig } from './storeContract.ts';

runStoreContract('SQLite', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'agent-proxy-store-'));
  const store = await openSqliteStore(join(directory, 'agent-proxy.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
});

/** Returns a cipher under a random master key, for stores opened on a bare database. */
function randomKeyCipher(): EnvelopeCipher {
  const env = { TEST_MASTER_KEY: randomBytes(32).toString('base64') };
  return new EnvelopeCipher(new EnvironmentMasterKeySource('TEST_MASTER_KEY', env));
}

/** Wraps a database so that `execute` inside transactions throws on SQL matching `pattern`. */
function failingOn(database: SqlDatabase, pattern: RegExp): SqlDatabase {
  const wrap = (inner: SqlDatabase): SqlDatabase => ({
    dialect: inner.dialect,
    query: (sql, params) => inner.query(sql, params),
    execute: (sql, params) => {
      if (pattern.test(sql)) {
        return Promise.reject(new Error(`injected failure on: ${sql}`));
      }
      return inner.execute(sql, params);
    },
    transaction: (fn, options) => inner.transaction((tx) => fn(wrap(tx)), options),
    close: () => inner.close(),
  });
  return wrap(database);
}

describe('SQLite store', () => {
  let directory: string;
  let path: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'agent-proxy-store-'));
    path = join(directory, 'agent-proxy.db');
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('keeps data and schema across reopen', async () => {
    const first = await openSqliteStore(path);
    await first.replaceConfig(sampleConfig());
    const saved = await first.loadConfig();
    await first.close();

    const second = await openSqliteStore(path);
    const loaded = await second.loadConfig();
    await second.close();

    const database = SqliteDatabase.open(path);
    const versions = await database.query('SELECT version, name FROM schema_migrations ORDER BY version');
    await database.close();
    assert.deepEqual(loaded, saved);
    assert.deepEqual(versions, [
      { version: 1, name: 'initial schema' },
      { version: 2, name: 'rotated refresh tokens' },
      { version: 3, name: 'encryption keys and admin security' },
    ]);
  });

  it('refuses a newer schema version', async () => {
    const database = SqliteDatabase.open(path);
    await migrate(database);
    await database.execute('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
      7,
      'from the future',
      Date.now(),
    ]);
    await database.close();

    await assert.rejects(openSqliteStore(path), (error: unknown) => {
      assert.ok(error instanceof SchemaTooNewError);
      assert.equal(
        error.message,
        `The database ${path} has schema version 7, but this release of Agent Proxy supports up to version 3. ` +
          'Upgrade Agent Proxy to the release that wrote this database, or point it at another database.',
      );
      return true;
    });
  });

  it('applies only missing migrations', async () => {
    const database = SqliteDatabase.open(path);
    await migrate(database);
    const second = {
      version: LATEST_SCHEMA_VERSION + 1,
      name: 'add notes',
      statements: () => ['ALTER TABLE bundles ADD COLUMN notes TEXT'],
    };

    await migrate(database, { migrations: [...MIGRATIONS, second] });
    await migrate(database, { migrations: [...MIGRATIONS, second] });

    assert.equal(await readSchemaVersion(database), LATEST_SCHEMA_VERSION + 1);
    await database.close();
  });

  it('rolls back a failed migration', async () => {
    const database = SqliteDatabase.open(path);
    const broken = {
      version: 1,
      name: 'broken',
      statements: () => ['CREATE TABLE first_table (id TEXT)', 'CREATE TABLE broken ('],
    };

    await assert.rejects(migrate(database, { migrations: [broken] }));

    const tables = await database.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    assert.deepEqual(tables, [{ name: 'schema_migrations' }]);
    assert.equal(await readSchemaVersion(database), 0);
    await database.close();
  });

  it('opens with WAL and the pragmas set', async () => {
    const store = await openSqliteStore(path);
    await store.close();
    const database = SqliteDatabase.open(path);

    const journal = await database.query('PRAGMA journal_mode');
    const foreignKeys = await database.query('PRAGMA foreign_keys');
    const synchronous = await database.query('PRAGMA synchronous');
    const busyTimeout = await database.query('PRAGMA busy_timeout');
    await database.close();

    assert.deepEqual(journal, [{ journal_mode: 'wal' }]);
    assert.deepEqual(foreignKeys, [{ foreign_keys: 1 }]);
    // 1 is NORMAL.
    assert.deepEqual(synchronous, [{ synchronous: 1 }]);
    assert.deepEqual(busyTimeout, [{ timeout: 5000 }]);
  });

  it('creates the file readable by its owner only', async () => {
    const store = await openSqliteStore(path);
    await store.close();

    const { mode } = await stat(path);

    assert.equal(mode & 0o777, 0o600);
  });

  it('rolls back replaceConfig failing midway', async () => {
    const database = SqliteDatabase.open(path);
    await migrate(database);
    const cipher = randomKeyCipher();
    const store = await SqlStore.open(database, { cipher });
    await store.replaceConfig({ egress: DEFAULT_EGRESS, bundles: sampleConfig().bundles.slice(0, 1) });
    const before = await store.loadConfig();
    // Egress, the new bundle and a deletion are written before the first credential insert fails.
    const failing = new SqlStore(failingOn(database, /^\s*INSERT INTO credentials/), { cipher });
    const config = sampleConfig();
    config.bundles = config.bundles.slice(1);

    await assert.rejects(failing.replaceConfig(config), { message: /^injected failure on:/ });

    assert.deepEqual(await store.loadConfig(), before);
    await store.close();
  });

  it('keeps updated_at of unchanged objects', async () => {
    const database = SqliteDatabase.open(path);
    await migrate(database);
    let now = new Date('2025-01-01T00:00:00.000Z');
    const store = await SqlStore.open(database, { cipher: randomKeyCipher(), now: () => now });
    await store.replaceConfig(sampleConfig());
    now = new Date('2025-02-01T00:00:00.000Z');
    const config = sampleConfig();
    const zendesk = config.bundles[0]?.credentials[0];
    assert.ok(zendesk);
    zendesk.access = 'read';

    await store.replaceConfig(config);

    const credentials = await database.query('SELECT name, created_at, updated_at FROM credentials ORDER BY name');
    const bundles = await database.query('SELECT name, created_at, updated_at FROM bundles ORDER BY name');
    const january = Date.parse('2025-01-01T00:00:00.000Z');
    const february = Date.parse('2025-02-01T00:00:00.000Z');
    assert.deepEqual(credentials, [
      { name: 'github', created_at: january, updated_at: january },
      { name: 'salesforce', created_at: january, updated_at: january },
      { name: 'zendesk', created_at: january, updated_at: february },
    ]);
    assert.deepEqual(bundles, [
      { name: 'sales', created_at: january, updated_at: january },
      { name: 'support', created_at: january, updated_at: january },
    ]);
    await store.close();
  });

  it('cascades bundle deletion to credentials', async () => {
    const database = SqliteDatabase.open(path);
    await migrate(database);
    const store = await SqlStore.open(database, { cipher: randomKeyCipher() });
    await store.replaceConfig(sampleConfig());

    await database.execute("DELETE FROM bundles WHERE name = 'sales'");

    const remaining = await database.query('SELECT name FROM credentials ORDER BY name');
    assert.deepEqual(remaining, [{ name: 'zendesk' }]);
    await store.close();
  });
});
