// What differs between OAuth providers once a token exists: how an upstream says
// the token is no longer valid, how long a token without `expires_in` is kept, and
// which hints explain a provider's token errors.

export type OAuthProvider = 'salesforce' | 'google' | 'generic';

/**
 * Salesforce tokens are sessions without `expires_in` that end after 15 minutes to
 * 24 hours of inactivity (2 hours by default). Keeping one for at most 30 minutes stays
 * below the shortest setting in common use except 15 minutes, where the 401 path re-mints.
 */
export const DEFAULT_MAX_TOKEN_AGE_MS = 30 * 60_000;

/** Providers also say a token is invalid with a 401; this is only how much of a 403 body to read to tell. */
export const INVALID_TOKEN_BODY_PEEK_BYTES = 256;

/**
 * Tells whether an upstream answer shows that the injected token is no longer valid. A
 * `401` always does. Salesforce's identity URL and userinfo answer a bad token with `403`
 * and the plain-text body `Bad_OAuth_Token`; other 403s (limits, permissions) do not.
 */
export function showsInvalidToken(provider: OAuthProvider, status: number, bodyStart: string | null): boolean {
  if (status === 401) {
    return true;
  }
  return provider === 'salesforce' && status === 403 && bodyStart !== null && bodyStart.trim().startsWith('Bad_OAuth_Token');
}

/** Returns a sentence pointing at the usual cause of a token error, or null when none is known. */
export function tokenErrorHint(provider: OAuthProvider, error: string | null, description: string | null): string | null {
  const text = `${error ?? ''} ${description ?? ''}`.toLowerCase();

  if (provider === 'salesforce') {
    if (text.includes("hasn't approved this consumer") || text.includes('invalid_app_access')) {
      return 'The user is not pre-authorised for the Connected App: set "Admin approved users are pre-authorized" in its OAuth policies and add the user\'s profile or permission set to the app. A My Domain token URL still needs the audience https://login.salesforce.com (or https://test.salesforce.com for a sandbox).';
    }
    if (text.includes('audience is invalid')) {
      return 'The audience must be exactly https://login.salesforce.com for production or https://test.salesforce.com for a sandbox (or the Experience Cloud site URL), even when the token URL is the My Domain.';
    }
    if (text.includes('invalid_client_id') || text.includes('client identifier invalid')) {
      return 'The issuer is not a known consumer key: copy the Consumer Key of the Connected App exactly, and check the app belongs to this org (new apps can take a few minutes to propagate).';
    }
    if (text.includes('expired authorization code')) {
      return 'Salesforce saw an expired assertion: check that the clock of the host running Agent Proxy is right (NTP).';
    }
    if (text.includes('invalid assertion')) {
      return 'The assertion signature did not verify: the private key must belong to the certificate uploaded to the Connected App, or the user belongs to another org (sandbox vs production).';
    }
    if (text.includes('login rate exceeded')) {
      return 'Salesforce limits logins to 3,600 per user per hour; another client is minting for this user too.';
    }
    if (text.includes('ip restricted')) {
      return 'The user\'s profile restricts login IP ranges or hours: relax IP restrictions in the Connected App\'s OAuth policies.';
    }
    return null;
  }

  if (provider === 'google') {
    if (text.includes('invalid_scope')) {
      return 'Google needs at least one scope, given as space-separated scope URLs.';
    }
    if (text.includes('unauthorized_client')) {
      return 'Domain-wide delegation is not granted for this service account and these scopes in the Workspace admin console.';
    }
    if (text.includes('invalid_grant')) {
      return 'Check that the key is the service account\'s current key, the subject exists, and the clock of the host running Agent Proxy is right.';
    }
  }
  return null;
}
