// SQL for admin API tokens and the admin audit trail, kept apart from the configuration
// queries of sqlStore.ts. The tables come from migration 3.

import type { SqlDatabase } from './sqlDatabase.ts';
import type { AdminAuditEvent, AdminAuditOutcome, AdminAuditQuery, AdminRole, StoredAdminToken } from './store.ts';

// The same page sizes as the proxy audit log, so both trails page alike.
const DEFAULT_ADMIN_AUDIT_LIMIT = 100;
const MAX_ADMIN_AUDIT_LIMIT = 1000;

type SqlInteger = number | string;

interface AdminTokenRow {
  id: string;
  name: string;
  token_hash: Buffer;
  role: string;
  created_at: SqlInteger;
  expires_at: SqlInteger | null;
  revoked_at: SqlInteger | null;
  last_used_at: SqlInteger | null;
}

interface AdminAuditRow {
  id: SqlInteger;
  occurred_at: SqlInteger;
  actor: string;
  action: string;
  target: string | null;
  fields: string;
  outcome: string;
  client_address: string | null;
}

export async function insertAdminToken(database: SqlDatabase, token: StoredAdminToken): Promise<boolean> {
  // ON CONFLICT (SQLite 3.24+, PostgreSQL 9.5+) turns a taken name into a return value
  // instead of a driver-specific constraint error.
  const result = await database.execute(
    `INSERT INTO admin_tokens (id, name, token_hash, role, created_at, expires_at, revoked_at, last_used_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (name) DO NOTHING`,
    [
      token.id,
      token.name,
      token.tokenHash,
      token.role,
      token.createdAt.getTime(),
      token.expiresAt?.getTime() ?? null,
      token.revokedAt?.getTime() ?? null,
      token.lastUsedAt?.getTime() ?? null,
    ],
  );
  return result.changes > 0;
}

export async function selectAdminTokens(database: SqlDatabase): Promise<StoredAdminToken[]> {
  const rows = await database.query<AdminTokenRow>('SELECT * FROM admin_tokens ORDER BY created_at, name');
  return rows.map(toStoredAdminToken);
}

export async function markAdminTokenRevoked(database: SqlDatabase, name: string, at: Date): Promise<boolean> {
  const result = await database.execute('UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE name = $1', [name, at.getTime()]);
  return result.changes > 0;
}

export async function markAdminTokenUsed(database: SqlDatabase, id: string, at: Date): Promise<void> {
  await database.execute('UPDATE admin_tokens SET last_used_at = $2 WHERE id = $1', [id, at.getTime()]);
}

export async function insertAdminAuditEvents(database: SqlDatabase, events: AdminAuditEvent[]): Promise<void> {
  if (events.length === 0) {
    return;
  }
  await database.transaction(async (tx) => {
    for (const event of events) {
      await tx.execute(
        `INSERT INTO admin_audit_events (occurred_at, actor, action, target, fields, outcome, client_address)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [event.time.getTime(), event.actor, event.action, event.target, JSON.stringify(event.fields), event.outcome, event.clientAddress],
      );
    }
  });
}

export async function selectAdminAuditEvents(database: SqlDatabase, query: AdminAuditQuery): Promise<AdminAuditEvent[]> {
  const conditions: string[] = [];
  const params: unknown[] = [];
  const addCondition = (sqlBeforeValue: string, value: unknown): void => {
    params.push(value);
    conditions.push(`${sqlBeforeValue} $${params.length}`);
  };

  if (query.afterId !== undefined) {
    if (!Number.isSafeInteger(query.afterId) || query.afterId < 0) {
      throw new RangeError(`Invalid admin audit afterId ${query.afterId}; pass a non-negative integer event id.`);
    }
    addCondition('id >', query.afterId);
  }
  if (query.beforeId !== undefined) {
    if (!Number.isSafeInteger(query.beforeId) || query.beforeId < 1) {
      throw new RangeError(`Invalid admin audit beforeId ${query.beforeId}; pass a positive integer event id.`);
    }
    addCondition('id <', query.beforeId);
  }
  if (query.since !== undefined) {
    addCondition('occurred_at >=', query.since.getTime());
  }
  if (query.actor !== undefined) {
    addCondition('actor =', query.actor);
  }
  if (query.action !== undefined) {
    addCondition('action =', query.action);
  }

  const where = conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
  params.push(Math.min(Math.max(1, Math.trunc(query.limit ?? DEFAULT_ADMIN_AUDIT_LIMIT)), MAX_ADMIN_AUDIT_LIMIT));
  const limitPlaceholder = `$${params.length}`;
  const sql =
    query.afterId !== undefined
      ? `SELECT * FROM admin_audit_events ${where} ORDER BY id ASC LIMIT ${limitPlaceholder}`
      : `SELECT * FROM (SELECT * FROM admin_audit_events ${where} ORDER BY id DESC LIMIT ${limitPlaceholder}) AS newest ORDER BY id ASC`;
  const rows = await database.query<AdminAuditRow>(sql, params);
  return rows.map(toAdminAuditEvent);
}

function toStoredAdminToken(row: AdminTokenRow): StoredAdminToken {
  return {
    id: row.id,
    name: row.name,
    tokenHash: Buffer.from(row.token_hash),
    role: row.role as AdminRole,
    createdAt: new Date(Number(row.created_at)),
    expiresAt: toDate(row.expires_at),
    revokedAt: toDate(row.revoked_at),
    lastUsedAt: toDate(row.last_used_at),
  };
}

function toAdminAuditEvent(row: AdminAuditRow): AdminAuditEvent {
  return {
    id: Number(row.id),
    time: new Date(Number(row.occurred_at)),
    actor: row.actor,
    action: row.action,
    target: row.target,
    fields: JSON.parse(row.fields) as string[],
    outcome: row.outcome as AdminAuditOutcome,
    clientAddress: row.client_address,
  };
}

function toDate(value: SqlInteger | null): Date | null {
  return value === null ? null : new Date(Number(value));
}
