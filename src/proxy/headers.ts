// Header rules at the proxy boundary. Hop-by-hop headers (RFC 9110 §7.6.1) belong
// to one connection and are never forwarded; the proxy owns `Proxy-Authorization`
// and every `X-Agent-Proxy-*` header and strips them in both directions, so the
// sandbox cannot pass them upstream and an upstream cannot forge the proxy's errors.

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'proxy-authorization',
  'proxy-authenticate',
]);

export const PROXY_HEADER_PREFIX = 'x-agent-proxy-';

export type HeaderPairs = Array<[string, string]>;

function isProxyOwned(lowerName: string): boolean {
  return lowerName.startsWith(PROXY_HEADER_PREFIX) || lowerName === 'proxy-authorization' || lowerName === 'proxy-authenticate';
}

/** Returns the lower-cased header names that the `Connection` header lists as hop-by-hop. */
function connectionTokens(pairs: HeaderPairs): Set<string> {
  const tokens = new Set<string>();
  for (const [name, value] of pairs) {
    if (name.toLowerCase() === 'connection') {
      for (const token of value.split(',')) {
        const trimmed = token.trim().toLowerCase();
        if (trimmed) tokens.add(trimmed);
      }
    }
  }
  return tokens;
}

/** Turns Node's `rawHeaders` (name, value, name, value …) into pairs, keeping case, order and duplicates. */
export function pairsFromRawHeaders(rawHeaders: readonly string[]): HeaderPairs {
  const pairs: HeaderPairs = [];
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    pairs.push([rawHeaders[index]!, rawHeaders[index + 1]!]);
  }
  return pairs;
}

/**
 * Builds the headers sent upstream: drops hop-by-hop and proxy-owned headers,
 * `Host` (set from the checked target instead, so the client's `Host` never picks
 * the upstream certificate name) and every name in `remove`.
 * `keepUpgrade` keeps the WebSocket handshake headers for an upgrade request.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  options: { host: string; remove?: ReadonlySet<string>; keepUpgrade?: boolean },
): HeaderPairs {
  const pairs = pairsFromRawHeaders(rawHeaders);
  const listed = connectionTokens(pairs);
  const result: HeaderPairs = [['host', options.host]];

  for (const [name, value] of pairs) {
    const lower = name.toLowerCase();
    if (lower === 'host' || isProxyOwned(lower) || options.remove?.has(lower)) {
      continue;
    }
    if (lower === 'te' && value.trim().toLowerCase() === 'trailers') {
      result.push([name, value]);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) {
      continue;
    }
    result.push([name, value]);
  }
  return result;
}

/** Builds the response headers sent to the sandbox from undici's header object. */
export function downstreamResponseHeaders(headers: Record<string, string | string[] | undefined>): HeaderPairs {
  const pairs: HeaderPairs = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      pairs.push([name, item]);
    }
  }

  const listed = connectionTokens(pairs);
  return pairs.filter(([name]) => {
    const lower = name.toLowerCase();
    return !isProxyOwned(lower) && !HOP_BY_HOP.has(lower) && !listed.has(lower);
  });
}

/** Flattens pairs into the `[name, value, name, value …]` array that `res.writeHead` and undici accept. */
export function flattenHeaders(pairs: HeaderPairs): string[] {
  return pairs.flat();
}
