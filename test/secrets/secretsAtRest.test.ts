// Secrets in the SQLite store: sealed on write, bound to their row, absent from the file
// bytes, guarded by the master key, and re-encrypted by `keys rotate`.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { rotateKeys } from '../../src/cli/commands/keys.ts';
import { DEFAULT_EGRESS, type ProxyConfig } from '../../src/domain/types.ts';
import { EnvironmentMasterKeySource, KeyFileMasterKeySource, localMasterKey, masterKeyFingerprint } from '../../src/secrets/masterKey.ts';
import { EnvelopeCipher } from '../../src/secrets/secretCipher.ts';
import { migrate } from '../../src/store/migrations.ts';
import { openSqliteStore } from '../../src/store/openStore.ts';
import { rotateMasterKey } from '../../src/store/secretColumns.ts';
import type { SqlDatabase } from '../../src/store/sqlDatabase.ts';
import { SqliteDatabase } from '../../src/store/sqliteDatabase.ts';
import type { Store } from '../../src/store/store.ts';

const GITHUB_TOKEN = 'ghp_atRestSecret+/=&%Value41';
const ZENDESK_PASSWORD = 'zendesk pass/word?&=9';
const CLIENT_SECRET = 'client-secret-at-rest-77c1';
const REFRESH_TOKEN = 'refresh-token-at-rest-2b8f';
const ROTATED_REFRESH_TOKEN = 'rotated-refresh-at-rest-5d03';
const ALL_SECRETS = [GITHUB_TOKEN, ZENDESK_PASSWORD, CLIENT_SECRET, REFRESH_TOKEN, ROTATED_REFRESH_TOKEN];

function config(githubToken = GITHUB_TOKEN): ProxyConfig {
  const credential = (name: string, settings: ProxyConfig['bundles'][number]['credentials'][number]['settings'], secrets: Record<string, string>) => ({
    id: '',
    bundleId: '',
    name,
    settings,
    secrets,
    allowedWebsites: [`${name}.example.test`],
    access: 'read_write' as const,
    rules: [],
    extraHeaders: {},
  });
  return {
    egress: DEFAULT_EGRESS,
    bundles: [
      {
        id: '',
        name: 'engineering',
        description: '',
        channels: ['C0ENG'],
        credentials: [
          credential('github', { type: 'bearer_token' }, { token: githubToken }),
          credential('gitlab', { type: 'bearer_token' }, { token: `${githubToken}-gitlab` }),
          credential('zendesk', { type: 'basic_auth', username: 'agent@example.test' }, { password: ZENDESK_PASSWORD }),
          credential(
            'crm',
            { type: 'oauth2_refresh_token', clientId: 'crm-client', tokenUrl: 'https://crm.example.test/token' },
            { clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN },
          ),
        ],
      },
    ],
  };
}

function envSource(key: Buffer): EnvironmentMasterKeySource {
  return new EnvironmentMasterKeySource('AGENT_PROXY_MASTER_KEY', { AGENT_PROXY_MASTER_KEY: key.toString('base64') });
}

/** Returns every form in which a secret could sit in a file: plain, base64, base64url and URL-encoded. */
function encodings(secret: string): string[] {
  return [
    secret,
    Buffer.from(secret).toString('base64').replace(/=+$/, ''),
    Buffer.from(secret).toString('base64url'),
    encodeURIComponent(secret),
    new URLSearchParams({ v: secret }).toString().slice(2),
  ];
}

function secretsByName(loaded: ProxyConfig): Record<string, Record<string, string>> {
  return Object.fromEntries(loaded.bundles.flatMap((bundle) => bundle.credentials.map((credential) => [credential.name, credential.secrets])));
}

function credentialId(loaded: ProxyConfig, name: string): string {
  const found = loaded.bundles.flatMap((bundle) => bundle.credentials).find((credential) => credential.name === name);
  assert.ok(found, `credential ${name} not found`);
  return found.id;
}

