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

/**
 * Returns why a request's framing is ambiguous, or null when it is not. Node's parser
 * already rejects Content-Length with Transfer-Encoding, repeated Content-Length and a
 * coding list that does not end in `chunked`; it still accepts codings before
 * `chunked` (`gzip, chunked`, `identity, chunked`) and Transfer-Encoding on HTTP/1.0.
 * A proxy that removes the chunked coding and forwards the rest would let the sandbox
 * and the upstream disagree on where the body ends, so both are refused: RFC 9112
 * §6.1 says HTTP/1.0 with Transfer-Encoding has faulty framing, and no client needs a
 * transfer coding other than `chunked` (RFC 9112 §7).
 */
export function ambiguousFramingReason(req: { httpVersion: string; headers: Record<string, string | string[] | undefined> }): string | null {
  const transferEncoding = req.headers['transfer-encoding'];
  if (transferEncoding === undefined) {
    return null;
  }
  if (req.httpVersion === '1.0') {
    return 'an HTTP/1.0 request carries Transfer-Encoding, which HTTP/1.0 does not define';
  }
  const value = Array.isArray(transferEncoding) ? transferEncoding.join(',') : transferEncoding;
  if (value.trim().toLowerCase() !== 'chunked') {
    return `Transfer-Encoding ${JSON.stringify(value.slice(0, 100))} is not exactly "chunked"`;
  }
  return null;
}

/**
 * Returns why an `Upgrade` request is refused, or null for a WebSocket handshake the
 * proxy relays. `h2c` is refused everywhere: RFC 9113 §3.1 retired the HTTP/1.1
 * upgrade to HTTP/2, and a proxy that switched protocols on a request it checked as
 * HTTP/1.1 would lose sight of the requests that follow (h2c smuggling). A WebSocket
 * handshake is a GET without a body (RFC 6455 §4.1); anything else that asks to
 * switch protocols is refused instead of being forwarded as a plain request.
 */
export function upgradeRefusalReason(req: { method?: string | undefined; headers: Record<string, string | string[] | undefined> }): string | null {
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined) {
    return null;
  }
  const protocols = upgradeProtocols(upgrade);
  if (asksForHttp2(req.headers)) {
    return 'an upgrade to HTTP/2 (h2c) is not supported; use HTTP/1.1 or TLS with ALPN';
  }
  if (protocols.length !== 1 || protocols[0] !== 'websocket') {
    return `the upgrade to ${JSON.stringify(protocols.join(', ').slice(0, 100))} is not supported; only "websocket" is relayed`;
  }
  if (req.method !== 'GET') {
    return `a WebSocket handshake must use GET, not ${req.method ?? 'no method'}`;
  }
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
    return 'a WebSocket handshake must not carry a body';
  }
  return null;
}

function upgradeProtocols(upgrade: string | string[]): string[] {
  return (Array.isArray(upgrade) ? upgrade.join(',') : upgrade).split(',').map((token) => token.trim().toLowerCase());
}

/** Returns whether an `Upgrade` header asks for HTTP/2 (`h2c`, or `h2`, which is defined for TLS only). */
export function asksForHttp2(headers: Record<string, string | string[] | undefined>): boolean {
  const upgrade = headers.upgrade;
  return upgrade !== undefined && upgradeProtocols(upgrade).some((protocol) => /^h2c?(\/|$)/.test(protocol));
}
