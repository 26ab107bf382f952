import { createHmac } from 'node:crypto';
import { parsePrivateKey } from './privateKey.ts';
import type { Bundle, Credential, CredentialSettings, ProxyConfig } from '../domain/types.ts';

/** How a secret field appears outside the proxy: whether it is set, and a fingerprint to compare values by. */
export interface SecretView {
  set: true;
  fingerprint: string;
  /** For a private key: SHA-256 of its public key, to compare with the certificate uploaded to the provider. */
  publicKeyFingerprint?: string;
}

export interface CredentialView {
  id: string;
  name: string;
  type: CredentialSettings['type'];
  settings: Omit<CredentialSettings, 'type'>;
  secrets: Record<string, SecretView>;
  allowedWebsites: string[];
  access: Credential['access'];
  rules: Credential['rules'];
  extraHeaders: Record<string, string>;
}

export interface BundleView {
  id: string;
  name: string;
  description: string;
  channels: string[];
  credentials: CredentialView[];
}

/**
 * Fingerprints a secret with a keyed hash. A plain SHA-256 of a short password
 * could be reversed by guessing; the key stays in the proxy's data directory.
 */
export function fingerprintSecret(value: string, key: Buffer): string {
  return `hmac-sha256:${createHmac('sha256', key).update(value, 'utf8').digest('hex').slice(0, 16)}`;
}

/**
 * Shows a private key by the SHA-256 fingerprints of the key and of its public key.
 * A private key cannot be guessed, so a plain SHA-256 of it gives nothing away.
 */
function privateKeyView(pem: string, fingerprintKey: Buffer): SecretView {
  try {
    const key = parsePrivateKey(pem);
    return { set: true, fingerprint: key.fingerprint, publicKeyFingerprint: key.publicKeyFingerprint };
  } catch {
    return { set: true, fingerprint: fingerprintSecret(pem, fingerprintKey) };
  }
}

/** Returns the credential with every secret value replaced by its `SecretView`. */
export function redactCredential(credential: Credential, fingerprintKey: Buffer): CredentialView {
  const { type, ...settings } = credential.settings;
  const secrets: Record<string, SecretView> = {};
  for (const [field, value] of Object.entries(credential.secrets)) {
    secrets[field] = field === 'privateKey' ? privateKeyView(value, fingerprintKey) : { set: true, fingerprint: fingerprintSecret(value, fingerprintKey) };
  }
  return {
    id: credential.id,
    name: credential.name,
    type,
    settings,
    secrets,
    allowedWebsites: credential.allowedWebsites,
    access: credential.access,
    rules: credential.rules,
    extraHeaders: credential.extraHeaders,
  };
}

export function redactBundle(bundle: Bundle, fingerprintKey: Buffer): BundleView {
  return {
    id: bundle.id,
    name: bundle.name,
    description: bundle.description,
    channels: bundle.channels,
    credentials: bundle.credentials.map((credential) => redactCredential(credential, fingerprintKey)),
  };
}

export function redactConfig(config: ProxyConfig, fingerprintKey: Buffer): { egress: ProxyConfig['egress']; bundles: BundleView[] } {
  return { egress: config.egress, bundles: config.bundles.map((bundle) => redactBundle(bundle, fingerprintKey)) };
}
