// Names the objects and fields that differ between two configuration snapshots, for the
// admin audit trail. Only names leave this module: secret values are compared for
// equality and never copied into the result.

import type { Bundle, Credential, ProxyConfig } from '../domain/types.ts';
import { canonicalJson } from '../store/sqlStore.ts';

/** One created, changed or deleted object, named as `replaceConfig` names it. */
export interface TargetChange {
  target: string;
  change: 'created' | 'changed' | 'deleted';
  /** Field names that the change set (created), changed, or that the object had (deleted: none). */
  fields: string[];
}

/**
 * Compares two snapshots by object id, which `updateConfig` and `replaceConfig` keep for
 * an object that still exists, so a renamed or moved credential is one change, not a
 * deletion and a creation. Targets are `egress`, `bundle/NAME` and
 * `bundle/NAME/credential/NAME`, with the names after the change, sorted by target.
 */
export function describeConfigChanges(before: ProxyConfig, after: ProxyConfig): TargetChange[] {
  const changes: TargetChange[] = [];

  const egressFields = changedKeys(before.egress, after.egress);
  if (egressFields.length > 0) {
    changes.push({ target: 'egress', change: 'changed', fields: egressFields });
  }

  const oldBundles = new Map(before.bundles.map((bundle) => [bundle.id, bundle]));
  const newBundleIds = new Set(after.bundles.map((bundle) => bundle.id));
  for (const bundle of after.bundles) {
    const old = oldBundles.get(bundle.id);
    if (old === undefined) {
      changes.push({ target: bundleTarget(bundle), change: 'created', fields: ['channels', 'description', 'name'] });
      continue;
    }
    const fields = changedKeys(bundleFields(old), bundleFields(bundle));
    if (fields.length > 0) {
      changes.push({ target: bundleTarget(bundle), change: 'changed', fields });
    }
  }
  for (const bundle of before.bundles) {
    if (!newBundleIds.has(bundle.id)) {
      changes.push({ target: bundleTarget(bundle), change: 'deleted', fields: [] });
    }
  }

  const oldCredentials = credentialsById(before);
  const newCredentials = credentialsById(after);
  for (const [id, { bundle, credential }] of newCredentials) {
    const old = oldCredentials.get(id);
    const target = `${bundleTarget(bundle)}/credential/${credential.name}`;
    if (old === undefined) {
      changes.push({ target, change: 'created', fields: Object.keys(credentialFields(credential, bundle)).sort() });
      continue;
    }
    const fields = changedKeys(credentialFields(old.credential, old.bundle), credentialFields(credential, bundle));
    if (fields.length > 0) {
      changes.push({ target, change: 'changed', fields });
    }
  }
  for (const [id, { bundle, credential }] of oldCredentials) {
    if (!newCredentials.has(id)) {
      changes.push({ target: `${bundleTarget(bundle)}/credential/${credential.name}`, change: 'deleted', fields: [] });
    }
  }

  return changes.sort((a, b) => compareTargets(a.target, b.target));
}

function compareTargets(a: string, b: string): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

function bundleTarget(bundle: Bundle): string {
  return `bundle/${bundle.name}`;
}

function bundleFields(bundle: Bundle): Record<string, unknown> {
  return { name: bundle.name, description: bundle.description, channels: bundle.channels };
}

/** Returns the credential's fields under their bundles-file names, plus `bundle`, which changes when it moves. */
function credentialFields(credential: Credential, bundle: Bundle): Record<string, unknown> {
  const { type, ...settings } = credential.settings;
  const fields: Record<string, unknown> = {
    name: credential.name,
    bundle: bundle.name,
    type,
    ...settings,
    ...credential.secrets,
    allowedWebsites: credential.allowedWebsites,
    access: credential.access,
  };
  if (credential.rules.length > 0) fields['rules'] = credential.rules;
  if (Object.keys(credential.extraHeaders).length > 0) fields['extraHeaders'] = credential.extraHeaders;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) delete fields[key];
  }
  return fields;
}

function credentialsById(config: ProxyConfig): Map<string, { bundle: Bundle; credential: Credential }> {
  const byId = new Map<string, { bundle: Bundle; credential: Credential }>();
  for (const bundle of config.bundles) {
    for (const credential of bundle.credentials) {
      byId.set(credential.id, { bundle, credential });
    }
  }
  return byId;
}

/** Returns the sorted names of the keys whose values differ, added and removed keys included. */
function changedKeys(before: object, after: object): string[] {
  const oldValues = before as Record<string, unknown>;
  const newValues = after as Record<string, unknown>;
  const keys = new Set([...Object.keys(oldValues), ...Object.keys(newValues)]);
  return [...keys].filter((key) => canonicalJson(oldValues[key] ?? null) !== canonicalJson(newValues[key] ?? null)).sort();
}
