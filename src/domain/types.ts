// Validated domain types. Wire formats (bundles file, admin API bodies) are parsed
// into these at the edge; nothing inside the program sees unvalidated input.

export type Access = 'read' | 'read_write';

/** Narrows a credential to some methods and path patterns (`*` matches one path segment, `**` any rest). */
export interface CredentialRule {
  methods?: string[];
  paths?: string[];
}

export type StaticCredentialType = 'bearer_token' | 'api_key' | 'basic_auth';
export type OAuthCredentialType = 'oauth2_jwt_bearer' | 'oauth2_client_credentials' | 'oauth2_refresh_token';
export type CredentialType = StaticCredentialType | OAuthCredentialType;

/** OAuth provider whose rules a token credential follows (audience, token lifetime, invalid-token answers). */
export type OAuthProviderName = 'salesforce' | 'google' | 'generic';

/** Settings every OAuth type shares. */
interface OAuthCommonSettings {
  /** Provider rules to apply; detected from the token URL when absent. */
  provider?: OAuthProviderName;
  /**
   * Maximum time a token is used, as a duration such as `30m`: the lifetime when the
   * provider gives no `expires_in` (Salesforce), and an upper bound otherwise.
   */
  maxTokenAge?: string;
  allowClientCookies?: boolean;
}

/**
 * Type-specific settings of a credential. Secret values live in `CredentialSecrets`,
 * never here. `probeUrl` is the URL test-connection calls to show who the credential
 * runs as. `allowClientCookies` forwards the sandbox's `Cookie` header; it is off by
 * default, because a session cookie of the sandbox's choosing could act as another
 * account.
 */
export type CredentialSettings =
  | { type: 'bearer_token'; probeUrl?: string; allowClientCookies?: boolean }
  | { type: 'api_key'; headerName?: string; queryParam?: string; prefix?: string; probeUrl?: string; allowClientCookies?: boolean }
  | { type: 'basic_auth'; username: string; probeUrl?: string; allowClientCookies?: boolean }
  | (OAuthCommonSettings & {
      type: 'oauth2_jwt_bearer';
      issuer: string;
      subject?: string;
      tokenUrl: string;
      audience?: string;
      scope?: string;
      algorithm?: string;
      keyId?: string;
      probeUrl?: string;
    })
  | (OAuthCommonSettings & {
      type: 'oauth2_client_credentials';
      clientId: string;
      tokenUrl: string;
      scope?: string;
      audience?: string;
      clientAuthMethod?: 'basic' | 'body';
      probeUrl?: string;
    })
  | (OAuthCommonSettings & { type: 'oauth2_refresh_token'; clientId: string; tokenUrl: string; probeUrl?: string });

/** Secret field values by field name (`token`, `value`, `password`, `privateKey`, `clientSecret`, `refreshToken`). */
export type CredentialSecrets = Record<string, string>;

/** Names of the secret fields of each credential type, in the order the design lists them. */
export const SECRET_FIELDS: Record<CredentialType, readonly string[]> = {
  bearer_token: ['token'],
  api_key: ['value'],
  basic_auth: ['password'],
  oauth2_jwt_bearer: ['privateKey'],
  oauth2_client_credentials: ['clientSecret'],
  oauth2_refresh_token: ['clientSecret', 'refreshToken'],
};

export interface Credential {
  id: string;
  bundleId: string;
  name: string;
  settings: CredentialSettings;
  secrets: CredentialSecrets;
  allowedWebsites: string[];
  access: Access;
  rules: CredentialRule[];
  /** Fixed headers the API requires on every request, such as a version header. */
  extraHeaders: Record<string, string>;
}

export interface Bundle {
  id: string;
  name: string;
  description: string;
  /** Channel ids the bundle covers; `['*']` covers every channel. */
  channels: string[];
  credentials: Credential[];
}

export interface EgressPolicy {
  /** What happens to hosts that no credential covers. */
  default: 'allow' | 'deny';
  /** Host patterns reachable even when `default` is `deny`. */
  allow: string[];
  /** CIDRs that may be reached although they are private, loopback or otherwise special. */
  allowPrivateNetworks: string[];
}

/** Everything the proxy needs to decide a request, loaded from the store as one snapshot. */
export interface ProxyConfig {
  egress: EgressPolicy;
  bundles: Bundle[];
}

export const DEFAULT_EGRESS: EgressPolicy = { default: 'allow', allow: [], allowPrivateNetworks: [] };

export interface Session {
  id: string;
  channel: string;
  thread: string | null;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
}

export type AuditKind = 'request' | 'tunnel' | 'refusal' | 'mint';

export type AuditDecision = 'allowed' | 'denied' | 'error';

/** One line of the audit log. Never holds a secret, a query value or a body. */
export interface AuditEvent {
  id?: number;
  time: Date;
  kind: AuditKind;
  decision: AuditDecision;
  /** Error code from the proxy's error table when the proxy refused or failed the request. */
  errorCode: string | null;
  sessionId: string | null;
  channel: string | null;
  thread: string | null;
  bundle: string | null;
  credential: string | null;
  method: string | null;
  host: string | null;
  port: number | null;
  /** Path with query keys kept and their values removed (`/search?q=`). */
  path: string | null;
  status: number | null;
  bytesIn: number | null;
  bytesOut: number | null;
  durationMs: number | null;
  /** Subject a token was minted for (mint events). */
  subject: string | null;
  clientAddress: string | null;
}
