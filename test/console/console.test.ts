// The admin console in a real browser: playwright-core drives Debian's Chromium against
// a real Agent Proxy whose Salesforce credential mints from the Salesforce-compatible
// test server. UPDATE_SCREENSHOTS=1 also rewrites docs/screenshots/*.png.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { request } from 'undici';
import { CONSOLE_CSP, registerConsole } from '../../src/admin/console.ts';
import { startSalesforceServer, type SalesforceServer } from '../fixtures/salesforceServer.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '..', '..', 'docs', 'screenshots');
const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';

const CHANNEL = 'C0SALES';
const CONSUMER_KEY = '3MVG9CONSOLE.consumer.key.of.the.connected.app';
const INTEGRATION_USER = 'integration@acme.example';
const LOGIN_HOST = 'login.salesforce.test';
const INSTANCE_HOST = 'acme.my.salesforce.test';

interface CredentialView {
  id: string;
  name: string;
  secrets: Record<string, { set: boolean; fingerprint: string }>;
}

describe('console serving', () => {
  let harness: Harness;

  before(async () => {
    harness = await startHarness();
  });

  after(async () => {
    await harness?.close();
  });

  test('index page carries CSP and no-cache', async () => {
    const response = await request(`${harness.proxy.adminUrl}/`);
    const body = await response.body.text();
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/html/);
    assert.equal(response.headers['content-security-policy'], CONSOLE_CSP);
    assert.equal(response.headers['cache-control'], 'no-cache');
    assert.match(body, /<div id="root">/);
  });

  test('console address falls back to index.html', async () => {
    const response = await request(`${harness.proxy.adminUrl}/bundles/some-id/credentials`);
    const body = await response.body.text();
    assert.equal(response.statusCode, 200);
    assert.match(body, /<div id="root">/);
  });

  test('hashed asset is immutable with its type', async () => {
    const index = await (await request(`${harness.proxy.adminUrl}/`)).body.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(index)?.[1];
    assert.ok(script, `no script in index.html: ${index}`);
    const response = await request(`${harness.proxy.adminUrl}${script}`);
    await response.body.dump();
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/javascript/);
    assert.equal(response.headers['cache-control'], 'public, max-age=31536000, immutable');
  });

  test('missing asset and traversal are 404', async () => {
    for (const urlPath of ['/assets/missing.js', '/%2e%2e/package.json', '/..%2fpackage.json']) {
      const response = await request(`${harness.proxy.adminUrl}${urlPath}`);
      const body = await response.body.text();
      assert.equal(response.statusCode, 404, urlPath);
      assert.doesNotMatch(body, /agent-proxy|<div id="root">/, urlPath);
    }
  });

  test('unknown API path stays a JSON 404', async () => {
    const response = await request(`${harness.proxy.adminUrl}/api/v1/no-such-route`);
    const body = (await response.body.json()) as { error: { code: string } };
    assert.equal(response.statusCode, 404);
    assert.equal(body.error.code, 'not_found');
  });

  test('missing build answers 503 with a fix', async () => {
    const emptyDir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-console-'));
    const app = Fastify();
    registerConsole(app, { dir: emptyDir });
    try {
      const response = await app.inject({ method: 'GET', url: '/bundles' });
      assert.equal(response.statusCode, 503);
      assert.match(response.body, /npm run build:console/);
      assert.equal(response.headers['content-security-policy'], CONSOLE_CSP);
    } finally {
      await app.close();
      rmSync(emptyDir, { recursive: true, force: true });
    }
  });
});

