// Wires one Agent Proxy process: data directory, store, CA, proxy listener and
// admin API. `serve` and the tests start the product through `startAgentProxy`.

import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { buildAdminServer, type ApplyResult } from '../admin/adminServer.ts';
import { ensureBootstrapAdminToken } from '../admin/adminTokens.ts';
import { AuthFailureLimiter } from '../admin/authFailureLimiter.ts';
import { AuditLog } from '../audit/auditLog.ts';
import { validateBundlesDocument } from '../config/bundlesFile.ts';
import { DefaultCredentialInjector, type CredentialInjector } from '../credentials/injection.ts';
import { TokenManager } from '../credentials/oauth/tokenManager.ts';
import { ConnectionTester } from '../credentials/testConnection.ts';
import type { ProxyConfig } from '../domain/types.ts';
import { createLogger, type Logger } from '../log.ts';
import { buildCredentialFromPreset, getPreset, listPresets } from '../presets/presets.ts';
import { compileConfig, type CompiledConfig } from '../policy/compiledConfig.ts';
import { Dialer, systemResolver, type DialerOptions, type HostResolver, type ResolvePin } from '../proxy/dialer.ts';
import { resolveLimits, type ProxyLimits } from '../proxy/limits.ts';
import { ProxyServer } from '../proxy/proxyServer.ts';
import { SandboxRequestHandler } from '../proxy/sandboxRequest.ts';
import { TlsInterceptor } from '../proxy/tlsInterceptor.ts';
import { UpstreamPool } from '../proxy/upstreamPool.ts';
import { WebSocketRelay } from '../proxy/webSocketRelay.ts';
import { SessionAuthenticator } from '../sessions/sessionAuthenticator.ts';
import { SessionService } from '../sessions/sessionService.ts';
import { masterKeySourceFor, type MasterKeySource } from '../secrets/masterKey.ts';
import { openSqliteStore } from '../store/openStore.ts';
import type { ConfigChanges, Store } from '../store/store.ts';
import { loadOrCreateCa } from '../tls/ca.ts';
import { LeafCertificateCache } from '../tls/leafCache.ts';
import {
  ensureDataDirectory,
  loadOrCreateAdminToken,
  removeServerInfo,
  resolveDataDirectory,
  writeCaBundle,
  writeServerInfo,
  type DataDirectory,
} from './dataDir.ts';
import { createMetrics } from './metrics.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface AgentProxyOptions {
  dataDir?: string;
  proxyListen?: ListenAddress;
  adminListen?: ListenAddress;
  /** Validated configuration applied at start (`serve --config`). */
  initialConfig?: ProxyConfig;
  upstreamCaFiles?: string[];
  resolvePins?: ResolvePin[];
  resolver?: HostResolver;
  /** Test hook run before every upstream TCP connect; see DialerOptions.connectGuard. */
  connectGuard?: DialerOptions['connectGuard'];
  logger?: Logger;
  /** Connection, header and body limits that differ from DEFAULT_LIMITS. */
  limits?: Partial<ProxyLimits>;
  /** Master key that wraps the data keys; default `$AGENT_PROXY_MASTER_KEY`, else the data directory's key file. */
  masterKey?: MasterKeySource;
  /** Failed authentications per client address, on each listener, before it answers 429; default 20 in 60 s. */
  authFailureLimit?: { maxFailures: number; windowMs: number };
  /** Writes `server.json` so the CLI finds this server; off for tests that run several servers. */
  writeServerInfo?: boolean;
}

