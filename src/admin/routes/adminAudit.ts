// GET /admin-audit: pages through the admin audit trail as GET /audit pages through the
// proxy's, newest page first with ids ascending within it.

import type { FastifyInstance } from 'fastify';
import { DurationError, parseDuration } from '../../config/duration.ts';
import type { AdminAuditEvent, AdminAuditQuery } from '../../store/store.ts';
import { ApiError, validationError } from '../apiError.ts';
import type { RouteContext } from '../context.ts';
import { adminAuditQuerySchema, issuesOf } from '../schemas.ts';

export function registerAdminAuditRoutes(api: FastifyInstance, { deps }: RouteContext): void {
  api.get('/admin-audit', async (request) => {
    const parsed = adminAuditQuerySchema.safeParse(request.query);
    if (!parsed.success) {
      throw validationError('admin audit query', issuesOf(parsed.error));
    }
    const { since, ...filters } = parsed.data;
    if (filters.afterId !== undefined && filters.beforeId !== undefined) {
      throw new ApiError('invalid_request', 'Give afterId or beforeId, not both: afterId reads newer events, beforeId pages back to older ones.', { field: 'beforeId' });
    }
    const query: AdminAuditQuery = { ...filters };
    if (since !== undefined) {
      try {
        query.since = new Date(Date.now() - parseDuration(since));
      } catch (error) {
        if (error instanceof DurationError) throw new ApiError('invalid_request', error.message, { field: 'since' });
        throw error;
      }
    }

    const events = await deps.store.queryAdminAudit(query);
    const oldest = events[0]?.id;
    const hasOlder = oldest !== undefined && query.afterId === undefined && (await deps.store.queryAdminAudit({ ...query, beforeId: oldest, limit: 1 })).length > 0;
    return { events: events.map(adminAuditEventView), nextBeforeId: hasOlder ? oldest : null };
  });
}

function adminAuditEventView(event: AdminAuditEvent) {
  return {
    id: event.id ?? 0,
    time: event.time.toISOString(),
    actor: event.actor,
    action: event.action,
    target: event.target,
    fields: event.fields,
    outcome: event.outcome,
    clientAddress: event.clientAddress,
  };
}
