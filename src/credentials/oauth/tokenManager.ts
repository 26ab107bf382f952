// Mints, caches and invalidates access tokens of OAuth credentials. Tokens live in
// memory only. Each credential has at most one mint in flight, so a burst of first
// requests costs one login (Salesforce allows 3,600 per user per hour), and a failing
// token endpoint is retried with exponential backoff instead of on every request.

import { createHash } from 'node:crypto';
import type { AuditLog } from '../../audit/auditLog.ts';
import { parseDuration } from '../../config/duration.ts';
import type { Credential } from '../../domain/types.ts';
import { ProxyError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { UpstreamPool } from '../../proxy/upstreamPool.ts';
import type { Store } from '../../store/store.ts';
import { buildTokenRequest, isOAuthCredential, providerOf, subjectOf } from './grants.ts';
import { DEFAULT_MAX_TOKEN_AGE_MS, tokenErrorHint, type OAuthProvider } from './providerRules.ts';
import { postTokenRequest, TokenEndpointError, type TokenResponse } from './tokenEndpoint.ts';

// A token is replaced this long before the provider says it expires, so a request
// never leaves with a token that expires on the way. Short lifetimes use a tenth instead.
const EXPIRY_MARGIN_MS = 60_000;
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;

export interface CachedToken {
  accessToken: string;
  credentialId: string;
  provider: OAuthProvider;
  subject: string;
  instanceUrl: string | null;
  mintedAt: number;
  expiresAt: number;
}

interface CacheEntry {
  version: string;
  token: CachedToken;
}

interface FailureEntry {
  version: string;
  attempts: number;
  retryAt: number;
  error: ProxyError;
}

export interface TokenManagerDeps {
  pool: UpstreamPool;
  store: Store;
  audit: AuditLog;
  logger: Logger;
  now?: () => number;
}

export class TokenManager {
  readonly #deps: TokenManagerDeps;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, { version: string; promise: Promise<CachedToken> }>();
  readonly #failures = new Map<string, FailureEntry>();
  readonly #versions = new WeakMap<Credential, string>();
  #mints = 0;

  constructor(deps: TokenManagerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** Number of token requests sent since start, successful or not. */
  get mintCount(): number {
    return this.#mints;
  }

  /**
   * Returns a valid token for the credential: the cached one, the one being minted,
   * or a new one. Throws `credential_unavailable` while the token endpoint fails.
   */
  async token(credential: Credential, bundleName: string | null = null): Promise<CachedToken> {
    const version = this.#versionOf(credential);
    const now = this.#now();

    const cached = this.#cache.get(credential.id);
    if (cached && cached.version === version && now < cached.token.expiresAt) {
      return cached.token;
    }

    const inFlight = this.#inFlight.get(credential.id);
    if (inFlight && inFlight.version === version) {
      return inFlight.promise;
    }

    const failure = this.#failures.get(credential.id);
    if (failure && failure.version === version && now < failure.retryAt) {
      throw failure.error;
    }

    const promise = this.#mint(credential, bundleName, version).finally(() => {
      if (this.#inFlight.get(credential.id)?.promise === promise) this.#inFlight.delete(credential.id);
    });
    this.#inFlight.set(credential.id, { version, promise });
    return promise;
  }

  /** Drops a token an upstream rejected, unless a newer one has replaced it already. */
  invalidate(credentialId: string, accessToken: string): void {
    const cached = this.#cache.get(credentialId);
    if (cached && cached.token.accessToken === accessToken) {
      this.#cache.delete(credentialId);
      this.#deps.logger.info({ credentialId }, 'dropped a cached token the upstream rejected');
    }
  }

  /** Forgets tokens and failures of credentials that no longer exist. */
  retain(credentialIds: ReadonlySet<string>): void {
    for (const map of [this.#cache, this.#failures, this.#inFlight]) {
      for (const id of map.keys()) {
        if (!credentialIds.has(id)) map.delete(id);
      }
    }
  }

  async #mint(credential: Credential, bundleName: string | null, version: string): Promise<CachedToken> {
    if (!isOAuthCredential(credential)) {
      throw new Error(`credential "${credential.name}" has no token to mint`);
    }
    const settings = credential.settings;
    const provider = providerOf(settings);
    const subject = subjectOf(settings);
    const tokenUrl = new URL(settings.tokenUrl);
    const started = this.#now();

    let status: number | null = null;
    try {
      const refresh = settings.type === 'oauth2_refresh_token' ? await this.#currentRefreshToken(credential) : null;
      const request = await buildTokenRequest(credential, refresh?.current ?? null);
      this.#mints++;
      const response = await postTokenRequest(this.#deps.pool.dispatcher(`token:${credential.id}`), request);
      status = 200;

      if (refresh && response.refreshToken && response.refreshToken !== (refresh.current ?? credential.secrets.refreshToken)) {
        await this.#storeRotatedRefreshToken(credential, refresh, response.refreshToken);
      }

      const token = this.#cacheToken(credential, version, provider, subject, response);
      this.#failures.delete(credential.id);
      this.#recordMint(credential, bundleName, subject, tokenUrl, status, null, started);
      this.#deps.logger.info({ credential: credential.name, subject, expiresInMs: token.expiresAt - token.mintedAt }, 'token minted');
      return token;
    } catch (error) {
      const proxyError = this.#toUnavailable(credential, provider, error);
      status = error instanceof TokenEndpointError ? error.status : null;
      const previous = this.#failures.get(credential.id);
      const attempts = previous && previous.version === version ? previous.attempts + 1 : 1;
      const backoffMs = Math.min(FIRST_BACKOFF_MS * 2 ** (attempts - 1), MAX_BACKOFF_MS);
      proxyError.extensions.retryAfterSeconds = Math.ceil(backoffMs / 1000);
      this.#failures.set(credential.id, { version, attempts, retryAt: this.#now() + backoffMs, error: proxyError });

      this.#recordMint(credential, bundleName, subject, tokenUrl, status, proxyError, started);
      this.#deps.logger.warn(
        { credential: credential.name, subject, tokenEndpointStatus: status, error: proxyError.extensions.error ?? null, attempts, backoffMs },
        'token mint failed',
      );
      throw proxyError;
    }
  }

  #cacheToken(credential: Credential, version: string, provider: OAuthProvider, subject: string, response: TokenResponse): CachedToken {
    const now = this.#now();
    const maxAgeMs = maxTokenAgeOf(credential);
    let lifetimeMs = maxAgeMs;
    if (response.expiresInSeconds !== null) {
      const announced = response.expiresInSeconds * 1000;
      lifetimeMs = Math.min(announced - Math.min(EXPIRY_MARGIN_MS, announced / 10), maxAgeMs);
    }

    const token: CachedToken = {
      accessToken: response.accessToken,
      credentialId: credential.id,
      provider,
      subject,
      instanceUrl: response.instanceUrl,
      mintedAt: now,
      expiresAt: now + lifetimeMs,
    };
    this.#cache.set(credential.id, { version, token });
    return token;
  }

  /** Reads the rotated refresh token if it descends from the configured one; a newly configured token starts over. */
  async #currentRefreshToken(credential: Credential): Promise<{ seedHash: string; current: string | null }> {
    const seedHash = sha256(credential.secrets.refreshToken ?? '');
    const rotation = await this.#deps.store.getRefreshTokenRotation(credential.id);
    return { seedHash, current: rotation && rotation.seedHash === seedHash ? rotation.refreshToken : null };
  }

  async #storeRotatedRefreshToken(credential: Credential, refresh: { seedHash: string; current: string | null }, rotated: string): Promise<void> {
    const saved = await this.#deps.store.saveRefreshTokenRotation(credential.id, { seedHash: refresh.seedHash, refreshToken: rotated }, refresh.current);
    if (saved) {
      this.#deps.logger.info({ credential: credential.name }, 'stored the refresh token the provider rotated');
    } else {
      this.#deps.logger.warn({ credential: credential.name }, 'the stored refresh token changed during the mint; kept the stored one');
    }
  }

  #toUnavailable(credential: Credential, provider: OAuthProvider, error: unknown): ProxyError {
    if (error instanceof ProxyError) {
      return error;
    }
    if (error instanceof TokenEndpointError) {
      const hint = tokenErrorHint(provider, error.error, error.errorDescription);
      return new ProxyError(
        'credential_unavailable',
        `Agent Proxy could not get a token for credential "${credential.name}": ${error.message}${hint ? ` ${hint}` : ''} The request was not sent; ask the Agent Proxy administrator to fix the credential.`,
        { credential: credential.name, tokenEndpointStatus: error.status, error: error.error, error_description: error.errorDescription, hint },
      );
    }
    return new ProxyError(
      'credential_unavailable',
      `Agent Proxy could not build a token request for credential "${credential.name}": ${(error as Error).message}. The request was not sent; ask the Agent Proxy administrator to fix the credential.`,
      { credential: credential.name, tokenEndpointStatus: null, error: null, error_description: null, hint: null },
    );
  }

  #recordMint(
    credential: Credential,
    bundle: string | null,
    subject: string,
    tokenUrl: URL,
    status: number | null,
    error: ProxyError | null,
    started: number,
  ): void {
    // A mint event records the provider's own error and description: they are not secret
    // and they are what tells an unapproved user from a wrong audience.
    const providerError = error?.extensions.error as string | null | undefined;
    const description = error?.extensions.error_description as string | null | undefined;
    this.#deps.audit.record({
      kind: 'mint',
      decision: error ? 'error' : 'allowed',
      errorCode: error ? (providerError ? `${providerError}${description ? `: ${description}` : ''}` : error.code) : null,
      sessionId: null,
      channel: null,
      thread: null,
      bundle,
      credential: credential.name,
      method: 'POST',
      host: tokenUrl.hostname,
      port: Number(tokenUrl.port) || 443,
      path: tokenUrl.pathname,
      status,
      bytesIn: null,
      bytesOut: null,
      durationMs: Math.round(this.#now() - started),
      subject,
      clientAddress: null,
    });
  }

  #versionOf(credential: Credential): string {
    let version = this.#versions.get(credential);
    if (!version) {
      version = sha256(JSON.stringify([credential.settings, credential.secrets]));
      this.#versions.set(credential, version);
    }
    return version;
  }
}

function maxTokenAgeOf(credential: Credential): number {
  const text = (credential.settings as { maxTokenAge?: string }).maxTokenAge;
  return text ? parseDuration(text) : DEFAULT_MAX_TOKEN_AGE_MS;
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
