import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { type ConfigIssue, validateBundlesDocument } from '../../src/config/bundlesFile.ts';

const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString();
const encryptedKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pass' })
  .toString();

const VALID_CREDENTIALS: Record<string, Record<string, unknown>> = {
  bearer_token: { token: 't' },
  api_key: { headerName: 'X-Api-Key', value: 'v' },
  basic_auth: { username: 'u', password: 'p' },
  oauth2_jwt_bearer: { issuer: 'i', privateKey: rsaKey, tokenUrl: 'https://login.example.com/token' },
  oauth2_client_credentials: { clientId: 'c', clientSecret: 's', tokenUrl: 'https://login.example.com/token' },
  oauth2_refresh_token: { clientId: 'c', clientSecret: 's', refreshToken: 'r', tokenUrl: 'https://login.example.com/token' },
};

function credential(type: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'cred', type, ...VALID_CREDENTIALS[type], allowedWebsites: ['api.example.com'], ...fields };
}

function documentWith(...credentials: Record<string, unknown>[]): Record<string, unknown> {
  return { bundles: [{ name: 'team', channels: ['C1'], credentials }] };
}

function issuesOf(doc: unknown): ConfigIssue[] {
  const result = validateBundlesDocument(doc);
  if (result.ok) {
    assert.fail('expected validation to fail');
  }
  return result.issues;
}

/** Validates one credential with `fields` overridden and returns its issues, with paths relative to the credential. */
function credentialIssues(type: string, fields: Record<string, unknown>): ConfigIssue[] {
  const prefix = 'bundles[0].credentials[0]';
  return issuesOf(documentWith(credential(type, fields))).map((issue) => {
    assert.ok(issue.path.startsWith(prefix), `path ${issue.path} is outside the credential`);
    return { path: issue.path.slice(prefix.length).replace(/^\./, ''), message: issue.message };
  });
}

describe('validateBundlesDocument', () => {
  test('lists every error at once', () => {
    const doc = {
      egress: { default: 'block', allow: ['https://x.com'] },
      bundles: [
        {
          name: 'sales',
          channels: ['C0SALES'],
          credentials: [
            credential('bearer_token', { name: 'salesforce' }),
            credential('bearer_token', { name: 'github', allowedWebsites: ['https://x.com'], access: 'write' }),
          ],
        },
        { name: 'Ops', channels: ['*'], credentials: [credential('api_key', { name: 'salesforce' })] },
      ],
    };
    assert.deepEqual(issuesOf(doc), [
      { path: 'egress.default', message: '"block" is not an egress default; use allow or deny' },
      { path: 'egress.allow[0]', message: '"https://x.com" is a URL; give the host name (x.com)' },
      { path: 'bundles[0].credentials[1].allowedWebsites[0]', message: '"https://x.com" is a URL; give the host name (x.com)' },
      { path: 'bundles[0].credentials[1].access', message: '"write" is not an access level; use read or read_write' },
      {
        path: 'bundles[1].name',
        message: '"Ops" is not a valid bundle name; use 1 to 64 lowercase letters, digits, "-" or "_", starting with a letter or digit',
      },
      {
        path: 'bundles[1].credentials[0].name',
        message:
          'duplicate credential name "salesforce"; bundles[0].credentials[0] already uses it, and audit --credential selects credentials by name across all bundles',
      },
    ]);
  });

  test('document must be an object', () => {
    assert.deepEqual(issuesOf(null), [{ path: '', message: 'the document is empty; it needs at least "bundles:" with a list of bundles' }]);
    assert.deepEqual(issuesOf([1]), [{ path: '', message: 'expected an object, got a list' }]);
  });

  test('bundles is required', () => {
    assert.deepEqual(issuesOf({}), [{ path: 'bundles', message: 'missing required field "bundles"' }]);
  });

  test('unknown top-level field with suggestion', () => {
    assert.deepEqual(issuesOf({ bundles: [], egres: {} }), [
      { path: 'egres', message: 'unknown field "egres"; did you mean "egress"?' },
    ]);
  });

  test('unknown field without a close match lists known fields', () => {
    assert.deepEqual(issuesOf({ bundles: [], owner: 'me' }), [
      { path: 'owner', message: 'unknown field "owner"; known fields: version, egress, bundles' },
    ]);
  });

  test('version must be 1', () => {
    assert.deepEqual(issuesOf({ version: 2, bundles: [] }), [
      { path: 'version', message: 'unsupported version 2; this agent-proxy reads version 1' },
    ]);
  });

  test('egress allowPrivateNetworks must be CIDRs', () => {
    assert.deepEqual(issuesOf({ egress: { allowPrivateNetworks: ['10.0.0.1/8'] }, bundles: [] }), [
      { path: 'egress.allowPrivateNetworks[0]', message: '"10.0.0.1/8" is not a valid CIDR: it has bits set after the prefix; write "10.0.0.0/8"' },
    ]);
  });

  test('duplicate bundle names', () => {
    const doc = { bundles: [{ name: 'a', channels: [] }, { name: 'a', channels: [] }] };
    assert.deepEqual(issuesOf(doc), [{ path: 'bundles[1].name', message: 'duplicate bundle name "a"; bundles[0] already uses it' }]);
  });

  test('bundle name longer than 64 characters', () => {
    const name = 'a'.repeat(65);
    assert.deepEqual(issuesOf({ bundles: [{ name, channels: [] }] }), [
      {
        path: 'bundles[0].name',
        message: `"${name}" is not a valid bundle name; use 1 to 64 lowercase letters, digits, "-" or "_", starting with a letter or digit`,
      },
    ]);
  });

  test('bundle fields are checked', () => {
    const doc = { bundles: [{ name: 'a', description: 3, channel: ['C1'] }] };
    assert.deepEqual(issuesOf(doc), [
      { path: 'bundles[0].description', message: 'expected a string, got a number (3) (quote the value to make it text)' },
      { path: 'bundles[0].channels', message: 'missing required field "channels"' },
      { path: 'bundles[0].channel', message: 'unknown field "channel"; did you mean "channels"?' },
    ]);
  });

  test('"*" must stand alone in channels', () => {
    const doc = { bundles: [{ name: 'a', channels: ['C1', '*'] }] };
    assert.deepEqual(issuesOf(doc), [{ path: 'bundles[0].channels[1]', message: '"*" covers every channel, so give it alone: channels: ["*"]' }]);
  });

  test('channel ids are non-empty strings', () => {
    const doc = { bundles: [{ name: 'a', channels: ['', 'C 1', 7] }] };
    assert.deepEqual(issuesOf(doc), [
      { path: 'bundles[0].channels[2]', message: 'expected a string, got a number (7) (quote the value to make it text)' },
      { path: 'bundles[0].channels[0]', message: '"" is not a channel id; give an id such as "C0SALES", without spaces' },
      { path: 'bundles[0].channels[1]', message: '"C 1" is not a channel id; give an id such as "C0SALES", without spaces' },
    ]);
  });
});

