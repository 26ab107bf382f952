// Dependencies and helpers shared by the route modules of the admin API.

import type { Registry } from 'prom-client';
import type { ConnectionTestResult } from '../credentials/testConnection.ts';
import type { Logger } from '../log.ts';
import type { SessionService } from '../sessions/sessionService.ts';
import type { Store } from '../store/store.ts';
import type { AdminAuditLog } from './adminAudit.ts';
import type { AdminTokenService } from './adminTokens.ts';
import type { ConfigEditor } from './configEditor.ts';
import type { PresetCatalogue } from './routes/presets.ts';
import type { ViewBuilder } from './views.ts';

export type ApplyResult =
  | { ok: true; created: string[]; changed: string[]; deleted: string[] }
  | { ok: false; issues: { path: string; message: string }[] };

export interface AdminServerDeps {
  store: Store;
  sessions: SessionService;
  fingerprintKey: Buffer;
  caPem: string;
  metrics: Registry;
  /** Applies a validated configuration and reloads the proxy's snapshot. */
  applyConfig: (doc: unknown, dryRun: boolean) => Promise<ApplyResult>;
  /** Reloads the proxy's compiled configuration from the store after an admin API edit. */
  reloadConfig: () => Promise<void>;
  /** Runs test-connection for a credential by name; null when no credential has that name. */
  testConnection: (credentialName: string) => Promise<ConnectionTestResult | null>;
  /** The preset catalogue; without it the preset routes return 404. */
  presets?: PresetCatalogue;
  ready: () => boolean;
  logger: Logger;
  /** Failed authentications per client address before the admin API answers 429; default 20 a minute. */
  authFailureLimit?: { maxFailures: number; windowMs: number };
}

export interface RouteContext {
  deps: AdminServerDeps;
  editor: ConfigEditor;
  views: ViewBuilder;
  audit: AdminAuditLog;
  tokens: AdminTokenService;
}
