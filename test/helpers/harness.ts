// Starts a real Agent Proxy on loopback ports with its own temporary data
// directory, for end-to-end tests.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { pino } from 'pino';
import type { DialerOptions, HostResolver, ResolvePin } from '../../src/proxy/dialer.ts';
import { startAgentProxy, type RunningAgentProxy } from '../../src/runtime/agentProxy.ts';
import type { CreatedSession } from '../../src/sessions/sessionService.ts';

export interface Harness {
  proxy: RunningAgentProxy;
  dir: string;
  /** Calls the admin API with the bootstrap admin token. */
  admin<T = unknown>(method: 'GET' | 'POST' | 'DELETE', apiPath: string, body?: unknown): Promise<{ status: number; body: T }>;
  createSession(channel: string, options?: { thread?: string; ttl?: string }): Promise<CreatedSession>;
  close(): Promise<void>;
}

export async function startHarness(
  options: { upstreamCaPem?: string[]; pins?: ResolvePin[]; config?: unknown; resolver?: HostResolver; connectGuard?: DialerOptions['connectGuard'] } = {},
): Promise<Harness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-test-'));
  const upstreamCaFiles = (options.upstreamCaPem ?? []).map((pem, index) => {
    const file = path.join(dir, `upstream-ca-${index}.pem`);
    writeFileSync(file, pem);
    return file;
  });

  const proxy = await startAgentProxy({
    dataDir: path.join(dir, 'data'),
    proxyListen: { host: '127.0.0.1', port: 0 },
    adminListen: { host: '127.0.0.1', port: 0 },
    upstreamCaFiles,
    resolvePins: options.pins ?? [],
    ...(options.resolver ? { resolver: options.resolver } : {}),
    ...(options.connectGuard ? { connectGuard: options.connectGuard } : {}),
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
  });

  const admin = async <T>(method: 'GET' | 'POST' | 'DELETE', apiPath: string, body?: unknown) => {
    const response = await request(`${proxy.adminUrl}${apiPath}`, {
      method,
      headers: { authorization: `Bearer ${proxy.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.body.text();
    return { status: response.statusCode, body: (text ? JSON.parse(text) : null) as T };
  };

  if (options.config) {
    const applied = await admin('POST', '/api/v1/apply', options.config);
    if (applied.status !== 200) {
      throw new Error(`test configuration rejected: ${JSON.stringify(applied.body)}`);
    }
  }

  return {
    proxy,
    dir,
    admin,
    async createSession(channel, sessionOptions = {}) {
      const created = await admin<CreatedSession>('POST', '/api/v1/sessions', { channel, ...sessionOptions });
      if (created.status !== 201) throw new Error(`session create failed: ${JSON.stringify(created.body)}`);
      return created.body;
    },
    async close() {
      await proxy.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
