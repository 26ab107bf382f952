import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { validateBundlesDocument } from '../../src/config/bundlesFile.ts';
import { buildCredentialFromPreset, getPreset, listPresets, type Preset, type PresetIssue } from '../../src/presets/presets.ts';

const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

function serviceAccountJson(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'service_account',
    project_id: 'acme-agents',
    private_key_id: '0123456789abcdef0123456789abcdef01234567',
    private_key: rsaKey,
    client_email: 'agent@acme-agents.iam.gserviceaccount.com',
    client_id: '123456789012345678901',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: 'https://oauth2.googleapis.com/token',
    ...overrides,
  });
}

// Valid values for every preset; secrets are made up in each provider's format.
const EXAMPLE_VALUES: Record<string, Record<string, string>> = {
  salesforce: { environment: 'production', instance: 'acme', consumerKey: '3MVG9exampleConsumerKey.abc', username: 'integration@acme.example', privateKey: rsaKey },
  'google-service-account': { keyFile: serviceAccountJson(), scopes: 'https://www.googleapis.com/auth/cloud-platform' },
  'microsoft-graph': { tenant: 'contoso.onmicrosoft.com', clientId: '11111111-2222-3333-4444-555555555555', clientSecret: 'abc~secret' },
  github: { token: 'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz' },
  slack: { token: 'xoxb-1234-5678-abcdefghijklmnop' },
  anthropic: { apiKey: 'sk-ant-api03-abcdefghijklmnop' },
  openai: { apiKey: 'sk-proj-abcdefghijklmnop' },
  atlassian: { site: 'acme', email: 'agent@acme.example', apiToken: 'ATATT3xFfGF0example' },
  hubspot: { token: 'pat-na1-11111111-2222-3333-4444-555555555555' },
  stripe: { restrictedKey: 'rk_test_abcdefghijklmnop' },
  notion: { token: 'ntn_abcdefghijklmnop' },
  linear: { apiKey: 'lin_api_abcdefghijklmnop' },
  zendesk: { subdomain: 'acme', email: 'agent@acme.example', apiToken: 'abcdefghijklmnop' },
  gitlab: { host: 'gitlab.com', token: 'glpat-abcdefghijklmnop' },
  twilio: { accountSid: 'AC0123456789abcdef0123456789abcdef', secret: 'authtoken0123456789' },
  airtable: { token: 'patABCDEFGHIJKLMN.0123456789abcdef' },
};

// Domains whose subdomains belong to different customers, so a wildcard under them would reach other organisations.
const MULTI_TENANT_DOMAINS = ['salesforce.com', 'force.com', 'atlassian.net', 'zendesk.com', 'slack.com', 'hubapi.com', 'github.com', 'gitlab.com', 'twilio.com', 'notion.com'];

function preset(id: string): Preset {
  const found = getPreset(id);
  assert.ok(found, `preset ${id} exists`);
  return found;
}

function buildOk(id: string, values: Record<string, string>): Record<string, unknown> {
  const result = buildCredentialFromPreset(preset(id), 'cred', values);
  if (!result.ok) assert.fail(`expected ${id} to build, got ${JSON.stringify(result.issues)}`);
  return result.document;
}

function buildIssues(id: string, values: Record<string, string>): PresetIssue[] {
  const result = buildCredentialFromPreset(preset(id), 'cred', values);
  if (result.ok) assert.fail(`expected ${id} to fail, got ${JSON.stringify(result.document)}`);
  return result.issues;
}

function issueAt(issues: PresetIssue[], path: string): PresetIssue {
  const issue = issues.find((candidate) => candidate.path === path);
  assert.ok(issue, `expected an issue at ${path}, got ${JSON.stringify(issues)}`);
  return issue;
}

