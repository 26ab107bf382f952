// Zod schemas of the admin API's own request bodies and query strings, and of its
// responses. Validation uses the request schemas; openapi.ts renders all of them.
// Bundles, credentials and egress bodies use the bundles-file schemas from src/config.

import { z } from 'zod';
import { ADMIN_TOKEN_NAME_PATTERN } from './adminTokens.ts';
import { API_ERROR_STATUS, type ApiIssue } from './apiError.ts';

export const sessionCreateBody = z.strictObject({
  channel: z.string().min(1).max(200),
  thread: z.string().min(1).max(200).optional(),
  ttl: z.string().optional().describe('Duration such as 30m or 8h; default 8h, at most 30 days'),
});

export const auditQuerySchema = z.object({
  afterId: z.coerce.number().int().nonnegative().optional(),
  beforeId: z.coerce.number().int().positive().optional(),
  since: z.string().optional().describe('Duration back from now, such as 15m'),
  channel: z.string().optional(),
  bundle: z.string().optional(),
  credential: z.string().optional(),
  decision: z.enum(['allowed', 'denied', 'error']).optional(),
  session: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export const adminTokenCreateBody = z.strictObject({
  name: z
    .string()
    .regex(ADMIN_TOKEN_NAME_PATTERN, 'use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit'),
  role: z.enum(['admin', 'viewer', 'session-issuer']),
  expiresIn: z.string().optional().describe('Duration such as 30d or 12h; without it the token does not expire'),
});

export const adminAuditQuerySchema = z.object({
  afterId: z.coerce.number().int().nonnegative().optional(),
  beforeId: z.coerce.number().int().positive().optional(),
  since: z.string().optional().describe('Duration back from now, such as 15m'),
  actor: z.string().optional().describe('Name of the admin token that made the change'),
  action: z.string().optional().describe('Such as credential.update'),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

export const moveBodySchema = z.strictObject({ bundleId: z.string().min(1) });
export const loginBodySchema = z.strictObject({ token: z.string().min(1) });
export const presetCredentialBodySchema = z.strictObject({
  bundleId: z.string().min(1),
  name: z.string(),
  values: z.record(z.string(), z.string()).default(() => ({})),
  // A preset names no access, so the least that works is the default: an agent gets write
  // access to an app only when an admin chooses it.
  access: z.enum(['read', 'read_write']).default('read'),
});

/** Returns zod issues with dotted paths, for the API's own schemas. */
export function issuesOf(error: z.ZodError): ApiIssue[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}

// ---------------------------------------------------------------- responses

const issueSchema = z.object({ path: z.string(), message: z.string() });

export const errorBodySchema = z.object({
  error: z.object({
    code: z.enum(Object.keys(API_ERROR_STATUS) as [keyof typeof API_ERROR_STATUS, ...(keyof typeof API_ERROR_STATUS)[]]),
    message: z.string(),
    field: z.string().optional(),
    issues: z.array(issueSchema).optional(),
  }),
});

export const bundleSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  channels: z.array(z.string()),
  credentialCount: z.number().int(),
});

const secretViewSchema = z.object({ set: z.literal(true), fingerprint: z.string(), publicKeyFingerprint: z.string().optional() });

export const credentialViewSchema = z.object({
  id: z.string(),
  bundleId: z.string(),
  name: z.string(),
  type: z.string(),
  settings: z.record(z.string(), z.unknown()).describe('Non-secret fields of the type'),
  secrets: z.record(z.string(), secretViewSchema).describe('Secret fields by name; values are never returned'),
  allowedWebsites: z.array(z.string()),
  access: z.enum(['read', 'read_write']),
  rules: z.array(z.object({ methods: z.array(z.string()).optional(), paths: z.array(z.string()).optional() })),
  extraHeaders: z.record(z.string(), z.string()),
  lastUsedAt: z.string().nullable(),
  lastMint: z.object({ at: z.string(), status: z.number().int().nullable(), decision: z.enum(['allowed', 'error']), error: z.string().nullable() }).nullable(),
});

export const bundleDetailSchema = bundleSummarySchema.omit({ credentialCount: true }).extend({ credentials: z.array(credentialViewSchema) });

export const sessionCreatedSchema = z.object({
  id: z.string(),
  token: z.string(),
  channel: z.string(),
  thread: z.string().nullable(),
  expiresAt: z.string(),
  proxyUrl: z.string(),
  caPath: z.string(),
  caBundlePath: z.string(),
});

export const sessionSummarySchema = z.object({ id: z.string(), channel: z.string(), thread: z.string().nullable(), createdAt: z.string(), expiresAt: z.string() });

export const auditPageSchema = z.object({
  events: z.array(z.object({ id: z.number().int(), time: z.string(), kind: z.string(), decision: z.string() }).loose()),
  nextBeforeId: z.number().int().nullable(),
});

export const testConnectionSchema = z.object({
  ok: z.boolean(),
  credential: z.string(),
  type: z.string(),
  token: z.object({ subject: z.string(), instanceUrl: z.string().nullable(), expiresAt: z.string() }).nullable(),
  probe: z.object({ url: z.string(), status: z.number().int(), identity: z.record(z.string(), z.string()).nullable() }).nullable(),
  warnings: z.array(z.string()),
  error: z
    .object({ code: z.string(), message: z.string(), providerError: z.string().nullable(), providerErrorDescription: z.string().nullable(), hint: z.string().nullable() })
    .nullable(),
});

export const adminTokenViewSchema = z.object({
  name: z.string(),
  role: z.enum(['admin', 'viewer', 'session-issuer']),
  status: z.enum(['active', 'expired', 'revoked']),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

export const adminTokenCreatedSchema = adminTokenViewSchema.extend({ token: z.string().describe('Shown only in this response; store it now') });

export const adminAuditPageSchema = z.object({
  events: z.array(
    z.object({
      id: z.number().int(),
      time: z.string(),
      actor: z.string(),
      action: z.string(),
      target: z.string().nullable(),
      fields: z.array(z.string()),
      outcome: z.enum(['success', 'failure', 'denied']),
      clientAddress: z.string().nullable(),
    }),
  ),
  nextBeforeId: z.number().int().nullable(),
});

export const applyResultSchema = z.object({ dryRun: z.boolean(), created: z.array(z.string()), changed: z.array(z.string()), deleted: z.array(z.string()) });
export const loginResultSchema = z.object({ csrfToken: z.string() });
export const meSchema = z.object({ authenticated: z.literal(true), csrfToken: z.string().nullable() });
