import { randomBytes } from 'node:crypto';
import { DEFAULT_EGRESS } from '../domain/types.ts';
import type {
  Access,
  AuditDecision,
  AuditEvent,
  AuditKind,
  Bundle,
  Credential,
  CredentialRule,
  CredentialSettings,
  CredentialType,
  EgressPolicy,
  ProxyConfig,
} from '../domain/types.ts';
import {
  insertAdminAuditEvents,
  insertAdminToken,
  markAdminTokenRevoked,
  markAdminTokenUsed,
  selectAdminAuditEvents,
  selectAdminTokens,
} from './adminRecords.ts';
import { isSecretsError } from '../secrets/secretsError.ts';
import type { SecretCipher } from '../secrets/secretCipher.ts';
import {
  openCredentialSecrets,
  openRotatedRefreshToken,
  prepareSecretColumns,
  readDataKeys,
  sealCredentialSecrets,
  sealRotatedRefreshToken,
} from './secretColumns.ts';
import type { SqlDatabase } from './sqlDatabase.ts';
import type { AdminAuditEvent, AdminAuditQuery, StoredAdminToken } from './store.ts';
import type { AuditQuery, ConfigChanges, ConfigUpdate, CredentialActivity, RefreshTokenRotation, Store, StoredSession } from './store.ts';

export const DEFAULT_AUDIT_LIMIT = 100;

class PreviewRollback extends Error {}
export const MAX_AUDIT_LIMIT = 1000;

const EGRESS_SETTING_KEY = 'egress';

// Integer columns are `number` on SQLite and may be a decimal `string` on PostgreSQL.
type SqlInteger = number | string;

interface BundleRow {
  id: string;
  name: string;
  description: string;
  channels: string;
  created_at: SqlInteger;
  updated_at: SqlInteger;
}

/**
 * The credential columns that define its content; `replaceConfig` compares these to detect a
 * change. `secrets` is the canonical JSON of the plaintext values here, because sealed values
 * get a fresh IV on every write and so never compare equal.
 */
interface CredentialContent {
  bundle_id: string;
  type: string;
  settings: string;
  secrets: string;
  allowed_websites: string;
  access: string;
  rules: string;
  extra_headers: string;
}

interface CredentialRow extends CredentialContent {
  id: string;
  name: string;
  created_at: SqlInteger;
  updated_at: SqlInteger;
}

interface SessionRow {
  id: string;
  token_hash: Buffer;
  channel: string;
  thread: string | null;
  created_at: SqlInteger;
  expires_at: SqlInteger;
  revoked_at: SqlInteger | null;
}

interface AuditRow {
  id: SqlInteger;
  occurred_at: SqlInteger;
  kind: string;
  decision: string;
  error_code: string | null;
  session_id: string | null;
  channel: string | null;
  thread: string | null;
  bundle: string | null;
  credential: string | null;
  method: string | null;
  host: string | null;
  port: SqlInteger | null;
  path: string | null;
  status: SqlInteger | null;
  bytes_in: SqlInteger | null;
  bytes_out: SqlInteger | null;
  duration_ms: number | null;
  subject: string | null;
  client_address: string | null;
}

const AUDIT_COLUMNS = [
  'occurred_at',
  'kind',
  'decision',
  'error_code',
  'session_id',
  'channel',
  'thread',
  'bundle',
  'credential',
  'method',
  'host',
  'port',
  'path',
  'status',
  'bytes_in',
  'bytes_out',
  'duration_ms',
  'subject',
  'client_address',
] as const;

const INSERT_AUDIT_SQL =
  `INSERT INTO audit_events (${AUDIT_COLUMNS.join(', ')}) ` +
  `VALUES (${AUDIT_COLUMNS.map((_, index) => `$${index + 1}`).join(', ')})`;

export interface SqlStoreOptions {
  /** Encrypts `credentials.secrets` values and rotated refresh tokens; see `SqlStore.open`. */
  cipher: SecretCipher;
  /** Clock for the `created_at` and `updated_at` columns of bundles, credentials and settings. */
  now?: () => Date;
  /** Location of the database, such as its file path, shown in error messages. */
  location?: string;
}

