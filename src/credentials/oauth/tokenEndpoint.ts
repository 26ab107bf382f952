// One request to an OAuth 2.0 token endpoint (RFC 6749 §3.2): a form-encoded POST
// whose JSON response is parsed here and never handed to the sandbox.

import type { Dispatcher } from 'undici';
import { maskText, reflectionPatterns } from '../../proxy/reflectionRedactor.ts';

// A token response is a few kilobytes; more is a misconfigured or hostile endpoint.
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
const TOKEN_REQUEST_TIMEOUT_MS = 15_000;

export interface TokenResponse {
  accessToken: string;
  /** Lifetime the provider announced; null when it gave none (Salesforce never does). */
  expiresInSeconds: number | null;
  refreshToken: string | null;
  /** Salesforce's `instance_url`: where REST calls for this token must go. */
  instanceUrl: string | null;
  scope: string | null;
}

/** A failed token request: the provider's `error` and `error_description` are kept, since they tell causes apart and are not secret. */
export class TokenEndpointError extends Error {
  readonly status: number | null;
  readonly error: string | null;
  readonly errorDescription: string | null;

  constructor(message: string, details: { status: number | null; error?: string | null; errorDescription?: string | null }) {
    super(message);
    this.name = 'TokenEndpointError';
    this.status = details.status;
    this.error = details.error ?? null;
    this.errorDescription = details.errorDescription ?? null;
  }
}

export interface TokenRequest {
  tokenUrl: string;
  form: Record<string, string>;
  headers: Record<string, string>;
}

/** Posts a token request and returns the parsed response, or throws TokenEndpointError. Never follows a redirect. */
export async function postTokenRequest(dispatcher: Dispatcher, request: TokenRequest): Promise<TokenResponse> {
  const url = new URL(request.tokenUrl);
  let response: Dispatcher.ResponseData;
  try {
    response = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      headers: {
        ...request.headers,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams(request.form).toString(),
      headersTimeout: TOKEN_REQUEST_TIMEOUT_MS,
      bodyTimeout: TOKEN_REQUEST_TIMEOUT_MS,
    });
  } catch (error) {
    const reason = (error as { cause?: { detail?: string } }).cause?.detail ?? (error as Error).message;
    throw new TokenEndpointError(`The token endpoint ${url.origin}${url.pathname} could not be reached: ${reason}`, { status: null });
  }

  const text = await readLimited(response.body);
  const status = response.statusCode;
  // The provider's error text reaches the sandbox in the problem body and the audit log,
  // so anything in it that repeats the request's own secrets is masked first.
  const patterns = reflectionPatterns(requestSecrets(request));
  const masked = (value: string | null): string | null => (value === null ? null : maskText(value, patterns).text);
  if (status >= 300 && status < 400) {
    // A token request carries the client's credentials; re-sending it to another URL would hand them over.
    throw new TokenEndpointError(
      `The token endpoint answered ${status} (a redirect to ${masked(String(response.headers.location ?? 'nowhere'))}); Agent Proxy never follows a redirect of a token request. Set tokenUrl to the final URL.`,
      { status },
    );
  }

  const body = parseJsonObject(text);
  if (status !== 200 || !body || typeof body.access_token !== 'string' || body.access_token === '') {
    const error = masked(typeof body?.error === 'string' ? body.error : null);
    const errorDescription = masked(typeof body?.error_description === 'string' ? body.error_description : null);
    const what = error ? `${error}${errorDescription ? `: ${errorDescription}` : ''}` : body ? 'a JSON body without access_token' : 'a body that is not JSON';
    throw new TokenEndpointError(`The token endpoint answered ${status} with ${what}.`, { status, error, errorDescription });
  }

  const expiresIn = Number(body.expires_in);
  return {
    accessToken: body.access_token,
    expiresInSeconds: body.expires_in !== undefined && Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : null,
    refreshToken: typeof body.refresh_token === 'string' && body.refresh_token !== '' ? body.refresh_token : null,
    instanceUrl: typeof body.instance_url === 'string' ? body.instance_url : null,
    scope: typeof body.scope === 'string' ? body.scope : null,
  };
}

/** The secret values a token request sends: client secret, refresh token, assertion and the Basic client authentication. */
function requestSecrets(request: TokenRequest): string[] {
  const values = ['client_secret', 'refresh_token', 'assertion', 'client_assertion'].map((field) => request.form[field] ?? '');
  for (const [name, value] of Object.entries(request.headers)) {
    if (name.toLowerCase() !== 'authorization') continue;
    values.push(value);
    const basic = /^Basic (.+)$/i.exec(value);
    if (basic) {
      const pair = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const secret = pair.slice(pair.indexOf(':') + 1);
      values.push(pair, secret, new URLSearchParams(`v=${secret}`).get('v') ?? '');
    }
  }
  return values.filter((value) => value !== '');
}

async function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_TOKEN_RESPONSE_BYTES) {
      body.destroy();
      throw new TokenEndpointError(`The token endpoint answered with more than ${MAX_TOKEN_RESPONSE_BYTES} bytes.`, { status: null });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJsonObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