/** Wraps a database so that `execute` inside transactions throws on SQL matching `pattern`. */
function failingOn(database: SqlDatabase, pattern: RegExp): SqlDatabase {
  const wrap = (inner: SqlDatabase): SqlDatabase => ({
    dialect: inner.dialect,
    query: (sql, params) => inner.query(sql, params),
    execute: (sql, params) => (pattern.test(sql) ? Promise.reject(new Error('simulated crash during rotation')) : inner.execute(sql, params)),
    transaction: (fn, options) => inner.transaction((tx) => fn(wrap(tx)), options),
    close: () => inner.close(),
  });
  return wrap(database);
}

describe('secrets at rest', () => {
  let dir: string;
  let databasePath: string;
  let key: Buffer;
  let store: Store | null;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-secrets-'));
    databasePath = path.join(dir, 'agent-proxy.db');
    key = randomBytes(32);
    store = null;
  });

  afterEach(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Applies the test configuration and stores a rotated refresh token for `crm`. */
  async function populate(masterKey = key): Promise<ProxyConfig> {
    store = await openSqliteStore(databasePath, { masterKey: envSource(masterKey) });
    await store.replaceConfig(config());
    const loaded = await store.loadConfig();
    const seedHash = createHash('sha256').update(REFRESH_TOKEN).digest('hex');
    assert.equal(await store.saveRefreshTokenRotation(credentialId(loaded, 'crm'), { seedHash, refreshToken: ROTATED_REFRESH_TOKEN }, null), true);
    return loaded;
  }

  test('secrets round trip', async () => {
    const loaded = await populate();

    assert.deepEqual(secretsByName(loaded), {
      crm: { clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN },
      github: { token: GITHUB_TOKEN },
      gitlab: { token: `${GITHUB_TOKEN}-gitlab` },
      zendesk: { password: ZENDESK_PASSWORD },
    });
    assert.equal((await store!.getRefreshTokenRotation(credentialId(loaded, 'crm')))?.refreshToken, ROTATED_REFRESH_TOKEN);
  });

  test('unchanged config is not reported changed', async () => {
    await populate();

    assert.deepEqual(await store!.replaceConfig(config()), { created: [], changed: [], deleted: [] });
    assert.deepEqual(await store!.replaceConfig(config('ghp_other')), {
      created: [],
      changed: ['bundle/engineering/credential/github', 'bundle/engineering/credential/gitlab'],
      deleted: [],
    });
  });

  test('database bytes hold no secret', async () => {
    await populate();
    const readAll = (): Buffer =>
      Buffer.concat([databasePath, `${databasePath}-wal`, `${databasePath}-journal`].filter((file) => existsSync(file)).map((file) => readFileSync(file)));

    const whileOpen = readAll();
    await store!.close();
    store = null;
    const afterClose = readAll();

    assert.ok(whileOpen.length > 0);
    for (const secret of ALL_SECRETS) {
      for (const form of encodings(secret)) {
        assert.equal(whileOpen.includes(form), false, `the database files contain a secret as ${JSON.stringify(form)} while open`);
        assert.equal(afterClose.includes(form), false, `the database files contain a secret as ${JSON.stringify(form)} after close`);
      }
    }
  });

  test('ciphertext copied to another row fails', async () => {
    const loaded = await populate();
    await store!.close();
    store = null;
    const github = credentialId(loaded, 'github');
    const gitlab = credentialId(loaded, 'gitlab');
    const database = SqliteDatabase.open(databasePath);
    await database.execute('UPDATE credentials SET secrets = (SELECT secrets FROM credentials WHERE id = $1) WHERE id = $2', [github, gitlab]);
    const sealed = await database.query<{ secrets: string; id: string }>('SELECT secrets, id FROM credentials WHERE id = $1', [gitlab]);
    await database.close();
    const dataKeyId = (JSON.parse(sealed[0]!.secrets) as { token: string }).token.split(':')[1];

    store = await openSqliteStore(databasePath, { masterKey: envSource(key) });

    await assert.rejects(store.loadConfig(), {
      name: 'SecretsError',
      code: 'secret_decrypt_failed',
      message:
        `Failed to decrypt credentials.secrets.token of ${gitlab} with data key ${dataKeyId}: the value was altered or copied from another credential or field. ` +
        'Apply the configuration again to store the secret afresh.',
    });
  });

  test('rotated token copied to a secret field fails', async () => {
    const loaded = await populate();
    await store!.close();
    store = null;
    const crm = credentialId(loaded, 'crm');
    const database = SqliteDatabase.open(databasePath);
    const rows = await database.query<{ refresh_token: string }>('SELECT refresh_token FROM refresh_token_rotations WHERE credential_id = $1', [crm]);
    const secrets = JSON.stringify({ clientSecret: rows[0]!.refresh_token, refreshToken: rows[0]!.refresh_token });
    await database.execute('UPDATE credentials SET secrets = $2 WHERE id = $1', [crm, secrets]);
    await database.close();

    store = await openSqliteStore(databasePath, { masterKey: envSource(key) });

    await assert.rejects(store.loadConfig(), { code: 'secret_decrypt_failed' });
  });

  test('wrong master key is a clear error', async () => {
    await populate();
    await store!.close();
    store = null;
    const wrongKey = randomBytes(32);

    await assert.rejects(openSqliteStore(databasePath, { masterKey: envSource(wrongKey) }), {
      name: 'SecretsError',
      code: 'master_key_mismatch',
      message:
        `The data keys in ${databasePath} are wrapped by master key ${masterKeyFingerprint(key)}, ` +
        `but the key from $AGENT_PROXY_MASTER_KEY is ${masterKeyFingerprint(wrongKey)}; start with the key that was in use, ` +
        'or run `agent-proxy keys rotate` with that key as the old key to re-wrap the data keys.',
    });
  });

  test('plaintext rows of older releases are sealed', async () => {
    const database = SqliteDatabase.open(databasePath);
    await migrate(database);
    await database.execute("INSERT INTO bundles (id, name, description, channels, created_at, updated_at) VALUES ('bun_1', 'old', '', '[\"*\"]', 1, 1)");
    await database.execute(
      `INSERT INTO credentials (id, bundle_id, name, type, settings, secrets, allowed_websites, access, rules, extra_headers, created_at, updated_at)
       VALUES ('cred_1', 'bun_1', 'legacy', 'bearer_token', '{}', $1, '["legacy.example.test"]', 'read', '[]', '{}', 1, 1)`,
      [JSON.stringify({ token: GITHUB_TOKEN })],
    );
    await database.execute("INSERT INTO refresh_token_rotations (credential_id, seed_hash, refresh_token, updated_at) VALUES ('cred_1', 'seed', $1, 1)", [
      ROTATED_REFRESH_TOKEN,
    ]);
    await database.close();

    store = await openSqliteStore(databasePath, { masterKey: envSource(key) });

    assert.deepEqual(secretsByName(await store.loadConfig()), { legacy: { token: GITHUB_TOKEN } });
    assert.equal((await store.getRefreshTokenRotation('cred_1'))?.refreshToken, ROTATED_REFRESH_TOKEN);
    const raw = SqliteDatabase.open(databasePath);
    const stored = await raw.query<{ secrets: string; refresh_token: string }>(
      'SELECT secrets, refresh_token FROM credentials JOIN refresh_token_rotations ON credential_id = id',
    );
    await raw.close();
    assert.match(stored[0]!.secrets, /^\{"token":"v1:dk_[0-9a-f]{24}:/);
    assert.match(stored[0]!.refresh_token, /^v1:dk_[0-9a-f]{24}:/);
  });

  test('rotate switches the master key', async () => {
    const loaded = await populate();
    await store!.close();
    store = null;
    const oldKeyFile = path.join(dir, 'old-key');
    const newKeyFile = path.join(dir, 'new-key');
    const newKey = randomBytes(32);
    writeFileSync(oldKeyFile, key.toString('base64'), { mode: 0o600 });
    writeFileSync(newKeyFile, newKey.toString('hex'), { mode: 0o600 });

    const report = await rotateKeys(databasePath, path.join(dir, 'master-key'), { oldKeyFile, newKeyFile }, { AGENT_PROXY_MASTER_KEY: 'set' });

    assert.match(report, new RegExp(`^Rotated the master key of .* from ${masterKeyFingerprint(key)} to ${masterKeyFingerprint(newKey)}\\.\\n`));
    assert.match(report, /Re-encrypted 6 secret values under the new data key dk_[0-9a-f]{24} and re-wrapped 1 older data keys\./);
    await assert.rejects(openSqliteStore(databasePath, { masterKey: envSource(key) }), { code: 'master_key_mismatch' });
    store = await openSqliteStore(databasePath, { masterKey: envSource(newKey) });
    assert.deepEqual(secretsByName(await store.loadConfig()), secretsByName(loaded));
    assert.equal((await store.getRefreshTokenRotation(credentialId(loaded, 'crm')))?.refreshToken, ROTATED_REFRESH_TOKEN);
    const dataKeys = await readDataKeyRows(databasePath);
    assert.deepEqual(
      dataKeys.map((row) => [row.master_key_id, row.retired_at === null ? 'active' : 'retired']),
      [
        [masterKeyFingerprint(newKey), 'active'],
        [masterKeyFingerprint(newKey), 'retired'],
      ],
    );
  });

  test('crash mid-rotation keeps the old key', async () => {
    const loaded = await populate();
    await store!.close();
    store = null;
    const newKey = randomBytes(32);
    const database = SqliteDatabase.open(databasePath);
    const cipher = new EnvelopeCipher(envSource(key));
    // data_keys are updated last, after every secret was re-encrypted.
    const crashing = failingOn(database, /^UPDATE data_keys/);

    await assert.rejects(rotateMasterKey(crashing, cipher, localMasterKey(newKey, 'the new key'), databasePath, new Date()), {
      message: 'simulated crash during rotation',
    });
    await database.close();

    await assert.rejects(openSqliteStore(databasePath, { masterKey: envSource(newKey) }), { code: 'master_key_mismatch' });
    store = await openSqliteStore(databasePath, { masterKey: envSource(key) });
    assert.deepEqual(secretsByName(await store.loadConfig()), secretsByName(loaded));
    assert.equal((await store.getRefreshTokenRotation(credentialId(loaded, 'crm')))?.refreshToken, ROTATED_REFRESH_TOKEN);
  });

  test('rotate of the key file writes the new key', async () => {
    const keyFile = path.join(dir, 'master-key');
    store = await openSqliteStore(databasePath);
    await store.replaceConfig(config());
    await store.close();
    store = null;
    const oldId = (await new KeyFileMasterKeySource(keyFile, { create: false }).load()).id;

    const report = await rotateKeys(databasePath, keyFile, {}, {});

    const newId = (await new KeyFileMasterKeySource(keyFile, { create: false }).load()).id;
    assert.notEqual(newId, oldId);
    assert.equal(existsSync(`${keyFile}.new`), false);
    assert.match(report, new RegExp(`Wrote the new key to ${keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; `));
    store = await openSqliteStore(databasePath);
    assert.equal(secretsByName(await store.loadConfig()).github?.token, GITHUB_TOKEN);
  });

  test('interrupted key file rename is completed at start', async () => {
    const keyFile = path.join(dir, 'master-key');
    store = await openSqliteStore(databasePath);
    await store.replaceConfig(config());
    await store.close();
    store = null;
    const keyFileSource = new KeyFileMasterKeySource(keyFile, { create: false });
    const newKey = randomBytes(32);
    // As `keys rotate` does, minus the final rename: the pending key file and the committed transaction.
    keyFileSource.writePendingKey(newKey);
    const database = SqliteDatabase.open(databasePath);
    await rotateMasterKey(database, new EnvelopeCipher(keyFileSource), localMasterKey(newKey, 'the new key'), databasePath, new Date());
    await database.close();

    store = await openSqliteStore(databasePath);

    assert.equal(secretsByName(await store.loadConfig()).github?.token, GITHUB_TOKEN);
    assert.equal(existsSync(`${keyFile}.new`), false);
    assert.equal((await keyFileSource.load()).id, masterKeyFingerprint(newKey));
  });
});

async function readDataKeyRows(databasePath: string): Promise<{ master_key_id: string; retired_at: number | null }[]> {
  const database = SqliteDatabase.open(databasePath);
  try {
    return await database.query('SELECT master_key_id, retired_at FROM data_keys ORDER BY retired_at IS NOT NULL');
  } finally {
    await database.close();
  }
}