describe('credential fields', () => {
  test('unknown field with suggestion', () => {
    const { allowedWebsites, ...rest } = credential('bearer_token');
    assert.deepEqual(issuesOf(documentWith({ ...rest, allowedWebsite: allowedWebsites })), [
      { path: 'bundles[0].credentials[0].allowedWebsites', message: 'missing required field "allowedWebsites"' },
      { path: 'bundles[0].credentials[0].allowedWebsite', message: 'unknown field "allowedWebsite"; did you mean "allowedWebsites"?' },
    ]);
  });

  test('unknown credential type lists valid types', () => {
    assert.deepEqual(credentialIssues('oauth2_jwt', {}), [
      {
        path: 'type',
        message:
          'unknown credential type "oauth2_jwt"; did you mean "oauth2_jwt_bearer"?; valid types: bearer_token, api_key, basic_auth, oauth2_jwt_bearer, oauth2_client_credentials, oauth2_refresh_token',
      },
    ]);
  });

  test('missing credential type lists valid types', () => {
    assert.deepEqual(credentialIssues('bearer_token', { type: undefined }), [
      {
        path: 'type',
        message:
          'missing required field "type"; valid types: bearer_token, api_key, basic_auth, oauth2_jwt_bearer, oauth2_client_credentials, oauth2_refresh_token',
      },
    ]);
  });

  const requiredFields: Record<string, string[]> = {
    bearer_token: ['token'],
    api_key: ['value'],
    basic_auth: ['username', 'password'],
    oauth2_jwt_bearer: ['issuer', 'privateKey', 'tokenUrl'],
    oauth2_client_credentials: ['clientId', 'clientSecret', 'tokenUrl'],
    oauth2_refresh_token: ['clientId', 'clientSecret', 'refreshToken', 'tokenUrl'],
  };
  for (const [type, fields] of Object.entries(requiredFields)) {
    test(`${type} requires ${fields.join(', ')}`, () => {
      const withoutFields = Object.fromEntries(fields.map((field) => [field, undefined]));
      assert.deepEqual(
        credentialIssues(type, withoutFields),
        fields.map((field) => ({ path: field, message: `missing required field "${field}"` })),
      );
    });

    test(`${type} with valid fields passes`, () => {
      assert.equal(validateBundlesDocument(documentWith(credential(type))).ok, true);
    });
  }

  test('name and allowedWebsites are required', () => {
    assert.deepEqual(credentialIssues('bearer_token', { name: undefined, allowedWebsites: undefined }), [
      { path: 'name', message: 'missing required field "name"' },
      { path: 'allowedWebsites', message: 'missing required field "allowedWebsites"' },
    ]);
  });

  test('allowedWebsites must not be empty', () => {
    assert.deepEqual(credentialIssues('bearer_token', { allowedWebsites: [] }), [
      { path: 'allowedWebsites', message: 'empty list, so the credential could never be used; give the host names it may be sent to' },
    ]);
  });

  test('unresolved secret reference', () => {
    assert.deepEqual(credentialIssues('bearer_token', { token: { file: './token' } }), [
      {
        path: 'token',
        message:
          'unresolved secret reference; {file: PATH} and {env: NAME} are read by the agent-proxy CLI (apply -f, serve --config), so give the value inline here',
      },
    ]);
  });

  test('reference in a non-secret field', () => {
    assert.deepEqual(credentialIssues('basic_auth', { username: { env: 'USER' } }), [
      { path: 'username', message: 'only secret fields may be given as {file: PATH} or {env: NAME}; give this value inline' },
    ]);
  });

  test('empty secret', () => {
    assert.deepEqual(credentialIssues('basic_auth', { password: '' }), [
      { path: 'password', message: 'empty secret; give the value inline, as {file: PATH} or as {env: NAME}' },
    ]);
  });

  test('secret of the wrong kind is not echoed', () => {
    assert.deepEqual(credentialIssues('bearer_token', { token: 12345 }), [
      { path: 'token', message: 'expected the secret as a string, {file: PATH} or {env: NAME}; got a number' },
    ]);
  });

  test('header secret with a line break', () => {
    assert.deepEqual(credentialIssues('bearer_token', { token: 'a\nb' }), [
      {
        path: 'token',
        message:
          'the secret contains a line break or NUL, which cannot be sent in a header; remove it (a file is read with its trailing newline trimmed)',
      },
    ]);
  });

  test('access defaults to read_write', () => {
    const result = validateBundlesDocument(documentWith(credential('bearer_token')));
    assert.ok(result.ok);
    assert.equal(result.config.bundles[0]?.credentials[0]?.access, 'read_write');
  });
});

