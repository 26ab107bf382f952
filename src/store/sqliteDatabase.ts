import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { SqlDatabase, TransactionOptions } from './sqlDatabase.ts';

/** SQL rewritten from `$N` placeholders to SQLite's positional `?`. */
interface RewrittenSql {
  sql: string;
  /** For each `?` in order, the zero-based index of the parameter it binds. */
  parameterIndexes: number[];
  /** Highest `$N` referenced, which is the number of parameters the caller must pass. */
  parameterCount: number;
}

interface PreparedStatement {
  statement: Database.Statement;
  parameterIndexes: number[];
  parameterCount: number;
}

/** The statement runners a transaction handle uses, which bypass the lock that its transaction holds. */
interface StatementRunner {
  all<T>(sql: string, params: unknown[]): T[];
  run(sql: string, params: unknown[]): { changes: number };
}

interface TransactionState {
  database: SqliteDatabase;
  active: boolean;
}

// Lets a call on the database itself from inside one of its transactions fail at once,
// because it would otherwise wait for the lock that the transaction holds.
const activeTransaction = new AsyncLocalStorage<TransactionState>();

// NOTE: better-sqlite3 waits for a lock held by another process synchronously, so a locked
// database can block the event loop for up to this long.
const BUSY_TIMEOUT_MS = 5000;

/**
 * SqlDatabase over one better-sqlite3 connection. better-sqlite3 is synchronous, so each
 * statement runs to completion, but an async transaction callback yields between its
 * statements. A promise-chain lock therefore runs one transaction, or one statement
 * outside a transaction, at a time, so nothing else lands inside an open transaction.
 */
export class SqliteDatabase implements SqlDatabase {
  readonly dialect = 'sqlite' as const;
  readonly path: string;
  readonly #connection: Database.Database;
  // SQL strings come from the store's code, so the set of statements, and this cache, stays small.
  readonly #statements = new Map<string, PreparedStatement>();
  #lock: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(path: string, connection: Database.Database) {
    this.path = path;
    this.#connection = connection;
  }

  /**
   * Opens (creating if missing) the database file at `path` with WAL journaling, a 5 s busy
   * timeout, foreign keys on and `synchronous = NORMAL`. A new file is created with mode
   * 0600 because it contains credentials. `:memory:` opens a private in-memory database.
   */
  static open(path: string): SqliteDatabase {
    if (path !== ':memory:') {
      // SQLite creates the -wal and -shm files with the mode of the database file.
      closeSync(openSync(path, 'a', 0o600));
    }
    const connection = new Database(path);
    try {
      connection.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      const journalMode = connection.pragma('journal_mode = WAL', { simple: true });
      if (path !== ':memory:' && journalMode !== 'wal') {
        throw new Error(
          `Failed to switch SQLite database ${path} to WAL journal mode (it reports "${String(journalMode)}"); ` +
            'use a local file system that supports shared memory.',
        );
      }
      connection.pragma('synchronous = NORMAL');
      connection.pragma('foreign_keys = ON');
    } catch (error) {
      connection.close();
      throw error;
    }
    return new SqliteDatabase(path, connection);
  }

  query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.#exclusive(() => this.#all<T>(sql, params, false));
  }

  execute(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    return this.#exclusive(() => this.#run(sql, params, false));
  }

  transaction<T>(fn: (tx: SqlDatabase) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.#exclusive(() => this.#runTransaction(fn, options.readOnly === true));
  }

  async close(): Promise<void> {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    await this.#lock;
    this.#connection.close();
  }

  #exclusive<T>(task: () => T | Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new Error(`SQLite database ${this.path} is closed; open it again before running statements.`));
    }
    const state = activeTransaction.getStore();
    if (state !== undefined && state.database === this && state.active) {
      return Promise.reject(
        new Error(
          'A statement was run on the database from inside one of its own transactions, which would wait for itself; ' +
            'run it on the `tx` handle passed to the transaction callback.',
        ),
      );
    }
    const result = this.#lock.then(task);
    this.#lock = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  async #runTransaction<T>(fn: (tx: SqlDatabase) => Promise<T>, readOnly: boolean): Promise<T> {
    const state: TransactionState = { database: this, active: true };
    const tx = new SqliteTransaction(state, {
      all: <R>(sql: string, params: unknown[]) => this.#all<R>(sql, params, readOnly),
      run: (sql: string, params: unknown[]) => this.#run(sql, params, readOnly),
    });
    try {
      this.#connection.exec(readOnly ? 'BEGIN DEFERRED' : 'BEGIN IMMEDIATE');
    } catch (error) {
      state.active = false;
      throw describeFileFault(error, this.path);
    }
    try {
      const result = await activeTransaction.run(state, () => fn(tx));
      this.#connection.exec('COMMIT');
      return result;
    } catch (error) {
      // A failed COMMIT may already have ended the transaction.
      if (this.#connection.inTransaction) {
        this.#connection.exec('ROLLBACK');
      }
      throw describeFileFault(error, this.path);
    } finally {
      state.active = false;
    }
  }

  #all<T>(sql: string, params: unknown[], readOnly: boolean): T[] {
    const prepared = this.#prepare(sql, params, readOnly);
    if (!prepared.statement.reader) {
      throw new Error(`query() needs a statement that returns rows; use execute() for: ${sql}`);
    }
    return prepared.statement.all(...bindOrder(prepared, params)) as T[];
  }

  #run(sql: string, params: unknown[], readOnly: boolean): { changes: number } {
    const prepared = this.#prepare(sql, params, readOnly);
    if (prepared.statement.reader) {
      throw new Error(`execute() needs a statement that returns no rows; use query() for: ${sql}`);
    }
    const result = prepared.statement.run(...bindOrder(prepared, params));
    return { changes: result.changes };
  }

  #prepare(sql: string, params: unknown[], readOnly: boolean): PreparedStatement {
    let prepared = this.#statements.get(sql);
    if (prepared === undefined) {
      const rewritten = rewritePlaceholders(sql);
      prepared = {
        statement: this.#connection.prepare(rewritten.sql),
        parameterIndexes: rewritten.parameterIndexes,
        parameterCount: rewritten.parameterCount,
      };
      this.#statements.set(sql, prepared);
    }
    if (params.length !== prepared.parameterCount) {
      throw new Error(
        `Statement references ${prepared.parameterCount} parameter(s) but ${params.length} were passed; ` +
          `pass exactly one value for each of $1..$${prepared.parameterCount} in: ${sql}`,
      );
    }
    if (readOnly && !prepared.statement.readonly) {
      throw new Error(`Write statement rejected in a read-only transaction: ${sql}`);
    }
    return prepared;
  }
}

