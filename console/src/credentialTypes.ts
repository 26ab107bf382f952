// The credential types an admin can add with "Connect another app", with each type's
// fields labelled and explained the way the provider's own setup pages name them.

export interface TypeField {
  name: string;
  label: string;
  help: string;
  kind: 'text' | 'secret' | 'pem' | 'select';
  required: boolean;
  placeholder?: string;
  options?: { value: string; label: string }[];
  /** Shown under "Advanced settings", closed by default. */
  advanced?: boolean;
}

export interface CredentialTypeDefinition {
  type: string;
  title: string;
  summary: string;
  fields: TypeField[];
}

const PROVIDER_FIELD: TypeField = {
  name: 'provider',
  label: 'Provider rules',
  help: 'Which provider\'s rules apply to the token: the audience, the token lifetime and how an expired token is recognised. "Detect" picks Salesforce for *.salesforce.com and *.force.com token URLs, Google for oauth2.googleapis.com.',
  kind: 'select',
  required: false,
  options: [
    { value: '', label: 'Detect from the token URL' },
    { value: 'salesforce', label: 'Salesforce' },
    { value: 'google', label: 'Google' },
    { value: 'generic', label: 'Generic OAuth 2.0' },
  ],
};

const MAX_TOKEN_AGE_FIELD: TypeField = {
  name: 'maxTokenAge',
  label: 'Maximum token age (optional)',
  help: 'How long a token is used at most, such as 30m. Salesforce tokens carry no lifetime, so they are kept 30 minutes unless you set this.',
  kind: 'text',
  required: false,
  placeholder: '30m',
  advanced: true,
};

