import type { SqlDatabase, SqlDialect } from './sqlDatabase.ts';

/** Column types whose spelling differs between the dialects. */
interface ColumnTypes {
  /** Milliseconds since the Unix epoch, and other 64-bit integers. */
  bigint: string;
  double: string;
  bytes: string;
  autoIncrementKey: string;
}

const COLUMN_TYPES: Record<SqlDialect, ColumnTypes> = {
  sqlite: {
    bigint: 'INTEGER',
    double: 'REAL',
    bytes: 'BLOB',
    autoIncrementKey: 'INTEGER PRIMARY KEY AUTOINCREMENT',
  },
  postgres: {
    bigint: 'BIGINT',
    double: 'DOUBLE PRECISION',
    bytes: 'BYTEA',
    autoIncrementKey: 'BIGSERIAL PRIMARY KEY',
  },
};

export interface Migration {
  version: number;
  name: string;
  /** Statements run in order, one `execute` each, in the migration's transaction. */
  statements(types: ColumnTypes): string[];
}

// Timestamps are integer milliseconds since the Unix epoch. JSON columns are TEXT written by
// the store with sorted object keys, so equal values have equal text on both dialects.
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    statements: (t) => [
      `CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at ${t.bigint} NOT NULL
      )`,
      `CREATE TABLE bundles (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        channels TEXT NOT NULL,
        created_at ${t.bigint} NOT NULL,
        updated_at ${t.bigint} NOT NULL
      )`,
      `CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        bundle_id TEXT NOT NULL REFERENCES bundles (id) ON DELETE CASCADE,
        name TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        settings TEXT NOT NULL,
        -- {field: sealed value} JSON; each value is AES-256-GCM under a data key, bound to the credential id and field.
        secrets TEXT NOT NULL,
        allowed_websites TEXT NOT NULL,
        access TEXT NOT NULL CHECK (access IN ('read', 'read_write')),
        rules TEXT NOT NULL,
        extra_headers TEXT NOT NULL,
        created_at ${t.bigint} NOT NULL,
        updated_at ${t.bigint} NOT NULL
      )`,
      'CREATE INDEX credentials_bundle_id ON credentials (bundle_id)',
      `CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        token_hash ${t.bytes} NOT NULL,
        channel TEXT NOT NULL,
        thread TEXT,
        created_at ${t.bigint} NOT NULL,
        expires_at ${t.bigint} NOT NULL,
        revoked_at ${t.bigint}
      )`,
      'CREATE INDEX sessions_expires_at ON sessions (expires_at)',
      `CREATE TABLE audit_events (
        id ${t.autoIncrementKey},
        occurred_at ${t.bigint} NOT NULL,
        kind TEXT NOT NULL,
        decision TEXT NOT NULL,
        error_code TEXT,
        session_id TEXT,
        channel TEXT,
        thread TEXT,
        bundle TEXT,
        credential TEXT,
        method TEXT,
        host TEXT,
        port INTEGER,
        path TEXT,
        status INTEGER,
        bytes_in ${t.bigint},
        bytes_out ${t.bigint},
        duration_ms ${t.double},
        subject TEXT,
        client_address TEXT
      )`,
      'CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at)',
      // Filtered queries also order by id, so the id in these indexes serves the ORDER BY.
      'CREATE INDEX audit_events_channel ON audit_events (channel, id)',
      'CREATE INDEX audit_events_credential ON audit_events (credential, id)',
    ],
  },
  {
    version: 2,
    name: 'rotated refresh tokens',
    // A provider that rotates refresh tokens invalidates the configured one. The rotated
    // value is kept apart from `credentials.secrets` so that re-applying an unchanged
    // bundles file does not put the invalidated token back; `seed_hash` names the
    // configured token the rotation started from.
    statements: (t) => [
      `CREATE TABLE refresh_token_rotations (
        credential_id TEXT PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
        seed_hash TEXT NOT NULL,
        -- A sealed value, like the values of credentials.secrets, bound to the credential id and 'refreshToken:rotated'.
        refresh_token TEXT NOT NULL,
        updated_at ${t.bigint} NOT NULL
      )`,
    ],
  },
  {
    version: 3,
    name: 'encryption keys and admin security',
    statements: (t) => [
      // Data keys encrypt secret fields (AES-256-GCM); each is stored wrapped by the master
      // key named by `master_key_id` (a fingerprint of the master key, never the key).
      `CREATE TABLE data_keys (
        id TEXT PRIMARY KEY,
        wrapped_key TEXT NOT NULL,
        master_key_id TEXT NOT NULL,
        created_at ${t.bigint} NOT NULL,
        retired_at ${t.bigint}
      )`,
      `CREATE TABLE admin_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token_hash ${t.bytes} NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'viewer', 'session-issuer')),
        created_at ${t.bigint} NOT NULL,
        expires_at ${t.bigint},
        revoked_at ${t.bigint},
        last_used_at ${t.bigint}
      )`,
      // Who changed what in the configuration: names of objects and fields, never values.
      `CREATE TABLE admin_audit_events (
        id ${t.autoIncrementKey},
        occurred_at ${t.bigint} NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        fields TEXT NOT NULL,
        outcome TEXT NOT NULL,
        client_address TEXT
      )`,
      'CREATE INDEX admin_audit_events_occurred_at ON admin_audit_events (occurred_at)',
    ],
  },
];

