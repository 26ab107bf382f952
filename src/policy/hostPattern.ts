// Host patterns: what admins list as a credential's allowed websites and in the egress
// allow list. A pattern is an exact host (`api.example.com`, `10.0.0.5`, `[::1]`) or a
// wildcard over the subdomains of a domain (`*.example.com`), either with an optional port.

import { domainToASCII } from 'node:url';

import { looksLikeIpLiteral, parseIpLiteral } from './ipAddress.ts';

export interface HostPattern {
  /** The text the admin wrote. */
  raw: string;
  /** Whether the pattern is `*.domain`, which matches hosts below `domain` but not `domain` itself. */
  wildcard: boolean;
  /** Lower-case, punycoded host name without a trailing dot, or a canonical IP address without brackets. */
  domain: string;
  /** The only port the pattern matches, or null for the caller's default ports. */
  port: number | null;
}

export class HostPatternError extends Error {
  override name = 'HostPatternError';
}

const MAX_HOST_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;
// After IDNA mapping and punycode, a DNS label holds only these. Underscores are not valid
// in host names by RFC 1123 but appear in real DNS names, so they are accepted.
const ASCII_LABEL = /^[a-z0-9_-]+$/;
// ASCII characters accepted before IDNA mapping. Anything else ASCII (`/`, `#`, `%`, `@`, …)
// is rejected first, because domainToASCII silently cuts a name at `/`, `?` or `#` and
// percent-decodes `%2e`, which would let a host match a pattern it does not equal.
const ASCII_HOST_CHARACTERS = /^[a-z0-9_.-]$/;

/**
 * Normalizes a host name for comparison: lower-case, IDN converted to punycode (UTS #46
 * mapping, as `url.domainToASCII` does), one trailing dot removed, IPv6 brackets removed and
 * IP literals written canonically (`0x7f.1` becomes `127.0.0.1`). Returns '' for a value
 * that is not a valid host, including one with an empty label.
 * Callers should connect to the returned name, so that matching and connecting see the same host.
 */
export function normalizeHost(host: string): string {
  if (host.startsWith('[') || host.includes(':')) {
    const literal = parseIpLiteral(host);
    return literal?.family === 6 ? literal.address : '';
  }

  const lowerCase = host.toLowerCase();
  if (findInvalidAsciiCharacter(lowerCase) !== null) {
    return '';
  }
  let ascii = domainToASCII(lowerCase);
  if (ascii.endsWith('.')) {
    ascii = ascii.slice(0, -1);
  }
  return findHostNameProblem(ascii) === null ? ascii : '';
}

/** Returns the first ASCII character that may not appear in a host name, or null. Non-ASCII is left to IDNA. */
function findInvalidAsciiCharacter(host: string): string | null {
  for (const character of host) {
    if (character.charCodeAt(0) < 0x80 && !ASCII_HOST_CHARACTERS.test(character)) {
      return character;
    }
  }
  return null;
}

/** Describes what is wrong with a punycoded host name without a trailing dot, or returns null when it is valid. */
function findHostNameProblem(name: string): string | null {
  if (name === '') {
    return 'is not a valid host name';
  }
  if (name.length > MAX_HOST_NAME_LENGTH) {
    return `is longer than ${MAX_HOST_NAME_LENGTH} characters`;
  }
  for (const label of name.split('.')) {
    if (label === '') {
      return 'has an empty label; remove the extra dot';
    }
    if (label.length > MAX_LABEL_LENGTH) {
      return `has the label "${label}", which is longer than ${MAX_LABEL_LENGTH} characters`;
    }
    if (!ASCII_LABEL.test(label)) {
      return 'is not a valid host name';
    }
  }
  return null;
}

/**
 * Parses a host pattern as an admin writes it: `api.example.com`, `*.example.com`,
 * `api.example.com:8443`, `10.0.0.5`, `[::1]:8443`. Throws HostPatternError naming the
 * problem and the fix for URLs, paths, misplaced wildcards, wildcards over a top-level
 * domain, empty labels, invalid characters and ports outside 1-65535.
 */
export function parseHostPattern(input: string): HostPattern {
  const raw = input;
  const text = input.trim();
  if (text === '') {
    throw new HostPatternError('host pattern is empty; give a host name such as "api.example.com"');
  }
  if (text.includes('://')) {
    throw new HostPatternError(describeUrl(raw, text));
  }
  if (text.includes('/')) {
    throw new HostPatternError(`"${raw}" contains a path; give the host name only`);
  }

  const { host, port } = splitPort(raw, text);

  if (host.startsWith('[') || host.includes(':')) {
    const literal = parseIpLiteral(host);
    if (literal?.family !== 6) {
      throw new HostPatternError(`"${raw}" is not a valid IPv6 address; write it as "[2001:db8::1]" or "[2001:db8::1]:8443"`);
    }
    return { raw, wildcard: false, domain: literal.address, port };
  }

  if (host.startsWith('.')) {
    throw new HostPatternError(
      `"${raw}" starts with a dot; write "*${host}" for its subdomains or "${host.slice(1)}" for the domain itself`,
    );
  }
  const wildcard = host.startsWith('*.');
  const name = wildcard ? host.slice(2) : host;
  checkWildcardPlacement(raw, host, name);

  if (looksLikeIpLiteral(name)) {
    const literal = parseIpLiteral(name);
    if (literal === null) {
      throw new HostPatternError(`"${raw}" ends in a number but is not a valid IPv4 address; give a host name or an address such as "10.0.0.5"`);
    }
    if (wildcard) {
      throw new HostPatternError(`"${raw}" puts a wildcard on an IP address; give the address alone ("${literal.address}")`);
    }
    // Short and octal forms are legal but easy to misread (`10.1` is 10.0.0.1), so a pattern must spell the address out.
    if (name.replace(/\.$/, '') !== literal.address) {
      throw new HostPatternError(`"${raw}" is an unusual spelling of ${literal.address}; write "${literal.address}"`);
    }
    return { raw, wildcard: false, domain: literal.address, port };
  }

  const domain = normalizePatternDomain(raw, name);
  if (wildcard && !domain.includes('.')) {
    throw new HostPatternError(`"${raw}" is a wildcard over a top-level domain; name a domain under it`);
  }
  return { raw, wildcard, domain, port };
}

