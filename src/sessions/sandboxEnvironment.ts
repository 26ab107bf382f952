import type { CreatedSession } from './sessionService.ts';

// Hosts a sandbox reaches without the proxy. curl and wget read only the
// lower-case proxy variables, Go reads the upper-case ones first, so both are set.
const NO_PROXY = 'localhost,127.0.0.1,::1';

/**
 * Builds the environment a sandbox of `session` runs with: the proxy URL with the
 * session in it, and every CA variable common clients read, pointing at a bundle of
 * public roots plus the proxy's CA (these variables replace a client's own roots,
 * so tunnelled hosts must still verify).
 */
export function sandboxEnvironment(session: CreatedSession): Record<string, string> {
  return {
    HTTPS_PROXY: session.proxyUrl,
    https_proxy: session.proxyUrl,
    HTTP_PROXY: session.proxyUrl,
    http_proxy: session.proxyUrl,
    NO_PROXY,
    no_proxy: NO_PROXY,
    SSL_CERT_FILE: session.caBundlePath,
    NODE_EXTRA_CA_CERTS: session.caPath,
    REQUESTS_CA_BUNDLE: session.caBundlePath,
    CURL_CA_BUNDLE: session.caBundlePath,
    GIT_SSL_CAINFO: session.caBundlePath,
    AGENT_PROXY_SESSION: session.id,
  };
}

/** Formats the environment as POSIX shell exports, single-quoted. */
export function formatShellExports(environment: Record<string, string>): string {
  return Object.entries(environment)
    .map(([name, value]) => `export ${name}='${value.replace(/'/g, `'\\''`)}'`)
    .join('\n');
}