describe('rules', () => {
  test('methods must be upper-case tokens', () => {
    assert.deepEqual(credentialIssues('bearer_token', { rules: [{ methods: ['get', 'GE T'] }] }), [
      { path: 'rules[0].methods[0]', message: '"get" is not upper case; HTTP methods are case-sensitive, so write "GET"' },
      { path: 'rules[0].methods[1]', message: '"GE T" is not an HTTP method; use a name such as GET or POST' },
    ]);
  });

  test('paths must start with a slash', () => {
    assert.deepEqual(credentialIssues('bearer_token', { rules: [{ paths: ['services/*'] }] }), [
      { path: 'rules[0].paths[0]', message: 'path "services/*" does not start with "/"; write it as "/services/*"' },
    ]);
  });

  test('path wildcards are whole segments', () => {
    assert.deepEqual(credentialIssues('bearer_token', { rules: [{ paths: ['/v1/**/x', '/v1/user*', '/q?a=1'] }] }), [
      {
        path: 'rules[0].paths[0]',
        message: 'path "/v1/**/x" has "**" before its last segment; "**" matches the rest of the path, so it must come last',
      },
      {
        path: 'rules[0].paths[1]',
        message: 'path "/v1/user*" has "*" inside the segment "user*"; "*" matches a whole segment (/a/*/b), so use it alone between slashes',
      },
      {
        path: 'rules[0].paths[2]',
        message: 'path "/q?a=1" contains "?", "#" or whitespace; give the path alone, without query or fragment',
      },
    ]);
  });

  test('empty rule and empty lists', () => {
    assert.deepEqual(credentialIssues('bearer_token', { rules: [{}, { methods: [], paths: [] }] }), [
      { path: 'rules[0]', message: 'empty rule; give methods, paths or both' },
      { path: 'rules[1].methods', message: 'empty list; give methods such as [GET] or remove the field' },
      { path: 'rules[1].paths', message: 'empty list; give paths such as ["/v1/*"] or remove the field' },
    ]);
  });

  test('unknown rule field', () => {
    assert.deepEqual(credentialIssues('bearer_token', { rules: [{ method: ['GET'] }] }), [
      { path: 'rules[0].method', message: 'unknown field "method"; did you mean "methods"?' },
      { path: 'rules[0]', message: 'empty rule; give methods, paths or both' },
    ]);
  });

  test('write method with read access', () => {
    assert.deepEqual(credentialIssues('bearer_token', { access: 'read', rules: [{ methods: ['GET', 'POST'] }] }), [
      {
        path: 'rules[0].methods[1]',
        message: 'POST is never allowed because access is read (GET, HEAD, OPTIONS only); set access: read_write or remove POST',
      },
    ]);
  });
});