describe('preset catalogue', () => {
  test('ids are unique and found by getPreset', () => {
    const ids = listPresets().map((entry) => entry.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.equal(getPreset(id)?.id, id);
    assert.equal(getPreset('no-such-preset'), undefined);
  });

  test('every preset has example values', () => {
    assert.deepEqual(listPresets().map((entry) => entry.id).sort(), Object.keys(EXAMPLE_VALUES).sort());
  });

  test('every preset builds a valid document', () => {
    for (const entry of listPresets()) {
      const result = buildCredentialFromPreset(entry, `${entry.id}-cred`, EXAMPLE_VALUES[entry.id]!);
      if (!result.ok) assert.fail(`${entry.id}: ${JSON.stringify(result.issues)}`);
      assert.equal(result.document['type'], entry.type, entry.id);
      const validation = validateBundlesDocument({ bundles: [{ name: 'x', channels: ['*'], credentials: [result.document] }] });
      assert.ok(validation.ok, `${entry.id}: ${validation.ok ? '' : JSON.stringify(validation.issues)}`);
    }
  });

  test('no wildcard under a multi-tenant domain', () => {
    for (const entry of listPresets()) {
      const document = buildOk(entry.id, EXAMPLE_VALUES[entry.id]!);
      const websites = [...entry.allowedWebsitesTemplate, ...(document['allowedWebsites'] as string[])];
      for (const website of websites.filter((pattern) => pattern.includes('*'))) {
        const suffix = website.replace(/^\*\./, '');
        for (const domain of MULTI_TENANT_DOMAINS) {
          assert.notEqual(suffix, domain, `${entry.id}: ${website} is a wildcard under ${domain}`);
          assert.ok(!suffix.endsWith(`.${domain}`), `${entry.id}: ${website} is a wildcard under ${domain}`);
        }
      }
    }
  });

  test('org-specific templates come from fields', () => {
    for (const entry of listPresets()) {
      const fieldNames = new Set(entry.fields.map((field) => field.name));
      for (const template of entry.allowedWebsitesTemplate) {
        for (const [, name] of template.matchAll(/\{([^}|]+)/g)) {
          const setByOption = entry.fields.some((field) => field.options?.some((option) => option.sets?.[name!] !== undefined));
          assert.ok(fieldNames.has(name!) || setByOption, `${entry.id}: ${template} uses {${name}}, which no field sets`);
        }
      }
    }
  });

  test('listPresets returns copies', () => {
    const first = listPresets()[0]!;
    first.allowedWebsitesTemplate.push('evil.example');
    assert.ok(!listPresets()[0]!.allowedWebsitesTemplate.includes('evil.example'));
  });
});

describe('Salesforce preset', () => {
  const base = EXAMPLE_VALUES['salesforce']!;

  test('production audience, hosts and token URL', () => {
    const document = buildOk('salesforce', base);
    assert.equal(document['audience'], 'https://login.salesforce.com');
    assert.equal(document['tokenUrl'], 'https://login.salesforce.com/services/oauth2/token');
    assert.deepEqual(document['allowedWebsites'], ['acme.my.salesforce.com']);
    assert.equal(document['probeUrl'], 'https://acme.my.salesforce.com/services/oauth2/userinfo');
    assert.equal(document['provider'], 'salesforce');
    assert.equal(document['issuer'], base['consumerKey']);
    assert.equal(document['subject'], base['username']);
  });

  test('sandbox audience, hosts and token URL', () => {
    const document = buildOk('salesforce', { ...base, environment: 'sandbox', instance: 'acme--uat' });
    assert.equal(document['audience'], 'https://test.salesforce.com');
    assert.equal(document['tokenUrl'], 'https://test.salesforce.com/services/oauth2/token');
    assert.deepEqual(document['allowedWebsites'], ['acme--uat.sandbox.my.salesforce.com']);
    assert.equal(document['probeUrl'], 'https://acme--uat.sandbox.my.salesforce.com/services/oauth2/userinfo');
  });

  test('My Domain login keeps the production audience', () => {
    const document = buildOk('salesforce', { ...base, environment: 'my_domain' });
    assert.equal(document['tokenUrl'], 'https://acme.my.salesforce.com/services/oauth2/token');
    assert.equal(document['audience'], 'https://login.salesforce.com');
    assert.deepEqual(document['allowedWebsites'], ['acme.my.salesforce.com']);
  });

  test('sandbox My Domain login keeps the sandbox audience', () => {
    const document = buildOk('salesforce', { ...base, environment: 'sandbox_my_domain', instance: 'acme--uat' });
    assert.equal(document['tokenUrl'], 'https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token');
    assert.equal(document['audience'], 'https://test.salesforce.com');
  });

  test('Lightning host rejected with hint', () => {
    for (const pasted of ['acme.lightning.force.com', 'https://acme.lightning.force.com/lightning/page/home', 'HTTPS://Acme.Lightning.Force.com']) {
      const issue = issueAt(buildIssues('salesforce', { ...base, instance: pasted }), 'instance');
      assert.match(issue.message, /that is the Lightning UI host; give the My Domain name \(acme\), whose API host is acme\.my\.salesforce\.com/);
      assert.ok(issue.message.includes(JSON.stringify(pasted.toLowerCase())), issue.message);
    }
  });

  test('sandbox Lightning host names sandbox API host', () => {
    const issue = issueAt(buildIssues('salesforce', { ...base, instance: 'acme--uat.sandbox.lightning.force.com' }), 'instance');
    assert.match(issue.message, /give the My Domain name \(acme--uat\), whose API host is acme--uat\.sandbox\.my\.salesforce\.com/);
  });

  test('login host rejected', () => {
    const issue = issueAt(buildIssues('salesforce', { ...base, instance: 'https://login.salesforce.com' }), 'instance');
    assert.match(issue.message, /login host every org shares/);
  });

  test('My Domain forms reduced to the name', () => {
    for (const pasted of ['acme.my.salesforce.com', 'https://acme.my.salesforce.com', 'https://ACME.my.salesforce.com/', 'https://acme.my.salesforce.com/services/data']) {
      const document = buildOk('salesforce', { ...base, instance: pasted });
      assert.deepEqual(document['allowedWebsites'], ['acme.my.salesforce.com'], pasted);
    }
    const sandbox = buildOk('salesforce', { ...base, environment: 'sandbox', instance: 'https://acme--uat.sandbox.my.salesforce.com' });
    assert.deepEqual(sandbox['allowedWebsites'], ['acme--uat.sandbox.my.salesforce.com']);
  });

  test('wildcard instance rejected', () => {
    const issue = issueAt(buildIssues('salesforce', { ...base, instance: '*' }), 'instance');
    assert.match(issue.message, /"\*" is not in the expected format; give the My Domain name alone/);
  });

  test('unknown environment lists choices', () => {
    const issue = issueAt(buildIssues('salesforce', { ...base, environment: 'staging' }), 'environment');
    assert.match(issue.message, /"staging" is not one of the choices for Environment; choose "production"/);
  });

  test('bad private key reported on field', () => {
    const issue = issueAt(buildIssues('salesforce', { ...base, privateKey: 'not a key' }), 'privateKey');
    assert.ok(issue.message.length > 0);
  });
});

describe('Google service account preset', () => {
  const scopes = 'https://www.googleapis.com/auth/cloud-platform';

  test('key file fills issuer, key and token URL', () => {
    const document = buildOk('google-service-account', { keyFile: serviceAccountJson(), scopes, delegatedUser: 'boss@acme.example' });
    assert.equal(document['issuer'], 'agent@acme-agents.iam.gserviceaccount.com');
    assert.equal(document['privateKey'], rsaKey);
    assert.equal(document['keyId'], '0123456789abcdef0123456789abcdef01234567');
    assert.equal(document['tokenUrl'], 'https://oauth2.googleapis.com/token');
    assert.equal(document['scope'], scopes);
    assert.equal(document['subject'], 'boss@acme.example');
    assert.equal(document['provider'], 'google');
    assert.deepEqual(document['allowedWebsites'], ['*.googleapis.com']);
  });

  test('optional key id and subject left out', () => {
    const keyFile = serviceAccountJson({ private_key_id: undefined, token_uri: undefined });
    const document = buildOk('google-service-account', { keyFile, scopes });
    assert.equal('keyId' in document, false);
    assert.equal('subject' in document, false);
    assert.equal(document['tokenUrl'], 'https://oauth2.googleapis.com/token');
  });

  test('text that is not JSON', () => {
    const issue = issueAt(buildIssues('google-service-account', { keyFile: rsaKey, scopes }), 'keyFile');
    assert.match(issue.message, /is not valid JSON; paste the whole of a Google service account key file/);
    assert.ok(!issue.message.includes('PRIVATE KEY'), 'the message must not quote the key');
  });

  test('JSON array rejected', () => {
    const issue = issueAt(buildIssues('google-service-account', { keyFile: '[1, 2]', scopes }), 'keyFile');
    assert.match(issue.message, /JSON but not an object/);
  });

  test('user credential file rejected', () => {
    const keyFile = JSON.stringify({ type: 'authorized_user', client_id: 'x', client_secret: 'y', refresh_token: 'z' });
    const issue = issueAt(buildIssues('google-service-account', { keyFile, scopes }), 'keyFile');
    assert.match(issue.message, /user credential \(type "authorized_user"/);
  });

  test('OAuth client file rejected', () => {
    const keyFile = JSON.stringify({ installed: { client_id: 'x', client_secret: 'y' } });
    const issue = issueAt(buildIssues('google-service-account', { keyFile, scopes }), 'keyFile');
    assert.match(issue.message, /not a service account key \(its "type" is missing/);
  });

  test('missing client_email and private_key', () => {
    const keyFile = serviceAccountJson({ client_email: undefined, private_key: '' });
    const issue = issueAt(buildIssues('google-service-account', { keyFile, scopes }), 'keyFile');
    assert.match(issue.message, /has no "client_email", and has no "private_key"/);
  });

  test('foreign token_uri rejected', () => {
    const keyFile = serviceAccountJson({ token_uri: 'https://evil.example/token' });
    const issue = issueAt(buildIssues('google-service-account', { keyFile, scopes }), 'keyFile');
    assert.match(issue.message, /"token_uri": "https:\/\/evil\.example\/token", but Google's token endpoint is https:\/\/oauth2\.googleapis\.com\/token/);
  });

  test('broken private key reported on key file', () => {
    const keyFile = serviceAccountJson({ private_key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' });
    const issues = buildIssues('google-service-account', { keyFile, scopes });
    issueAt(issues, 'keyFile');
  });

  test('scopes required and comma rejected', () => {
    issueAt(buildIssues('google-service-account', { keyFile: serviceAccountJson() }), 'scopes');
    const issue = issueAt(buildIssues('google-service-account', { keyFile: serviceAccountJson(), scopes: 'a,b' }), 'scopes');
    assert.match(issue.message, /without commas/);
  });
});

describe('buildCredentialFromPreset', () => {
  test('missing required fields listed', () => {
    const issues = buildIssues('atlassian', {});
    assert.deepEqual(issues.map((issue) => issue.path).sort(), ['apiToken', 'email', 'site']);
    assert.match(issueAt(issues, 'site').message, /^missing Site name; give the site name alone/);
    assert.match(issueAt(issues, 'apiToken').message, /^missing API token; give the API token: id\.atlassian\.com/);
  });

  test('pattern violation names value and fix', () => {
    const issue = issueAt(buildIssues('microsoft-graph', { ...EXAMPLE_VALUES['microsoft-graph'], clientId: 'my-app' }), 'clientId');
    assert.equal(
      issue.message,
      'Application (client) ID: "my-app" is not in the expected format; give the Application (client) ID, a GUID from the app registration\'s Overview page',
    );
  });

  test('secret pattern violation hides value', () => {
    const issue = issueAt(buildIssues('slack', { token: 'xoxp-1234-secretpart' }), 'token');
    assert.equal(
      issue.message,
      'Bot User OAuth Token: the value given (starts with "xoxp-", 20 characters) is not in the expected format; give the Bot User OAuth Token, which starts with xoxb- (a user token starts with xoxp-)',
    );
    assert.ok(!issue.message.includes('secretpart'));
  });

  test('invalid credential name reported', () => {
    const result = buildCredentialFromPreset(preset('github'), 'Bad Name', EXAMPLE_VALUES['github']!);
    assert.equal(result.ok, false);
    if (!result.ok) assert.equal(result.issues[0]?.path, 'name');
  });

  test('values are trimmed', () => {
    const document = buildOk('github', { token: `  ${EXAMPLE_VALUES['github']!['token']}\n` });
    assert.equal(document['token'], EXAMPLE_VALUES['github']!['token']);
  });
});

describe('app presets', () => {
  test('GitHub sends version header', () => {
    const document = buildOk('github', EXAMPLE_VALUES['github']!);
    assert.deepEqual(document['extraHeaders'], { 'X-GitHub-Api-Version': '2022-11-28' });
    assert.deepEqual(document['allowedWebsites'], ['api.github.com']);
    assert.equal(document['probeUrl'], 'https://api.github.com/user');
  });

  test('Anthropic key in x-api-key', () => {
    const document = buildOk('anthropic', EXAMPLE_VALUES['anthropic']!);
    assert.equal(document['headerName'], 'x-api-key');
    assert.equal(document['prefix'], undefined);
    assert.deepEqual(document['extraHeaders'], { 'anthropic-version': '2023-06-01' });
  });

  test('Linear key without Bearer', () => {
    const document = buildOk('linear', EXAMPLE_VALUES['linear']!);
    assert.equal(document['type'], 'api_key');
    assert.equal(document['headerName'], 'Authorization');
    assert.equal('prefix' in document, false);
  });

  test('Microsoft Graph tenant in token URL', () => {
    const document = buildOk('microsoft-graph', { ...EXAMPLE_VALUES['microsoft-graph'], tenant: '9B1DEB4D-3B7D-4BAD-9BDD-2B0D7B3DCB6D' });
    assert.equal(document['tokenUrl'], 'https://login.microsoftonline.com/9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d/oauth2/v2.0/token');
    assert.equal(document['scope'], 'https://graph.microsoft.com/.default');
    assert.deepEqual(document['allowedWebsites'], ['graph.microsoft.com']);
    issueAt(buildIssues('microsoft-graph', { ...EXAMPLE_VALUES['microsoft-graph'], tenant: 'common' }), 'tenant');
  });

  test('Atlassian site URL reduced', () => {
    const document = buildOk('atlassian', { ...EXAMPLE_VALUES['atlassian'], site: 'https://acme.atlassian.net/jira/software' });
    assert.deepEqual(document['allowedWebsites'], ['acme.atlassian.net']);
    assert.equal(document['username'], 'agent@acme.example');
    assert.equal(document['probeUrl'], 'https://acme.atlassian.net/rest/api/3/myself');
  });

  test('Zendesk token user name', () => {
    const document = buildOk('zendesk', { ...EXAMPLE_VALUES['zendesk'], subdomain: 'acme.zendesk.com' });
    assert.equal(document['username'], 'agent@acme.example/token');
    assert.equal(document['password'], 'abcdefghijklmnop');
    assert.deepEqual(document['allowedWebsites'], ['acme.zendesk.com']);
  });

  test('Stripe secret key rejected', () => {
    const issue = issueAt(buildIssues('stripe', { restrictedKey: 'sk_live_abcdef' }), 'restrictedKey');
    assert.match(issue.message, /starts with "sk_"/);
    assert.match(issue.message, /rk_live_ or rk_test_/);
  });

  test('Twilio user name prefers API key', () => {
    const withKey = buildOk('twilio', { ...EXAMPLE_VALUES['twilio'], apiKeySid: 'SK0123456789abcdef0123456789abcdef' });
    assert.equal(withKey['username'], 'SK0123456789abcdef0123456789abcdef');
    const withoutKey = buildOk('twilio', EXAMPLE_VALUES['twilio']!);
    assert.equal(withoutKey['username'], 'AC0123456789abcdef0123456789abcdef');
    assert.equal(withoutKey['probeUrl'], 'https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef.json');
  });

  test('GitLab host from URL', () => {
    const document = buildOk('gitlab', { ...EXAMPLE_VALUES['gitlab'], host: 'https://gitlab.acme.example/group/project' });
    assert.deepEqual(document['allowedWebsites'], ['gitlab.acme.example']);
    assert.equal(document['probeUrl'], 'https://gitlab.acme.example/api/v4/user');
  });
});