describe('console in Chromium', () => {
  let salesforce: SalesforceServer;
  let harness: Harness;
  let context: BrowserContext;
  let page: Page;
  let userDataDir: string;
  let privateKeyPem: string;
  let bundleId: string;

  const adminUrl = () => harness.proxy.adminUrl;
  const tokenUrl = () => `https://${LOGIN_HOST}:${salesforce.port}/services/oauth2/token`;
  const instanceWebsite = () => `${INSTANCE_HOST}:${salesforce.port}`;

  async function screenshot(name: string): Promise<void> {
    if (!UPDATE_SCREENSHOTS) return;
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
  }

  /** Returns everything a person could read or copy from the page: its text and the values of its fields. */
  async function visibleText(): Promise<string> {
    // A string, because the root tsconfig has no DOM types for a function body to check against.
    return page.evaluate<string>(`[document.body.innerText, ...[...document.querySelectorAll('input, textarea, select')].map((element) => element.value)].join('\\n')`);
  }

  async function fillJwtBearerForm(website: string): Promise<void> {
    await page.getByLabel('Name', { exact: true }).fill('salesforce');
    await page.getByLabel('Issuer (iss)').fill(CONSUMER_KEY);
    await page.getByLabel('Subject (sub, optional)').fill(INTEGRATION_USER);
    await page.getByLabel('Private key (PEM)').fill(privateKeyPem);
    await page.getByLabel('Token URL').fill(tokenUrl());
    // The test org's token URL is not on salesforce.com, so the Salesforce rules are chosen explicitly.
    await page.getByLabel('Provider rules').selectOption('salesforce');
    await page.getByLabel('Allowed websites').fill(website);
    await page.getByLabel('Access', { exact: true }).selectOption('read');
  }

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: the browser tests need Debian's chromium package, which .ci/run installs (apt-get install chromium).`);

    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    salesforce = await startSalesforceServer({
      apps: [{ consumerKey: CONSUMER_KEY, certificate: publicKey, approvedUsernames: [INTEGRATION_USER] }],
      users: [{ username: INTEGRATION_USER, userId: '005CONSOLE0000001AA', organizationId: '00DCONSOLE000001AAA', name: 'Integration User' }],
    });
    harness = await startHarness({
      upstreamCaPem: [salesforce.caPem],
      pins: [
        { host: LOGIN_HOST, port: salesforce.port, address: '127.0.0.1' },
        { host: INSTANCE_HOST, port: salesforce.port, address: '127.0.0.1' },
      ],
      // The test org listens on loopback, which the egress policy refuses unless allowed.
      config: { egress: { default: 'deny', allowPrivateNetworks: ['127.0.0.1/32'] }, bundles: [] },
    });

    userDataDir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
  });

  after(async () => {
    await context?.close();
    await harness?.close();
    await salesforce?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  test('login with admin token', async () => {
    await page.goto(`${adminUrl()}/`);
    await page.getByLabel('Admin token').waitFor();
    await screenshot('login');

    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That admin token is not valid').waitFor();

    await page.getByLabel('Admin token').fill(harness.proxy.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Access bundles' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/bundles');
  });

  test('create bundle scoped to C0SALES', async () => {
    await page.getByRole('button', { name: 'New bundle' }).click();
    await page.getByLabel('Name', { exact: true }).fill('sales');
    await page.getByLabel('Description (optional)').fill('Sales agents');
    await page.getByLabel('Channel ids').fill(CHANNEL);
    await page.getByRole('button', { name: 'Create bundle' }).click();
    await page.getByRole('heading', { name: 'sales' }).waitFor();

    const list = await harness.admin<{ bundles: Array<{ id: string; name: string; channels: string[] }> }>('GET', '/api/v1/bundles');
    const sales = list.body.bundles.find((bundle) => bundle.name === 'sales');
    assert.ok(sales, JSON.stringify(list.body));
    assert.deepEqual(sales.channels, [CHANNEL]);
    bundleId = sales.id;
    assert.equal(new URL(page.url()).pathname, `/bundles/${bundleId}/credentials`);
  });

  test('bad allowed website shown beside field', async () => {
    const badWebsite = `https://${instanceWebsite()}/services`;
    await page.getByRole('link', { name: 'Connect another app' }).click();
    await page.getByRole('button', { name: /OAuth 2.0 JWT bearer/ }).click();
    await fillJwtBearerForm(badWebsite);
    // Salesforce's audience is its login host whatever the token URL, and the form shows it.
    assert.match(await page.locator('#credential-audience-help').innerText(), /Default: https:\/\/login\.salesforce\.com\./);
    await page.getByRole('button', { name: 'Save credential' }).click();

    const fieldError = page.locator('#credential-allowedWebsites-error');
    await fieldError.waitFor();
    const shownMessage = (await fieldError.innerText()).trim();
    // The same body sent straight to the API gives the message the page must show.
    const direct = await harness.admin<{ error: { issues?: Array<{ path: string; message: string }> } }>('POST', `/api/v1/bundles/${bundleId}/credentials`, {
      name: 'salesforce',
      type: 'oauth2_jwt_bearer',
      provider: 'salesforce',
      issuer: CONSUMER_KEY,
      subject: INTEGRATION_USER,
      privateKey: privateKeyPem,
      tokenUrl: tokenUrl(),
      allowedWebsites: [badWebsite],
      access: 'read',
    });
    assert.equal(direct.status, 400);
    const websiteIssue = direct.body.error.issues?.find((issue) => issue.path.startsWith('allowedWebsites'));
    assert.ok(websiteIssue, JSON.stringify(direct.body));
    assert.equal(shownMessage, websiteIssue.message);

    const bundle = await harness.admin<{ credentials: unknown[] }>('GET', `/api/v1/bundles/${bundleId}`);
    assert.equal(bundle.body.credentials.length, 0);
    assert.equal(await page.getByLabel('Issuer (iss)').inputValue(), CONSUMER_KEY);
    assert.equal(await page.getByLabel('Allowed websites').inputValue(), badWebsite);
    assert.equal(await page.getByLabel('Private key (PEM)').inputValue(), '');
    await screenshot('connect-form');
  });

  test('JWT bearer save shows fingerprint only', async () => {
    await page.getByLabel('Private key (PEM)').fill(privateKeyPem);
    await page.getByLabel('Allowed websites').fill(instanceWebsite());
    await page.getByRole('button', { name: 'Save credential' }).click();
    await page.getByText('Saved salesforce.').waitFor();

    const bundle = await harness.admin<{ credentials: CredentialView[] }>('GET', `/api/v1/bundles/${bundleId}`);
    const credential = bundle.body.credentials.find((candidate) => candidate.name === 'salesforce');
    assert.ok(credential, JSON.stringify(bundle.body));
    const fingerprint = credential.secrets.privateKey?.fingerprint;
    assert.ok(fingerprint, JSON.stringify(credential.secrets));

    const text = await visibleText();
    assert.ok(text.includes(fingerprint), `the page does not show the fingerprint ${fingerprint}`);
    const bodyLine = privateKeyPem.split('\n')[5]!;
    assert.ok(!text.includes(bodyLine), 'the page shows a line of the private key');
    assert.ok(!text.includes('PRIVATE KEY-----'), 'the page shows a PEM header');
  });

  test('test connection shows integration user', async () => {
    await page.getByRole('button', { name: 'Test connection of salesforce' }).click();
    const result = page.locator('.test-result');
    await result.waitFor();
    const text = await result.innerText();
    assert.match(text, /Connected as integration@acme\.example/, text);
    await screenshot('bundle-credentials');
  });

  test('activity lists mint under integration user', async () => {
    await harness.proxy.flushAudit();
    await page.getByRole('link', { name: 'Activity' }).click();
    const mintRow = page.locator('tr[data-kind="mint"]', { hasText: INTEGRATION_USER });
    await mintRow.first().waitFor();
    assert.match(await mintRow.first().innerText(), /salesforce/);
    await screenshot('activity');
  });

  test('sessions page revokes session', async () => {
    const session = await harness.createSession(CHANNEL);
    await page.getByRole('link', { name: 'Sessions' }).click();
    const row = page.locator(`tr[data-session="${session.id}"]`);
    await row.waitFor();
    await screenshot('sessions');

    await page.getByRole('button', { name: `Revoke session ${session.id}` }).click();
    await row.waitFor({ state: 'detached' });
    const listed = await harness.admin<Array<{ id: string }>>('GET', '/api/v1/sessions');
    assert.ok(!listed.body.some((candidate) => candidate.id === session.id), JSON.stringify(listed.body));
  });

  test('bundles page lists scope and count', async () => {
    await page.getByRole('link', { name: 'Access bundles' }).click();
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'sales' }) });
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /C0SALES/);
    assert.match(text, /\b1\b/);
    await screenshot('bundles');
  });
});
