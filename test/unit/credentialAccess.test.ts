import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Credential, CredentialRule } from '../../src/domain/types.ts';
import { checkCredentialAccess, pathMatches } from '../../src/policy/credentialAccess.ts';

function credential(access: Credential['access'], rules: CredentialRule[] = []): Credential {
  return {
    id: 'cred_1',
    bundleId: 'bun_1',
    name: 'salesforce',
    settings: { type: 'bearer_token' },
    secrets: { token: 't' },
    allowedWebsites: ['x.test'],
    access,
    rules,
    extraHeaders: {},
  };
}

describe('pathMatches', () => {
  const cases: Array<[string, string, boolean]> = [
    ['/services/data/*/query', '/services/data/v60.0/query', true],
    ['/services/data/*/query', '/services/data/v60.0/sobjects/query', false],
    ['/services/data/*/query', '/services/data//query', false],
    ['/services/data/*/query', '/services/data/v60.0/query/', false],
    ['/repos/**', '/repos', true],
    ['/repos/**', '/repos/a/b/c', true],
    ['/repos/**', '/reposx', false],
    ['/exact', '/exact', true],
    ['/exact', '/Exact', false],
  ];
  for (const [pattern, path, expected] of cases) {
    test(`${pattern} ${expected ? 'matches' : 'does not match'} ${path}`, () => {
      assert.equal(pathMatches(pattern, path), expected);
    });
  }
});

describe('checkCredentialAccess', () => {
  test('read access allows GET, HEAD and OPTIONS', () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      assert.equal(checkCredentialAccess(credential('read'), method, '/x'), null);
    }
  });

  test('read access refuses POST with the credential named', () => {
    const refusal = checkCredentialAccess(credential('read'), 'POST', '/x');

    assert.equal(refusal?.code, 'method_not_allowed_by_credential');
    assert.equal(refusal?.status, 403);
    assert.match(refusal?.detail ?? '', /Credential "salesforce" is read-only/);
  });

  test('rules allow a listed method and path only', () => {
    const narrowed = credential('read_write', [{ methods: ['GET'], paths: ['/services/data/*/query'] }, { methods: ['POST'], paths: ['/search'] }]);

    assert.equal(checkCredentialAccess(narrowed, 'GET', '/services/data/v60.0/query'), null);
    assert.equal(checkCredentialAccess(narrowed, 'POST', '/search'), null);
    assert.equal(checkCredentialAccess(narrowed, 'POST', '/services/data/v60.0/query')?.code, 'method_not_allowed_by_credential');
    assert.equal(checkCredentialAccess(narrowed, 'GET', '/services/data/v60.0/sobjects')?.code, 'method_not_allowed_by_credential');
  });

  test('a rule without paths allows every path for its methods', () => {
    const narrowed = credential('read_write', [{ methods: ['DELETE'] }]);

    assert.equal(checkCredentialAccess(narrowed, 'DELETE', '/anything'), null);
    assert.equal(checkCredentialAccess(narrowed, 'PUT', '/anything')?.code, 'method_not_allowed_by_credential');
  });
});
