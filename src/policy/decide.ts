// The proxy's policy as pure functions: no socket, DNS or database. The dialer
// applies the address checks after resolution; everything decidable from names
// alone is decided here, with the reason that goes into the audit event.

import type { Bundle, Credential } from '../domain/types.ts';
import { ProxyError } from '../errors.ts';
import { bundleCoversChannel, type CompiledConfig, type CompiledCredential } from './compiledConfig.ts';
import { matchHostPattern, patternSpecificity } from './hostPattern.ts';

export interface TargetRequest {
  channel: string;
  /** Normalised host name or canonical IP literal. */
  host: string;
  port: number;
  scheme: 'https' | 'http';
}

export type TargetDecision =
  | { kind: 'intercept'; bundle: Bundle; credential: Credential; reason: string }
  | { kind: 'tunnel'; reason: string }
  | { kind: 'deny'; error: ProxyError };

const HTTPS_DEFAULT_PORTS = [443] as const;
const EGRESS_DEFAULT_PORTS = [80, 443] as const;

/**
 * Decides what the proxy does with a target: intercept it with one credential,
 * relay it untouched, or refuse it. A credential is only ever chosen for HTTPS,
 * because it must never travel in clear text.
 */
export function decideTarget(config: CompiledConfig, target: TargetRequest): TargetDecision {
  if (target.scheme === 'https') {
    const matching = matchingCredentials(config, target);
    const chosen = chooseCredential(matching, target);
    if (chosen instanceof ProxyError) {
      return { kind: 'deny', error: chosen };
    }
    if (chosen) {
      return {
        kind: 'intercept',
        bundle: chosen.bundle,
        credential: chosen.credential,
        reason: `credential "${chosen.credential.name}" of bundle "${chosen.bundle.name}" is allowed on ${target.host}`,
      };
    }
  }

  if (config.egress.default === 'allow') {
    return { kind: 'tunnel', reason: 'egress default is allow' };
  }
  const allowed = config.egressAllow.find((pattern) => matchHostPattern(pattern, target.host, target.port, EGRESS_DEFAULT_PORTS));
  if (allowed) {
    return { kind: 'tunnel', reason: `egress allow list contains ${allowed.raw}` };
  }

  return {
    kind: 'deny',
    error: new ProxyError(
      'egress_denied',
      `Agent Proxy policy does not allow connections to ${target.host}:${target.port}: the egress default is deny and the host is not on the allow list. ` +
        'This is a policy decision, not a network fault; ask the Agent Proxy administrator to add the host to the egress allow list or to a credential of a bundle that covers this channel.',
      { host: target.host, port: target.port, reason: 'not_on_allow_list' },
    ),
  };
}

interface CredentialMatch {
  compiled: CompiledCredential;
  specificity: number;
}

function matchingCredentials(config: CompiledConfig, target: TargetRequest): CredentialMatch[] {
  const matches: CredentialMatch[] = [];
  for (const compiled of config.credentials) {
    if (!bundleCoversChannel(compiled.bundle, target.channel)) {
      continue;
    }

    let best = -1;
    for (const pattern of compiled.patterns) {
      if (matchHostPattern(pattern, target.host, target.port, HTTPS_DEFAULT_PORTS)) {
        best = Math.max(best, patternSpecificity(pattern));
      }
    }
    if (best >= 0) {
      matches.push({ compiled, specificity: best });
    }
  }
  return matches;
}

/** Picks the most specific match; two equally specific matches are refused rather than guessed. */
function chooseCredential(matches: CredentialMatch[], target: TargetRequest): CompiledCredential | ProxyError | null {
  if (matches.length === 0) {
    return null;
  }

  const sorted = [...matches].sort((a, b) => b.specificity - a.specificity);
  const first = sorted[0]!;
  const second = sorted[1];
  if (second && second.specificity === first.specificity) {
    const names = [first, second].map((match) => `"${match.compiled.credential.name}" (bundle "${match.compiled.bundle.name}")`);
    return new ProxyError(
      'ambiguous_credential',
      `Two credentials in scope for this channel match ${target.host} equally: ${names.join(' and ')}. ` +
        'Agent Proxy will not guess which one to use; ask the Agent Proxy administrator to narrow the allowed websites of one of them.',
      { host: target.host, credentials: [first.compiled.credential.name, second.compiled.credential.name] },
    );
  }
  return first.compiled;
}
