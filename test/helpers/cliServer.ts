// Runs the real CLI as child processes: `agent-proxy serve` on loopback ports with
// its own data directory, and one-shot commands such as `agent-proxy run` against it.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { ServerInfo } from '../../src/runtime/dataDir.ts';

export const REPOSITORY_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI_PATH = path.join(REPOSITORY_ROOT, 'bin', 'agent-proxy.js');
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

export interface CliServer {
  /** Temporary directory that contains the data directory and the files passed to `serve`. */
  dir: string;
  dataDir: string;
  info: ServerInfo;
  adminToken: string;
  /** Calls the admin API with the bootstrap admin token. */
  admin<T = unknown>(method: 'GET' | 'POST' | 'DELETE', apiPath: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** Runs `agent-proxy --data-dir DIR ARGS…` to completion and returns its output and exit code. */
  cli(args: string[], options?: { env?: NodeJS.ProcessEnv }): Promise<CliResult>;
  stop(): Promise<void>;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliServerOptions {
  /** Bundles document written to a JSON file and passed as `serve --config`. */
  config?: unknown;
  upstreamCaPem?: string;
  /** `HOST:PORT:ADDR` values for `serve --resolve`. */
  resolve?: string[];
}

/**
 * Starts `agent-proxy serve` as a child process on ports the system picks, and waits
 * until it has written `server.json`, which is how the CLI finds a running server.
 */
export async function startCliServer(options: CliServerOptions = {}): Promise<CliServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-cli-'));
  const dataDir = path.join(dir, 'data');
  const args = ['--data-dir', dataDir, 'serve', '--proxy-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'];

  if (options.config !== undefined) {
    const configPath = path.join(dir, 'bundles.json');
    writeFileSync(configPath, JSON.stringify(options.config));
    args.push('--config', configPath);
  }
  if (options.upstreamCaPem !== undefined) {
    const caPath = path.join(dir, 'upstream-ca.pem');
    writeFileSync(caPath, options.upstreamCaPem);
    args.push('--upstream-ca', caPath);
  }
  for (const pin of options.resolve ?? []) {
    args.push('--resolve', pin);
  }

  const child = spawn(process.execPath, [CLI_PATH, ...args], { cwd: REPOSITORY_ROOT, env: cleanEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));

  const serverInfoPath = path.join(dataDir, 'server.json');
  try {
    await waitFor(() => existsSync(serverInfoPath) || child.exitCode !== null, START_TIMEOUT_MS);
  } catch (error) {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`agent-proxy serve did not start within ${START_TIMEOUT_MS} ms; output:\n${output}`, { cause: error });
  }
  if (child.exitCode !== null) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`agent-proxy serve exited with code ${child.exitCode} before it was ready; output:\n${output}`);
  }

  const info = JSON.parse(readFileSync(serverInfoPath, 'utf8')) as ServerInfo;
  const adminToken = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();

  const admin = async <T>(method: 'GET' | 'POST' | 'DELETE', apiPath: string, body?: unknown) => {
    const response = await request(`${info.adminUrl}${apiPath}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.body.text();
    return { status: response.statusCode, body: (text ? JSON.parse(text) : null) as T };
  };

  return {
    dir,
    dataDir,
    info,
    adminToken,
    admin,
    cli: (cliArgs, cliOptions = {}) => runCli(['--data-dir', dataDir, ...cliArgs], cliOptions.env),
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the CLI with `args` and collects its output. Inherits no AGENT_PROXY_* variable from the test process. */
export function runCli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    cwd: REPOSITORY_ROOT,
    env: { ...cleanEnvironment(), ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));

  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/**
 * Returns the test process's environment without the variables that would point the
 * CLI or a client elsewhere: AGENT_PROXY_* and every proxy and CA variable.
 */
function cleanEnvironment(): NodeJS.ProcessEnv {
  const environment: NodeJS.ProcessEnv = {};
  const dropped = /^(AGENT_PROXY_|HTTPS?_PROXY$|ALL_PROXY$|NO_PROXY$|SSL_CERT_|NODE_EXTRA_CA_CERTS$|REQUESTS_CA_BUNDLE$|CURL_CA_BUNDLE$|GIT_SSL_CAINFO$)/i;
  for (const [name, value] of Object.entries(process.env)) {
    if (!dropped.test(name)) environment[name] = value;
  }
  environment.AGENT_PROXY_LOG_LEVEL = process.env.TEST_LOG_LEVEL ?? 'warn';
  return environment;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