describe('extraHeaders', () => {
  for (const name of ['authorization', 'Proxy-Authorization', 'Host', 'cookie', 'X-Agent-Proxy-Session', 'Transfer-Encoding']) {
    test(`rejects ${name}`, () => {
      const issues = credentialIssues('bearer_token', { extraHeaders: { [name]: 'x' } });
      assert.equal(issues.length, 1);
      assert.match(issues[0]?.message ?? '', new RegExp(`^header "${name}" cannot be set here: `));
    });
  }

  test('reserved name message names the reason', () => {
    assert.deepEqual(credentialIssues('bearer_token', { extraHeaders: { 'x-agent-proxy-token': 'x' } }), [
      {
        path: 'extraHeaders["x-agent-proxy-token"]',
        message: 'header "x-agent-proxy-token" cannot be set here: the proxy owns Proxy-Authorization and X-Agent-Proxy-* headers and strips them',
      },
    ]);
  });

  test('invalid name and value', () => {
    assert.deepEqual(credentialIssues('bearer_token', { extraHeaders: { 'Bad Name': 'x', Version: 'a\r\nb: c', Notion: 1 } }), [
      { path: 'extraHeaders.Version', message: 'header value contains CR, LF or NUL, which would split or end the header; remove them' },
      { path: 'extraHeaders.Notion', message: 'expected a string, got a number (1) (quote the value to make it text)' },
      {
        path: 'extraHeaders["Bad Name"]',
        message: '"Bad Name" is not a valid header name; use letters, digits and !#$%&\'*+.^_`|~- only',
      },
    ]);
  });

  test('names differing only in case', () => {
    assert.deepEqual(credentialIssues('bearer_token', { extraHeaders: { 'Notion-Version': '1', 'notion-version': '2' } }), [
      {
        path: 'extraHeaders["notion-version"]',
        message: 'header "notion-version" is also given as "Notion-Version"; header names are case-insensitive, so keep one',
      },
    ]);
  });
});

describe('api_key', () => {
  test('needs headerName or queryParam', () => {
    assert.deepEqual(credentialIssues('api_key', { headerName: undefined }), [
      {
        path: '',
        message:
          'missing headerName or queryParam; give the header (headerName: X-Api-Key) or query parameter (queryParam: api_key) that carries the key',
      },
    ]);
  });

  test('rejects both headerName and queryParam', () => {
    assert.deepEqual(credentialIssues('api_key', { queryParam: 'key' }), [
      { path: '', message: 'both headerName and queryParam are set; an api_key goes in one place, so keep one' },
    ]);
  });

  test('query parameter alone passes', () => {
    const result = validateBundlesDocument(documentWith(credential('api_key', { headerName: undefined, queryParam: 'api_key' })));
    assert.ok(result.ok);
    assert.deepEqual(result.config.bundles[0]?.credentials[0]?.settings, { type: 'api_key', queryParam: 'api_key' });
  });

  test('header name must be a token and not reserved', () => {
    assert.deepEqual(credentialIssues('api_key', { headerName: 'X Key' }), [
      { path: 'headerName', message: '"X Key" is not a valid header name; use letters, digits and !#$%&\'*+.^_`|~- only' },
    ]);
    assert.deepEqual(credentialIssues('api_key', { headerName: 'Host' }), [
      { path: 'headerName', message: 'header "Host" cannot be set here: the proxy sets Host from the request target' },
    ]);
  });

  test('invalid query parameter', () => {
    assert.deepEqual(credentialIssues('api_key', { headerName: undefined, queryParam: 'a&b' }), [
      { path: 'queryParam', message: 'invalid query parameter name "a&b"; use letters, digits and . _ ~ - only' },
    ]);
  });
});

