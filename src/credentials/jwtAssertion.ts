// JWT bearer assertions (RFC 7523 §2.1) for the `oauth2_jwt_bearer` credential type, with
// the claims each provider's token endpoint expects.

import { randomUUID } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { checkKeyFitsAlgorithm, isJwtSigningAlgorithm, JWT_ALGORITHM_KEYS, type ParsedPrivateKey } from './privateKey.ts';

export type JwtProvider = 'salesforce' | 'google' | 'generic';

/** Settings of an `oauth2_jwt_bearer` credential that shape the assertion. */
export interface JwtAssertionSettings {
  issuer: string;
  subject?: string;
  tokenUrl: string;
  audience?: string;
  scope?: string;
  algorithm?: string;
  keyId?: string;
}

export const DEFAULT_JWT_ALGORITHM = 'RS256';

export const SALESFORCE_PRODUCTION_AUDIENCE = 'https://login.salesforce.com';
export const SALESFORCE_SANDBOX_AUDIENCE = 'https://test.salesforce.com';

/** Default and maximum assertion lifetime in seconds (`exp` minus the signing time) of each provider. */
export const ASSERTION_LIFETIME_SECONDS: Readonly<Record<JwtProvider, { default: number; max: number | null }>> = {
  // Salesforce's JWT bearer flow documents that `exp` must be within 3 minutes. Its token
  // endpoint accepts far later values in practice, but nothing is gained by sending them.
  salesforce: { default: 180, max: 180 },
  // Google: `exp` "has a maximum of 1 hour after the issued time" (service account OAuth guide).
  google: { default: 3600, max: 3600 },
  // RFC 7523 sets no limit, so a generic server decides what it accepts.
  generic: { default: 300, max: null },
};

/**
 * Returns the provider a token URL belongs to: `salesforce` for salesforce.com and force.com
 * hosts (login, test, My Domain), `google` for Google's OAuth token hosts, `generic` otherwise,
 * including for a value that is not a URL.
 */
export function detectProvider(tokenUrl: string): JwtProvider {
  let url: URL;
  try {
    url = new URL(tokenUrl);
  } catch {
    return 'generic';
  }
  const host = url.hostname;

  if (host === 'salesforce.com' || host.endsWith('.salesforce.com') || host === 'force.com' || host.endsWith('.force.com')) {
    return 'salesforce';
  }
  if (host === 'oauth2.googleapis.com' || host === 'accounts.google.com') {
    return 'google';
  }
  // Google's older token URL, https://www.googleapis.com/oauth2/v4/token, is still in use.
  if (host === 'www.googleapis.com' && url.pathname.startsWith('/oauth2/')) {
    return 'google';
  }
  return 'generic';
}

/**
 * Returns the `aud` to use when the credential sets none. Salesforce expects its login host,
 * not the token URL, even when the token is requested from the org's My Domain:
 * `https://test.salesforce.com` for test.salesforce.com and sandbox My Domains
 * (`*.sandbox.my.salesforce.com`), `https://login.salesforce.com` for everything else. Google
 * and generic servers get the token URL itself. An explicit audience setting always wins,
 * which is how an Experience Cloud site URL is given for site users.
 */
export function defaultAudience(provider: JwtProvider, tokenUrl: string): string {
  if (provider !== 'salesforce') return tokenUrl;

  let host = '';
  try {
    host = new URL(tokenUrl).hostname;
  } catch {
    // Only an explicitly chosen provider reaches here with an unparsable token URL, and it gets the production audience.
  }
  return host === 'test.salesforce.com' || host.endsWith('.sandbox.my.salesforce.com') ? SALESFORCE_SANDBOX_AUDIENCE : SALESFORCE_PRODUCTION_AUDIENCE;
}

/** Returns the audience the assertion carries: the explicit setting, else the provider's default. */
export function resolveAudience(settings: JwtAssertionSettings, provider: JwtProvider = detectProvider(settings.tokenUrl)): string {
  return settings.audience ?? defaultAudience(provider, settings.tokenUrl);
}

/**
 * Lists what stops these settings and this key from producing an assertion the provider
 * accepts, as sentences for an admin. Returns an empty list when nothing does.
 * `provider` defaults to the one detected from the token URL.
 */
export function validateJwtSettings(settings: JwtAssertionSettings, key: ParsedPrivateKey, provider: JwtProvider = detectProvider(settings.tokenUrl)): string[] {
  const problems: string[] = [];
  const algorithm = settings.algorithm ?? DEFAULT_JWT_ALGORITHM;

  if (settings.issuer.trim() === '') {
    problems.push('The issuer (iss) is empty. Set it to the client identifier the provider issued, such as a Salesforce Connected App consumer key or a Google service account email.');
  }

  if (provider === 'salesforce') {
    problems.push(...salesforceProblems(settings, key, algorithm));
  } else if (provider === 'google') {
    problems.push(...googleProblems(settings, algorithm));
  }

  if (!isJwtSigningAlgorithm(algorithm)) {
    problems.push(`The algorithm ${JSON.stringify(algorithm)} is not supported. Use one of ${Object.keys(JWT_ALGORITHM_KEYS).join(', ')}.`);
    return problems;
  }
  // The Salesforce rules above already explain a key that does not fit RS256.
  if (provider !== 'salesforce' || key.kind === 'rsa') {
    const mismatch = checkKeyFitsAlgorithm(key, algorithm);
    if (mismatch !== undefined) problems.push(mismatch.message);
  }
  return problems;
}

