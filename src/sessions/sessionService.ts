import type { Store } from '../store/store.ts';
import type { SessionAuthenticator } from './sessionAuthenticator.ts';
import { generateSessionId, generateSessionToken, hashSessionToken } from './sessionToken.ts';

export const DEFAULT_SESSION_TTL_MS = 8 * 60 * 60_000;
export const MAX_SESSION_TTL_MS = 30 * 24 * 60 * 60_000;

/** A new session as returned once to its creator: the token is never shown again. */
export interface CreatedSession {
  id: string;
  token: string;
  channel: string;
  thread: string | null;
  expiresAt: string;
  /** Proxy URL with the session's credentials in its user information. */
  proxyUrl: string;
  caPath: string;
  caBundlePath: string;
}

export interface SessionSummary {
  id: string;
  channel: string;
  thread: string | null;
  createdAt: string;
  expiresAt: string;
}

export interface SessionServiceOptions {
  store: Store;
  authenticator: SessionAuthenticator;
  /** The proxy's own URL as sandboxes reach it, such as `http://127.0.0.1:8080`. */
  proxyUrl: () => string;
  caPath: string;
  caBundlePath: string;
  /** Called after a session is revoked, to close its open connections. */
  onRevoked?: (sessionId: string) => void;
}

export class SessionService {
  readonly #options: SessionServiceOptions;

  constructor(options: SessionServiceOptions) {
    this.#options = options;
  }

  async create(request: { channel: string; thread: string | null; ttlMs?: number }): Promise<CreatedSession> {
    const ttlMs = request.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    if (ttlMs <= 0 || ttlMs > MAX_SESSION_TTL_MS) {
      throw Object.assign(new Error(`ttl must be between 1 second and 30 days, got ${Math.round(ttlMs / 1000)} seconds`), { statusCode: 400 });
    }

    const id = generateSessionId();
    const token = generateSessionToken();
    const now = new Date();
    const expiresAt = new Date(now.getTime() + ttlMs);
    await this.#options.store.createSession({
      id,
      tokenHash: hashSessionToken(token),
      channel: request.channel,
      thread: request.thread,
      createdAt: now,
      expiresAt,
      revokedAt: null,
    });

    const proxy = new URL(this.#options.proxyUrl());
    proxy.username = id;
    proxy.password = token;
    return {
      id,
      token,
      channel: request.channel,
      thread: request.thread,
      expiresAt: expiresAt.toISOString(),
      proxyUrl: proxy.toString().replace(/\/$/, ''),
      caPath: this.#options.caPath,
      caBundlePath: this.#options.caBundlePath,
    };
  }

  async revoke(id: string): Promise<boolean> {
    const revoked = await this.#options.store.revokeSession(id, new Date());
    this.#options.authenticator.forget(id);
    if (revoked) this.#options.onRevoked?.(id);
    return revoked;
  }

  async listActive(): Promise<SessionSummary[]> {
    const rows = await this.#options.store.listSessions({ activeAt: new Date() });
    return rows.map((row) => ({
      id: row.id,
      channel: row.channel,
      thread: row.thread,
      createdAt: row.createdAt.toISOString(),
      expiresAt: row.expiresAt.toISOString(),
    }));
  }
}