export const CREDENTIAL_TYPES: CredentialTypeDefinition[] = [
  {
    type: 'oauth2_jwt_bearer',
    title: 'OAuth 2.0 JWT bearer',
    summary: 'Signs an assertion with your private key and trades it for an access token (Salesforce Connected App, Google service account).',
    fields: [
      {
        name: 'issuer',
        label: 'Issuer (iss)',
        help: 'Salesforce: the Connected App\'s Consumer Key (App Manager → the app → View → Manage Consumer Details). Google: the service account\'s client_email.',
        kind: 'text',
        required: true,
      },
      {
        name: 'subject',
        label: 'Subject (sub, optional)',
        help: 'The user the token acts as. Salesforce: the integration user\'s username, pre-authorised on the Connected App. Google: the Workspace user to act for with domain-wide delegation.',
        kind: 'text',
        required: false,
      },
      {
        name: 'privateKey',
        label: 'Private key (PEM)',
        help: 'The key whose certificate you uploaded to the Connected App under "Use digital signatures", or private_key from a Google service-account JSON key file. It is stored encrypted and never shown again.',
        kind: 'pem',
        required: true,
      },
      {
        name: 'tokenUrl',
        label: 'Token URL',
        help: 'Salesforce: https://login.salesforce.com/services/oauth2/token, https://test.salesforce.com/… for a sandbox, or your My Domain. Google: https://oauth2.googleapis.com/token.',
        kind: 'text',
        required: true,
        placeholder: 'https://login.salesforce.com/services/oauth2/token',
      },
      PROVIDER_FIELD,
      {
        name: 'audience',
        label: 'Audience (optional)',
        help: 'The aud claim of the assertion. Leave it empty unless the provider asks for another value, such as an Experience Cloud site URL.',
        kind: 'text',
        required: false,
      },
      {
        name: 'scope',
        label: 'Scope (optional)',
        help: 'Space-separated scopes. Google requires them (for example https://www.googleapis.com/auth/drive.readonly); Salesforce takes the Connected App\'s scopes.',
        kind: 'text',
        required: false,
      },
      {
        name: 'algorithm',
        label: 'Signing algorithm',
        help: 'RS256 unless the provider requires another. Salesforce accepts RS256 only.',
        kind: 'select',
        required: false,
        advanced: true,
        options: ['', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'].map((value) => ({ value, label: value || 'Default (RS256)' })),
      },
      { name: 'keyId', label: 'Key ID (kid, optional)', help: 'Sent in the assertion header when the provider selects keys by id, such as Google\'s private_key_id.', kind: 'text', required: false, advanced: true },
      MAX_TOKEN_AGE_FIELD,
    ],
  },
  {
    type: 'oauth2_client_credentials',
    title: 'OAuth 2.0 client credentials',
    summary: 'Trades a client id and secret for an access token (Microsoft Entra app registrations, machine-to-machine apps).',
    fields: [
      { name: 'clientId', label: 'Client ID', help: 'The application (client) id from the app registration.', kind: 'text', required: true },
      { name: 'clientSecret', label: 'Client secret', help: 'The secret value created for the app registration (not its id). Stored encrypted and never shown again.', kind: 'secret', required: true },
      { name: 'tokenUrl', label: 'Token URL', help: 'The provider\'s token endpoint, such as https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token.', kind: 'text', required: true },
      { name: 'scope', label: 'Scope (optional)', help: 'Space-separated scopes, such as https://graph.microsoft.com/.default.', kind: 'text', required: false },
      { name: 'audience', label: 'Audience (optional)', help: 'Sent as the audience parameter, for providers such as Auth0 that require it.', kind: 'text', required: false },
      {
        name: 'clientAuthMethod',
        label: 'Client authentication',
        help: 'How the client id and secret reach the token endpoint. Most providers accept HTTP Basic.',
        kind: 'select',
        required: false,
        options: [
          { value: '', label: 'HTTP Basic (default)' },
          { value: 'basic', label: 'HTTP Basic' },
          { value: 'body', label: 'In the form body' },
        ],
      },
      PROVIDER_FIELD,
      MAX_TOKEN_AGE_FIELD,
    ],
  },
  {
    type: 'oauth2_refresh_token',
    title: 'OAuth 2.0 refresh token',
    summary: 'Uses a refresh token from a one-time user consent to get access tokens, and stores the rotated refresh token.',
    fields: [
      { name: 'clientId', label: 'Client ID', help: 'The OAuth client the refresh token was issued to.', kind: 'text', required: true },
      { name: 'clientSecret', label: 'Client secret', help: 'The OAuth client\'s secret. Stored encrypted and never shown again.', kind: 'secret', required: true },
      { name: 'refreshToken', label: 'Refresh token', help: 'The refresh token from the consent flow. Stored encrypted and never shown again.', kind: 'secret', required: true },
      { name: 'tokenUrl', label: 'Token URL', help: 'The provider\'s token endpoint.', kind: 'text', required: true },
      PROVIDER_FIELD,
      MAX_TOKEN_AGE_FIELD,
    ],
  },
  {
    type: 'bearer_token',
    title: 'Bearer token',
    summary: 'Sends a fixed token as Authorization: Bearer (personal access tokens, bot tokens, private app tokens).',
    fields: [{ name: 'token', label: 'Token', help: 'The token from the provider\'s settings page. Stored encrypted and never shown again.', kind: 'secret', required: true }],
  },
  {
    type: 'api_key',
    title: 'API key',
    summary: 'Sends a key in a header of your choice or in a query parameter.',
    fields: [
      { name: 'headerName', label: 'Header name', help: 'The header that carries the key, such as x-api-key. Leave empty to use a query parameter.', kind: 'text', required: false, placeholder: 'x-api-key' },
      { name: 'queryParam', label: 'Query parameter', help: 'The query parameter that carries the key, when the API takes it in the URL instead of a header.', kind: 'text', required: false },
      { name: 'prefix', label: 'Prefix (optional)', help: 'Text put before the key, such as "Token " for APIs that do not use Bearer.', kind: 'text', required: false },
      { name: 'value', label: 'API key', help: 'The key from the provider\'s settings page. Stored encrypted and never shown again.', kind: 'secret', required: true },
    ],
  },
  {
    type: 'basic_auth',
    title: 'Username and password (Basic)',
    summary: 'Sends Authorization: Basic with a username and a password or API token (Jira, Confluence, Zendesk).',
    fields: [
      { name: 'username', label: 'Username', help: 'The account name or e-mail address the API expects.', kind: 'text', required: true },
      { name: 'password', label: 'Password or API token', help: 'Stored encrypted and never shown again.', kind: 'secret', required: true },
    ],
  },
];

export function credentialTypeDefinition(type: string): CredentialTypeDefinition | undefined {
  return CREDENTIAL_TYPES.find((definition) => definition.type === type);
}

export function credentialTypeTitle(type: string): string {
  return credentialTypeDefinition(type)?.title ?? type;
}

export function isSecretField(field: TypeField): boolean {
  return field.kind === 'secret' || field.kind === 'pem';
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return null;
  }
}

/**
 * Computes the JWT bearer audience the server uses when none is set, following the
 * provider rules of docs/oauth.md: Salesforce's login host (test.salesforce.com for
 * sandboxes) whatever the token URL, and the token URL itself for everything else.
 */
export function defaultJwtAudience(tokenUrl: string, provider: string): string | null {
  const host = hostOf(tokenUrl);
  if (!host) return null;
  const isSalesforceHost = host === 'salesforce.com' || host.endsWith('.salesforce.com') || host === 'force.com' || host.endsWith('.force.com');
  const effective = provider || (isSalesforceHost ? 'salesforce' : 'generic');
  if (effective === 'salesforce') {
    const sandbox = host === 'test.salesforce.com' || host.endsWith('.sandbox.my.salesforce.com');
    return sandbox ? 'https://test.salesforce.com' : 'https://login.salesforce.com';
  }
  return tokenUrl;
}

/** Returns the form label of a secret field, such as "Private key (PEM)" for privateKey. */
export function secretFieldLabel(type: string, name: string): string {
  return credentialTypeDefinition(type)?.fields.find((field) => field.name === name)?.label ?? name;
}