function salesforceProblems(settings: JwtAssertionSettings, key: ParsedPrivateKey, algorithm: string): string[] {
  const problems: string[] = [];

  // Salesforce's JWT bearer flow supports only RS256, verified with the certificate uploaded to the Connected App.
  if (algorithm !== 'RS256') {
    problems.push(`Salesforce's JWT bearer flow accepts only RS256, but the algorithm is ${algorithm}. Set the algorithm to RS256 or leave it unset.`);
  }
  if (key.kind !== 'rsa') {
    problems.push(
      `Salesforce's JWT bearer flow needs an RSA private key, but this is an EC ${key.curve ?? ''} key. Generate an RSA key of 2048 bits or more, upload its certificate to the Connected App and paste the key.`,
    );
  }
  if (settings.subject === undefined || settings.subject.trim() === '') {
    problems.push("Salesforce's JWT bearer flow needs a subject (sub). Set it to the username of the integration user.");
  }
  // Salesforce rejects a token URL as the audience with "audience is invalid".
  if (settings.audience !== undefined && /\/services\/oauth2\//.test(settings.audience)) {
    problems.push(
      `Salesforce rejects a token URL as the audience. Set the audience to ${SALESFORCE_PRODUCTION_AUDIENCE}, ${SALESFORCE_SANDBOX_AUDIENCE} or the Experience Cloud site URL, or leave it unset.`,
    );
  }
  return problems;
}

function googleProblems(settings: JwtAssertionSettings, algorithm: string): string[] {
  const problems: string[] = [];

  // Google's service account flow signs with RSA SHA-256 only.
  if (algorithm !== 'RS256') {
    problems.push(`Google's service account flow accepts only RS256, but the algorithm is ${algorithm}. Set the algorithm to RS256 or leave it unset.`);
  }
  if (settings.scope === undefined || settings.scope.trim() === '') {
    problems.push('Google needs a scope in the assertion. Set the scope to the space-separated OAuth scopes the calls need, such as https://www.googleapis.com/auth/cloud-platform.');
  }
  // Google's `iss` is the service account email (client_email), not its numeric client ID.
  if (settings.issuer.trim() !== '' && !settings.issuer.includes('@')) {
    problems.push("Google expects the issuer (iss) to be the service account's email address (client_email in its key file), not its client ID.");
  }
  return problems;
}

/** Settings that `validateJwtSettings` found unusable. The message lists every problem and never contains key material. */
export class JwtSettingsError extends Error {
  readonly problems: readonly string[];

  constructor(problems: string[]) {
    super(`Cannot build the JWT assertion: ${problems.join(' ')}`);
    this.name = 'JwtSettingsError';
    this.problems = problems;
  }
}

export interface BuildAssertionInput {
  settings: JwtAssertionSettings;
  key: ParsedPrivateKey;
  /** Overrides the provider detected from `settings.tokenUrl`. */
  provider?: JwtProvider;
  now?: () => Date;
  /** Seconds from signing to `exp`. Defaults to the provider's default in `ASSERTION_LIFETIME_SECONDS`, and may not exceed its maximum. */
  lifetimeSeconds?: number;
}

/**
 * Signs a JWT bearer assertion (RFC 7523) with jose.
 *
 * Header: `alg` (`settings.algorithm`, default RS256), `typ: "JWT"`, and `kid` when
 * `settings.keyId` is non-empty.
 *
 * Claims, with times in seconds since the epoch:
 * - every provider: `iss`, `sub` when `settings.subject` is non-empty, `aud` (see `resolveAudience`)
 *   and `exp`;
 * - Salesforce: nothing more, with `exp` 180 seconds ahead by default (its documented maximum);
 * - Google: `iat`, a random `jti` and the required `scope`, with `exp` 3600 seconds after `iat`
 *   by default (Google's maximum);
 * - generic: `iat`, a random `jti`, `scope` when non-empty, and `exp` 300 seconds after `iat` by default.
 *
 * @throws JwtSettingsError when `validateJwtSettings` reports a problem.
 * @throws RangeError when `lifetimeSeconds` is not positive or exceeds the provider's maximum.
 */
export async function buildAssertion(input: BuildAssertionInput): Promise<string> {
  const { settings, key } = input;
  const provider = input.provider ?? detectProvider(settings.tokenUrl);

  const problems = validateJwtSettings(settings, key, provider);
  if (problems.length > 0) throw new JwtSettingsError(problems);

  const lifetimeSeconds = checkLifetime(provider, input.lifetimeSeconds);
  const issuedAt = Math.floor((input.now ?? (() => new Date()))().getTime() / 1000);

  const claims: JWTPayload = { iss: settings.issuer };
  if (settings.subject) claims.sub = settings.subject;
  claims.aud = resolveAudience(settings, provider);
  claims.exp = issuedAt + lifetimeSeconds;

  if (provider !== 'salesforce') {
    // NOTE: Google's guide lists no `jti` claim. Its token endpoint is expected to ignore it,
    // which has not been checked against the live endpoint.
    claims.iat = issuedAt;
    claims.jti = randomUUID();
    if (settings.scope) claims.scope = settings.scope;
  }

  const header: { alg: string; typ: string; kid?: string } = { alg: settings.algorithm ?? DEFAULT_JWT_ALGORITHM, typ: 'JWT' };
  if (settings.keyId) header.kid = settings.keyId;

  return new SignJWT(claims).setProtectedHeader(header).sign(key.keyObject);
}

function checkLifetime(provider: JwtProvider, requested: number | undefined): number {
  const limits = ASSERTION_LIFETIME_SECONDS[provider];
  if (requested === undefined) return limits.default;

  if (!Number.isInteger(requested) || requested <= 0) {
    throw new RangeError(`The assertion lifetime must be a positive whole number of seconds, not ${requested}.`);
  }
  if (limits.max !== null && requested > limits.max) {
    throw new RangeError(`The assertion lifetime of ${requested} seconds exceeds the ${limits.max}-second maximum for ${provider}.`);
  }
  return requested;
}