/** Store over any SqlDatabase whose schema `migrate` has brought up to date. */
export class SqlStore implements Store {
  readonly #database: SqlDatabase;
  readonly #cipher: SecretCipher;
  readonly #now: () => Date;
  readonly #location: string;

  /** Use `SqlStore.open`, which loads the data keys into `options.cipher` first. */
  constructor(database: SqlDatabase, options: SqlStoreOptions) {
    this.#database = database;
    this.#cipher = options.cipher;
    this.#now = options.now ?? (() => new Date());
    this.#location = options.location ?? 'the database';
  }

  /**
   * Returns a store after loading the data keys into `options.cipher` (creating the first
   * on a new database) and encrypting, in one transaction, any secrets that a release
   * before encryption at rest stored in plaintext. Throws SecretsError `master_key_mismatch`
   * when the data keys are wrapped by another master key than the cipher's.
   */
  static async open(database: SqlDatabase, options: SqlStoreOptions): Promise<SqlStore> {
    const store = new SqlStore(database, options);
    await prepareSecretColumns(database, options.cipher, store.#location, store.#now());
    return store;
  }

  loadConfig(): Promise<ProxyConfig> {
    return this.#withDataKeysReloaded(() => this.#database.transaction((tx) => readConfigIn(tx, this.#cipher), { readOnly: true }));
  }

  async replaceConfig(config: ProxyConfig): Promise<ConfigChanges> {
    assertUniqueNames(config);
    const now = this.#now().getTime();
    return this.#withDataKeysReloaded(() => this.#database.transaction((tx) => replaceConfigIn(tx, this.#cipher, config, now)));
  }

  async updateConfig(mutate: (config: ProxyConfig) => ProxyConfig | Promise<ProxyConfig>): Promise<ConfigUpdate> {
    const now = this.#now().getTime();
    // A missing data key shows while reading, before `mutate` runs, so a retry never calls it twice.
    return this.#withDataKeysReloaded(() =>
      this.#database.transaction(async (tx) => {
        const next = await mutate(await readConfigIn(tx, this.#cipher));
        assertUniqueNames(next);
        const changes = await replaceConfigIn(tx, this.#cipher, next, now, { matchIds: true });
        return { config: await readConfigIn(tx, this.#cipher), changes };
      }),
    );
  }

  async previewConfig(config: ProxyConfig): Promise<ConfigChanges> {
    assertUniqueNames(config);
    const now = this.#now().getTime();
    let changes: ConfigChanges | null = null;
    // Runs the real replacement and throws afterwards, so the transaction rolls back
    // and the preview can never disagree with what `replaceConfig` would do.
    await this.#withDataKeysReloaded(() =>
      this.#database
        .transaction(async (tx) => {
          changes = await replaceConfigIn(tx, this.#cipher, config, now);
          throw new PreviewRollback();
        })
        .catch((error: unknown) => {
          if (!(error instanceof PreviewRollback)) throw error;
        }),
    );
    return changes!;
  }

  async getRefreshTokenRotation(credentialId: string): Promise<RefreshTokenRotation | null> {
    const rows = await this.#database.query<{ seed_hash: string; refresh_token: string }>(
      'SELECT seed_hash, refresh_token FROM refresh_token_rotations WHERE credential_id = $1',
      [credentialId],
    );
    const row = rows[0];
    if (row === undefined) {
      return null;
    }
    const refreshToken = await this.#withDataKeysReloaded(async () => openRotatedRefreshToken(this.#cipher, credentialId, row.refresh_token));
    return { seedHash: row.seed_hash, refreshToken };
  }

  async saveRefreshTokenRotation(credentialId: string, rotation: RefreshTokenRotation, expectedRefreshToken: string | null): Promise<boolean> {
    const now = this.#now().getTime();
    return this.#withDataKeysReloaded(() =>
      this.#database.transaction(async (tx) => {
        const rows = await tx.query<{ seed_hash: string; refresh_token: string }>(
          'SELECT seed_hash, refresh_token FROM refresh_token_rotations WHERE credential_id = $1',
          [credentialId],
        );
        const current = rows[0];
        const currentToken =
          current && current.seed_hash === rotation.seedHash ? openRotatedRefreshToken(this.#cipher, credentialId, current.refresh_token) : null;
        if (currentToken !== expectedRefreshToken) {
          return false;
        }

        const sealedToken = sealRotatedRefreshToken(this.#cipher, credentialId, rotation.refreshToken);
        if (current) {
          await tx.execute('UPDATE refresh_token_rotations SET seed_hash = $2, refresh_token = $3, updated_at = $4 WHERE credential_id = $1', [
            credentialId,
            rotation.seedHash,
            sealedToken,
            now,
          ]);
        } else {
          await tx.execute('INSERT INTO refresh_token_rotations (credential_id, seed_hash, refresh_token, updated_at) VALUES ($1, $2, $3, $4)', [
            credentialId,
            rotation.seedHash,
            sealedToken,
            now,
          ]);
        }
        return true;
      }),
    );
  }

  async createSession(session: StoredSession): Promise<void> {
    await this.#database.execute(
      `INSERT INTO sessions (id, token_hash, channel, thread, created_at, expires_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        session.id,
        session.tokenHash,
        session.channel,
        session.thread,
        session.createdAt.getTime(),
        session.expiresAt.getTime(),
        session.revokedAt?.getTime() ?? null,
      ],
    );
  }

  async getSession(id: string): Promise<StoredSession | null> {
    const rows = await this.#database.query<SessionRow>('SELECT * FROM sessions WHERE id = $1', [id]);
    const row = rows[0];
    return row === undefined ? null : toStoredSession(row);
  }

  async revokeSession(id: string, at: Date): Promise<boolean> {
    // COALESCE keeps the first revocation time when a session is revoked twice.
    const result = await this.#database.execute('UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1', [
      id,
      at.getTime(),
    ]);
    return result.changes > 0;
  }

  async listSessions(options: { activeAt?: Date }): Promise<StoredSession[]> {
    const rows =
      options.activeAt === undefined
        ? await this.#database.query<SessionRow>('SELECT * FROM sessions ORDER BY created_at, id')
        : await this.#database.query<SessionRow>(
            'SELECT * FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY created_at, id',
            [options.activeAt.getTime()],
          );
    return rows.map(toStoredSession);
  }

  async appendAudit(events: AuditEvent[]): Promise<void> {
    if (events.length === 0) {
      return;
    }
    await this.#database.transaction(async (tx) => {
      for (const event of events) {
        await tx.execute(INSERT_AUDIT_SQL, auditParameters(event));
      }
    });
  }

  async queryAudit(query: AuditQuery): Promise<AuditEvent[]> {
    const limit = auditLimit(query.limit);
    const conditions: string[] = [];
    const params: unknown[] = [];
    const addCondition = (sqlBeforeValue: string, value: unknown): void => {
      params.push(value);
      conditions.push(`${sqlBeforeValue} $${params.length}`);
    };

    if (query.afterId !== undefined) {
      if (!Number.isSafeInteger(query.afterId) || query.afterId < 0) {
        throw new RangeError(`Invalid audit afterId ${query.afterId}; pass a non-negative integer event id.`);
      }
      addCondition('id >', query.afterId);
    }
    if (query.beforeId !== undefined) {
      if (!Number.isSafeInteger(query.beforeId) || query.beforeId < 1) {
        throw new RangeError(`Invalid audit beforeId ${query.beforeId}; pass a positive integer event id.`);
      }
      addCondition('id <', query.beforeId);
    }
    if (query.since !== undefined) {
      addCondition('occurred_at >=', query.since.getTime());
    }
    if (query.until !== undefined) {
      addCondition('occurred_at <', query.until.getTime());
    }
    if (query.channel !== undefined) {
      addCondition('channel =', query.channel);
    }
    if (query.bundle !== undefined) {
      addCondition('bundle =', query.bundle);
    }
    if (query.credential !== undefined) {
      addCondition('credential =', query.credential);
    }
    if (query.decision !== undefined) {
      addCondition('decision =', query.decision);
    }
    if (query.sessionId !== undefined) {
      addCondition('session_id =', query.sessionId);
    }

    const where = conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
    params.push(limit);
    const limitPlaceholder = `$${params.length}`;
    // Following (afterId) reads forward from the cursor; otherwise the newest events are
    // picked and then put back in ascending order.
    const sql =
      query.afterId !== undefined
        ? `SELECT * FROM audit_events ${where} ORDER BY id ASC LIMIT ${limitPlaceholder}`
        : `SELECT * FROM (SELECT * FROM audit_events ${where} ORDER BY id DESC LIMIT ${limitPlaceholder}) AS newest ORDER BY id ASC`;
    const rows = await this.#database.query<AuditRow>(sql, params);
    return rows.map(toAuditEvent);
  }

  async credentialActivity(names: string[]): Promise<Map<string, CredentialActivity>> {
    const activity = new Map<string, CredentialActivity>();
    // NOTE: these walk the (credential, id) index back from the newest event until the kind
    // matches, so the mint lookup reads every request since the credential's last mint.
    await this.#database.transaction(
      async (tx) => {
        for (const name of new Set(names)) {
          const used = await tx.query<{ occurred_at: SqlInteger }>(
            "SELECT occurred_at FROM audit_events WHERE credential = $1 AND kind = 'request' ORDER BY id DESC LIMIT 1",
            [name],
          );
          const minted = await tx.query<Pick<AuditRow, 'occurred_at' | 'status' | 'decision' | 'error_code'>>(
            "SELECT occurred_at, status, decision, error_code FROM audit_events WHERE credential = $1 AND kind = 'mint' ORDER BY id DESC LIMIT 1",
            [name],
          );
          const usedRow = used[0];
          const mintRow = minted[0];
          activity.set(name, {
            lastUsedAt: usedRow === undefined ? null : new Date(Number(usedRow.occurred_at)),
            lastMint:
              mintRow === undefined
                ? null
                : {
                    at: new Date(Number(mintRow.occurred_at)),
                    status: toNullableNumber(mintRow.status),
                    decision: mintRow.decision as AuditDecision,
                    errorCode: mintRow.error_code,
                  },
          });
        }
      },
      { readOnly: true },
    );
    return activity;
  }

  createAdminToken(token: StoredAdminToken): Promise<boolean> {
    return insertAdminToken(this.#database, token);
  }

  listAdminTokens(): Promise<StoredAdminToken[]> {
    return selectAdminTokens(this.#database);
  }

  revokeAdminToken(name: string, at: Date): Promise<boolean> {
    return markAdminTokenRevoked(this.#database, name, at);
  }

  recordAdminTokenUse(id: string, at: Date): Promise<void> {
    return markAdminTokenUsed(this.#database, id, at);
  }

  appendAdminAudit(events: AdminAuditEvent[]): Promise<void> {
    return insertAdminAuditEvents(this.#database, events);
  }

  queryAdminAudit(query: AdminAuditQuery): Promise<AdminAuditEvent[]> {
    return selectAdminAuditEvents(this.#database, query);
  }

  close(): Promise<void> {
    return this.#database.close();
  }

  // After `keys rotate` ran against the database, values are sealed under a data key that
  // this process has not loaded. The keys cannot be read inside the failed transaction
  // (statements on the database from inside its own transaction are rejected), so the
  // operation is retried once after loading them.
  async #withDataKeysReloaded<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (!isSecretsError(error, 'data_key_not_loaded')) {
        throw error;
      }
      await this.#cipher.loadDataKeys(await readDataKeys(this.#database), this.#location);
      return operation();
    }
  }
}

async function readConfigIn(tx: SqlDatabase, cipher: SecretCipher): Promise<ProxyConfig> {
  const egress = await readEgress(tx);
  const bundleRows = await tx.query<BundleRow>('SELECT * FROM bundles');
  const credentialRows = await tx.query<CredentialRow>('SELECT * FROM credentials');

  const credentialsByBundle = new Map<string, Credential[]>();
  for (const row of sortByName(credentialRows)) {
    const credentials = credentialsByBundle.get(row.bundle_id) ?? [];
    credentials.push(toCredential(row, cipher));
    credentialsByBundle.set(row.bundle_id, credentials);
  }
  const bundles = sortByName(bundleRows).map((row) => toBundle(row, credentialsByBundle.get(row.id) ?? []));
  return { egress, bundles };
}

interface ReplaceOptions {
  /**
   * Match bundles and credentials by their id instead of their name, so that a rename
   * updates the stored row. An object with the empty id is new.
   */
  matchIds: boolean;
}

async function replaceConfigIn(
  tx: SqlDatabase,
  cipher: SecretCipher,
  config: ProxyConfig,
  now: number,
  options: ReplaceOptions = { matchIds: false },
): Promise<ConfigChanges> {
  const changes: ConfigChanges = { created: [], changed: [], deleted: [] };

  const storedEgress = await readEgress(tx);
  if (canonicalJson(storedEgress) !== canonicalJson(config.egress)) {
    await tx.execute(
      `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [EGRESS_SETTING_KEY, canonicalJson(config.egress), now],
    );
    changes.changed.push('egress');
  }

