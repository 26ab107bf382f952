// The admin API client. After login the browser keeps an HttpOnly session cookie,
// and every state-changing request also sends the CSRF token the server issued.

export interface ApiIssue {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | undefined,
    readonly issues: ApiIssue[],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let csrfToken: string | null = null;
const unauthorizedListeners = new Set<() => void>();

/** Registers a callback for a 401 on any call, which means the session has ended. */
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Sends one request to /api/v1 and returns the parsed JSON body, or throws ApiError. */
export async function api<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;

  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (error) {
    throw new ApiError(0, 'network_error', `The admin server could not be reached (${(error as Error).message}).`, undefined, []);
  }

  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }

  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string; field?: string; issues?: ApiIssue[] } } | null)?.error;
    if (response.status === 401 && path !== '/login') {
      for (const listener of unauthorizedListeners) listener();
    }
    throw new ApiError(
      response.status,
      error?.code ?? 'http_error',
      error?.message ?? `The admin API answered ${response.status} ${response.statusText}.`,
      error?.field,
      error?.issues ?? [],
    );
  }
  return parsed as T;
}

/** Builds a query string from the non-empty values, or returns an empty string. */
export function queryString(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * Groups an error's issues by form field. An issue path such as `allowedWebsites[0]`
 * or `credentials[0].privateKey` belongs to the last of its segments that names a field
 * of the form. Issues that name no field go under the empty key, shown above the form.
 */
export function issuesByField(error: ApiError, fieldNames: readonly string[]): Record<string, string[]> {
  const known = new Set(fieldNames);
  const grouped: Record<string, string[]> = {};
  const issues = error.issues.length > 0 ? error.issues : [{ path: error.field ?? '', message: error.message }];
  for (const issue of issues) {
    const segments = issue.path.split(/[.[\]]+/).filter((segment) => segment !== '' && !/^\d+$/.test(segment));
    const field = [...segments].reverse().find((segment) => known.has(segment)) ?? '';
    (grouped[field] ??= []).push(issue.message);
  }
  return grouped;
}

// Shapes of the admin API's bodies that the console reads.

export interface BundleSummary {
  id: string;
  name: string;
  description: string;
  channels: string[];
  credentialCount: number;
}

export interface SecretView {
  set: boolean;
  fingerprint: string;
  publicKeyFingerprint?: string;
}

export interface CredentialView {
  id: string;
  bundleId: string;
  name: string;
  type: string;
  settings: Record<string, unknown>;
  secrets: Record<string, SecretView>;
  allowedWebsites: string[];
  access: 'read' | 'read_write';
  rules: { methods?: string[]; paths?: string[] }[];
  extraHeaders: Record<string, string>;
  lastUsedAt: string | null;
  lastMint: { at: string; status: number | null; decision: string; error: string | null } | null;
}

export interface BundleDetail extends BundleSummary {
  credentials: CredentialView[];
}

export interface TestConnectionResult {
  ok: boolean;
  credential: string;
  type: string;
  token: { subject: string | null; instanceUrl: string | null; expiresAt: string | null } | null;
  probe: { url: string; status: number; identity: Record<string, string> | null } | null;
  warnings: string[];
  error: { code: string; message: string; providerError?: string | null; providerErrorDescription?: string | null; hint?: string | null } | null;
}

export interface PresetField {
  name: string;
  label: string;
  help: string;
  example?: string;
  pattern?: string;
  secret: boolean;
  required: boolean;
  kind: 'text' | 'secret' | 'pem' | 'select' | 'textarea';
  options?: { value: string; label: string }[];
}

export interface Preset {
  id: string;
  name: string;
  description: string;
  type: string;
  setupGuideUrl: string;
  fields: PresetField[];
}

export interface SessionView {
  id: string;
  channel: string;
  thread: string | null;
  createdAt: string;
  expiresAt: string;
}

export interface AuditEventView {
  id: number;
  time: string;
  kind: string;
  decision: string;
  errorCode: string | null;
  sessionId: string | null;
  channel: string | null;
  bundle: string | null;
  credential: string | null;
  method: string | null;
  host: string | null;
  port: number | null;
  path: string | null;
  status: number | null;
  subject: string | null;
}
