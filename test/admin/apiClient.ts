// Calls the admin API of a harness server with any method, keeping the raw response
// text so tests can search it for secret values.

import { request } from 'undici';
import type { Harness } from '../helpers/harness.ts';

export interface ApiResponse<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: T;
}

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Sends one request; `auth` is the bearer token, or null to send none, and `headers` adds or overrides headers. */
export async function call<T = any>(
  server: Harness,
  method: Method,
  apiPath: string,
  body?: unknown,
  options: { auth?: string | null; headers?: Record<string, string> } = {},
): Promise<ApiResponse<T>> {
  const auth = options.auth === undefined ? server.proxy.adminToken : options.auth;
  const response = await request(`${server.proxy.adminUrl}/api/v1${apiPath}`, {
    method,
    headers: {
      ...(auth === null ? {} : { authorization: `Bearer ${auth}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text, body: (text ? JSON.parse(text) : null) as T };
}
