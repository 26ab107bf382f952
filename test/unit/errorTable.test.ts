import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { PROXY_ERROR_STATUS, PROXY_ERROR_TITLES, ProxyError, problemResponse } from '../../src/errors.ts';

test('error table in docs matches the code', () => {
  const docs = readFileSync(new URL('../../docs/proxy.md', import.meta.url), 'utf8');
  const table = docs.split('<!-- error-table:start -->')[1]!.split('<!-- error-table:end -->')[0]!;
  const documented = new Map<string, number>();
  for (const match of table.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)) {
    documented.set(match[1]!, Number(match[2]));
  }

  assert.deepEqual(Object.fromEntries(documented), { ...PROXY_ERROR_STATUS });
});

test('every error code has a title', () => {
  assert.deepEqual(Object.keys(PROXY_ERROR_TITLES).sort(), Object.keys(PROXY_ERROR_STATUS).sort());
});

test('problem response carries code, header and body', () => {
  const problem = problemResponse(new ProxyError('egress_denied', 'Not allowed.', { host: 'a.test' }));

  assert.equal(problem.status, 403);
  assert.equal(problem.headers['x-agent-proxy-error'], 'egress_denied');
  assert.equal(problem.headers['content-type'], 'application/problem+json');
  assert.equal(problem.headers['proxy-authenticate'], undefined);
  assert.deepEqual(JSON.parse(problem.body), {
    type: 'urn:agent-proxy:error:egress_denied',
    title: 'Egress denied by policy',
    status: 403,
    code: 'egress_denied',
    detail: 'Not allowed.',
    host: 'a.test',
  });
  assert.equal(problem.headers['content-length'], String(Buffer.byteLength(problem.body)));
});

test('problem response for 407 asks for Basic proxy credentials', () => {
  const problem = problemResponse(new ProxyError('proxy_auth_required', 'No session.'));

  assert.equal(problem.status, 407);
  assert.equal(problem.headers['proxy-authenticate'], 'Basic realm="agent-proxy", charset="UTF-8"');
});
