// The admin API's error body and the closed set of codes it uses.

import type { FastifyReply } from 'fastify';

export const API_ERROR_STATUS = {
  invalid_request: 400,
  invalid_config: 400,
  unauthorized: 401,
  csrf_token_invalid: 403,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  internal_error: 500,
} as const satisfies Record<string, number>;

export type ApiErrorCode = keyof typeof API_ERROR_STATUS;

/** One validation problem; `path` is relative to the object the request sent, such as `allowedWebsites[0]`. */
export interface ApiIssue {
  path: string;
  message: string;
}

/**
 * An error the admin API returns as `{"error": {code, message, field?, issues?}}`. Route
 * handlers throw it, also from inside a store transaction so that nothing is stored.
 */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly field: string | undefined;
  readonly issues: ApiIssue[] | undefined;
  /** Sent as `Retry-After` (RFC 9110 section 10.2.3) with a 429. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ApiErrorCode, message: string, options: { field?: string; issues?: ApiIssue[]; status?: number; retryAfterSeconds?: number } = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = options.status ?? API_ERROR_STATUS[code];
    this.field = options.field;
    this.issues = options.issues;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  toBody(): { error: { code: ApiErrorCode; message: string; field?: string; issues?: ApiIssue[] } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.field === undefined ? {} : { field: this.field }),
        ...(this.issues === undefined ? {} : { issues: this.issues }),
      },
    };
  }
}

export function sendApiError(reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) {
    reply.header('retry-after', String(error.retryAfterSeconds));
  }
  return reply.code(error.status).send(error.toBody());
}

/** Builds the 400 error for a body that failed validation, naming the first problem and listing all of them. */
export function validationError(what: string, issues: ApiIssue[], code: ApiErrorCode = 'invalid_request'): ApiError {
  const first = issues[0];
  const firstText = first === undefined ? '' : ` ${first.path === '' ? '' : `${first.path}: `}${first.message}.`;
  const more = issues.length > 1 ? ` ${issues.length - 1} more problem(s) are listed in "issues".` : '';
  return new ApiError(code, `The ${what} is invalid; nothing was changed.${firstText}${more}`, {
    ...(first && first.path !== '' ? { field: first.path } : {}),
    issues,
  });
}

/** Throws a 400 unless the request body is a JSON object. */
export function requireObjectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('invalid_request', 'The request body must be a JSON object sent with "Content-Type: application/json".');
  }
  return body as Record<string, unknown>;
}
