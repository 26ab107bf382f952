// The admin API under /api/v1, authenticated with a bearer admin token, plus the
// unauthenticated health endpoints and Prometheus metrics.

import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { validateBundlesDocument } from '../config/bundlesFile.ts';
import { DurationError, parseDuration } from '../config/duration.ts';
import { redactConfig } from '../credentials/redaction.ts';
import type { ConnectionTestResult } from '../credentials/testConnection.ts';
import type { AuditEvent } from '../domain/types.ts';
import type { Logger } from '../log.ts';
import type { SessionService } from '../sessions/sessionService.ts';
import type { AuditQuery, Store } from '../store/store.ts';

export interface AdminServerDeps {
  store: Store;
  sessions: SessionService;
  adminToken: string;
  fingerprintKey: Buffer;
  caPem: string;
  metrics: Registry;
  /** Applies a validated configuration and reloads the proxy's snapshot. */
  applyConfig: (doc: unknown, dryRun: boolean) => Promise<ApplyResult>;
  /** Runs test-connection for a credential by name; null when no credential has that name. */
  testConnection: (credentialName: string) => Promise<ConnectionTestResult | null>;
  ready: () => boolean;
  logger: Logger;
}

export type ApplyResult =
  | { ok: true; created: string[]; changed: string[]; deleted: string[] }
  | { ok: false; issues: { path: string; message: string }[] };

const sessionCreateBody = z.strictObject({
  channel: z.string().min(1).max(200),
  thread: z.string().min(1).max(200).optional(),
  ttl: z.string().optional(),
});

const auditQuerySchema = z.object({
  afterId: z.coerce.number().int().nonnegative().optional(),
  since: z.string().optional(),
  channel: z.string().optional(),
  bundle: z.string().optional(),
  credential: z.string().optional(),
  decision: z.enum(['allowed', 'denied', 'error']).optional(),
  session: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
});

/** An error body of the admin API: a stable code, a sentence and the field it concerns. */
function apiError(reply: FastifyReply, status: number, code: string, message: string, field?: string) {
  return reply.code(status).send({ error: { code, message, ...(field ? { field } : {}) } });
}

export function buildAdminServer(deps: AdminServerDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 5 * 1024 * 1024 });
  const expectedTokenHash = createHash('sha256').update(deps.adminToken).digest();

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => (deps.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'starting' })));
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });

  app.register(async (api) => {
    api.addHook('onRequest', async (request, reply) => {
      if (!bearerMatches(request, expectedTokenHash)) {
        return apiError(reply, 401, 'unauthorized', 'Missing or invalid admin token: send "Authorization: Bearer <token>" with the token from the data directory\'s admin-token file.');
      }
      return undefined;
    });

    api.get('/config', async () => redactConfig(await deps.store.loadConfig(), deps.fingerprintKey));
    api.get('/bundles', async () => redactConfig(await deps.store.loadConfig(), deps.fingerprintKey).bundles);

    api.post('/apply', async (request, reply) => {
      const dryRun = (request.query as Record<string, string | undefined>).dryRun === 'true';
      const result = await deps.applyConfig(request.body, dryRun);
      if (!result.ok) {
        return reply.code(400).send({ error: { code: 'invalid_config', message: 'The bundles document is invalid; nothing was changed.', issues: result.issues } });
      }
      return { dryRun, created: result.created, changed: result.changed, deleted: result.deleted };
    });

    api.post('/sessions', async (request, reply) => {
      const parsed = sessionCreateBody.safeParse(request.body ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        return apiError(reply, 400, 'invalid_request', issue.message, issue.path.join('.'));
      }
      let ttlMs: number | undefined;
      try {
        ttlMs = parsed.data.ttl === undefined ? undefined : parseDuration(parsed.data.ttl);
      } catch (error) {
        if (error instanceof DurationError) return apiError(reply, 400, 'invalid_request', error.message, 'ttl');
        throw error;
      }
      const created = await deps.sessions.create({ channel: parsed.data.channel, thread: parsed.data.thread ?? null, ttlMs });
      return reply.code(201).send(created);
    });

    api.get('/sessions', async () => deps.sessions.listActive());

    api.delete('/sessions/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      const revoked = await deps.sessions.revoke(id);
      if (!revoked) {
        return apiError(reply, 404, 'not_found', `Session ${JSON.stringify(id)} does not exist.`, 'id');
      }
      return reply.code(204).send();
    });

    api.get('/audit', async (request, reply) => {
      const parsed = auditQuerySchema.safeParse(request.query);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        return apiError(reply, 400, 'invalid_request', issue.message, issue.path.join('.'));
      }
      const query: AuditQuery = {
        afterId: parsed.data.afterId,
        channel: parsed.data.channel,
        bundle: parsed.data.bundle,
        credential: parsed.data.credential,
        decision: parsed.data.decision,
        sessionId: parsed.data.session,
        limit: parsed.data.limit,
      };
      if (parsed.data.since) {
        try {
          query.since = new Date(Date.now() - parseDuration(parsed.data.since));
        } catch (error) {
          if (error instanceof DurationError) return apiError(reply, 400, 'invalid_request', error.message, 'since');
          throw error;
        }
      }
      const events = await deps.store.queryAudit(query);
      return { events: events.map(auditEventView) };
    });

    api.post('/credentials/:name/test-connection', async (request, reply) => {
      const { name } = request.params as { name: string };
      const result = await deps.testConnection(name);
      if (!result) {
        return apiError(reply, 404, 'not_found', `No credential is named ${JSON.stringify(name)}; \`agent-proxy apply\` creates credentials from a bundles file.`, 'name');
      }
      return result;
    });

    api.get('/ca', async (_request, reply) => reply.header('content-type', 'application/x-pem-file').send(deps.caPem));
  }, { prefix: '/api/v1' });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (error.statusCode && error.statusCode < 500) {
      return apiError(reply, error.statusCode, 'invalid_request', error.message);
    }
    deps.logger.error({ err: error, method: request.method, url: request.url.split('?')[0] }, 'admin API request failed');
    return apiError(reply, 500, 'internal_error', 'The admin API failed to handle the request; see the server log.');
  });

  return app;
}

function bearerMatches(request: FastifyRequest, expectedHash: Buffer): boolean {
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  if (!match) {
    return false;
  }
  const presented = createHash('sha256').update(match[1]!).digest();
  return timingSafeEqual(presented, expectedHash);
}

function auditEventView(event: AuditEvent) {
  return { ...event, time: event.time.toISOString() };
}

export { validateBundlesDocument };
