// Admin API authentication: an admin token as a bearer header (CLI, scripts), or a
// browser session cookie obtained by logging in with a token (the console). Either way
// the request acts as that token, with its name and role; the role each route needs is
// in routeAccess.ts.
//
// Cookie sessions carry a CSRF token, the HMAC of the session id, which a state-changing
// request must echo in `X-CSRF-Token`. SameSite=Strict already keeps other sites' requests
// from carrying the cookie; the header is the second line of defence for browsers or
// same-site subdomains where SameSite does not hold.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AdminAuditLog } from './adminAudit.ts';
import type { AdminTokenCheck, AdminTokenService, StoredAdminToken } from './adminTokens.ts';
import { ApiError, sendApiError } from './apiError.ts';
import type { AuthFailureLimiter } from './authFailureLimiter.ts';
import { setPrincipal, type AdminPrincipal } from './principal.ts';
import { routeAccess } from './routeAccess.ts';
import { loginBodySchema } from './schemas.ts';

export const SESSION_COOKIE = 'ap_session';
export const CSRF_HEADER = 'x-csrf-token';
const SESSION_TTL_MS = 12 * 60 * 60_000;
// Bounds the memory a flood of logins can take; the oldest session is dropped first.
const MAX_SESSIONS = 1000;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface AdminAuthOptions {
  tokens: AdminTokenService;
  /** Counts failed bearer tokens and logins per client address. */
  failures: AuthFailureLimiter;
  audit: AdminAuditLog;
  now?: () => number;
}

interface CookieSession {
  expiresAt: number;
  /** The admin token the session logged in with; its role and revocation apply to the session. */
  tokenId: string;
}

export class AdminAuth {
  readonly #tokens: AdminTokenService;
  readonly #failures: AuthFailureLimiter;
  readonly #audit: AdminAuditLog;
  readonly #csrfKey = randomBytes(32);
  /** Cookie sessions, keyed by the SHA-256 of the session id so lookups leak nothing through timing. */
  readonly #sessions = new Map<string, CookieSession>();
  readonly #now: () => number;

  constructor(options: AdminAuthOptions) {
    this.#tokens = options.tokens;
    this.#failures = options.failures;
    this.#audit = options.audit;
    this.#now = options.now ?? Date.now;
  }

  /** Registers POST /login, GET /me and POST /logout, which work without prior authentication. */
  registerRoutes(api: FastifyInstance): void {
    api.post('/login', async (request, reply) => {
      this.#rejectLimitedSource(request);
      const parsed = loginBodySchema.safeParse(request.body);
      if (!parsed.success) {
        throw new ApiError('invalid_request', 'Send {"token": "<admin token>"} as the JSON body to log in.', { field: 'token' });
      }
      const check = await this.#tokens.check(parsed.data.token);
      if (!check.ok) {
        this.#failures.recordFailure(request.ip);
        if (check.reason === 'unknown') {
          throw new ApiError('unauthorized', 'The admin token is not valid; copy it from the admin-token file in the data directory.', { field: 'token' });
        }
        await this.#recordSessionEvent(request, 'login', check.token, 'failure');
        throw unusableToken(check.token, check.reason);
      }
      const sessionId = this.#createSession(check.token.id);
      await this.#recordSessionEvent(request, 'login', check.token, 'success');
      const secure = request.protocol === 'https' ? '; Secure' : '';
      reply.header('set-cookie', `${SESSION_COOKIE}=${sessionId}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_MS / 1000}${secure}`);
      return { csrfToken: this.#csrfToken(sessionId) };
    });

    api.get('/me', async (request) => {
      const principal = await this.authenticate(request);
      const sessionId = principal.via === 'cookie' ? this.#cookieSession(request) : null;
      return { authenticated: true, csrfToken: sessionId === null ? null : this.#csrfToken(sessionId) };
    });

    api.post('/logout', async (request, reply) => {
      const sessionId = this.#cookieSession(request);
      const session = sessionId === null ? undefined : this.#sessions.get(sha256(sessionId).toString('hex'));
      if (sessionId !== null && session !== undefined) {
        this.#checkCsrf(request, sessionId);
        this.#sessions.delete(sha256(sessionId).toString('hex'));
        const check = await this.#tokens.checkById(session.tokenId);
        if (check.ok || check.reason !== 'unknown') {
          await this.#recordSessionEvent(request, 'logout', check.token, 'success');
        }
      }
      reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
      return reply.code(204).send();
    });
  }

  /**
   * onRequest hook for every other API route: 429 for a source with too many recent
   * failures, 401 without valid credentials, 403 for a cookie request without its CSRF
   * token or for a token whose role the route does not allow.
   */
  readonly requireAuthentication = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    try {
      const principal = await this.authenticate(request);
      setPrincipal(request, principal);
      const access = routeAccess(request.method, request.routeOptions.url ?? '');
      const roles = access?.roles ?? [];
      if (!roles.includes(principal.role)) {
        const path = request.url.split('?')[0]!;
        const needed = roles.length === 0 ? 'a role no token has' : `role ${roles.join(' or ')}`;
        throw new ApiError(
          'forbidden',
          `${request.method} ${path} needs ${needed}; this token (name ${principal.tokenName}) has role ${principal.role}. ` +
            `Send a token with ${needed}, which \`agent-proxy admin-token create --role ${roles[0] ?? 'admin'}\` makes.`,
        );
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      await sendApiError(reply, error);
    }
  };

  /** Returns the token the request acts as, or throws the ApiError to send. */
  async authenticate(request: FastifyRequest): Promise<AdminPrincipal> {
    this.#rejectLimitedSource(request);

    const header = request.headers.authorization;
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      const check: AdminTokenCheck = match === null ? { ok: false, reason: 'unknown' } : await this.#tokens.check(match[1]!);
      if (!check.ok) {
        this.#failures.recordFailure(request.ip);
        throw check.reason === 'unknown' ? unauthorized() : unusableToken(check.token, check.reason);
      }
      return principal(check.token, 'bearer');
    }

    // Cookie failures are not counted: a session id is 256 random bits, and a browser with
    // a stale cookie after a restart would otherwise count against everyone at its address.
    const sessionId = this.#cookieSession(request);
    const session = sessionId === null ? undefined : this.#sessions.get(sha256(sessionId).toString('hex'));
    if (sessionId === null || session === undefined) {
      throw unauthorized();
    }
    const check = await this.#tokens.checkById(session.tokenId);
    if (!check.ok) {
      this.#sessions.delete(sha256(sessionId).toString('hex'));
      throw check.reason === 'unknown' ? unauthorized() : unusableToken(check.token, check.reason);
    }
    if (!SAFE_METHODS.has(request.method)) {
      this.#checkCsrf(request, sessionId);
    }
    return principal(check.token, 'cookie');
  }

  #rejectLimitedSource(request: FastifyRequest): void {
    const retryAfterSeconds = this.#failures.retryAfterSeconds(request.ip);
    if (retryAfterSeconds !== null) {
      throw new ApiError(
        'rate_limited',
        `Too many failed authentications from ${request.ip}; every request from this address is rejected for ${retryAfterSeconds} s more. ` +
          'Check that the client sends a valid admin token, then retry after the time in Retry-After.',
        { retryAfterSeconds },
      );
    }
  }

