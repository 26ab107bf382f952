import type { AuditEvent, ProxyConfig } from '../domain/types.ts';

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

export interface AuditQuery {
  /** Only events with an id greater than this (for `--follow`). */
  afterId?: number;
  since?: Date;
  until?: Date;
  channel?: string;
  bundle?: string;
  credential?: string;
  decision?: string;
  sessionId?: string;
  limit?: number;
}

/** What `replaceConfig` changed, by object name, for `apply` to print. */
export interface ConfigChanges {
  created: string[];
  changed: string[];
  deleted: string[];
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
   * `bundle/NAME/credential/NAME`, plus `egress` when the policy changed.
   */
  replaceConfig(config: ProxyConfig): Promise<ConfigChanges>;

  createSession(session: StoredSession): Promise<void>;
  getSession(id: string): Promise<StoredSession | null>;
  /** Marks the session revoked; returns false when no such session exists. */
  revokeSession(id: string, at: Date): Promise<boolean>;
  listSessions(options: { activeAt?: Date }): Promise<StoredSession[]>;

  appendAudit(events: AuditEvent[]): Promise<void>;
  queryAudit(query: AuditQuery): Promise<AuditEvent[]>;

  close(): Promise<void>;
}
