import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { compactVerify, decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose';
import {
  buildAssertion,
  defaultAudience,
  detectProvider,
  JwtSettingsError,
  validateJwtSettings,
  type BuildAssertionInput,
  type JwtAssertionSettings,
} from '../../src/credentials/jwtAssertion.ts';
import { parsePrivateKey } from '../../src/credentials/privateKey.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaKey = parsePrivateKey(rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string);
const ecKey = parsePrivateKey(ec.privateKey.export({ type: 'sec1', format: 'pem' }) as string);

const NOW = new Date('2026-03-01T12:00:00.250Z');
const NOW_SECONDS = 1772366400;
const now = (): Date => NOW;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const salesforceSettings: JwtAssertionSettings = {
  issuer: '3MVG9-consumer-key',
  subject: 'integration@example.com',
  tokenUrl: 'https://login.salesforce.com/services/oauth2/token',
};

async function decode(input: BuildAssertionInput): Promise<{ header: Record<string, unknown>; claims: JWTPayload; jwt: string }> {
  const jwt = await buildAssertion(input);
  return { header: decodeProtectedHeader(jwt), claims: decodeJwt(jwt), jwt };
}

/** Returns the claims without `jti`, after checking that `jti` is a random UUID. */
function withoutJti(claims: JWTPayload): JWTPayload {
  const { jti, ...rest } = claims;
  assert.match(String(jti), UUID);
  return rest;
}

describe('detectProvider', () => {
  const cases: Array<[string, string]> = [
    ['https://login.salesforce.com/services/oauth2/token', 'salesforce'],
    ['https://test.salesforce.com/services/oauth2/token', 'salesforce'],
    ['https://acme.my.salesforce.com/services/oauth2/token', 'salesforce'],
    ['https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token', 'salesforce'],
    ['https://acme.lightning.force.com/services/oauth2/token', 'salesforce'],
    ['https://oauth2.googleapis.com/token', 'google'],
    ['https://accounts.google.com/o/oauth2/token', 'google'],
    ['https://www.googleapis.com/oauth2/v4/token', 'google'],
    ['https://auth.example.com/oauth/token', 'generic'],
    ['https://salesforce.com.example.net/token', 'generic'],
    ['https://notsalesforce.com/token', 'generic'],
    ['not a url', 'generic'],
  ];

  for (const [tokenUrl, provider] of cases) {
    it(`maps ${tokenUrl} to ${provider}`, () => {
      assert.equal(detectProvider(tokenUrl), provider);
    });
  }
});

describe('defaultAudience', () => {
  it('uses the production login host for Salesforce', () => {
    assert.equal(defaultAudience('salesforce', 'https://login.salesforce.com/services/oauth2/token'), 'https://login.salesforce.com');
    assert.equal(defaultAudience('salesforce', 'https://acme.my.salesforce.com/services/oauth2/token'), 'https://login.salesforce.com');
  });

  it('uses the test host for Salesforce sandboxes', () => {
    assert.equal(defaultAudience('salesforce', 'https://test.salesforce.com/services/oauth2/token'), 'https://test.salesforce.com');
    assert.equal(defaultAudience('salesforce', 'https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token'), 'https://test.salesforce.com');
  });

  it('uses the token URL for Google and generic', () => {
    assert.equal(defaultAudience('google', 'https://oauth2.googleapis.com/token'), 'https://oauth2.googleapis.com/token');
    assert.equal(defaultAudience('generic', 'https://auth.example.com/oauth/token'), 'https://auth.example.com/oauth/token');
  });
});

describe('buildAssertion', () => {
  it('builds a Salesforce production assertion', async () => {
    const { header, claims } = await decode({ settings: salesforceSettings, key: rsaKey, now });

    assert.deepEqual(header, { alg: 'RS256', typ: 'JWT' });
    assert.deepEqual(claims, {
      iss: '3MVG9-consumer-key',
      sub: 'integration@example.com',
      aud: 'https://login.salesforce.com',
      exp: NOW_SECONDS + 180,
    });
  });

  it('builds a Salesforce sandbox assertion', async () => {
    const settings = { ...salesforceSettings, tokenUrl: 'https://test.salesforce.com/services/oauth2/token' };
    const { claims } = await decode({ settings, key: rsaKey, now });

    assert.deepEqual(claims, {
      iss: '3MVG9-consumer-key',
      sub: 'integration@example.com',
      aud: 'https://test.salesforce.com',
      exp: NOW_SECONDS + 180,
    });
  });

  it('keeps the production audience for My Domain', async () => {
    const settings = { ...salesforceSettings, tokenUrl: 'https://acme.my.salesforce.com/services/oauth2/token', keyId: 'connected-app-2026' };
    const { header, claims } = await decode({ settings, key: rsaKey, now });

    assert.deepEqual(header, { alg: 'RS256', typ: 'JWT', kid: 'connected-app-2026' });
    assert.deepEqual(claims, {
      iss: '3MVG9-consumer-key',
      sub: 'integration@example.com',
      aud: 'https://login.salesforce.com',
      exp: NOW_SECONDS + 180,
    });
  });

  it('prefers an explicit audience', async () => {
    const settings = {
      ...salesforceSettings,
      tokenUrl: 'https://acme.my.site.com/partners/services/oauth2/token',
      audience: 'https://acme.my.site.com/partners',
    };
    const { claims } = await decode({ settings, key: rsaKey, provider: 'salesforce', now });

    assert.deepEqual(claims, {
      iss: '3MVG9-consumer-key',
      sub: 'integration@example.com',
      aud: 'https://acme.my.site.com/partners',
      exp: NOW_SECONDS + 180,
    });
  });

  it('builds a Google assertion with scope', async () => {
    const settings: JwtAssertionSettings = {
      issuer: 'robot@project.iam.gserviceaccount.com',
      subject: 'admin@example.com',
      tokenUrl: 'https://oauth2.googleapis.com/token',
      scope: 'https://www.googleapis.com/auth/drive.readonly',
      keyId: 'b1c2d3',
    };
    const { header, claims } = await decode({ settings, key: rsaKey, now });

    assert.deepEqual(header, { alg: 'RS256', typ: 'JWT', kid: 'b1c2d3' });
    assert.deepEqual(withoutJti(claims), {
      iss: 'robot@project.iam.gserviceaccount.com',
      sub: 'admin@example.com',
      aud: 'https://oauth2.googleapis.com/token',
      scope: 'https://www.googleapis.com/auth/drive.readonly',
      iat: NOW_SECONDS,
      exp: NOW_SECONDS + 3600,
    });
  });

  it('builds a generic assertion', async () => {
    const settings: JwtAssertionSettings = {
      issuer: 'client-42',
      tokenUrl: 'https://auth.example.com/oauth/token',
      scope: 'read write',
    };
    const { header, claims } = await decode({ settings, key: rsaKey, now });

    assert.deepEqual(header, { alg: 'RS256', typ: 'JWT' });
    assert.deepEqual(withoutJti(claims), {
      iss: 'client-42',
      aud: 'https://auth.example.com/oauth/token',
      scope: 'read write',
      iat: NOW_SECONDS,
      exp: NOW_SECONDS + 300,
    });
  });

  it('draws a new jti for each assertion', async () => {
    const settings: JwtAssertionSettings = { issuer: 'client-42', tokenUrl: 'https://auth.example.com/oauth/token' };
    const first = await decode({ settings, key: rsaKey, now });
    const second = await decode({ settings, key: rsaKey, now });

    assert.notEqual(first.claims.jti, second.claims.jti);
  });

  it('produces a signature the public key verifies', async () => {
    const jwt = await buildAssertion({ settings: salesforceSettings, key: rsaKey, now });
    const { protectedHeader } = await compactVerify(jwt, rsa.publicKey);

    assert.equal(protectedHeader.alg, 'RS256');
  });

  it('signs ES256 with an EC key', async () => {
    const settings: JwtAssertionSettings = { issuer: 'client-42', tokenUrl: 'https://auth.example.com/oauth/token', algorithm: 'ES256' };
    const jwt = await buildAssertion({ settings, key: ecKey, now });
    const { protectedHeader } = await compactVerify(jwt, ec.publicKey);

    assert.deepEqual(protectedHeader, { alg: 'ES256', typ: 'JWT' });
  });

  it('rejects RS256 with an EC key', async () => {
    const settings: JwtAssertionSettings = { issuer: 'client-42', tokenUrl: 'https://auth.example.com/oauth/token' };

    await assert.rejects(buildAssertion({ settings, key: ecKey, now }), (error: unknown) => {
      assert.ok(error instanceof JwtSettingsError);
      assert.equal(
        error.message,
        'Cannot build the JWT assertion: The private key is an EC P-256 key, but algorithm RS256 needs an RSA key. Paste an RSA private key of 2048 bits or more, or set algorithm to ES256 to match this key.',
      );
      return true;
    });
  });

  it('honours a shorter lifetime', async () => {
    const { claims } = await decode({ settings: salesforceSettings, key: rsaKey, now, lifetimeSeconds: 60 });

    assert.equal(claims.exp, NOW_SECONDS + 60);
  });

  it('rejects a lifetime above the provider maximum', async () => {
    await assert.rejects(buildAssertion({ settings: salesforceSettings, key: rsaKey, now, lifetimeSeconds: 181 }), {
      name: 'RangeError',
      message: 'The assertion lifetime of 181 seconds exceeds the 180-second maximum for salesforce.',
    });
  });

  it('rejects a lifetime that is not positive', async () => {
    await assert.rejects(buildAssertion({ settings: salesforceSettings, key: rsaKey, now, lifetimeSeconds: 0 }), {
      name: 'RangeError',
      message: 'The assertion lifetime must be a positive whole number of seconds, not 0.',
    });
  });
});

describe('validateJwtSettings', () => {
  it('accepts valid Salesforce settings', () => {
    assert.deepEqual(validateJwtSettings(salesforceSettings, rsaKey), []);
  });

  it('rejects an EC key for Salesforce', () => {
    assert.deepEqual(validateJwtSettings({ ...salesforceSettings, algorithm: 'ES256' }, ecKey), [
      "Salesforce's JWT bearer flow accepts only RS256, but the algorithm is ES256. Set the algorithm to RS256 or leave it unset.",
      "Salesforce's JWT bearer flow needs an RSA private key, but this is an EC P-256 key. Generate an RSA key of 2048 bits or more, upload its certificate to the Connected App and paste the key.",
    ]);
  });

  it('requires a Salesforce subject', () => {
    const { subject: _subject, ...settings } = salesforceSettings;

    assert.deepEqual(validateJwtSettings(settings, rsaKey), [
      "Salesforce's JWT bearer flow needs a subject (sub). Set it to the username of the integration user.",
    ]);
  });

  it('rejects a token URL as Salesforce audience', () => {
    const settings = { ...salesforceSettings, audience: 'https://login.salesforce.com/services/oauth2/token' };

    assert.deepEqual(validateJwtSettings(settings, rsaKey), [
      'Salesforce rejects a token URL as the audience. Set the audience to https://login.salesforce.com, https://test.salesforce.com or the Experience Cloud site URL, or leave it unset.',
    ]);
  });

  it('requires a Google scope and RS256', () => {
    const settings: JwtAssertionSettings = { issuer: 'robot@project.iam.gserviceaccount.com', tokenUrl: 'https://oauth2.googleapis.com/token', algorithm: 'PS256' };

    assert.deepEqual(validateJwtSettings(settings, rsaKey), [
      "Google's service account flow accepts only RS256, but the algorithm is PS256. Set the algorithm to RS256 or leave it unset.",
      'Google needs a scope in the assertion. Set the scope to the space-separated OAuth scopes the calls need, such as https://www.googleapis.com/auth/cloud-platform.',
    ]);
  });

  it('rejects a Google client ID as issuer', () => {
    const settings: JwtAssertionSettings = { issuer: '112233445566778899', tokenUrl: 'https://oauth2.googleapis.com/token', scope: 'openid' };

    assert.deepEqual(validateJwtSettings(settings, rsaKey), [
      "Google expects the issuer (iss) to be the service account's email address (client_email in its key file), not its client ID.",
    ]);
  });

  it('rejects a P-256 key for ES384', () => {
    const settings: JwtAssertionSettings = { issuer: 'client-42', tokenUrl: 'https://auth.example.com/oauth/token', algorithm: 'ES384' };

    assert.deepEqual(validateJwtSettings(settings, ecKey), [
      'The private key is an EC P-256 key, but algorithm ES384 needs an EC P-384 key. Paste an EC P-384 private key, or set algorithm to ES256 to match this key.',
    ]);
  });

  it('rejects an unsupported algorithm', () => {
    const settings: JwtAssertionSettings = { issuer: 'client-42', tokenUrl: 'https://auth.example.com/oauth/token', algorithm: 'HS256' };

    assert.deepEqual(validateJwtSettings(settings, rsaKey), [
      'The algorithm "HS256" is not supported. Use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512.',
    ]);
  });

  it('rejects an empty issuer', () => {
    const settings: JwtAssertionSettings = { issuer: ' ', tokenUrl: 'https://auth.example.com/oauth/token' };

    assert.deepEqual(validateJwtSettings(settings, rsaKey), [
      'The issuer (iss) is empty. Set it to the client identifier the provider issued, such as a Salesforce Connected App consumer key or a Google service account email.',
    ]);
  });

  it('follows an explicit provider over the token URL', () => {
    const settings: JwtAssertionSettings = { issuer: 'client-42', tokenUrl: 'https://auth.example.com/oauth/token' };

    assert.deepEqual(validateJwtSettings(settings, rsaKey, 'google'), [
      'Google needs a scope in the assertion. Set the scope to the space-separated OAuth scopes the calls need, such as https://www.googleapis.com/auth/cloud-platform.',
      "Google expects the issuer (iss) to be the service account's email address (client_email in its key file), not its client ID.",
    ]);
  });
});
