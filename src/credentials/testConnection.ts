// `test-connection`: mints a token where the type has one and calls the credential's
// probe URL with it, to show an admin who the credential runs as before an agent uses it.

import type { Dispatcher } from 'undici';
import type { Bundle, Credential } from '../domain/types.ts';
import { ProxyError } from '../errors.ts';
import { matchHostPattern, parseHostPattern } from '../policy/hostPattern.ts';
import { isOAuthCredential, providerOf } from './oauth/grants.ts';
import type { CredentialInjector } from './injection.ts';

export interface ConnectionTestResult {
  ok: boolean;
  credential: string;
  type: string;
  token: { subject: string; instanceUrl: string | null; expiresAt: string } | null;
  probe: { url: string; status: number; identity: Record<string, string> | null } | null;
  warnings: string[];
  error: { code: string; message: string; providerError: string | null; providerErrorDescription: string | null; hint: string | null } | null;
}

// Identity fields worth showing from a userinfo or identity answer, in display order.
const IDENTITY_FIELDS = ['preferred_username', 'username', 'email', 'name', 'user_id', 'organization_id', 'sub'];
const MAX_PROBE_BODY_BYTES = 64 * 1024;

export interface ConnectionTesterDeps {
  injector: CredentialInjector;
  dispatcher: (credentialId: string) => Dispatcher;
}

export class ConnectionTester {
  readonly #deps: ConnectionTesterDeps;

  constructor(deps: ConnectionTesterDeps) {
    this.#deps = deps;
  }

  async test(bundle: Bundle, credential: Credential): Promise<ConnectionTestResult> {
    const result: ConnectionTestResult = { ok: false, credential: credential.name, type: credential.settings.type, token: null, probe: null, warnings: [], error: null };

    try {
      const injection = await this.#deps.injector.prepare(credential, bundle.name);
      if (injection.token) {
        result.token = { subject: injection.token.subject, instanceUrl: injection.token.instanceUrl, expiresAt: new Date(injection.token.expiresAt).toISOString() };
        const instanceHost = injection.token.instanceUrl ? hostOf(injection.token.instanceUrl) : null;
        if (instanceHost && !allowedOn(credential, instanceHost, portOf(injection.token.instanceUrl!))) {
          result.warnings.push(
            `The token endpoint returned instance_url ${injection.token.instanceUrl}, whose host ${instanceHost} is not among the allowed websites (${credential.allowedWebsites.join(', ')}); requests to it will not get the credential. Add it to allowedWebsites.`,
          );
        }
      }

      const probeUrl = probeUrlOf(credential, injection.token?.instanceUrl ?? null);
      if (!probeUrl) {
        result.warnings.push('No probe URL is known for this credential, so only the token was checked; set probeUrl to a URL that shows who the call runs as.');
        result.ok = true;
        return result;
      }
      if (!allowedOn(credential, hostOf(probeUrl) ?? '', portOf(probeUrl))) {
        throw new ProxyError('egress_denied', `The probe URL ${probeUrl} is not on the credential's allowed websites, so the credential would not be sent to it.`);
      }

      const url = new URL(probeUrl);
      const headers: Record<string, string> = { accept: 'application/json' };
      for (const [name, value] of injection.headers) headers[name.toLowerCase()] = value;
      const response = await this.#deps.dispatcher(credential.id).request({ origin: url.origin, path: `${url.pathname}${url.search}`, method: 'GET', headers });
      const text = await readLimited(response.body);

      result.probe = { url: probeUrl, status: response.statusCode, identity: identityFrom(text) };
      result.ok = response.statusCode >= 200 && response.statusCode < 300;
      if (!result.ok) {
        result.error = {
          code: 'probe_failed',
          message: `The probe ${probeUrl} answered ${response.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}.`,
          providerError: null,
          providerErrorDescription: null,
          hint: response.statusCode === 401 || response.statusCode === 403 ? 'The token was refused by the API: check the scopes or permissions granted to the subject.' : null,
        };
      }
    } catch (error) {
      result.ok = false;
      if (error instanceof ProxyError) {
        result.error = {
          code: error.code,
          message: error.detail,
          providerError: (error.extensions.error as string | null | undefined) ?? null,
          providerErrorDescription: (error.extensions.error_description as string | null | undefined) ?? null,
          hint: (error.extensions.hint as string | null | undefined) ?? null,
        };
      } else {
        result.error = { code: 'upstream_unreachable', message: (error as Error).message, providerError: null, providerErrorDescription: null, hint: null };
      }
    }
    return result;
  }
}

function probeUrlOf(credential: Credential, instanceUrl: string | null): string | null {
  const explicit = (credential.settings as { probeUrl?: string }).probeUrl;
  if (explicit) {
    return explicit;
  }
  if (isOAuthCredential(credential) && providerOf(credential.settings) === 'salesforce') {
    // Salesforce documents /services/oauth2/userinfo on the instance as the identity of the token's user.
    const base = instanceUrl ?? firstExactWebsite(credential);
    return base ? `${base.replace(/\/$/, '')}/services/oauth2/userinfo` : null;
  }
  return null;
}

function firstExactWebsite(credential: Credential): string | null {
  const exact = credential.allowedWebsites.find((pattern) => !pattern.startsWith('*.'));
  return exact ? `https://${exact}` : null;
}

function allowedOn(credential: Credential, host: string, port = 443): boolean {
  return credential.allowedWebsites.some((pattern) => matchHostPattern(parseHostPattern(pattern), host, port, [443]));
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return null;
  }
}

function portOf(url: string): number {
  const parsed = new URL(url);
  return Number(parsed.port) || 443;
}

function identityFrom(text: string): Record<string, string> | null {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const identity: Record<string, string> = {};
    for (const field of IDENTITY_FIELDS) {
      if (typeof body[field] === 'string') identity[field] = body[field];
    }
    return Object.keys(identity).length > 0 ? identity : null;
  } catch {
    return null;
  }
}

async function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_PROBE_BODY_BYTES) break;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
