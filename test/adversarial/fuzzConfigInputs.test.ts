// Property-based tests (fast-check) for the inputs an admin pastes: private keys and the
// bundles file. Whatever is pasted, parsing either accepts it or rejects it with a
// message; it never throws anything else and never echoes key material back.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { BundlesFileError, parseBundlesText, validateBundlesDocument } from '../../src/config/bundlesFile.ts';
import { parsePrivateKey, PrivateKeyError } from '../../src/credentials/privateKey.ts';

const RUNS = { numRuns: 300 };
const RSA_PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const PEM_BODY_LINES = RSA_PEM.split('\n').filter((line) => line !== '' && !line.startsWith('-----'));

function expectKeyParsedOrRejected(text: string): void {
  try {
    parsePrivateKey(text);
  } catch (error) {
    assert.ok(error instanceof PrivateKeyError, `unexpected ${String(error)}`);
    for (const line of PEM_BODY_LINES) {
      assert.ok(!error.message.includes(line), 'a rejection message repeats key material');
    }
  }
}

describe('private key input', () => {
  test('arbitrary text is parsed or rejected', () => {
    fc.assert(fc.property(fc.string({ maxLength: 400 }), expectKeyParsedOrRejected), RUNS);
  });

  test('a damaged real key is parsed or rejected', () => {
    fc.assert(
      fc.property(fc.nat(RSA_PEM.length - 1), fc.nat(RSA_PEM.length), fc.string({ maxLength: 20 }), (start, length, insert) => {
        expectKeyParsedOrRejected(`${RSA_PEM.slice(0, start)}${insert}${RSA_PEM.slice(start + length)}`);
      }),
      RUNS,
    );
  });

  test('white space and line ends around a key do not change it', () => {
    const reference = parsePrivateKey(RSA_PEM).fingerprint;
    fc.assert(
      fc.property(fc.constantFrom('\n', '\r\n', '\\n'), fc.stringMatching(/^[ \t\n]{0,5}$/), fc.stringMatching(/^[ \t\n]{0,5}$/), (lineEnd, before, after) => {
        const text = `${before}${RSA_PEM.trim().split('\n').join(lineEnd)}${after}`;
        assert.equal(parsePrivateKey(text).fingerprint, reference);
      }),
      { numRuns: 60 },
    );
  });
});

// Documents shaped like bundles files, with hostile values where names, hosts and secrets go.
const hostileText = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('*', '*.com', 'https://x.test/', '127.0.0.1', 'a..b', '', ' ', '\u0000', '0x7f.1'));
const credentialDocument = fc.record(
  {
    name: hostileText,
    type: fc.oneof(fc.constantFrom('bearer_token', 'api_key', 'basic_auth', 'oauth2_jwt_bearer', 'oauth2_client_credentials', 'oauth2_refresh_token'), hostileText),
    token: hostileText,
    allowedWebsites: fc.array(hostileText, { maxLength: 3 }),
    access: fc.oneof(fc.constantFrom('read', 'read_write'), hostileText),
  },
  { requiredKeys: [] },
);
const bundlesDocument = fc.record(
  {
    egress: fc.record({ default: hostileText, allow: fc.array(hostileText, { maxLength: 3 }), allowPrivateNetworks: fc.array(hostileText, { maxLength: 2 }) }, { requiredKeys: [] }),
    bundles: fc.array(fc.record({ name: hostileText, channels: fc.array(hostileText, { maxLength: 2 }), credentials: fc.array(credentialDocument, { maxLength: 2 }) }, { requiredKeys: [] }), { maxLength: 2 }),
  },
  { requiredKeys: [] },
);

describe('bundles file input', () => {
  test('hostile documents are validated without throwing', () => {
    fc.assert(
      fc.property(fc.oneof(bundlesDocument, fc.anything()), (doc) => {
        const result = validateBundlesDocument(doc);
        if (!result.ok) {
          assert.ok(result.issues.length > 0);
          for (const issue of result.issues) {
            assert.equal(typeof issue.path, 'string');
            assert.ok(issue.message.length > 0);
          }
        }
      }),
      RUNS,
    );
  });

  test('arbitrary text is parsed or rejected with a position', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.constantFrom('bundles.yaml', 'bundles.json'), (text, fileName) => {
        try {
          parseBundlesText(text, fileName);
        } catch (error) {
          assert.ok(error instanceof BundlesFileError, `unexpected ${String(error)}`);
          assert.ok(error.issues.length > 0);
        }
      }),
      RUNS,
    );
  });

  test('a valid document stays valid after a round trip through JSON', () => {
    const doc = {
      egress: { default: 'deny', allow: ['pypi.org'] },
      bundles: [{ name: 'sales', channels: ['C0SALES'], credentials: [{ name: 'gh', type: 'bearer_token', token: 't0ken-value', allowedWebsites: ['api.github.com'] }] }],
    };
    fc.assert(
      fc.property(fc.constantFrom('bundles.json', 'bundles.yaml'), (fileName) => {
        const result = validateBundlesDocument(parseBundlesText(JSON.stringify(doc), fileName));
        assert.equal(result.ok, true);
      }),
      { numRuns: 4 },
    );
  });
});