  const storedBundles = sortByName(await tx.query<BundleRow>('SELECT * FROM bundles'));
  const storedCredentials = sortByName(await tx.query<CredentialRow>('SELECT * FROM credentials')).map((row) => ({
    ...row,
    secrets: canonicalJson(openCredentialSecrets(cipher, row.id, row.secrets)),
  }));
  const matchKey = (object: { id: string; name: string }): string => (options.matchIds ? object.id : object.name);
  const storedBundleByKey = new Map(storedBundles.map((row) => [matchKey(row), row]));
  const storedCredentialByKey = new Map(storedCredentials.map((row) => [matchKey(row), row]));
  const configBundleKeys = new Set(config.bundles.map(matchKey));
  const configCredentialKeys = new Set(config.bundles.flatMap((bundle) => bundle.credentials.map(matchKey)));

  // Credentials go first, so deleting a bundle cascades only to credentials that are deleted anyway.
  for (const row of storedCredentials) {
    if (!configCredentialKeys.has(matchKey(row))) {
      await tx.execute('DELETE FROM credentials WHERE id = $1', [row.id]);
    }
  }

  for (const bundle of sortByName(config.bundles)) {
    const bundleId = await upsertBundle(tx, bundle, storedBundleByKey.get(matchKey(bundle)), now, changes);
    for (const credential of sortByName(bundle.credentials)) {
      const stored = storedCredentialByKey.get(matchKey(credential));
      await upsertCredential(tx, cipher, bundle.name, bundleId, credential, stored, now, changes);
    }
  }

