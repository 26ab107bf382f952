import type { Credential } from '../domain/types.ts';
import { ProxyError } from '../errors.ts';
import type { CachedToken, TokenManager } from './oauth/tokenManager.ts';

/** What a credential does to one request: headers to set (replacing any sent by the client) and a query parameter. */
export interface Injection {
  headers: Array<[string, string]>;
  query: { name: string; value: string } | null;
  /** The OAuth token injected, so that a response rejecting it can drop it; null for static types. */
  token: CachedToken | null;
}

/**
 * Produces the injection for a credential. Token-based types mint through an
 * OAuth token endpoint, so preparing is asynchronous for every type.
 */
export interface CredentialInjector {
  prepare(credential: Credential, bundleName?: string | null): Promise<Injection>;
}

/**
 * Injects every credential type: the static ones (`bearer_token`, `api_key`,
 * `basic_auth`) from their secrets, the OAuth ones as a bearer token from the token
 * manager. Without a token manager, OAuth types fail closed.
 */
export class DefaultCredentialInjector implements CredentialInjector {
  readonly #tokens: TokenManager | null;

  constructor(tokens: TokenManager | null = null) {
    this.#tokens = tokens;
  }

  async prepare(credential: Credential, bundleName: string | null = null): Promise<Injection> {
    const extra = Object.entries(credential.extraHeaders);
    const settings = credential.settings;

    switch (settings.type) {
      case 'bearer_token':
        return { headers: [['authorization', `Bearer ${secret(credential, 'token')}`], ...extra], query: null, token: null };

      case 'basic_auth': {
        const pair = `${settings.username}:${secret(credential, 'password')}`;
        return { headers: [['authorization', `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`], ...extra], query: null, token: null };
      }

      case 'api_key': {
        const value = `${settings.prefix ?? ''}${secret(credential, 'value')}`;
        if (settings.queryParam) {
          return { headers: extra, query: { name: settings.queryParam, value }, token: null };
        }
        return { headers: [[settings.headerName ?? 'x-api-key', value], ...extra], query: null, token: null };
      }

      case 'oauth2_jwt_bearer':
      case 'oauth2_client_credentials':
      case 'oauth2_refresh_token': {
        if (!this.#tokens) {
          throw new ProxyError('credential_unavailable', `Credential "${credential.name}" needs a token, and this proxy has no token manager. The request was not sent.`, {
            credential: credential.name,
          });
        }
        const token = await this.#tokens.token(credential, bundleName);
        return { headers: [['authorization', `Bearer ${token.accessToken}`], ...extra], query: null, token };
      }
    }
  }
}

function secret(credential: Credential, field: string): string {
  const value = credential.secrets[field];
  if (!value) {
    throw new ProxyError('credential_unavailable', `Credential "${credential.name}" has no ${field} stored; ask the Agent Proxy administrator to set it.`, {
      credential: credential.name,
    });
  }
  return value;
}

/** Lower-cased names of the headers an injection sets, which the client's own copies must not survive. */
export function injectedHeaderNames(injection: Injection): Set<string> {
  return new Set(injection.headers.map(([name]) => name.toLowerCase()));
}

/**
 * Sets (or replaces) the credential's query parameter in an origin-form path. The
 * other parameters are kept byte for byte, since re-encoding them could break a
 * signed URL.
 */
export function applyQueryInjection(pathWithQuery: string, query: Injection['query']): string {
  if (!query) {
    return pathWithQuery;
  }

  const questionMark = pathWithQuery.indexOf('?');
  const path = questionMark < 0 ? pathWithQuery : pathWithQuery.slice(0, questionMark);
  const search = questionMark < 0 ? '' : pathWithQuery.slice(questionMark + 1);
  const kept = search.split('&').filter((part) => part !== '' && decodeQueryName(part) !== query.name);
  kept.push(`${encodeURIComponent(query.name)}=${encodeURIComponent(query.value)}`);
  return `${path}?${kept.join('&')}`;
}

function decodeQueryName(part: string): string {
  const name = part.split('=', 1)[0]!.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}
