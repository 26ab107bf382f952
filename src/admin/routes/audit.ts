// GET /audit returns the newest page of matching events, with ids ascending within a page.
// `beforeId` pages back to older events, and `afterId` reads forward for `audit --follow`.

import type { FastifyInstance } from 'fastify';
import { DurationError, parseDuration } from '../../config/duration.ts';
import type { AuditEvent } from '../../domain/types.ts';
import type { AuditQuery } from '../../store/store.ts';
import { ApiError, validationError } from '../apiError.ts';
import type { RouteContext } from '../context.ts';
import { auditQuerySchema, issuesOf } from '../schemas.ts';

export function registerAuditRoutes(api: FastifyInstance, { deps }: RouteContext): void {
  api.get('/audit', async (request) => {
    const parsed = auditQuerySchema.safeParse(request.query);
    if (!parsed.success) {
      throw validationError('audit query', issuesOf(parsed.error));
    }
    const { since, session, ...filters } = parsed.data;
    if (filters.afterId !== undefined && filters.beforeId !== undefined) {
      throw new ApiError('invalid_request', 'Give afterId or beforeId, not both: afterId reads newer events, beforeId pages back to older ones.', { field: 'beforeId' });
    }
    const query: AuditQuery = { ...filters, sessionId: session };
    if (since !== undefined) {
      try {
        query.since = new Date(Date.now() - parseDuration(since));
      } catch (error) {
        if (error instanceof DurationError) throw new ApiError('invalid_request', error.message, { field: 'since' });
        throw error;
      }
    }

    const events = await deps.store.queryAudit(query);
    return { events: events.map(auditEventView), nextBeforeId: await nextBeforeId(deps.store, query, events) };
  });
}

/** Returns the id to pass as `beforeId` for the next older page, or null when no older event matches. */
async function nextBeforeId(store: RouteContext['deps']['store'], query: AuditQuery, events: AuditEvent[]): Promise<number | null> {
  const oldest = events[0]?.id;
  if (oldest === undefined || query.afterId !== undefined) {
    return null;
  }
  const older = await store.queryAudit({ ...query, beforeId: oldest, limit: 1 });
  return older.length > 0 ? oldest : null;
}

function auditEventView(event: AuditEvent) {
  return { ...event, time: event.time.toISOString() };
}
