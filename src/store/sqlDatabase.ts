// The small query layer that SqlStore is written against, so the same store code runs on
// SQLite (better-sqlite3) and PostgreSQL (pg).

export type SqlDialect = 'sqlite' | 'postgres';

export interface TransactionOptions {
  /**
   * Runs the transaction as a read-only snapshot: SQLite `BEGIN DEFERRED`, PostgreSQL
   * `REPEATABLE READ, READ ONLY`. A write statement inside it is rejected.
   */
  readOnly?: boolean;
}

/**
 * A connection (or pool) that runs SQL written in PostgreSQL's placeholder style:
 * `$1, $2, …`, each number matching `params[number - 1]`. Every parameter must be
 * referenced, as PostgreSQL requires. Parameter values are `null`, `string`, `number`,
 * `bigint` or `Buffer`.
 *
 * Rows come back as plain objects keyed by column name. Integer columns may come back as
 * `number` or as a decimal `string` (pg returns BIGINT as a string), so readers convert
 * them with `Number`.
 */
export interface SqlDatabase {
  readonly dialect: SqlDialect;

  /** Runs a statement that returns rows (`SELECT`, `PRAGMA`, `… RETURNING`). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;

  /** Runs a statement that returns no rows; `changes` counts the rows it inserted, updated or deleted. */
  execute(sql: string, params?: unknown[]): Promise<{ changes: number }>;

  /**
   * Runs `fn` in a transaction and commits when the promise it returns resolves, or rolls
   * back and rethrows when it rejects. Statements inside must go through `tx`. Write
   * transactions run one at a time (SQLite `BEGIN IMMEDIATE`; a PostgreSQL adapter needs a
   * lock such as `pg_advisory_xact_lock`), so a read followed by a write inside one cannot
   * interleave with another writer. Nested transactions are not supported.
   */
  transaction<T>(fn: (tx: SqlDatabase) => Promise<T>, options?: TransactionOptions): Promise<T>;

  /** Waits for queued statements and closes the connection; later calls are rejected. */
  close(): Promise<void>;
}
