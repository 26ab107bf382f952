// Admin API authentication: the admin token as a bearer header (CLI, scripts), or a
// browser session cookie obtained by logging in with the token (the console).
//
// Cookie sessions carry a CSRF token, the HMAC of the session id, which a state-changing
// request must echo in `X-CSRF-Token`. SameSite=Strict already keeps other sites' requests
// from carrying the cookie; the header is the second line of defence for browsers or
// same-site subdomains where SameSite does not hold.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, sendApiError } from './apiError.ts';
import { loginBodySchema } from './schemas.ts';

export const SESSION_COOKIE = 'ap_session';
export const CSRF_HEADER = 'x-csrf-token';
const SESSION_TTL_MS = 12 * 60 * 60_000;
// Bounds the memory a flood of logins can take; the oldest session is dropped first.
const MAX_SESSIONS = 1000;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export type Authentication = { kind: 'bearer' } | { kind: 'cookie'; sessionId: string };

export interface AdminAuthOptions {
  adminToken: string;
  now?: () => number;
}

export class AdminAuth {
  readonly #tokenHash: Buffer;
  readonly #csrfKey = randomBytes(32);
  /** Session expiry times, keyed by the SHA-256 of the session id so lookups leak nothing through timing. */
  readonly #sessions = new Map<string, number>();
  readonly #now: () => number;

  constructor(options: AdminAuthOptions) {
    this.#tokenHash = sha256(options.adminToken);
    this.#now = options.now ?? Date.now;
  }

  /** Registers POST /login, GET /me and POST /logout, which work without prior authentication. */
  registerRoutes(api: FastifyInstance): void {
    api.post('/login', async (request, reply) => {
      const parsed = loginBodySchema.safeParse(request.body);
      if (!parsed.success) {
        throw new ApiError('invalid_request', 'Send {"token": "<admin token>"} as the JSON body to log in.', { field: 'token' });
      }
      if (!this.#tokenMatches(parsed.data.token)) {
        throw new ApiError('unauthorized', 'The admin token is not valid; copy it from the admin-token file in the data directory.', { field: 'token' });
      }
      const sessionId = this.#createSession();
      const secure = request.protocol === 'https' ? '; Secure' : '';
      reply.header('set-cookie', `${SESSION_COOKIE}=${sessionId}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_MS / 1000}${secure}`);
      return { csrfToken: this.#csrfToken(sessionId) };
    });

    api.get('/me', async (request) => {
      const sessionId = this.#cookieSession(request);
      if (sessionId !== null) {
        return { authenticated: true, csrfToken: this.#csrfToken(sessionId) };
      }
      if (this.#bearer(request) === true) {
        return { authenticated: true, csrfToken: null };
      }
      throw unauthorized();
    });

    api.post('/logout', async (request, reply) => {
      const sessionId = this.#cookieSession(request);
      if (sessionId !== null) {
        this.#checkCsrf(request, sessionId);
        this.#sessions.delete(sha256(sessionId).toString('hex'));
      }
      reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
      return reply.code(204).send();
    });
  }

  /** onRequest hook for every other API route: 401 without credentials, 403 for a cookie request without its CSRF token. */
  readonly requireAuthentication = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    try {
      this.authenticate(request);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      await sendApiError(reply, error);
    }
  };

  /** Returns how the request authenticated, or throws the ApiError to send. */
  authenticate(request: FastifyRequest): Authentication {
    const bearer = this.#bearer(request);
    if (bearer === true) {
      return { kind: 'bearer' };
    }
    if (bearer === false) {
      throw unauthorized();
    }
    const sessionId = this.#cookieSession(request);
    if (sessionId === null) {
      throw unauthorized();
    }
    if (!SAFE_METHODS.has(request.method)) {
      this.#checkCsrf(request, sessionId);
    }
    return { kind: 'cookie', sessionId };
  }

  /** Returns true or false for a bearer header that matches or not, and null when there is none. */
  #bearer(request: FastifyRequest): boolean | null {
    const header = request.headers.authorization;
    if (header === undefined) {
      return null;
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    return match !== null && this.#tokenMatches(match[1]!);
  }

  #tokenMatches(token: string): boolean {
    return timingSafeEqual(sha256(token), this.#tokenHash);
  }

  #createSession(): string {
    const now = this.#now();
    for (const [key, expiresAt] of this.#sessions) {
      if (expiresAt <= now) this.#sessions.delete(key);
    }
    while (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    const sessionId = randomBytes(32).toString('base64url');
    this.#sessions.set(sha256(sessionId).toString('hex'), now + SESSION_TTL_MS);
    return sessionId;
  }

  /** Returns the id of the request's unexpired cookie session, or null. */
  #cookieSession(request: FastifyRequest): string | null {
    const sessionId = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (sessionId === undefined) {
      return null;
    }
    const key = sha256(sessionId).toString('hex');
    const expiresAt = this.#sessions.get(key);
    if (expiresAt === undefined) {
      return null;
    }
    if (expiresAt <= this.#now()) {
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
