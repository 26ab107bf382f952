// A running server and encryption at rest: it keeps injecting and accepts configuration
// changes after an offline `keys rotate`, its files hold no secret, and `export` prints
// no secret.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ProxyAgent, request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { rotateKeys } from '../../src/cli/commands/keys.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { startEchoUpstream, type EchoedRequest, type EchoUpstream } from '../helpers/upstreams.ts';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bin/agent-proxy.js');
const API_HOST = 'api.example.test';
const CHANNEL = 'C0ENG';
const FIRST_TOKEN = 'ghp_runningServerFirst+/=41';
const SECOND_TOKEN = 'ghp_runningServerSecond&?=97';
const BASIC_PASSWORD = 'basic pass/word 3c';

let upstream: EchoUpstream;
let harness: Harness;

function bundles(token: string): unknown {
  return {
    egress: { default: 'allow', allowPrivateNetworks: ['127.0.0.1/32'] },
    bundles: [
      {
        name: 'engineering',
        channels: [CHANNEL],
        credentials: [
          { name: 'github', type: 'bearer_token', token, allowedWebsites: [`${API_HOST}:${upstream.port}`], access: 'read_write' },
          { name: 'jira', type: 'basic_auth', username: 'agent@example.test', password: BASIC_PASSWORD, allowedWebsites: ['jira.example.test'] },
        ],
      },
    ],
  };
}

async function authorizationSeenUpstream(): Promise<string | undefined> {
  const session = await harness.createSession(CHANNEL);
  const agent = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: readFileSync(harness.proxy.caPath, 'utf8') } });
  try {
    const response = await request(`https://${API_HOST}:${upstream.port}/whoami`, { dispatcher: agent });
    await response.body.dump();
    assert.equal(response.statusCode, 200);
    // The upstream's own record, because the proxy redacts an injected value echoed back in the response.
    const seen: EchoedRequest | undefined = upstream.requests.at(-1);
    return seen?.headers.authorization as string | undefined;
  } finally {
    await agent.close();
  }
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, '--server', harness.proxy.adminUrl, ...args], {
    env: { ...process.env, AGENT_PROXY_TOKEN: harness.proxy.adminToken },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

function secretForms(secret: string): string[] {
  return [secret, Buffer.from(secret).toString('base64').replace(/=+$/, ''), Buffer.from(secret).toString('base64url'), encodeURIComponent(secret)];
}

before(async () => {
  upstream = await startEchoUpstream([API_HOST]);
  harness = await startHarness({
    upstreamCaPem: [upstream.pki.caPem],
    pins: [{ host: API_HOST, port: upstream.port, address: '127.0.0.1' }],
    config: bundles(FIRST_TOKEN),
  });
});

after(async () => {
  await harness?.close();
  await upstream?.close();
});

describe('running server', () => {
  test('keeps injecting after an offline rotation', async () => {
    const { databasePath, masterKeyPath } = harness.proxy.dataDir;
    assert.equal(await authorizationSeenUpstream(), `Bearer ${FIRST_TOKEN}`);

    await rotateKeys(databasePath, masterKeyPath, {}, {});

    assert.equal(await authorizationSeenUpstream(), `Bearer ${FIRST_TOKEN}`);
    // Applying reads the rows sealed under the new data key, which the server loads with the rotated key file.
    const applied = await harness.admin<{ changed: string[] }>('POST', '/api/v1/apply', bundles(SECOND_TOKEN));
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    assert.deepEqual(applied.body.changed, ['bundle/engineering/credential/github']);
    assert.equal(await authorizationSeenUpstream(), `Bearer ${SECOND_TOKEN}`);
  });

  test('data directory database holds no secret', async () => {
    await harness.proxy.flushAudit();
    const { databasePath } = harness.proxy.dataDir;
    const bytes = Buffer.concat([databasePath, `${databasePath}-wal`].filter((file) => existsSync(file)).map((file) => readFileSync(file)));

    for (const secret of [FIRST_TOKEN, SECOND_TOKEN, BASIC_PASSWORD]) {
      for (const form of secretForms(secret)) {
        assert.equal(bytes.includes(form), false, `the database files contain a secret as ${JSON.stringify(form)}`);
      }
    }
  });

  test('export leaves secrets out', async () => {
    const yamlResult = await runCli(['export']);
    const jsonResult = await runCli(['export', '--format', 'json']);

    assert.equal(yamlResult.code, 0, yamlResult.stderr);
    assert.equal(jsonResult.code, 0, jsonResult.stderr);
    for (const output of [yamlResult.stdout, yamlResult.stderr, jsonResult.stdout, jsonResult.stderr]) {
      for (const secret of [FIRST_TOKEN, SECOND_TOKEN, BASIC_PASSWORD]) {
        for (const form of secretForms(secret)) {
          assert.equal(output.includes(form), false, `export printed a secret as ${JSON.stringify(form)}`);
        }
      }
    }
    const fromYaml = parseYaml(yamlResult.stdout) as { bundles: { credentials: Record<string, unknown>[] }[] };
    const fromJson = JSON.parse(jsonResult.stdout) as unknown;
    assert.deepEqual(fromYaml, fromJson);
    assert.deepEqual(fromYaml.bundles[0]?.credentials, [
      { name: 'github', type: 'bearer_token', token: { env: 'GITHUB_TOKEN' }, allowedWebsites: [`${API_HOST}:${upstream.port}`], access: 'read_write' },
      {
        name: 'jira',
        type: 'basic_auth',
        username: 'agent@example.test',
        password: { env: 'JIRA_PASSWORD' },
        allowedWebsites: ['jira.example.test'],
        access: 'read_write',
      },
    ]);
    assert.match(yamlResult.stdout, /^# Exported from Agent Proxy\. Secret values are not exported/);
    assert.match(yamlResult.stdout, /# {3}GITHUB_TOKEN: token of credential github in bundle engineering\n/);
    assert.match(jsonResult.stderr, /JIRA_PASSWORD: password of credential jira in bundle engineering/);
  });
});
