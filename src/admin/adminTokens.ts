// Admin API tokens: random bearer tokens with a name, a role and an optional expiry.
// Only the SHA-256 of a token is stored; the token itself is shown once, when it is made.
// The bootstrap token in the data directory's `admin-token` file is one of them, with
// role admin and the name `bootstrap`.

import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { AdminRole, Store, StoredAdminToken } from '../store/store.ts';

export type { AdminRole, StoredAdminToken };

export const ADMIN_ROLES: readonly AdminRole[] = ['admin', 'viewer', 'session-issuer'];
export const ADMIN_TOKEN_PREFIX = 'apt_';
export const BOOTSTRAP_TOKEN_NAME = 'bootstrap';
/** Token names: they appear in audit targets (`admin-token/NAME`) and CLI arguments, so no spaces or slashes. */
export const ADMIN_TOKEN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// A revocation made through another replica is in force within this time.
const TOKEN_CACHE_MS = 1000;
// `last_used_at` is written at most this often per token, so that reads do not turn every
// admin request into a database write.
const LAST_USED_WRITE_INTERVAL_MS = 60_000;

export type AdminTokenCheck =
  | { ok: true; token: StoredAdminToken }
  | { ok: false; reason: 'unknown' }
  | { ok: false; reason: 'expired' | 'revoked'; token: StoredAdminToken };