describe('basic_auth', () => {
  test('username without colon', () => {
    assert.deepEqual(credentialIssues('basic_auth', { username: 'a:b' }), [
      { path: 'username', message: 'the username contains ":", which Basic authentication cannot carry (RFC 7617); check the value' },
    ]);
  });
});

describe('tokenUrl', () => {
  test('rejects http for other hosts', () => {
    assert.deepEqual(credentialIssues('oauth2_client_credentials', { tokenUrl: 'http://login.example.com/token' }), [
      {
        path: 'tokenUrl',
        message:
          '"http://login.example.com/token" uses http; token requests carry secrets, so use https (http is accepted only for 127.0.0.1, ::1 and localhost)',
      },
    ]);
  });

  for (const url of ['http://127.0.0.1:9000/token', 'http://[::1]:9000/token', 'http://localhost/token']) {
    test(`accepts loopback ${url}`, () => {
      assert.equal(validateBundlesDocument(documentWith(credential('oauth2_refresh_token', { tokenUrl: url }))).ok, true);
    });
  }

  test('rejects text that is not a URL', () => {
    assert.deepEqual(credentialIssues('oauth2_refresh_token', { tokenUrl: 'login.example.com/token' }), [
      {
        path: 'tokenUrl',
        message: '"login.example.com/token" is not a URL; give the token endpoint, such as https://login.example.com/oauth2/token',
      },
    ]);
  });

  test('rejects other schemes and user info', () => {
    assert.deepEqual(credentialIssues('oauth2_refresh_token', { tokenUrl: 'ftp://x.example/token' }), [
      { path: 'tokenUrl', message: '"ftp://x.example/token" is not an https URL; give the token endpoint as https://…' },
    ]);
    assert.deepEqual(credentialIssues('oauth2_refresh_token', { tokenUrl: 'https://id:secret@x.example/token' }), [
      { path: 'tokenUrl', message: 'the token URL contains a user name or password; remove them and use the clientId and secret fields' },
    ]);
  });
});

describe('oauth2_jwt_bearer', () => {
  test('accepts an EC key with ES256', () => {
    const result = validateBundlesDocument(documentWith(credential('oauth2_jwt_bearer', { privateKey: ecKey, algorithm: 'ES256' })));
    assert.equal(result.ok, true);
  });

  test('rejects a key that does not match the algorithm', () => {
    assert.deepEqual(credentialIssues('oauth2_jwt_bearer', { privateKey: ecKey }), [
      {
        path: 'privateKey',
        message:
          'The private key is an EC P-256 key, but algorithm RS256 needs an RSA key. Paste an RSA private key of 2048 bits or more, or set algorithm to ES256 to match this key.',
      },
    ]);
  });

  test('rejects text that is not a PEM key', () => {
    assert.deepEqual(credentialIssues('oauth2_jwt_bearer', { privateKey: 'not a key' }), [
      {
        path: 'privateKey',
        message:
          'The private key is not in PEM format. Paste the whole key, from its -----BEGIN PRIVATE KEY----- line (or BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY) through its END line.',
      },
    ]);
  });

  test('rejects an encrypted key', () => {
    assert.deepEqual(credentialIssues('oauth2_jwt_bearer', { privateKey: encryptedKey }), [
      { path: 'privateKey', message: 'The private key is encrypted (BEGIN ENCRYPTED PRIVATE KEY), and the proxy cannot use a key that needs a passphrase. Decrypt it first (openssl pkey -in key.pem -out key-decrypted.pem) and paste the decrypted key.' },
    ]);
  });

  test('rejects an unknown algorithm and empty optional fields', () => {
    assert.deepEqual(credentialIssues('oauth2_jwt_bearer', { algorithm: 'HS256', subject: '' }), [
      { path: 'subject', message: 'empty string; give the subject (sub), such as the integration user name, or remove the field' },
      {
        path: 'algorithm',
        message: '"HS256" is not a supported algorithm; use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512',
      },
    ]);
  });
});

describe('oauth2_client_credentials', () => {
  test('client auth method is basic or body', () => {
    assert.deepEqual(credentialIssues('oauth2_client_credentials', { clientAuthMethod: 'post' }), [
      { path: 'clientAuthMethod', message: '"post" is not a client authentication method; use basic or body' },
    ]);
  });
});