  const bundleNameById = new Map(storedBundles.map((row) => [row.id, row.name]));
  for (const row of storedCredentials) {
    if (!configCredentialKeys.has(matchKey(row))) {
      changes.deleted.push(`bundle/${bundleNameById.get(row.bundle_id) ?? row.bundle_id}/credential/${row.name}`);
    }
  }
  for (const row of storedBundles) {
    if (!configBundleKeys.has(matchKey(row))) {
      await tx.execute('DELETE FROM bundles WHERE id = $1', [row.id]);
      changes.deleted.push(`bundle/${row.name}`);
    }
  }
  changes.deleted.sort(compareChangeNames);

  return changes;
}

/** Inserts or updates one bundle's own columns and returns its id. */
async function upsertBundle(
  tx: SqlDatabase,
  bundle: Bundle,
  stored: BundleRow | undefined,
  now: number,
  changes: ConfigChanges,
): Promise<string> {
  const channels = canonicalJson(bundle.channels);
  const label = `bundle/${bundle.name}`;

  if (stored === undefined) {
    const id = newId('bun');
    await tx.execute(
      `INSERT INTO bundles (id, name, description, channels, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $5)`,
      [id, bundle.name, bundle.description, channels, now],
    );
    changes.created.push(label);
    return id;
  }

  if (stored.name !== bundle.name || stored.description !== bundle.description || stored.channels !== channels) {
    await tx.execute('UPDATE bundles SET name = $2, description = $3, channels = $4, updated_at = $5 WHERE id = $1', [
      stored.id,
      bundle.name,
      bundle.description,
      channels,
      now,
    ]);
    changes.changed.push(label);
  }
  return stored.id;
}