function describeUrl(raw: string, text: string): string {
  let host = '';
  try {
    host = new URL(text).host;
  } catch {
    // An unparsable URL gets the message without a suggestion.
  }
  return host === '' ? `"${raw}" is a URL; give the host name only` : `"${raw}" is a URL; give the host name (${host})`;
}

/** Splits off a `:port` suffix. A colon inside brackets, or in an unbracketed IPv6 address, is not a port separator. */
function splitPort(raw: string, text: string): { host: string; port: number | null } {
  let host = text;
  let portText: string | null = null;

  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) {
      throw new HostPatternError(`"${raw}" has "[" without "]"; write an IPv6 address as "[2001:db8::1]"`);
    }
    host = text.slice(0, close + 1);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) {
        throw new HostPatternError(`"${raw}" has text after "]"; only ":port" may follow an IPv6 address`);
      }
      portText = rest.slice(1);
    }
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 1) {
      const colon = text.indexOf(':');
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
  }

  if (portText === null) {
    return { host, port: null };
  }
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new HostPatternError(`"${raw}" has the invalid port "${portText}"; give a port from 1 to 65535`);
  }
  return { host, port };
}

function checkWildcardPlacement(raw: string, host: string, name: string): void {
  if (host === '*') {
    throw new HostPatternError(`"${raw}" matches every host; use the egress default instead`);
  }
  const labels = host.split('.');
  const firstLabel = labels[0] ?? '';
  if (firstLabel !== '*' && firstLabel.includes('*')) {
    throw new HostPatternError(`"${raw}" has the invalid wildcard label "${firstLabel}"; only "*.domain" is supported`);
  }
  if (name.includes('*')) {
    throw new HostPatternError(`"${raw}" has a wildcard that is not the first label; only "*.domain" is supported`);
  }
}

function normalizePatternDomain(raw: string, name: string): string {
  const invalid = findInvalidAsciiCharacter(name.toLowerCase());
  if (invalid !== null) {
    throw new HostPatternError(`"${raw}" contains the character ${JSON.stringify(invalid)}, which is not allowed in a host name`);
  }

  let domain = domainToASCII(name.toLowerCase());
  if (domain === '') {
    throw new HostPatternError(`"${raw}" is not a valid host name; check it for invalid characters or an invalid "xn--" label`);
  }
  if (domain.endsWith('.')) {
    domain = domain.slice(0, -1);
  }
  const problem = findHostNameProblem(domain);
  if (problem !== null) {
    throw new HostPatternError(`"${raw}" ${problem}`);
  }
  return domain;
}

/**
 * Returns whether `host` on `port` matches the pattern. The host is normalized first and
 * never matches when invalid. An exact pattern matches that host only. `*.example.com`
 * matches hosts one or more labels below example.com, never example.com itself and never
 * an IP address. A pattern without a port matches only the ports in `defaultPorts`
 * (callers pass [443] for credentials on HTTPS, [80, 443] for the egress allow list).
 */
export function matchHostPattern(
  pattern: HostPattern,
  host: string,
  port: number,
  defaultPorts: readonly number[],
): boolean {
  const portMatches = pattern.port === null ? defaultPorts.includes(port) : pattern.port === port;
  if (!portMatches) {
    return false;
  }

  const normalized = normalizeHost(host);
  if (normalized === '') {
    return false;
  }
  if (!pattern.wildcard) {
    return normalized === pattern.domain;
  }
  if (parseIpLiteral(normalized) !== null) {
    return false;
  }
  // The leading dot keeps `*.example.com` from matching `evilexample.com`, and
  // normalizeHost has already rejected empty labels, so the prefix is at least one label.
  return normalized.endsWith(`.${pattern.domain}`);
}

/**
 * Ranks patterns so that, when several match one host, the highest number is the most
 * specific. Any exact host ranks above any wildcard. Between wildcards, more labels in the
 * domain rank higher (`*.api.example.com` above `*.example.com`). An explicit port ranks
 * above the same pattern without one, and never outweighs a difference in the above.
 */
export function patternSpecificity(pattern: HostPattern): number {
  // A 253-character name has at most 127 labels, so every exact host outranks every wildcard.
  const exactHostRank = 128;
  const hostRank = pattern.wildcard ? pattern.domain.split('.').length : exactHostRank;
  const portRank = pattern.port === null ? 0 : 1;
  return hostRank * 2 + portRank;
}
