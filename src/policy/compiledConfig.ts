import type { Bundle, Credential, EgressPolicy, ProxyConfig } from '../domain/types.ts';
import { parseHostPattern, type HostPattern } from './hostPattern.ts';
import { parseCidr, type Cidr } from './ipAddress.ts';

export interface CompiledCredential {
  credential: Credential;
  bundle: Bundle;
  patterns: HostPattern[];
}

/** The configuration with every host pattern and CIDR parsed once, so deciding a request parses nothing. */
export interface CompiledConfig {
  source: ProxyConfig;
  egress: EgressPolicy;
  egressAllow: HostPattern[];
  allowedNetworks: Cidr[];
  credentials: CompiledCredential[];
}

/** Parses a validated configuration; throws only if the store holds a pattern that validation would reject. */
export function compileConfig(config: ProxyConfig): CompiledConfig {
  const credentials: CompiledCredential[] = [];
  for (const bundle of config.bundles) {
    for (const credential of bundle.credentials) {
      credentials.push({ credential, bundle, patterns: credential.allowedWebsites.map(parseHostPattern) });
    }
  }

  return {
    source: config,
    egress: config.egress,
    egressAllow: config.egress.allow.map(parseHostPattern),
    allowedNetworks: config.egress.allowPrivateNetworks.map(parseCidr),
    credentials,
  };
}

export function bundleCoversChannel(bundle: Bundle, channel: string): boolean {
  return bundle.channels.includes('*') || bundle.channels.includes(channel);
}
