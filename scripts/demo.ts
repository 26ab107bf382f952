// `npm run demo`: the first job of Agent Proxy, end to end on loopback. A
// Salesforce-compatible test server stands in for the org; the proxy holds the
// Connected App's private key; a sandbox command lists the five most recently
// modified Opportunities without ever seeing the key or a token.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startAgentProxy } from '../src/runtime/agentProxy.ts';
import { startSalesforceServer } from '../test/fixtures/salesforceServer.ts';

const CHANNEL = 'C0SALES';
const CONSUMER_KEY = '3MVG9DEMO.consumer.key.of.the.connected.app';
const INTEGRATION_USER = 'integration@acme.example';
const CLI = path.resolve(import.meta.dirname, '..', 'bin', 'agent-proxy.js');

const dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-demo-'));
const dataDir = path.join(dir, 'data');

// The key pair whose certificate an admin uploads to the Connected App ("Use digital signatures").
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
writeFileSync(path.join(dir, 'salesforce.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });

const salesforce = await startSalesforceServer({
  apps: [{ consumerKey: CONSUMER_KEY, certificate: publicKey, approvedUsernames: [INTEGRATION_USER] }],
  users: [{ username: INTEGRATION_USER, userId: '005DEMO00000001AAA', organizationId: '00DDEMO0000001AAAA', name: 'Integration User' }],
});
const port = salesforce.port;
const loginHost = 'login.salesforce.test';
const instanceHost = 'acme.my.salesforce.test';
writeFileSync(path.join(dir, 'salesforce-ca.pem'), salesforce.caPem);

const proxy = await startAgentProxy({
  dataDir,
  proxyListen: { host: '127.0.0.1', port: 0 },
  adminListen: { host: '127.0.0.1', port: 0 },
  upstreamCaFiles: [path.join(dir, 'salesforce-ca.pem')],
  // The test org's names resolve to loopback, as `--resolve` would pin them.
  resolvePins: [
    { host: loginHost, port, address: '127.0.0.1' },
    { host: instanceHost, port, address: '127.0.0.1' },
  ],
  logger: pino({ level: 'silent' }),
  writeServerInfo: true,
});

const bundlesFile = path.join(dir, 'bundles.yaml');
writeFileSync(
  bundlesFile,
  `egress:
  default: deny
  # The test org listens on loopback; a real org needs no such entry.
  allowPrivateNetworks: ["127.0.0.1/32"]
bundles:
  - name: sales
    channels: ["${CHANNEL}"]
    credentials:
      - name: salesforce
        type: oauth2_jwt_bearer
        provider: salesforce             # audience https://login.salesforce.com
        issuer: "${CONSUMER_KEY}"
        subject: "${INTEGRATION_USER}"
        privateKey: { file: ./salesforce.key }
        tokenUrl: https://${loginHost}:${port}/services/oauth2/token
        allowedWebsites: ["${instanceHost}:${port}"]
        access: read
`,
);

const execFileAsync = promisify(execFile);

// Asynchronous on purpose: the admin API the CLI calls runs in this process.
async function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync(process.execPath, [CLI, '--data-dir', dataDir, ...args], { encoding: 'utf8', cwd: dir });
}

function heading(text: string): void {
  process.stdout.write(`\n\x1b[1m${text}\x1b[0m\n`);
}

try {
  heading(`1. Agent Proxy runs at ${proxy.proxyUrl}; a Salesforce-compatible org runs on loopback port ${port}.`);

  heading('2. The admin applies a bundle with a JWT bearer credential for channel C0SALES:');
  process.stdout.write((await cli(['apply', '-f', bundlesFile])).stdout);

  heading('3. test-connection mints a token and asks userinfo who it runs as:');
  process.stdout.write((await cli(['test-connection', 'salesforce'])).stdout);

  const soql = 'SELECT Id, Name, LastModifiedDate FROM Opportunity ORDER BY LastModifiedDate DESC LIMIT 5';
  const queryUrl = `https://${instanceHost}:${port}/services/data/v62.0/query?q=${encodeURIComponent(soql)}`;
  heading(`4. A sandbox of ${CHANNEL} runs curl through the proxy; it holds no key and no token:`);
  process.stdout.write(`   agent-proxy run --channel ${CHANNEL} -- curl -sS --fail-with-body '${queryUrl}'\n`);
  const run = await cli(['run', '--channel', CHANNEL, '--', 'curl', '-sS', '--fail-with-body', queryUrl]);
  const result = JSON.parse(run.stdout) as { totalSize: number; records: Array<{ Id: string; Name: string; LastModifiedDate: string }> };
  printTable(result.records);

  await proxy.flushAudit();
  heading('5. The audit log shows the mint under the integration user, and the query it served:');
  process.stdout.write((await cli(['audit', '--since', '10m'])).stdout);
} finally {
  await proxy.stop();
  await salesforce.close();
  rmSync(dir, { recursive: true, force: true });
}

function printTable(records: Array<{ Id: string; Name: string; LastModifiedDate: string }>): void {
  const rows = [['Id', 'Name', 'LastModifiedDate'], ...records.map((record) => [record.Id, record.Name, record.LastModifiedDate])];
  const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) => `   ${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ')}\n`;
  process.stdout.write(line(rows[0]!));
  process.stdout.write(`   ${widths.map((width) => '-'.repeat(width)).join('  ')}\n`);
  for (const row of rows.slice(1)) process.stdout.write(line(row));
}