export interface RunningAgentProxy {
  dataDir: DataDirectory;
  proxyAddress: AddressInfo;
  adminAddress: AddressInfo;
  proxyUrl: string;
  adminUrl: string;
  caPath: string;
  adminToken: string;
  adminTokenCreated: boolean;
  store: Store;
  /** Applies a bundles document (secrets already inlined) and reloads the proxy's configuration. */
  apply(doc: unknown, dryRun?: boolean): Promise<ApplyResult>;
  flushAudit(): Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_PROXY_LISTEN: ListenAddress = { host: '127.0.0.1', port: 8080 };
export const DEFAULT_ADMIN_LISTEN: ListenAddress = { host: '127.0.0.1', port: 8081 };

export async function startAgentProxy(options: AgentProxyOptions = {}): Promise<RunningAgentProxy> {
  const logger = options.logger ?? createLogger();
  const dataDir = resolveDataDirectory(options.dataDir);
  ensureDataDirectory(dataDir);

  const { ca, certPath: caPath } = await loadOrCreateCa(dataDir.root);
  writeCaBundle(dataDir, ca.certPem);
  const { token: adminToken, created: adminTokenCreated } = loadOrCreateAdminToken(dataDir);
  const fingerprintKey = createHash('sha256').update(`fingerprint:${adminToken}`).digest();

  const store = await openSqliteStore(dataDir.databasePath, { masterKey: options.masterKey ?? masterKeySourceFor(dataDir.masterKeyPath) });
  await ensureBootstrapAdminToken(store, adminToken, logger);
  const metrics = createMetrics();
  const audit = new AuditLog(store, logger, (event) =>
    metrics.auditEvents.inc({ kind: event.kind, decision: event.decision, error_code: event.errorCode ?? '' }),
  );

  let compiled: CompiledConfig = compileConfig(await store.loadConfig());
  const upstreamCa = (options.upstreamCaFiles ?? []).map((file) => readUpstreamCa(file));
  const dialer = new Dialer({ resolver: options.resolver ?? systemResolver, pins: options.resolvePins ?? [], upstreamCa, connectTimeoutMs: 10_000,
    ...(options.connectGuard ? { connectGuard: options.connectGuard } : {}),
  });
  const pool = new UpstreamPool(dialer, () => compiled.allowedNetworks);
  const tokens = new TokenManager({ pool, store, audit, logger });

  const reload = async (): Promise<void> => {
    compiled = compileConfig(await store.loadConfig());
    const credentialIds = new Set(compiled.credentials.map((entry) => entry.credential.id));
    pool.retain(credentialIds);
    tokens.retain(credentialIds);
    logger.info({ bundles: compiled.source.bundles.length, credentials: compiled.credentials.length }, 'configuration loaded');
  };

  const apply = async (doc: unknown, dryRun = false): Promise<ApplyResult> => {
    const validation = validateBundlesDocument(doc);
    if (!validation.ok) {
      return { ok: false, issues: validation.issues };
    }
    const changes: ConfigChanges = dryRun ? await store.previewConfig(validation.config) : await store.replaceConfig(validation.config);
    if (!dryRun) {
      await reload();
      logger.info({ created: changes.created, changed: changes.changed, deleted: changes.deleted }, 'configuration applied');
    }
    return { ok: true, ...changes };
  };

  if (options.initialConfig) {
    const changes = await store.replaceConfig(options.initialConfig);
    await reload();
    logger.info({ created: changes.created, changed: changes.changed, deleted: changes.deleted }, 'configuration applied from --config');
  }

  const injector: CredentialInjector = new DefaultCredentialInjector(tokens);
  const tester = new ConnectionTester({ injector, dispatcher: (credentialId) => pool.dispatcher(credentialId) });
  const authenticator = new SessionAuthenticator(store);
  const handler = new SandboxRequestHandler({ pool, injector, audit, logger, tokens });
  const webSockets = new WebSocketRelay({ pool, injector, audit, logger });
  const leafCache = new LeafCertificateCache(ca);
  const limits = resolveLimits(options.limits);
  const interceptor = new TlsInterceptor({ leafCache, handler, webSockets, authenticator, logger, config: () => compiled, limits });
  const proxy = new ProxyServer({ config: () => compiled, authenticator, dialer, interceptor, handler, audit, logger, limits,
    onLimitRefusal: (code) => metrics.limitRefusals.inc({ error_code: code }),
    authFailures: new AuthFailureLimiter({ listener: 'proxy', logger, ...options.authFailureLimit }),
  });

  const proxyListen = options.proxyListen ?? DEFAULT_PROXY_LISTEN;
  const proxyAddress = await proxy.listen(proxyListen.host, proxyListen.port);
  const proxyUrl = `http://${urlHost(proxyAddress)}`;
  dialer.protectListener(proxyAddress.address, proxyAddress.port);

  const sessions = new SessionService({ store, authenticator, proxyUrl: () => proxyUrl, caPath, caBundlePath: dataDir.caBundlePath,
    onRevoked: (sessionId) => proxy.closeSession(sessionId),
  });
  let ready = false;
  const admin = buildAdminServer({
    store,
    sessions,
    fingerprintKey,
    caPem: ca.certPem,
    metrics: metrics.registry,
    applyConfig: apply,
    reloadConfig: reload,
    presets: { listPresets, getPreset, buildCredentialFromPreset },
    testConnection: async (name) => {
      const entry = compiled.credentials.find((candidate) => candidate.credential.name === name);
      return entry ? tester.test(entry.bundle, entry.credential) : null;
    },
    ready: () => ready,
    logger,
    ...(options.authFailureLimit ? { authFailureLimit: options.authFailureLimit } : {}),
  });
  const adminListen = options.adminListen ?? DEFAULT_ADMIN_LISTEN;
  try {
    await admin.listen({ host: adminListen.host, port: adminListen.port });
  } catch (error) {
    await proxy.close();
    await store.close();
    throw error;
  }
  const adminAddress = admin.server.address() as AddressInfo;
  const adminUrl = `http://${urlHost(adminAddress)}`;
  dialer.protectListener(adminAddress.address, adminAddress.port);
  ready = true;

  if (options.writeServerInfo ?? false) {
    writeServerInfo(dataDir, { pid: process.pid, proxyUrl, adminUrl, caPath, caBundlePath: dataDir.caBundlePath });
  }
  logger.info({ proxyUrl, adminUrl, caPath, dataDir: dataDir.root }, 'agent proxy started');

  return {
    dataDir,
    proxyAddress,
    adminAddress,
    proxyUrl,
    adminUrl,
    caPath,
    adminToken,
    adminTokenCreated,
    store,
    apply,
    flushAudit: () => audit.flush(),
    async stop() {
      ready = false;
      await proxy.close();
      await admin.close();
      await pool.close();
      await audit.flush();
      await store.close();
      if (options.writeServerInfo) removeServerInfo(dataDir);
      logger.info({}, 'agent proxy stopped');
    },
  };
}

function urlHost(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

function readUpstreamCa(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`--upstream-ca ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); give a PEM file of CA certificates.`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new Error(`--upstream-ca ${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"); give a PEM file of CA certificates.`);
  }
  return text;
}
