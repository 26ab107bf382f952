// The configuration as a whole: POST /apply (a bundles document), GET /config, the egress
// policy (GET and PUT /egress) and the CA certificate sandboxes trust (GET /ca).

import type { FastifyInstance } from 'fastify';
import { bundleObjectSchemas, validateFileObject } from '../../config/bundlesFile.ts';
import { redactConfig } from '../../credentials/redaction.ts';
import { ApiError, requireObjectBody, validationError } from '../apiError.ts';
import { describeConfigChanges } from '../configDiff.ts';
import type { RouteContext } from '../context.ts';

export function registerConfigRoutes(api: FastifyInstance, { deps, editor, audit }: RouteContext): void {
  api.post('/apply', async (request) => {
    const dryRun = (request.query as Record<string, string | undefined>).dryRun === 'true';
    const before = dryRun ? null : await editor.load();
    const result = await deps.applyConfig(request.body, dryRun);
    if (!result.ok) {
      throw new ApiError('invalid_config', 'The bundles document is invalid; nothing was changed.', { issues: result.issues });
    }
    if (before !== null) {
      // NOTE: the two snapshots are read outside the apply transaction. The targets are
      // limited to those apply reports, but an edit made through another request between
      // the reads can add its field names to a target that apply also changed.
      const reported = new Set([...result.created, ...result.changed, ...result.deleted]);
      const changes = describeConfigChanges(before, await editor.load()).filter((change) => reported.has(change.target));
      audit.noteChanges(request, changes);
    }
    return { dryRun, created: result.created, changed: result.changed, deleted: result.deleted };
  });

  api.get('/config', async () => redactConfig(await editor.load(), deps.fingerprintKey));

  api.get('/egress', async () => (await editor.load()).egress);

  api.put('/egress', async (request) => {
    const parsed = validateFileObject(bundleObjectSchemas.egress, requireObjectBody(request.body));
    if (!parsed.ok) throw validationError('egress policy', parsed.issues);
    const egress = parsed.value;
    const { config } = await editor.update(request, (current) => ({ ...current, egress }));
    return config.egress;
  });

  api.get('/ca', async (_request, reply) => reply.header('content-type', 'application/x-pem-file').send(deps.caPem));
}