/** Makes a new token: the `apt_` prefix marks it for secret scanners, then 256 random bits. */
export function generateAdminToken(): string {
  return `${ADMIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashAdminToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Returns why a stored token cannot be used at `now`, or null when it can. */
export function tokenUnusableReason(token: StoredAdminToken, now: number): 'expired' | 'revoked' | null {
  if (token.revokedAt !== null) return 'revoked';
  if (token.expiresAt !== null && token.expiresAt.getTime() <= now) return 'expired';
  return null;
}

export class AdminTokenService {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #now: () => number;
  #cache: { tokens: StoredAdminToken[]; loadedAt: number } | null = null;
  readonly #lastUseWritten = new Map<string, number>();

  constructor(store: Store, logger: Logger, now: () => number = Date.now) {
    this.#store = store;
    this.#logger = logger;
    this.#now = now;
  }

  /** Creates a token and returns it with its row; returns null, storing nothing, when the name is taken. */
  async create(request: { name: string; role: AdminRole; expiresAt: Date | null }): Promise<{ token: string; record: StoredAdminToken } | null> {
    const token = generateAdminToken();
    const record: StoredAdminToken = {
      id: randomUUID(),
      name: request.name,
      tokenHash: hashAdminToken(token),
      role: request.role,
      createdAt: new Date(this.#now()),
      expiresAt: request.expiresAt,
      revokedAt: null,
      lastUsedAt: null,
    };
    if (!(await this.#store.createAdminToken(record))) {
      return null;
    }
    this.#cache = null;
    return { token, record };
  }

  async list(): Promise<StoredAdminToken[]> {
    return this.#store.listAdminTokens();
  }

  /** Revokes the named token at once in this process; returns its row, or null when no token has the name. */
  async revoke(name: string): Promise<StoredAdminToken | null> {
    if (!(await this.#store.revokeAdminToken(name, new Date(this.#now())))) {
      return null;
    }
    this.#cache = null;
    const tokens = await this.#tokens();
    return tokens.find((candidate) => candidate.name === name) ?? null;
  }

  /**
   * Finds the stored token whose hash matches `token`. Every stored hash is compared with
   * timingSafeEqual, with no early exit, so the time taken does not depend on which hash or
   * how many bytes of it matched. A usable token's last use is recorded.
   */
  async check(token: string): Promise<AdminTokenCheck> {
    const presented = hashAdminToken(token);
    let found = findByHash(await this.#tokens(), presented);
    if (found === null && this.#cache !== null && this.#cache.loadedAt < this.#now()) {
      // A token made through another replica in the last second is not cached yet. The
      // extra read per unknown token is bounded by the failed-authentication limit.
      this.#cache = null;
      found = findByHash(await this.#tokens(), presented);
    }
    if (found === null) {
      return { ok: false, reason: 'unknown' };
    }
    const reason = tokenUnusableReason(found, this.#now());
    if (reason !== null) {
      return { ok: false, reason, token: found };
    }
    await this.#recordUse(found);
    return { ok: true, token: found };
  }

  /** Re-checks the token behind a cookie session, so revoking a token also ends its browser sessions. */
  async checkById(id: string): Promise<AdminTokenCheck> {
    const found = (await this.#tokens()).find((candidate) => candidate.id === id);
    if (found === undefined) {
      return { ok: false, reason: 'unknown' };
    }
    const reason = tokenUnusableReason(found, this.#now());
    if (reason !== null) {
      return { ok: false, reason, token: found };
    }
    await this.#recordUse(found);
    return { ok: true, token: found };
  }

  async #tokens(): Promise<StoredAdminToken[]> {
    const now = this.#now();
    if (this.#cache === null || now - this.#cache.loadedAt >= TOKEN_CACHE_MS) {
      this.#cache = { tokens: await this.#store.listAdminTokens(), loadedAt: now };
    }
    return this.#cache.tokens;
  }

  async #recordUse(token: StoredAdminToken): Promise<void> {
    const now = this.#now();
    const written = this.#lastUseWritten.get(token.id) ?? token.lastUsedAt?.getTime() ?? 0;
    if (now - written < LAST_USED_WRITE_INTERVAL_MS) {
      return;
    }
    this.#lastUseWritten.set(token.id, now);
    try {
      await this.#store.recordAdminTokenUse(token.id, new Date(now));
    } catch (error) {
      // The request is authenticated either way; a missed last-used time is not worth a 500.
      this.#logger.error({ err: error, tokenName: token.name }, 'recording the last use of an admin token failed');
    }
  }
}

function findByHash(tokens: StoredAdminToken[], hash: Buffer): StoredAdminToken | null {
  let found: StoredAdminToken | null = null;
  for (const candidate of tokens) {
    if (timingSafeEqual(candidate.tokenHash, hash)) {
      found = candidate;
    }
  }
  return found;
}

/**
 * Stores the data directory's bootstrap token as an admin-role token unless its hash is
 * already stored, as in a data directory from before admin tokens had roles. A revoked
 * bootstrap token stays revoked. A new `admin-token` file, made after the old one was
 * deleted, is stored under the first free name `bootstrap`, `bootstrap-2`, …, and the
 * earlier bootstrap token keeps working until it is revoked.
 */
export async function ensureBootstrapAdminToken(store: Store, token: string, logger: Logger, now: () => number = Date.now): Promise<void> {
  const hash = hashAdminToken(token);
  const tokens = await store.listAdminTokens();
  const stored = tokens.find((candidate) => timingSafeEqual(candidate.tokenHash, hash));
  if (stored !== undefined) {
    if (stored.revokedAt !== null) {
      logger.warn({ tokenName: stored.name }, 'the admin-token file contains a revoked token, so the CLI cannot use it; set $AGENT_PROXY_TOKEN to another admin token');
    }
    return;
  }

  const taken = new Set(tokens.map((candidate) => candidate.name));
  let name = BOOTSTRAP_TOKEN_NAME;
  for (let suffix = 2; taken.has(name); suffix += 1) {
    name = `${BOOTSTRAP_TOKEN_NAME}-${suffix}`;
  }
  const record: StoredAdminToken = {
    id: randomUUID(),
    name,
    tokenHash: hash,
    role: 'admin',
    createdAt: new Date(now()),
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
  };
  await store.createAdminToken(record);
  if (name !== BOOTSTRAP_TOKEN_NAME) {
    logger.warn(
      { tokenName: name },
      'the admin-token file contains a new bootstrap token; earlier bootstrap tokens stay valid until revoked with `agent-proxy admin-token revoke NAME`',
    );
  }
}
