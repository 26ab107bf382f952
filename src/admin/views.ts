// The JSON shapes the admin API returns for bundles and credentials. Credentials go out
// only through `redactCredential`, so a secret value never reaches a response.

import { redactCredential, type CredentialView as RedactedCredential } from '../credentials/redaction.ts';
import type { Bundle, Credential, ProxyConfig } from '../domain/types.ts';
import type { CredentialActivity, Store } from '../store/store.ts';

export interface BundleSummaryView {
  id: string;
  name: string;
  description: string;
  channels: string[];
  credentialCount: number;
}

export interface ApiCredentialView extends RedactedCredential {
  bundleId: string;
  /** Time of the latest proxied request that carried the credential. */
  lastUsedAt: string | null;
  lastMint: { at: string; status: number | null; decision: string; error: string | null } | null;
}

export interface BundleDetailView extends Omit<BundleSummaryView, 'credentialCount'> {
  credentials: ApiCredentialView[];
}

export class ViewBuilder {
  readonly #store: Store;
  readonly #fingerprintKey: Buffer;

  constructor(store: Store, fingerprintKey: Buffer) {
    this.#store = store;
    this.#fingerprintKey = fingerprintKey;
  }

  bundleSummary(bundle: Bundle): BundleSummaryView {
    return { id: bundle.id, name: bundle.name, description: bundle.description, channels: bundle.channels, credentialCount: bundle.credentials.length };
  }

  async bundleDetail(bundle: Bundle): Promise<BundleDetailView> {
    return { id: bundle.id, name: bundle.name, description: bundle.description, channels: bundle.channels, credentials: await this.credentials(bundle.credentials) };
  }

  async credential(credential: Credential): Promise<ApiCredentialView> {
    const [view] = await this.credentials([credential]);
    return view!;
  }

  async credentials(credentials: Credential[]): Promise<ApiCredentialView[]> {
    const activity = await this.#store.credentialActivity(credentials.map((credential) => credential.name));
    return credentials.map((credential) => this.#credentialView(credential, activity.get(credential.name)));
  }

  #credentialView(credential: Credential, activity: CredentialActivity | undefined): ApiCredentialView {
    const { id, ...redacted } = redactCredential(credential, this.#fingerprintKey);
    const lastMint = activity?.lastMint ?? null;
    return {
      id,
      bundleId: credential.bundleId,
      ...redacted,
      lastUsedAt: activity?.lastUsedAt?.toISOString() ?? null,
      lastMint:
        lastMint === null ? null : { at: lastMint.at.toISOString(), status: lastMint.status, decision: lastMint.decision, error: lastMint.errorCode },
    };
  }
}

/** Returns the credential with this name in the configuration, which `updateConfig` read back with fresh ids. */
export function credentialNamed(config: ProxyConfig, name: string): Credential {
  for (const bundle of config.bundles) {
    const credential = bundle.credentials.find((candidate) => candidate.name === name);
    if (credential) return credential;
  }
  throw new Error(`Credential "${name}" is missing from the configuration just stored; the store did not keep it.`);
}

export function bundleNamed(config: ProxyConfig, name: string): Bundle {
  const bundle = config.bundles.find((candidate) => candidate.name === name);
  if (bundle === undefined) {
    throw new Error(`Bundle "${name}" is missing from the configuration just stored; the store did not keep it.`);
  }
  return bundle;
}
