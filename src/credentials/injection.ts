import type { Credential } from '../domain/types.ts';
import { ProxyError } from '../errors.ts';
import type { CachedToken, TokenManager } from './oauth/tokenManager.ts';

/** What a credential does to one request: headers to set (replacing any sent by the client) and a query parameter. */
export interface Injection {
  headers: Array<[string, string]>;
  query: { name: string; value: string } | null;
  /** The OAuth token injected, so that a response rejecting it can drop it; null for static types. */
  token: CachedToken | null;
  /** The bare secret values inside `headers` and `query` (token, password, key), which no response may echo back to the sandbox. */
  secrets: string[];
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
      case 'bearer_token': {
        const token = secret(credential, 'token');
        return { headers: [['authorization', `Bearer ${token}`], ...extra], query: null, token: null, secrets: [token] };
      }

      case 'basic_auth': {
        const password = secret(credential, 'password');
        const pair = `${settings.username}:${password}`;
        return { headers: [['authorization', `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`], ...extra], query: null, token: null, secrets: [password] };
      }

      case 'api_key': {
        const key = secret(credential, 'value');
        const value = `${settings.prefix ?? ''}${key}`;
        if (settings.queryParam) {
          return { headers: extra, query: { name: settings.queryParam, value }, token: null, secrets: [key] };
        }
        return { headers: [[settings.headerName ?? 'x-api-key', value], ...extra], query: null, token: null, secrets: [key] };
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
        return { headers: [['authorization', `Bearer ${token.accessToken}`], ...extra], query: null, token, secrets: [token.accessToken] };
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

/**
 * Request headers in which a client commonly sends its own credential. On a host
 * where the proxy injects one, the sandbox's copies are removed even when the
 * credential sets another header: otherwise a sandbox could send its own key for an
 * account it controls and write the organisation's data there, on a host the policy
 * allows. `Proxy-Authorization` is the proxy's own and never forwarded anyway.
 */
export const CLIENT_CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'x-api-key', 'api-key', 'x-auth-token', 'private-token']);

/** Query parameters in which a client commonly sends its own credential (RFC 6750 §2.3 `access_token`, and the usual API-key names). */
export const CLIENT_CREDENTIAL_QUERY_PARAMETERS: ReadonlySet<string> = new Set(['access_token', 'api_key', 'key', 'token']);

/**
 * Returns the lower-cased names of the request headers removed before a credential
 * is injected: the headers the injection sets, the credential's own header name, the
 * common credential headers, and `Cookie` unless the credential sets
 * `allowClientCookies` (a session cookie is also a credential of the sandbox's choosing).
 */
export function injectedHeaderNames(injection: Injection, credential?: Credential): Set<string> {
  const names = new Set([...CLIENT_CREDENTIAL_HEADERS, ...injection.headers.map(([name]) => name.toLowerCase())]);
  if (credential?.settings.type === 'api_key' && credential.settings.headerName) {
    names.add(credential.settings.headerName.toLowerCase());
  }
  if (!credential?.settings.allowClientCookies) {
    names.add('cookie');
  }
  return names;
}

/**
 * Removes the sandbox's own credential query parameters (see
 * CLIENT_CREDENTIAL_QUERY_PARAMETERS) from an origin-form path, keeping the other
 * parameters byte for byte. Names are compared after percent-decoding, so
 * `%61ccess_token` is removed too.
 */
export function removeClientQueryCredentials(pathWithQuery: string): string {
  const questionMark = pathWithQuery.indexOf('?');
  if (questionMark < 0) {
    return pathWithQuery;
  }
  const path = pathWithQuery.slice(0, questionMark);
  const parts = pathWithQuery.slice(questionMark + 1).split('&');
  const kept = parts.filter((part) => !CLIENT_CREDENTIAL_QUERY_PARAMETERS.has(decodeQueryName(part).toLowerCase()));
  if (kept.length === parts.length) {
    return pathWithQuery;
  }
  return kept.length === 0 ? path : `${path}?${kept.join('&')}`;
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

/** The values an injection adds to one request: its secrets and the header and query values that carry them. */
export function injectedValues(injection: Injection): string[] {
  const values = [...injection.secrets];
  for (const [, value] of injection.headers) {
    if (injection.secrets.some((secret) => secret !== '' && value.includes(secret))) values.push(value);
  }
  if (injection.query) values.push(injection.query.value);
  return values;
}
