// Admin API tokens: GET /admin-tokens, POST /admin-tokens (the token is in this response
// only) and DELETE /admin-tokens/:name. routeAccess.ts keeps all three to the admin role.

import type { FastifyInstance } from 'fastify';
import { DurationError, parseDuration } from '../../config/duration.ts';
import { tokenUnusableReason, type StoredAdminToken } from '../adminTokens.ts';
import { ApiError, validationError } from '../apiError.ts';
import type { RouteContext } from '../context.ts';
import { adminTokenCreateBody, issuesOf } from '../schemas.ts';

export function registerAdminTokenRoutes(api: FastifyInstance, { tokens, audit }: RouteContext): void {
  api.get('/admin-tokens', async () => ({ tokens: (await tokens.list()).map((token) => adminTokenView(token, Date.now())) }));

  api.post('/admin-tokens', async (request, reply) => {
    const parsed = adminTokenCreateBody.safeParse(request.body ?? {});
    if (!parsed.success) {
      throw validationError('admin token request', issuesOf(parsed.error));
    }
    const { name, role, expiresIn } = parsed.data;
    let expiresAt: Date | null = null;
    if (expiresIn !== undefined) {
      try {
        expiresAt = new Date(Date.now() + parseDuration(expiresIn));
      } catch (error) {
        if (error instanceof DurationError) throw new ApiError('invalid_request', error.message, { field: 'expiresIn' });
        throw error;
      }
    }

    audit.noteTarget(request, `admin-token/${name}`, expiresAt === null ? ['role'] : ['expiresAt', 'role']);
    const created = await tokens.create({ name, role, expiresAt });
    if (created === null) {
      throw new ApiError('conflict', `An admin token named "${name}" already exists; choose another name, or revoke that token first if it should be replaced.`, {
        field: 'name',
      });
    }
    return reply.code(201).send({ ...adminTokenView(created.record, Date.now()), token: created.token });
  });

  api.delete('/admin-tokens/:name', async (request, reply) => {
    const { name } = request.params as { name: string };
    audit.noteTarget(request, `admin-token/${name}`);
    if ((await tokens.revoke(name)) === null) {
      throw new ApiError('not_found', `No admin token is named ${JSON.stringify(name)}; GET /api/v1/admin-tokens lists the tokens.`, { field: 'name' });
    }
    return reply.code(204).send();
  });
}

/** Returns the listing form of a token, which never contains the token or its hash. */
export function adminTokenView(token: StoredAdminToken, now: number) {
  return {
    name: token.name,
    role: token.role,
    status: tokenUnusableReason(token, now) ?? 'active',
    createdAt: token.createdAt.toISOString(),
    expiresAt: token.expiresAt?.toISOString() ?? null,
    lastUsedAt: token.lastUsedAt?.toISOString() ?? null,
    revokedAt: token.revokedAt?.toISOString() ?? null,
  };
}
