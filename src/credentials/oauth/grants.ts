// Builds the token request of each OAuth credential type.

import type { Credential, CredentialSettings } from '../../domain/types.ts';
import { buildAssertion, detectProvider } from '../jwtAssertion.ts';
import { parsePrivateKey } from '../privateKey.ts';
import type { OAuthProvider } from './providerRules.ts';
import type { TokenRequest } from './tokenEndpoint.ts';

type OAuthSettings = Extract<CredentialSettings, { type: 'oauth2_jwt_bearer' | 'oauth2_client_credentials' | 'oauth2_refresh_token' }>;

export function isOAuthCredential(credential: Credential): credential is Credential & { settings: OAuthSettings } {
  const type = credential.settings.type;
  return type === 'oauth2_jwt_bearer' || type === 'oauth2_client_credentials' || type === 'oauth2_refresh_token';
}

/** Returns the provider whose rules apply: the credential's explicit setting, else the one its token URL belongs to. */
export function providerOf(settings: OAuthSettings): OAuthProvider {
  const explicit = (settings as { provider?: OAuthProvider }).provider;
  return explicit ?? detectProvider(settings.tokenUrl);
}

/** Returns the subject the token acts for, as recorded in the audit log. */
export function subjectOf(settings: OAuthSettings): string {
  return settings.type === 'oauth2_jwt_bearer' ? (settings.subject ?? settings.issuer) : settings.clientId;
}

/**
 * Builds the token request. `refreshToken` is the current refresh token for the
 * refresh grant, which may be a rotated one rather than the configured secret.
 */
export async function buildTokenRequest(credential: Credential & { settings: OAuthSettings }, refreshToken: string | null): Promise<TokenRequest> {
  const settings = credential.settings;
  const secret = (field: string): string => {
    const value = credential.secrets[field];
    if (!value) throw new Error(`credential "${credential.name}" has no ${field} stored`);
    return value;
  };

  switch (settings.type) {
    case 'oauth2_jwt_bearer': {
      const key = parsePrivateKey(secret('privateKey'), { algorithm: settings.algorithm });
      const assertion = await buildAssertion({ settings, key, provider: providerOf(settings) });
      // RFC 7523 §2.1: the grant type and the assertion are the whole request.
      return {
        tokenUrl: settings.tokenUrl,
        form: { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion },
        headers: {},
      };
    }

    case 'oauth2_client_credentials': {
      const form: Record<string, string> = { grant_type: 'client_credentials' };
      if (settings.scope) form.scope = settings.scope;
      if (settings.audience) form.audience = settings.audience;
      const headers: Record<string, string> = {};
      if (settings.clientAuthMethod === 'body') {
        form.client_id = settings.clientId;
        form.client_secret = secret('clientSecret');
      } else {
        // RFC 6749 §2.3.1: both parts are form-encoded before they are joined and base64-encoded.
        const pair = `${formEncode(settings.clientId)}:${formEncode(secret('clientSecret'))}`;
        headers.authorization = `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
      }
      return { tokenUrl: settings.tokenUrl, form, headers };
    }

    case 'oauth2_refresh_token': {
      return {
        tokenUrl: settings.tokenUrl,
        form: {
          grant_type: 'refresh_token',
          refresh_token: refreshToken ?? secret('refreshToken'),
          client_id: settings.clientId,
          client_secret: secret('clientSecret'),
        },
        headers: {},
      };
    }
  }
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}
