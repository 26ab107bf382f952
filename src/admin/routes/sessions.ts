// Sandbox sessions: POST /sessions, GET /sessions (active ones), DELETE /sessions/:id.

import type { FastifyInstance } from 'fastify';
import { DurationError, parseDuration } from '../../config/duration.ts';
import { ApiError, validationError } from '../apiError.ts';
import type { RouteContext } from '../context.ts';
import { issuesOf, sessionCreateBody } from '../schemas.ts';

export function registerSessionRoutes(api: FastifyInstance, { deps, audit }: RouteContext): void {
  api.post('/sessions', async (request, reply) => {
    const parsed = sessionCreateBody.safeParse(request.body ?? {});
    if (!parsed.success) {
      throw validationError('session request', issuesOf(parsed.error));
    }
    let ttlMs: number | undefined;
    try {
      ttlMs = parsed.data.ttl === undefined ? undefined : parseDuration(parsed.data.ttl);
    } catch (error) {
      if (error instanceof DurationError) throw new ApiError('invalid_request', error.message, { field: 'ttl' });
      throw error;
    }
    const created = await deps.sessions.create({ channel: parsed.data.channel, thread: parsed.data.thread ?? null, ttlMs });
    audit.noteTarget(request, `session/${created.id}`, Object.keys(parsed.data).filter((key) => parsed.data[key as keyof typeof parsed.data] !== undefined).sort());
    return reply.code(201).send(created);
  });

  api.get('/sessions', async () => deps.sessions.listActive());

  api.delete('/sessions/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    audit.noteTarget(request, `session/${id}`);
    if (!(await deps.sessions.revoke(id))) {
      throw new ApiError('not_found', `Session ${JSON.stringify(id)} does not exist; GET /api/v1/sessions lists the active sessions.`, { field: 'id' });
    }
    return reply.code(204).send();
  });
}
