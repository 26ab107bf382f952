import type { Session } from '../domain/types.ts';
import { ProxyError } from '../errors.ts';
import type { Store, StoredSession } from '../store/store.ts';
import { sessionTokenMatches } from './sessionToken.ts';

// A revocation must be in force within this time, so cached session rows are
// re-read at least this often.
const SESSION_CACHE_MS = 1000;

interface CacheEntry {
  row: StoredSession | null;
  loadedAt: number;
}

/** Authenticates sandbox requests by their `Proxy-Authorization: Basic base64(sessionId:token)` header. */
export class SessionAuthenticator {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** Returns the session, or throws `proxy_auth_required` naming what is wrong (never the token). */
  async authenticate(header: string | undefined): Promise<Session> {
    if (!header) {
      throw authRequired('The request has no Proxy-Authorization header. Send Basic credentials of an Agent Proxy session (session id as user name, session token as password).');
    }

    const credentials = parseBasic(header);
    if (!credentials) {
      throw authRequired('The Proxy-Authorization header is not Basic credentials of the form base64(sessionId:token).');
    }

    const row = await this.#load(credentials.sessionId);
    if (!row || !sessionTokenMatches(credentials.token, row.tokenHash)) {
      throw authRequired(`Session ${quoteId(credentials.sessionId)} does not exist or its token is wrong. Create a new session with \`agent-proxy session create\`.`);
    }
    if (row.revokedAt) {
      throw authRequired(`Session ${row.id} was revoked at ${row.revokedAt.toISOString()}. Create a new session.`, row.id);
    }
    if (row.expiresAt.getTime() <= this.#now()) {
      throw authRequired(`Session ${row.id} expired at ${row.expiresAt.toISOString()}. Create a new session.`, row.id);
    }

    return { id: row.id, channel: row.channel, thread: row.thread, createdAt: row.createdAt, expiresAt: row.expiresAt, revokedAt: row.revokedAt };
  }

  /** Re-checks that a session authenticated earlier is still valid (for requests on a long-lived tunnel). */
  async stillValid(session: Session): Promise<boolean> {
    const row = await this.#load(session.id);
    return !!row && !row.revokedAt && row.expiresAt.getTime() > this.#now();
  }

  /** Drops a cached row so a revocation made in this process applies at once. */
  forget(sessionId: string): void {
    this.#cache.delete(sessionId);
  }

  async #load(sessionId: string): Promise<StoredSession | null> {
    const cached = this.#cache.get(sessionId);
    const now = this.#now();
    if (cached && now - cached.loadedAt < SESSION_CACHE_MS) {
      return cached.row;
    }

    const row = await this.#store.getSession(sessionId);
    if (this.#cache.size > 10_000) {
      this.#cache.clear();
    }
    this.#cache.set(sessionId, { row, loadedAt: now });
    return row;
  }
}

function parseBasic(header: string): { sessionId: string; token: string } | null {
  const match = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!match) {
    return null;
  }
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) {
    return null;
  }
  let sessionId: string;
  try {
    sessionId = decodeURIComponent(decoded.slice(0, colon));
  } catch {
    return null;
  }
  return { sessionId, token: decoded.slice(colon + 1) };
}

/** Quotes a client-supplied session id for a message, cut short so a hostile header cannot flood it. */
function quoteId(id: string): string {
  return JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}…` : id);
}

function authRequired(detail: string, sessionId?: string): ProxyError {
  return new ProxyError('proxy_auth_required', detail, sessionId ? { session: sessionId } : {});
}