  async #recordSessionEvent(request: FastifyRequest, action: 'login' | 'logout', token: StoredAdminToken, outcome: 'success' | 'failure'): Promise<void> {
    await this.#audit.record([{ actor: token.name, action, target: `admin-token/${token.name}`, fields: [], outcome, clientAddress: request.ip }]);
  }

  #createSession(tokenId: string): string {
    const now = this.#now();
    for (const [key, session] of this.#sessions) {
      if (session.expiresAt <= now) this.#sessions.delete(key);
    }
    while (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    const sessionId = randomBytes(32).toString('base64url');
    this.#sessions.set(sha256(sessionId).toString('hex'), { expiresAt: now + SESSION_TTL_MS, tokenId });
    return sessionId;
  }

  /** Returns the id of the request's unexpired cookie session, or null. */
  #cookieSession(request: FastifyRequest): string | null {
    const sessionId = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (sessionId === undefined) {
      return null;
    }
    const key = sha256(sessionId).toString('hex');
    const session = this.#sessions.get(key);
    if (session === undefined) {
      return null;
    }
    if (session.expiresAt <= this.#now()) {
      this.#sessions.delete(key);
      return null;
    }
    return sessionId;
  }

  #csrfToken(sessionId: string): string {
    return createHmac('sha256', this.#csrfKey).update(sessionId).digest('base64url');
  }

  #checkCsrf(request: FastifyRequest, sessionId: string): void {
    const presented = request.headers[CSRF_HEADER];
    const expected = Buffer.from(this.#csrfToken(sessionId));
    const presentedBytes = Buffer.from(typeof presented === 'string' ? presented : '');
    if (presentedBytes.length !== expected.length || !timingSafeEqual(presentedBytes, expected)) {
      throw new ApiError(
        'csrf_token_invalid',
        'Missing or invalid X-CSRF-Token header; send the csrfToken returned by POST /api/v1/login or GET /api/v1/me with every state-changing request.',
      );
    }
  }
}

function unauthorized(): ApiError {
  return new ApiError(
    'unauthorized',
    'Missing or invalid admin token: send "Authorization: Bearer <token>" with the token from the data directory\'s admin-token file, or log in with POST /api/v1/login.',
  );
}

function unusableToken(token: StoredAdminToken, reason: 'expired' | 'revoked'): ApiError {
  const when = reason === 'expired' ? `expired at ${token.expiresAt?.toISOString()}` : `was revoked at ${token.revokedAt?.toISOString()}`;
  return new ApiError('unauthorized', `The admin token "${token.name}" ${when}; ask an admin for a new token (\`agent-proxy admin-token create\`).`);
}

function principal(token: StoredAdminToken, via: AdminPrincipal['via']): AdminPrincipal {
  return { tokenId: token.id, tokenName: token.name, role: token.role, via };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) {
    return undefined;
  }
  for (const part of header.split(';')) {
    const separator = part.indexOf('=');
    if (separator !== -1 && part.slice(0, separator).trim() === name) {
      return part.slice(separator + 1).trim();
    }
  }
  return undefined;
}
