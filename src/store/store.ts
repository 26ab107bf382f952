import type { AuditDecision, AuditEvent, ProxyConfig } from '../domain/types.ts';

/** A session row as stored: the token itself is never stored, only its SHA-256 hash. */
export interface StoredSession {
  id: string;
  tokenHash: Buffer;
  channel: string;
  thread: string | null;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
}

/**
 * Filters for `queryAudit`; every given field must match. With `afterId` the result is the
 * first `limit` events after that id, otherwise the newest `limit` events. Either way the
 * events come in ascending id order.
 */
export interface AuditQuery {
  /** Only events with an id greater than this (for `--follow`). */
  afterId?: number;
  /** Only events with an id less than this, to page back through older events. */
  beforeId?: number;
  /** Only events at or after this time. */
  since?: Date;
  /** Only events before this time. */
  until?: Date;
  channel?: string;
  bundle?: string;
  credential?: string;
  decision?: string;
  sessionId?: string;
  /** Number of events to return: default 100, values above 1000 are lowered to 1000. */
  limit?: number;
}

/** The latest refresh token a provider returned for a credential, and the configured token it descends from. */
export interface RefreshTokenRotation {
  /** SHA-256 (hex) of the configured refresh token the rotation started from. */
  seedHash: string;
  refreshToken: string;
}

/** What `replaceConfig` changed, by object name, for `apply` to print. */
export interface ConfigChanges {
  created: string[];
  changed: string[];
  deleted: string[];
}

/** Result of `updateConfig`: the configuration read back inside its transaction, and the changes made. */
export interface ConfigUpdate {
  config: ProxyConfig;
  changes: ConfigChanges;
}

/** When a credential was last used and how its last token mint went, from the audit log. */
export interface CredentialActivity {
  /** Time of the latest `request` event that named the credential. */
  lastUsedAt: Date | null;
  lastMint: { at: Date; status: number | null; decision: AuditDecision; errorCode: string | null } | null;
}

/** What an admin API token may do: change configuration, read it, or only manage sessions. */
export type AdminRole = 'admin' | 'viewer' | 'session-issuer';

/** An admin API token row: only the SHA-256 of the token is stored. */
export interface StoredAdminToken {
  id: string;
  /** Unique name shown as the actor in the admin audit trail. */
  name: string;
  tokenHash: Buffer;
  role: AdminRole;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

/** `success`, `failure` (the request was invalid or failed) or `denied` (the token's role or CSRF check refused it). */
export type AdminAuditOutcome = 'success' | 'failure' | 'denied';

/** One entry of the admin audit trail: who changed what, by object and field names, never values. */
export interface AdminAuditEvent {
  /** Assigned by the store; ignored by `appendAdminAudit`. */
  id?: number;
  time: Date;
  /** Name of the admin token that made the request. */
  actor: string;
  /** Such as `credential.update` or `admin_token.create`. */
  action: string;
  /** Such as `bundle/sales/credential/salesforce`, `egress`, `session/ID` or `admin-token/NAME`. */
  target: string | null;
  /** Names of the fields the change set or changed. */
  fields: string[];
  outcome: AdminAuditOutcome;
  clientAddress: string | null;
}

/** Filters for `queryAdminAudit`, paged like `AuditQuery`. */
export interface AdminAuditQuery {
  afterId?: number;
  beforeId?: number;
  since?: Date;
  actor?: string;
  action?: string;
  /** Number of events to return: default 100, values above 1000 are lowered to 1000. */
  limit?: number;
}

/**
 * The narrow persistence interface of Agent Proxy. SQLite implements it now; a
 * PostgreSQL implementation must pass the same contract tests.
 */
export interface Store {
  /** Reads egress policy, bundles and credentials (with secrets) as one consistent snapshot. */
  loadConfig(): Promise<ProxyConfig>;

  /**
   * Makes the stored configuration match `config` in one transaction. Bundles and
   * credentials are matched by name: the ids given in `config` are ignored, a
   * matched object keeps its stored id and a new one gets a fresh id.
   * Returns the objects created, changed and deleted, named `bundle/NAME` or
   * `bundle/NAME/credential/NAME`, plus `egress` when the policy changed. An unchanged
   * object keeps its `updated_at`, and a credential that moved to another bundle keeps
   * its id and is listed as changed under its new bundle. Deleting a bundle lists its
   * credentials as deleted too. Rejects duplicate bundle names, and credential names
   * repeated in any bundles, without changing anything.
   */
  replaceConfig(config: ProxyConfig): Promise<ConfigChanges>;

  /** Returns what `replaceConfig(config)` would change, without changing anything. */
  previewConfig(config: ProxyConfig): Promise<ConfigChanges>;

  /**
   * Loads the configuration, passes it to `mutate` and stores what `mutate` returns, all
   * in one write transaction, so that two concurrent edits cannot lose either update.
   * Unlike `replaceConfig`, bundles and credentials are matched by id, so a renamed object
   * keeps its id. An object with the empty id `''` is created with a fresh id. Throwing
   * from `mutate` rolls back and rethrows. Returns the stored configuration as read back
   * in the same transaction, with the changes named as `replaceConfig` names them.
   */
  updateConfig(mutate: (config: ProxyConfig) => ProxyConfig | Promise<ProxyConfig>): Promise<ConfigUpdate>;

  getRefreshTokenRotation(credentialId: string): Promise<RefreshTokenRotation | null>;

  /**
   * Stores a rotated refresh token if the stored rotation still holds `expectedRefreshToken`
   * (null: no rotation stored yet, or one from another seed), in one transaction so that two
   * writers cannot lose a token. Returns false when the expectation no longer held.
   */
  saveRefreshTokenRotation(credentialId: string, rotation: RefreshTokenRotation, expectedRefreshToken: string | null): Promise<boolean>;

  createSession(session: StoredSession): Promise<void>;
  /** Returns the session, revoked or expired ones included, or null when no session has this id. */
  getSession(id: string): Promise<StoredSession | null>;
  /** Marks the session revoked, keeping the first time when revoked twice; returns false when no such session exists. */
  revokeSession(id: string, at: Date): Promise<boolean>;
  /** Lists sessions by creation time; with `activeAt`, only those unrevoked and expiring after it. */
  listSessions(options: { activeAt?: Date }): Promise<StoredSession[]>;

  /** Inserts the events in one transaction; the store assigns ids and ignores any given `id`. */
  appendAudit(events: AuditEvent[]): Promise<void>;
  queryAudit(query: AuditQuery): Promise<AuditEvent[]>;
  /** Returns the latest use and token mint of each named credential; names without events map to nulls. */
  credentialActivity(names: string[]): Promise<Map<string, CredentialActivity>>;

  /** Inserts the token unless its name is taken; returns false, changing nothing, when it is. */
  createAdminToken(token: StoredAdminToken): Promise<boolean>;
  /** Lists every admin token, revoked and expired ones included, by creation time. */
  listAdminTokens(): Promise<StoredAdminToken[]>;
  /** Marks the named token revoked, keeping the first time when revoked twice; returns false when no token has this name. */
  revokeAdminToken(name: string, at: Date): Promise<boolean>;
  recordAdminTokenUse(id: string, at: Date): Promise<void>;

  /** Inserts the events in one transaction; the store assigns ids. */
  appendAdminAudit(events: AdminAuditEvent[]): Promise<void>;
  /** Returns the newest matching events (or the first after `afterId`) in ascending id order. */
  queryAdminAudit(query: AdminAuditQuery): Promise<AdminAuditEvent[]>;

  close(): Promise<void>;
}
