import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  BundlesFileError,
  formatIssues,
  parseBundlesText,
  readBundlesFile,
  resolveSecretRefs,
  validateBundlesDocument,
} from '../../src/config/bundlesFile.ts';
import type { ProxyConfig } from '../../src/domain/types.ts';

const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

const FULL_YAML = `
version: 1
egress:
  default: deny
  allow: ["pypi.org", "*.npmjs.org"]
  allowPrivateNetworks: ["10.0.0.0/8"]
bundles:
  - name: sales
    description: Salesforce for the sales team
    channels: ["C0SALES", "C0OPS"]
    credentials:
      - name: salesforce
        type: oauth2_jwt_bearer
        issuer: "3MVG9abc"
        subject: integration@yourorg.example
        privateKey: { env: SF_KEY }
        tokenUrl: https://login.salesforce.com/services/oauth2/token
        audience: https://login.salesforce.com
        allowedWebsites: ["yourorg.my.salesforce.com"]
        access: read
        rules:
          - methods: [GET]
            paths: ["/services/data/*/query"]
  - name: engineering
    channels: ["*"]
    credentials:
      - name: github
        type: bearer_token
        token: ghp_example
        allowedWebsites: ["api.github.com"]
        extraHeaders:
          X-GitHub-Api-Version: "2022-11-28"
      - name: openai
        type: api_key
        headerName: Authorization
        prefix: "Bearer "
        value: sk-example
        allowedWebsites: ["api.openai.com"]
      - name: jira
        type: basic_auth
        username: bot@yourorg.example
        password: { file: ./jira-password }
        allowedWebsites: ["yourorg.atlassian.net"]
      - name: okta
        type: oauth2_client_credentials
        clientId: client-1
        clientSecret: cs-example
        tokenUrl: https://yourorg.okta.com/oauth2/default/v1/token
        scope: api.read
        clientAuthMethod: body
        allowedWebsites: ["*.okta.com"]
      - name: google
        type: oauth2_refresh_token
        clientId: client-2
        clientSecret: cs-google
        refreshToken: rt-example
        tokenUrl: https://oauth2.googleapis.com/token
        allowedWebsites: ["*.googleapis.com"]
`;

const EXPECTED_CONFIG: ProxyConfig = {
  egress: { default: 'deny', allow: ['pypi.org', '*.npmjs.org'], allowPrivateNetworks: ['10.0.0.0/8'] },
  bundles: [
    {
      id: '',
      name: 'sales',
      description: 'Salesforce for the sales team',
      channels: ['C0SALES', 'C0OPS'],
      credentials: [
        {
          id: '',
          bundleId: '',
          name: 'salesforce',
          settings: {
            type: 'oauth2_jwt_bearer',
            issuer: '3MVG9abc',
            subject: 'integration@yourorg.example',
            tokenUrl: 'https://login.salesforce.com/services/oauth2/token',
            audience: 'https://login.salesforce.com',
          },
          secrets: { privateKey: rsaKey },
          allowedWebsites: ['yourorg.my.salesforce.com'],
          access: 'read',
          rules: [{ methods: ['GET'], paths: ['/services/data/*/query'] }],
          extraHeaders: {},
        },
      ],
    },
    {
      id: '',
      name: 'engineering',
      description: '',
      channels: ['*'],
      credentials: [
        {
          id: '',
          bundleId: '',
          name: 'github',
          settings: { type: 'bearer_token' },
          secrets: { token: 'ghp_example' },
          allowedWebsites: ['api.github.com'],
          access: 'read_write',
          rules: [],
          extraHeaders: { 'X-GitHub-Api-Version': '2022-11-28' },
        },
        {
          id: '',
          bundleId: '',
          name: 'openai',
          settings: { type: 'api_key', headerName: 'Authorization', prefix: 'Bearer ' },
          secrets: { value: 'sk-example' },
          allowedWebsites: ['api.openai.com'],
          access: 'read_write',
          rules: [],
          extraHeaders: {},
        },
        {
          id: '',
          bundleId: '',
          name: 'jira',
          settings: { type: 'basic_auth', username: 'bot@yourorg.example' },
          secrets: { password: 'jira-secret' },
          allowedWebsites: ['yourorg.atlassian.net'],
          access: 'read_write',
          rules: [],
          extraHeaders: {},
        },
        {
          id: '',
          bundleId: '',
          name: 'okta',
          settings: {
            type: 'oauth2_client_credentials',
            clientId: 'client-1',
            tokenUrl: 'https://yourorg.okta.com/oauth2/default/v1/token',
            scope: 'api.read',
            clientAuthMethod: 'body',
          },
          secrets: { clientSecret: 'cs-example' },
          allowedWebsites: ['*.okta.com'],
          access: 'read_write',
          rules: [],
          extraHeaders: {},
        },
        {
          id: '',
          bundleId: '',
          name: 'google',
          settings: { type: 'oauth2_refresh_token', clientId: 'client-2', tokenUrl: 'https://oauth2.googleapis.com/token' },
          secrets: { clientSecret: 'cs-google', refreshToken: 'rt-example' },
          allowedWebsites: ['*.googleapis.com'],
          access: 'read_write',
          rules: [],
          extraHeaders: {},
        },
      ],
    },
  ],
};

const directory = mkdtempSync(join(tmpdir(), 'bundles-file-test-'));
writeFileSync(join(directory, 'jira-password'), 'jira-secret\n');
after(() => rmSync(directory, { recursive: true, force: true }));

