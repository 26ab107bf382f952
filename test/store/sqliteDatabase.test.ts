import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { SqliteDatabase, rewritePlaceholders } from '../../src/store/sqliteDatabase.ts';

describe('rewritePlaceholders', () => {
  it('maps reordered and repeated numbers', () => {
    const rewritten = rewritePlaceholders('SELECT $2, $1, $2');

    assert.deepEqual(rewritten, { sql: 'SELECT ?, ?, ?', parameterIndexes: [1, 0, 1], parameterCount: 2 });
  });

  it('skips literals, identifiers and comments', () => {
    const sql = `SELECT '$1 it''s', "col$1", price$1 -- $1\n/* $1 */ FROM t WHERE a = $1`;

    const rewritten = rewritePlaceholders(sql);

    assert.equal(rewritten.sql, `SELECT '$1 it''s', "col$1", price$1 -- $1\n/* $1 */ FROM t WHERE a = ?`);
    assert.deepEqual(rewritten.parameterIndexes, [0]);
  });

  it('rejects a skipped number', () => {
    assert.throws(() => rewritePlaceholders('SELECT $1, $3'), {
      message: 'Placeholder $2 is never referenced but $3 is; renumber the placeholders in: SELECT $1, $3',
    });
  });

  it('rejects $0', () => {
    assert.throws(() => rewritePlaceholders('SELECT $0'), { message: /^Invalid placeholder \$0/ });
  });
});

describe('SqliteDatabase', () => {
  let directory: string;
  let database: SqliteDatabase;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'agent-proxy-sqlite-'));
    database = SqliteDatabase.open(join(directory, 'test.db'));
    await database.execute('CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)');
    await database.execute("INSERT INTO counters (name, value) VALUES ('hits', 0)");
  });

  afterEach(async () => {
    await database.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('binds parameters by number', async () => {
    const rows = await database.query('SELECT $2 AS second, $1 AS first, $2 AS again', ['a', 'b']);

    assert.deepEqual(rows, [{ second: 'b', first: 'a', again: 'b' }]);
  });

  it('rejects a wrong parameter count', async () => {
    await assert.rejects(database.query('SELECT $1 AS value', []), {
      message: 'Statement references 1 parameter(s) but 0 were passed; pass exactly one value for each of $1..$1 in: SELECT $1 AS value',
    });
  });

  it('reports changed rows', async () => {
    const result = await database.execute('UPDATE counters SET value = value + 1 WHERE name = $1', ['hits']);
    const none = await database.execute('UPDATE counters SET value = 1 WHERE name = $1', ['missing']);

    assert.deepEqual(result, { changes: 1 });
    assert.deepEqual(none, { changes: 0 });
  });

  it('rejects query and execute misuse', async () => {
    await assert.rejects(database.query("UPDATE counters SET value = 0 WHERE name = 'hits'"), {
      message: /^query\(\) needs a statement that returns rows/,
    });
    await assert.rejects(database.execute('SELECT 1'), { message: /^execute\(\) needs a statement that returns no rows/ });
  });

  it('serialises concurrent transactions', async () => {
    const increment = (): Promise<void> =>
      database.transaction(async (tx) => {
        const [row] = await tx.query<{ value: number }>("SELECT value FROM counters WHERE name = 'hits'");
        // Yields to the event loop between the read and the write, where another transaction could start.
        await new Promise((resolve) => setImmediate(resolve));
        await tx.execute("UPDATE counters SET value = $1 WHERE name = 'hits'", [(row?.value ?? 0) + 1]);
      });

    await Promise.all(Array.from({ length: 20 }, increment));

    assert.deepEqual(await database.query("SELECT value FROM counters WHERE name = 'hits'"), [{ value: 20 }]);
  });

  it('keeps outside statements out of an open transaction', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const failed = database.transaction(async (tx) => {
      await tx.execute("UPDATE counters SET value = 100 WHERE name = 'hits'");
      await gate;
      throw new Error('abort');
    });
    const outside = database.execute("INSERT INTO counters (name, value) VALUES ('misses', 1)");
    release();

    await assert.rejects(failed, { message: 'abort' });
    await outside;

    assert.deepEqual(await database.query('SELECT name, value FROM counters ORDER BY name'), [
      { name: 'hits', value: 0 },
      { name: 'misses', value: 1 },
    ]);
  });

  it('rejects the database inside its own transaction', async () => {
    await assert.rejects(
      database.transaction(async () => {
        await database.query('SELECT 1 AS one');
      }),
      { message: /^A statement was run on the database from inside one of its own transactions/ },
    );
  });

  it('rejects a handle used after commit', async () => {
    const tx = await database.transaction(async (handle) => handle);

    await assert.rejects(tx.query('SELECT 1 AS one'), { message: /^The transaction has already committed or rolled back/ });
  });

  it('rejects writes in a read-only transaction', async () => {
    await assert.rejects(
      database.transaction((tx) => tx.execute("UPDATE counters SET value = 5 WHERE name = 'hits'"), { readOnly: true }),
      { message: /^Write statement rejected in a read-only transaction/ },
    );

    assert.deepEqual(await database.query("SELECT value FROM counters WHERE name = 'hits'"), [{ value: 0 }]);
  });

  it('rejects nested transactions', async () => {
    await assert.rejects(
      database.transaction((tx) => tx.transaction(async () => 1)),
      { message: /^Nested transactions are not supported/ },
    );
  });

  it('rejects statements after close', async () => {
    const path = database.path;
    await database.close();

    await assert.rejects(database.query('SELECT 1 AS one'), { message: `SQLite database ${path} is closed; open it again before running statements.` });
    database = SqliteDatabase.open(path);
  });
});
