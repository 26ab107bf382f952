import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { resolveSecretRefs } from '../../src/config/secretRefs.ts';

const directory = mkdtempSync(join(tmpdir(), 'secret-refs-test-'));
writeFileSync(join(directory, 'token'), 'file-token\r\n\n');
writeFileSync(join(directory, 'empty'), '\n');
writeFileSync(join(directory, 'multi-line'), 'line one\nline two\n');
mkdirSync(join(directory, 'folder'));
after(() => rmSync(directory, { recursive: true, force: true }));

const PATH = 'bundles[0].credentials[0]';

function documentWith(credential: Record<string, unknown>): Record<string, unknown> {
  return { bundles: [{ name: 'team', channels: ['C1'], credentials: [credential] }] };
}

function resolveCredential(credential: Record<string, unknown>, env: Record<string, string | undefined> = {}) {
  const result = resolveSecretRefs(documentWith(credential), { baseDir: directory, env });
  const resolved = (result.doc as { bundles: Array<{ credentials: unknown[] }> }).bundles[0]?.credentials[0];
  return { credential: resolved, issues: result.issues };
}

describe('resolveSecretRefs', () => {
  test('inline value stays as it is', () => {
    const result = resolveCredential({ type: 'bearer_token', token: 'inline' });
    assert.deepEqual(result, { credential: { type: 'bearer_token', token: 'inline' }, issues: [] });
  });

  test('file reference is read relative to baseDir without trailing newlines', () => {
    const result = resolveCredential({ type: 'bearer_token', token: { file: './token' } });
    assert.deepEqual(result, { credential: { type: 'bearer_token', token: 'file-token' }, issues: [] });
  });

  test('file reference keeps inner newlines', () => {
    const result = resolveCredential({ type: 'oauth2_jwt_bearer', privateKey: { file: 'multi-line' } });
    assert.deepEqual(result.credential, { type: 'oauth2_jwt_bearer', privateKey: 'line one\nline two' });
  });

  test('absolute file path is used as it is', () => {
    const result = resolveCredential({ type: 'bearer_token', token: { file: join(directory, 'token') } });
    assert.deepEqual(result.credential, { type: 'bearer_token', token: 'file-token' });
  });

  test('env reference reads the variable', () => {
    const result = resolveCredential({ type: 'oauth2_refresh_token', clientSecret: { env: 'CS' }, refreshToken: { env: 'RT' } }, { CS: 'secret', RT: 'refresh' });
    assert.deepEqual(result, {
      credential: { type: 'oauth2_refresh_token', clientSecret: 'secret', refreshToken: 'refresh' },
      issues: [],
    });
  });

  test('does not change the input document', () => {
    const doc = documentWith({ type: 'bearer_token', token: { env: 'T' } });
    const before = structuredClone(doc);
    resolveSecretRefs(doc, { baseDir: directory, env: { T: 'value' } });
    assert.deepEqual(doc, before);
  });

  test('missing file names the path', () => {
    const result = resolveCredential({ type: 'bearer_token', token: { file: 'absent' } });
    assert.deepEqual(result.issues, [
      {
        path: `${PATH}.token`,
        message: `cannot read secret file "${join(directory, 'absent')}": not found; check the path (relative paths start from the bundles file's directory)`,
      },
    ]);
    assert.deepEqual(result.credential, { type: 'bearer_token', token: { file: 'absent' } });
  });

  test('unreadable file names the path', { skip: process.getuid?.() === 0 ? 'root reads files whatever their mode' : false }, () => {
    const path = join(directory, 'locked');
    writeFileSync(path, 'x');
    chmodSync(path, 0o000);
    const result = resolveCredential({ type: 'bearer_token', token: { file: 'locked' } });
    assert.deepEqual(result.issues, [
      {
        path: `${PATH}.token`,
        message: `cannot read secret file "${path}": permission denied; check the path (relative paths start from the bundles file's directory)`,
      },
    ]);
  });

  test('directory is not a secret file', () => {
    const result = resolveCredential({ type: 'bearer_token', token: { file: 'folder' } });
    assert.deepEqual(result.issues, [
      {
        path: `${PATH}.token`,
        message: `secret file "${join(directory, 'folder')}" is not a regular file; give the path of the file that holds the secret`,
      },
    ]);
  });

  test('empty file is an issue', () => {
    const result = resolveCredential({ type: 'bearer_token', token: { file: 'empty' } });
    assert.deepEqual(result.issues, [
      { path: `${PATH}.token`, message: `secret file "${join(directory, 'empty')}" is empty; write the secret into it` },
    ]);
  });

  test('unset variable is an issue', () => {
    const result = resolveCredential({ type: 'basic_auth', password: { env: 'JIRA_PASSWORD' } });
    assert.deepEqual(result.issues, [
      {
        path: `${PATH}.password`,
        message: 'environment variable JIRA_PASSWORD is not set; export it before running agent-proxy, or use {file: PATH}',
      },
    ]);
  });

  test('empty variable is an issue', () => {
    const result = resolveCredential({ type: 'basic_auth', password: { env: 'JIRA_PASSWORD' } }, { JIRA_PASSWORD: '' });
    assert.deepEqual(result.issues, [
      { path: `${PATH}.password`, message: 'environment variable JIRA_PASSWORD is empty; set it to the secret value' },
    ]);
  });

  test('reference in a non-secret field is an issue', () => {
    const result = resolveCredential({ type: 'basic_auth', username: { env: 'USER' }, password: 'p' }, { USER: 'me' });
    assert.deepEqual(result, {
      credential: { type: 'basic_auth', username: { env: 'USER' }, password: 'p' },
      issues: [
        {
          path: `${PATH}.username`,
          message: '"username" is not a secret field, so give its value inline; the secret fields of basic_auth are password',
        },
      ],
    });
  });

  test('malformed references are issues', () => {
    const cases: Array<[unknown, string]> = [
      [{}, 'a secret reference is {file: PATH} or {env: NAME}, with exactly one key; got an empty object'],
      [{ file: 'a', env: 'B' }, 'a secret reference is {file: PATH} or {env: NAME}, with exactly one key; got keys file, env'],
      [{ fil: 'a' }, 'unknown key "fil"; did you mean "file"?; a secret reference is {file: PATH} or {env: NAME}'],
      [{ path: 'a' }, 'unknown key "path"; a secret reference is {file: PATH} or {env: NAME}'],
      [{ file: '' }, 'file must be a non-empty string; a secret reference is {file: PATH} or {env: NAME}'],
      [{ env: 3 }, 'env must be a non-empty string; a secret reference is {file: PATH} or {env: NAME}'],
    ];
    for (const [reference, message] of cases) {
      const result = resolveCredential({ type: 'bearer_token', token: reference });
      assert.deepEqual(result.issues, [{ path: `${PATH}.token`, message }], JSON.stringify(reference));
    }
  });

  test('credential of unknown type is left for validation', () => {
    const result = resolveCredential({ type: 'oauth3', token: { env: 'T' } }, { T: 'x' });
    assert.deepEqual(result, { credential: { type: 'oauth3', token: { env: 'T' } }, issues: [] });
  });

  test('document that is not a bundles file is copied as it is', () => {
    assert.deepEqual(resolveSecretRefs(null, { baseDir: directory, env: {} }), { doc: null, issues: [] });
    assert.deepEqual(resolveSecretRefs({ bundles: 'x' }, { baseDir: directory, env: {} }), { doc: { bundles: 'x' }, issues: [] });
  });
});
