// One-object edits of the stored configuration for the admin API. Every edit is a
// read-modify-write inside one store transaction followed by the same reload `apply`
// does, so the proxy serves the edited configuration as soon as the request returns.

import type { FastifyRequest } from 'fastify';
import { validateCredentialDocument } from '../config/bundlesFile.ts';
import type { Bundle, Credential, ProxyConfig } from '../domain/types.ts';
import type { Logger } from '../log.ts';
import type { ConfigUpdate, Store } from '../store/store.ts';
import type { AdminAuditLog } from './adminAudit.ts';
import { ApiError, validationError } from './apiError.ts';
import { describeConfigChanges } from './configDiff.ts';

export class ConfigEditor {
  readonly #store: Store;
  readonly #reload: () => Promise<void>;
  readonly #logger: Logger;
  readonly #audit: AdminAuditLog;

  constructor(store: Store, reload: () => Promise<void>, logger: Logger, audit: AdminAuditLog) {
    this.#store = store;
    this.#reload = reload;
    this.#logger = logger;
    this.#audit = audit;
  }

  load(): Promise<ProxyConfig> {
    return this.#store.loadConfig();
  }

  /**
   * Stores what `mutate` makes of the current configuration, reloads the proxy and notes
   * the changed objects and field names for the request's admin audit rows. An ApiError
   * thrown by `mutate` rolls the transaction back and reaches the client.
   */
  async update(request: FastifyRequest, mutate: (config: ProxyConfig) => ProxyConfig | Promise<ProxyConfig>): Promise<ConfigUpdate> {
    // The snapshot `mutate` receives is read inside the write transaction, so the diff
    // below describes exactly this request's change.
    const snapshot: { before?: ProxyConfig } = {};
    const update = await this.#store.updateConfig((current) => {
      snapshot.before = current;
      return mutate(current);
    });
    if (snapshot.before !== undefined) {
      this.#audit.noteChanges(request, describeConfigChanges(snapshot.before, update.config));
    }
    const { created, changed, deleted } = update.changes;
    if (created.length + changed.length + deleted.length > 0) {
      await this.#reload();
      this.#logger.info({ created, changed, deleted }, 'configuration changed through the admin API');
    }
    return update;
  }
}

export function findBundle(config: ProxyConfig, bundleId: string): Bundle {
  const bundle = config.bundles.find((candidate) => candidate.id === bundleId);
  if (bundle === undefined) {
    throw new ApiError('not_found', `Bundle ${JSON.stringify(bundleId)} does not exist; GET /api/v1/bundles lists the bundle ids.`, { field: 'bundleId' });
  }
  return bundle;
}

export function findCredential(config: ProxyConfig, bundleId: string, credentialId: string): { bundle: Bundle; credential: Credential } {
  const bundle = findBundle(config, bundleId);
  const credential = bundle.credentials.find((candidate) => candidate.id === credentialId);
  if (credential === undefined) {
    throw new ApiError(
      'not_found',
      `Credential ${JSON.stringify(credentialId)} does not exist in bundle "${bundle.name}"; GET /api/v1/bundles/${bundle.id}/credentials lists its credentials.`,
      { field: 'credentialId' },
    );
  }
  return { bundle, credential };
}

/** Throws 409 when another bundle than `exceptId` has this name, because `apply` matches bundles by name. */
export function assertBundleNameFree(config: ProxyConfig, name: string, exceptId = ''): void {
  if (config.bundles.some((bundle) => bundle.name === name && bundle.id !== exceptId)) {
    throw new ApiError('conflict', `A bundle named "${name}" already exists; choose another name.`, { field: 'name' });
  }
}

/** Throws 409 when another credential in any bundle has this name, because audit and test-connection select credentials by name. */
export function assertCredentialNameFree(config: ProxyConfig, name: string, exceptId = ''): void {
  for (const bundle of config.bundles) {
    if (bundle.credentials.some((credential) => credential.name === name && credential.id !== exceptId)) {
      throw new ApiError('conflict', `A credential named "${name}" already exists in bundle "${bundle.name}"; credential names are unique across all bundles, so choose another name.`, {
        field: 'name',
      });
    }
  }
}

/** Validates a credential object in bundles-file form; throws 400 listing every issue. */
export function validateCredential(doc: unknown): Credential {
  const result = validateCredentialDocument(doc);
  if (!result.ok) {
    throw validationError('credential', result.issues);
  }
  return result.value;
}

/** Returns the credential in bundles-file form, secrets inline, as the base a PATCH is merged onto. */
export function credentialToDocument(credential: Credential): Record<string, unknown> {
  const { type, ...settings } = credential.settings;
  return {
    name: credential.name,
    type,
    ...settings,
    ...credential.secrets,
    allowedWebsites: credential.allowedWebsites,
    access: credential.access,
    rules: credential.rules,
    extraHeaders: credential.extraHeaders,
  };
}

/** Returns the configuration with `bundleId`'s bundle replaced by what `change` returns. */
export function withBundle(config: ProxyConfig, bundleId: string, change: (bundle: Bundle) => Bundle): ProxyConfig {
  findBundle(config, bundleId);
  return { ...config, bundles: config.bundles.map((bundle) => (bundle.id === bundleId ? change(bundle) : bundle)) };
}