/**
 * Inserts or updates one credential; a credential that moved bundles keeps its id. `stored`
 * carries its secrets as plaintext canonical JSON, and they are sealed again on write.
 */
async function upsertCredential(
  tx: SqlDatabase,
  cipher: SecretCipher,
  bundleName: string,
  bundleId: string,
  credential: Credential,
  stored: CredentialRow | undefined,
  now: number,
  changes: ConfigChanges,
): Promise<void> {
  const content = credentialContent(bundleId, credential);
  const label = `bundle/${bundleName}/credential/${credential.name}`;

  if (stored === undefined) {
    const id = newId('cred');
    await tx.execute(
      `INSERT INTO credentials (id, bundle_id, name, type, settings, secrets, allowed_websites, access, rules,
         extra_headers, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
      [
        id,
        content.bundle_id,
        credential.name,
        content.type,
        content.settings,
        sealCredentialSecrets(cipher, id, credential.secrets),
        content.allowed_websites,
        content.access,
        content.rules,
        content.extra_headers,
        now,
      ],
    );
    changes.created.push(label);
    return;
  }

  const unchanged =
    stored.name === credential.name && (Object.keys(content) as (keyof CredentialContent)[]).every((column) => stored[column] === content[column]);
  if (unchanged) {
    return;
  }
  await tx.execute(
    `UPDATE credentials SET bundle_id = $2, type = $3, settings = $4, secrets = $5, allowed_websites = $6,
       access = $7, rules = $8, extra_headers = $9, updated_at = $10, name = $11
     WHERE id = $1`,
    [
      stored.id,
      content.bundle_id,
      content.type,
      content.settings,
      sealCredentialSecrets(cipher, stored.id, credential.secrets),
      content.allowed_websites,
      content.access,
      content.rules,
      content.extra_headers,
      now,
      credential.name,
    ],
  );
  changes.changed.push(label);
}

function credentialContent(bundleId: string, credential: Credential): CredentialContent {
  // The type has its own column, so the settings JSON holds only the type-specific fields.
  const { type, ...settings } = credential.settings;
  return {
    bundle_id: bundleId,
    type,
    settings: canonicalJson(settings),
    secrets: canonicalJson(credential.secrets),
    allowed_websites: canonicalJson(credential.allowedWebsites),
    access: credential.access,
    rules: canonicalJson(credential.rules),
    extra_headers: canonicalJson(credential.extraHeaders),
  };
}

/** Throws when two bundles, or two credentials in any bundles, share a name, because both are matched by name. */
function assertUniqueNames(config: ProxyConfig): void {
  const bundleNames = new Set<string>();
  const credentialBundles = new Map<string, string>();
  for (const bundle of config.bundles) {
    if (bundleNames.has(bundle.name)) {
      throw new Error(`Bundle name "${bundle.name}" appears more than once; give each bundle a unique name.`);
    }
    bundleNames.add(bundle.name);
    for (const credential of bundle.credentials) {
      const firstBundle = credentialBundles.get(credential.name);
      if (firstBundle !== undefined) {
        throw new Error(
          `Credential name "${credential.name}" appears in bundle "${firstBundle}" and again in bundle "${bundle.name}"; ` +
            'credential names must be unique across all bundles.',
        );
      }
      credentialBundles.set(credential.name, bundle.name);
    }
  }
}

async function readEgress(database: SqlDatabase): Promise<EgressPolicy> {
  const rows = await database.query<{ value: string }>('SELECT value FROM settings WHERE key = $1', [EGRESS_SETTING_KEY]);
  const row = rows[0];
  if (row === undefined) {
    return structuredClone(DEFAULT_EGRESS);
  }
  return parseJsonColumn<EgressPolicy>(row.value, `settings.value of key "${EGRESS_SETTING_KEY}"`);
}

function toBundle(row: BundleRow, credentials: Credential[]): Bundle {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    channels: parseJsonColumn<string[]>(row.channels, `bundles.channels of ${row.id}`),
    credentials,
  };
}

function toCredential(row: CredentialRow, cipher: SecretCipher): Credential {
  const column = (name: string): string => `credentials.${name} of ${row.id}`;
  const settings = parseJsonColumn<Record<string, unknown>>(row.settings, column('settings'));
  return {
    id: row.id,
    bundleId: row.bundle_id,
    name: row.name,
    settings: { ...settings, type: row.type as CredentialType } as CredentialSettings,
    secrets: openCredentialSecrets(cipher, row.id, row.secrets),
    allowedWebsites: parseJsonColumn<string[]>(row.allowed_websites, column('allowed_websites')),
    access: row.access as Access,
    rules: parseJsonColumn<CredentialRule[]>(row.rules, column('rules')),
    extraHeaders: parseJsonColumn<Record<string, string>>(row.extra_headers, column('extra_headers')),
  };
}

function toStoredSession(row: SessionRow): StoredSession {
  return {
    id: row.id,
    tokenHash: Buffer.from(row.token_hash),
    channel: row.channel,
    thread: row.thread,
    createdAt: new Date(Number(row.created_at)),
    expiresAt: new Date(Number(row.expires_at)),
    revokedAt: row.revoked_at === null ? null : new Date(Number(row.revoked_at)),
  };
}

function auditParameters(event: AuditEvent): unknown[] {
  return [
    event.time.getTime(),
    event.kind,
    event.decision,
    event.errorCode,
    event.sessionId,
    event.channel,
    event.thread,
    event.bundle,
    event.credential,
    event.method,
    event.host,
    event.port,
    event.path,
    event.status,
    event.bytesIn,
    event.bytesOut,
    event.durationMs,
    event.subject,
    event.clientAddress,
  ];
}

function toAuditEvent(row: AuditRow): AuditEvent {
  return {
    id: Number(row.id),
    time: new Date(Number(row.occurred_at)),
    kind: row.kind as AuditKind,
    decision: row.decision as AuditDecision,
    errorCode: row.error_code,
    sessionId: row.session_id,
    channel: row.channel,
    thread: row.thread,
    bundle: row.bundle,
    credential: row.credential,
    method: row.method,
    host: row.host,
    port: toNullableNumber(row.port),
    path: row.path,
    status: toNullableNumber(row.status),
    bytesIn: toNullableNumber(row.bytes_in),
    bytesOut: toNullableNumber(row.bytes_out),
    durationMs: toNullableNumber(row.duration_ms),
    subject: row.subject,
    clientAddress: row.client_address,
  };
}

function auditLimit(limit: number | undefined): number {
  if (limit === undefined) {
    return DEFAULT_AUDIT_LIMIT;
  }
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`Invalid audit limit ${limit}; pass an integer from 1 to ${MAX_AUDIT_LIMIT}.`);
  }
  return Math.min(limit, MAX_AUDIT_LIMIT);
}

function toNullableNumber(value: SqlInteger | null): number | null {
  return value === null ? null : Number(value);
}

function parseJsonColumn<T>(text: string, column: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new Error(`Invalid JSON in ${column}; restore the row from a backup or apply the configuration again.`, {
      cause: error,
    });
  }
}

/** JSON with object keys sorted, so equal values always serialise to the same text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, nested: unknown) => {
    if (nested === null || typeof nested !== 'object' || Array.isArray(nested)) {
      return nested;
    }
    const entries = Object.entries(nested as Record<string, unknown>).sort(([a], [b]) => compareStrings(a, b));
    return Object.fromEntries(entries);
  });
}

/** Sorts by name in UTF-16 code unit order, which is the same on every dialect (unlike SQL collations). */
function sortByName<T extends { name: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => compareStrings(a.name, b.name));
}

function compareStrings(a: string, b: string): number {
  if (a < b) {
    return -1;
  }
  return a > b ? 1 : 0;
}

/** Orders `bundle/B` before `bundle/B/credential/C`, bundles by name and credentials by name within a bundle. */
function compareChangeNames(a: string, b: string): number {
  const [bundleA = '', credentialA = ''] = a.split('/credential/');
  const [bundleB = '', credentialB = ''] = b.split('/credential/');
  return compareStrings(bundleA, bundleB) || compareStrings(credentialA, credentialB);
}

function newId(prefix: 'bun' | 'cred'): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}
