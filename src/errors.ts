// The proxy's own errors: one closed set of codes, one table from code to HTTP
// status. Every refusal the sandbox sees carries the code in `X-Agent-Proxy-Error`
// and an RFC 9457 `application/problem+json` body.

export const PROXY_ERROR_STATUS = {
  proxy_auth_required: 407,
  egress_denied: 403,
  method_not_allowed_by_credential: 403,
  credential_unavailable: 502,
  ambiguous_credential: 409,
  upstream_unreachable: 502,
  upstream_tls_failed: 502,
  upstream_timeout: 504,
  response_not_inspectable: 502,
  misdirected_request: 421,
  bad_request: 400,
  request_header_fields_too_large: 431,
  request_timeout: 408,
  too_many_connections: 429,
  rate_limited: 429,
  internal_error: 500,
} as const satisfies Record<string, number>;

export type ProxyErrorCode = keyof typeof PROXY_ERROR_STATUS;

export const PROXY_ERROR_TITLES: Record<ProxyErrorCode, string> = {
  proxy_auth_required: 'Proxy authentication required',
  egress_denied: 'Egress denied by policy',
  method_not_allowed_by_credential: 'Request not allowed by the credential',
  credential_unavailable: 'Credential unavailable',
  ambiguous_credential: 'Ambiguous credential',
  upstream_unreachable: 'Upstream unreachable',
  upstream_tls_failed: 'Upstream TLS verification failed',
  upstream_timeout: 'Upstream timed out',
  response_not_inspectable: 'Upstream response cannot be inspected',
  misdirected_request: 'Misdirected request',
  bad_request: 'Bad request',
  request_header_fields_too_large: 'Request header fields too large',
  request_timeout: 'Request timed out',
  too_many_connections: 'Too many connections',
  rate_limited: 'Too many failed authentications',
  internal_error: 'Internal proxy error',
};

/** An error the proxy answers the sandbox with. `detail` is shown to the agent and never holds a secret. */
export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  readonly status: number;
  readonly detail: string;
  readonly extensions: Record<string, unknown>;

  constructor(code: ProxyErrorCode, detail: string, extensions: Record<string, unknown> = {}) {
    super(detail);
    this.name = 'ProxyError';
    this.code = code;
    this.status = PROXY_ERROR_STATUS[code];
    this.detail = detail;
    this.extensions = extensions;
  }
}

export interface ProblemResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Renders a ProxyError as an RFC 9457 problem response with the proxy's error header. */
export function problemResponse(error: ProxyError): ProblemResponse {
  const body = JSON.stringify({
    type: `urn:agent-proxy:error:${error.code}`,
    title: PROXY_ERROR_TITLES[error.code],
    status: error.status,
    code: error.code,
    detail: error.detail,
    ...error.extensions,
  });

  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'content-length': String(Buffer.byteLength(body)),
    'x-agent-proxy-error': error.code,
    'cache-control': 'no-store',
  };
  if (error.code === 'proxy_auth_required') {
    headers['proxy-authenticate'] = 'Basic realm="agent-proxy", charset="UTF-8"';
  }
  if (error.code === 'too_many_connections') {
    // RFC 6585 §4: a 429 may say how long to wait. A slot frees as soon as one of the session's connections closes.
    headers['retry-after'] = '1';
  }
  if (error.code === 'rate_limited' && typeof error.extensions['retryAfterSeconds'] === 'number') {
    headers['retry-after'] = String(error.extensions['retryAfterSeconds']);
  }

  return { status: error.status, headers, body };
}
