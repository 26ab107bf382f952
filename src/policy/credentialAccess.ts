import type { Credential, CredentialRule } from '../domain/types.ts';
import { ProxyError } from '../errors.ts';

// RFC 9110 §9.2.1 safe methods: what `access: read` allows.
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Checks a request against a credential's access and rules. `path` is the
 * normalised path without its query, as it will be sent upstream. Returns null
 * when allowed, or the refusal to send.
 */
export function checkCredentialAccess(credential: Credential, method: string, path: string): ProxyError | null {
  if (credential.access === 'read' && !READ_METHODS.has(method)) {
    return new ProxyError(
      'method_not_allowed_by_credential',
      `Credential "${credential.name}" is read-only: it allows GET, HEAD and OPTIONS, not ${method} ${path}. ` +
        'The request was not sent upstream. Ask the Agent Proxy administrator for read_write access if this change is intended.',
      { credential: credential.name, method, path },
    );
  }

  if (credential.rules.length > 0 && !credential.rules.some((rule) => ruleAllows(rule, method, path))) {
    return new ProxyError(
      'method_not_allowed_by_credential',
      `Credential "${credential.name}" has rules that do not allow ${method} ${path}. ` +
        'The request was not sent upstream. Ask the Agent Proxy administrator to extend the credential\'s rules if this request is intended.',
      { credential: credential.name, method, path },
    );
  }

  return null;
}

function ruleAllows(rule: CredentialRule, method: string, path: string): boolean {
  if (rule.methods && rule.methods.length > 0 && !rule.methods.includes(method)) {
    return false;
  }
  if (rule.paths && rule.paths.length > 0 && !rule.paths.some((pattern) => pathMatches(pattern, path))) {
    return false;
  }
  return true;
}

/**
 * Matches a path against a rule pattern: `*` matches exactly one path segment,
 * a final `**` matches any remaining segments (including none), everything else
 * matches literally.
 */
export function pathMatches(pattern: string, path: string): boolean {
  const patternSegments = pattern.split('/');
  const pathSegments = path.split('/');

  for (let index = 0; index < patternSegments.length; index++) {
    const expected = patternSegments[index]!;
    if (expected === '**' && index === patternSegments.length - 1) {
      return pathSegments.length >= index;
    }

    const actual = pathSegments[index];
    if (actual === undefined) {
      return false;
    }
    if (expected === '*') {
      if (actual === '') {
        return false;
      }
      continue;
    }
    if (expected !== actual) {
      return false;
    }
  }
  return patternSegments.length === pathSegments.length;
}
