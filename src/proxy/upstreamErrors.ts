import { ProxyError } from '../errors.ts';

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/** Maps an error from dialling or from undici to the proxy error the sandbox sees. */
export function toProxyError(error: unknown, host: string, port: number): ProxyError {
  if (error instanceof ProxyError) {
    return error;
  }

  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof ProxyError) {
    return cause;
  }

  const code = (error as NodeJS.ErrnoException).code ?? '';
  const message = error instanceof Error ? error.message : String(error);
  if (TIMEOUT_CODES.has(code)) {
    return new ProxyError('upstream_timeout', `${host}:${port} did not answer in time (${code}).`, { host, port });
  }
  return new ProxyError('upstream_unreachable', `Agent Proxy could not complete the request to ${host}:${port}: ${message}${code ? ` (${code})` : ''}.`, {
    host,
    port,
  });
}