describe('full bundles file', () => {
  test('YAML produces the exact ProxyConfig', () => {
    const parsed = parseBundlesText(FULL_YAML, 'bundles.yaml');
    const resolved = resolveSecretRefs(parsed, { baseDir: directory, env: { SF_KEY: rsaKey } });
    assert.deepEqual(resolved.issues, []);

    const result = validateBundlesDocument(resolved.doc);
    assert.deepEqual(result, { ok: true, config: EXPECTED_CONFIG });
  });

  test('JSON produces the exact ProxyConfig', () => {
    const parsed = parseBundlesText(FULL_YAML, 'bundles.yaml');
    const json = JSON.stringify(parsed, null, 2);
    const resolved = resolveSecretRefs(parseBundlesText(json, 'bundles.json'), { baseDir: directory, env: { SF_KEY: rsaKey } });
    assert.deepEqual(resolved.issues, []);

    const result = validateBundlesDocument(resolved.doc);
    assert.deepEqual(result, { ok: true, config: EXPECTED_CONFIG });
  });

  test('readBundlesFile reads, resolves and validates', () => {
    const path = join(directory, 'bundles.yaml');
    writeFileSync(path, FULL_YAML);
    assert.deepEqual(readBundlesFile(path, { SF_KEY: rsaKey }), EXPECTED_CONFIG);
  });

  test('readBundlesFile reports a reference once', () => {
    const path = join(directory, 'unset-variable.yaml');
    writeFileSync(path, FULL_YAML);
    assert.throws(
      () => readBundlesFile(path, {}),
      (error: unknown) => {
        assert.ok(error instanceof BundlesFileError);
        assert.deepEqual(error.issues, [
          {
            path: 'bundles[0].credentials[0].privateKey',
            message: 'environment variable SF_KEY is not set; export it before running agent-proxy, or use {file: PATH}',
          },
        ]);
        return true;
      },
    );
  });

  test('readBundlesFile names a missing file', () => {
    const path = join(directory, 'absent.yaml');
    assert.throws(() => readBundlesFile(path, {}), {
      name: 'BundlesFileError',
      message: `${path}: invalid bundles file:\ncannot read the bundles file "${path}" (ENOENT); check the path given to -f or --config`,
    });
  });

  test('a minimal file gets the defaults', () => {
    const result = validateBundlesDocument(parseBundlesText('bundles: []\n', 'bundles.yml'));
    assert.deepEqual(result, {
      ok: true,
      config: { egress: { default: 'allow', allow: [], allowPrivateNetworks: [] }, bundles: [] },
    });
  });

  test('egress defaults fill missing keys', () => {
    const result = validateBundlesDocument({ egress: { default: 'deny' }, bundles: [] });
    assert.deepEqual(result, {
      ok: true,
      config: { egress: { default: 'deny', allow: [], allowPrivateNetworks: [] }, bundles: [] },
    });
  });
});

describe('parseBundlesText', () => {
  function syntaxIssues(text: string, fileName: string): unknown {
    try {
      parseBundlesText(text, fileName);
    } catch (error) {
      assert.ok(error instanceof BundlesFileError);
      return error.issues;
    }
    assert.fail('expected a BundlesFileError');
  }

  test('YAML syntax error gives line and column', () => {
    assert.deepEqual(syntaxIssues('egress: {}\nbundles: }\n', 'bundles.yaml'), [
      { path: '', message: 'line 2, column 10: Unexpected flow-map-end token in YAML stream: "}"' },
    ]);
  });

  test('YAML duplicate key is an error', () => {
    assert.deepEqual(syntaxIssues('bundles: []\nbundles: []\n', 'bundles.yaml'), [
      { path: '', message: 'line 2, column 1: Map keys must be unique' },
    ]);
  });

  test('JSON duplicate key is an error', () => {
    assert.deepEqual(syntaxIssues('{\n  "bundles": [],\n  "bundles": []\n}', 'bundles.json'), [
      { path: '', message: 'line 3, column 3: Map keys must be unique' },
    ]);
  });

  test('JSON error with a position', () => {
    assert.deepEqual(syntaxIssues('{\n  "bundles": [],\n}', 'bundles.json'), [
      { path: '', message: 'line 3, column 1: Expected double-quoted property name' },
    ]);
  });

  test('JSON unexpected token is located', () => {
    assert.deepEqual(syntaxIssues('{\n  "egress": {},\n  "bundles": }', 'config.JSON'), [
      { path: '', message: "line 3, column 14: Unexpected token '}'" },
    ]);
  });

  test('JSON trailing text is located', () => {
    assert.deepEqual(syntaxIssues('{"bundles": []} x', 'bundles.json'), [
      { path: '', message: 'line 1, column 17: Unexpected non-whitespace character after JSON' },
    ]);
  });

  test('YAML file that is JSON parses', () => {
    assert.deepEqual(parseBundlesText('{"bundles": []}', 'bundles.yaml'), { bundles: [] });
  });

  test('error message lists the file', () => {
    assert.throws(() => parseBundlesText('{', 'b.json'), {
      message: 'b.json: invalid bundles file:\nline 1, column 2: Expected property name or \'}\'',
    });
  });
});

describe('formatIssues', () => {
  test('one line per issue', () => {
    const text = formatIssues([
      { path: '', message: 'line 1, column 1: bad' },
      { path: 'bundles[0].name', message: 'missing required field "name"' },
    ]);
    assert.equal(text, 'line 1, column 1: bad\nbundles[0].name: missing required field "name"');
  });
});