/** The `tx` handle passed to a transaction callback; valid only until the callback settles. */
class SqliteTransaction implements SqlDatabase {
  readonly dialect = 'sqlite' as const;
  readonly #state: TransactionState;
  readonly #runner: StatementRunner;

  constructor(state: TransactionState, runner: StatementRunner) {
    this.#state = state;
    this.#runner = runner;
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    this.#assertActive();
    return this.#runner.all<T>(sql, params);
  }

  async execute(sql: string, params: unknown[] = []): Promise<{ changes: number }> {
    this.#assertActive();
    return this.#runner.run(sql, params);
  }

  transaction<T>(): Promise<T> {
    return Promise.reject(
      new Error('Nested transactions are not supported; run the statements on the handle of the outer transaction.'),
    );
  }

  close(): Promise<void> {
    return Promise.reject(new Error('A transaction handle cannot close the database; close the database itself.'));
  }

  #assertActive(): void {
    if (!this.#state.active) {
      throw new Error('The transaction has already committed or rolled back; run the statement on the database instead.');
    }
  }
}

function bindOrder(prepared: PreparedStatement, params: unknown[]): unknown[] {
  return prepared.parameterIndexes.map((index) => params[index]);
}

/**
 * Rewrites `$N` placeholders to `?`, leaving string literals, quoted identifiers and
 * comments alone. Rejects SQL that skips a number, because PostgreSQL cannot infer the
 * type of an unreferenced parameter and would reject it too.
 */
export function rewritePlaceholders(sql: string): RewrittenSql {
  let output = '';
  const parameterIndexes: number[] = [];
  let i = 0;

  while (i < sql.length) {
    const char = sql[i] as string;
    const next = sql[i + 1];

    if (char === "'" || char === '"') {
      const end = findClosingQuote(sql, i, char);
      output += sql.slice(i, end);
      i = end;
    } else if (char === '-' && next === '-') {
      const newline = sql.indexOf('\n', i);
      const end = newline === -1 ? sql.length : newline;
      output += sql.slice(i, end);
      i = end;
    } else if (char === '/' && next === '*') {
      const close = sql.indexOf('*/', i + 2);
      const end = close === -1 ? sql.length : close + 2;
      output += sql.slice(i, end);
      i = end;
    } else if (char === '$' && next !== undefined && isDigit(next) && !isIdentifierChar(sql[i - 1])) {
      let end = i + 1;
      while (end < sql.length && isDigit(sql[end] as string)) {
        end += 1;
      }
      const number = Number(sql.slice(i + 1, end));
      if (number < 1) {
        throw new Error(`Invalid placeholder $${number}; placeholders start at $1 in: ${sql}`);
      }
      parameterIndexes.push(number - 1);
      output += '?';
      i = end;
    } else {
      output += char;
      i += 1;
    }
  }

  const parameterCount = parameterIndexes.length === 0 ? 0 : Math.max(...parameterIndexes) + 1;
  const referenced = new Set(parameterIndexes);
  for (let index = 0; index < parameterCount; index += 1) {
    if (!referenced.has(index)) {
      throw new Error(`Placeholder $${index + 1} is never referenced but $${parameterCount} is; renumber the placeholders in: ${sql}`);
    }
  }
  return { sql: output, parameterIndexes, parameterCount };
}

/** Returns the index just past the quote that closes the one at `start`; a doubled quote is an escaped one. */
function findClosingQuote(sql: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i += 1;
  }
  return sql.length;
}

function isDigit(char: string): boolean {
  return char >= '0' && char <= '9';
}

function isIdentifierChar(char: string | undefined): boolean {
  return char !== undefined && /[A-Za-z0-9_$]/.test(char);
}

/**
 * Names the database file in the errors that come from the file rather than from a
 * statement (locked by another process, read-only, disk full), because SQLite's own
 * message ("database is locked") does not say which file or what to do. Other errors
 * are returned unchanged. The transaction was rolled back, so nothing was written.
 */
function describeFileFault(error: unknown, path: string): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return error;
  const advice = code.startsWith('SQLITE_BUSY')
    ? `is locked by another process or connection for more than ${BUSY_TIMEOUT_MS} ms; stop the other writer and retry`
    : code.startsWith('SQLITE_READONLY')
      ? 'is read-only; make the file and its directory writable by the proxy and retry'
      : code.startsWith('SQLITE_FULL') || code.startsWith('SQLITE_IOERR')
        ? 'could not be written (disk full or I/O error); free space or check the disk and retry'
        : null;
  if (advice === null) return error;
  const described = new Error(`SQLite database ${path} ${advice}. Nothing was written (${code}).`, { cause: error });
  (described as Error & { code: string }).code = code;
  return described;
}