export const LATEST_SCHEMA_VERSION = Math.max(...MIGRATIONS.map((migration) => migration.version));

/** Thrown when the database was migrated by a newer release of Agent Proxy than this one. */
export class SchemaTooNewError extends Error {
  readonly databaseVersion: number;
  readonly supportedVersion: number;

  constructor(databaseVersion: number, supportedVersion: number, location: string) {
    super(
      `The database ${location} has schema version ${databaseVersion}, but this release of Agent Proxy supports up to ` +
        `version ${supportedVersion}. Upgrade Agent Proxy to the release that wrote this database, ` +
        'or point it at another database.',
    );
    this.name = 'SchemaTooNewError';
    this.databaseVersion = databaseVersion;
    this.supportedVersion = supportedVersion;
  }
}

export interface MigrateOptions {
  /** Migrations to apply instead of MIGRATIONS (tests use this to make a newer schema). */
  migrations?: readonly Migration[];
  /** Location of the database, such as its file path, shown in error messages. */
  location?: string;
}

/**
 * Applies the migrations that `database` lacks, each in its own transaction, and records
 * each in `schema_migrations`. Throws SchemaTooNewError, changing nothing, when the
 * database has a version newer than `migrations` contains. Safe to run from several
 * processes at once: each transaction rereads the version before applying its migration.
 */
export async function migrate(database: SqlDatabase, options: MigrateOptions = {}): Promise<void> {
  const migrations = options.migrations ?? MIGRATIONS;
  const location = options.location ?? 'in use';
  const types = COLUMN_TYPES[database.dialect];
  const latest = Math.max(0, ...migrations.map((migration) => migration.version));

  await database.execute(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at ${types.bigint} NOT NULL
    )`,
  );

  await assertNotNewer(database, latest, location);

  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  for (const migration of ordered) {
    await database.transaction(async (tx) => {
      await assertNotNewer(tx, latest, location);
      const applied = await tx.query('SELECT version FROM schema_migrations WHERE version = $1', [migration.version]);
      if (applied.length > 0) {
        return;
      }
      for (const statement of migration.statements(types)) {
        await tx.execute(statement);
      }
      await tx.execute('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        Date.now(),
      ]);
    });
  }
}

/** Returns the highest applied schema version (0 for a new database). */
export async function readSchemaVersion(database: SqlDatabase): Promise<number> {
  const rows = await database.query<{ version: number | string | null }>(
    'SELECT MAX(version) AS version FROM schema_migrations',
  );
  const version = rows[0]?.version;
  return version === null || version === undefined ? 0 : Number(version);
}

async function assertNotNewer(database: SqlDatabase, latest: number, location: string): Promise<void> {
  const current = await readSchemaVersion(database);
  if (current > latest) {
    throw new SchemaTooNewError(current, latest, location);
  }
}
