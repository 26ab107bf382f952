// Access bundles: /bundles and /bundles/:bundleId.

import type { FastifyInstance } from 'fastify';
import { bundleObjectSchemas, validateFileObject } from '../../config/bundlesFile.ts';
import type { Bundle } from '../../domain/types.ts';
import { requireObjectBody, validationError } from '../apiError.ts';
import { assertBundleNameFree, findBundle, withBundle } from '../configEditor.ts';
import type { RouteContext } from '../context.ts';
import { bundleNamed } from '../views.ts';

export function registerBundleRoutes(api: FastifyInstance, { editor, views }: RouteContext): void {
  api.get('/bundles', async () => {
    const config = await editor.load();
    return { bundles: config.bundles.map((bundle) => views.bundleSummary(bundle)) };
  });

  api.post('/bundles', async (request, reply) => {
    const parsed = validateFileObject(bundleObjectSchemas.bundle, requireObjectBody(request.body));
    if (!parsed.ok) throw validationError('bundle', parsed.issues);
    const { name, description, channels } = parsed.value;

    const { config } = await editor.update(request, (current) => {
      assertBundleNameFree(current, name);
      const bundle: Bundle = { id: '', name, description, channels, credentials: [] };
      return { ...current, bundles: [...current.bundles, bundle] };
    });
    return reply.code(201).send(views.bundleSummary(bundleNamed(config, name)));
  });

  api.get('/bundles/:bundleId', async (request) => {
    const { bundleId } = request.params as { bundleId: string };
    return views.bundleDetail(findBundle(await editor.load(), bundleId));
  });

  api.patch('/bundles/:bundleId', async (request) => {
    const { bundleId } = request.params as { bundleId: string };
    const parsed = validateFileObject(bundleObjectSchemas.bundlePatch, requireObjectBody(request.body));
    if (!parsed.ok) throw validationError('bundle', parsed.issues);
    const patch = parsed.value;

    const { config } = await editor.update(request, (current) => {
      if (patch.name !== undefined) assertBundleNameFree(current, patch.name, bundleId);
      return withBundle(current, bundleId, (bundle) => ({
        ...bundle,
        name: patch.name ?? bundle.name,
        description: patch.description ?? bundle.description,
        channels: patch.channels ?? bundle.channels,
      }));
    });
    return views.bundleSummary(findBundle(config, bundleId));
  });

  // Deleting a bundle deletes its credentials too, as removing it from a bundles file does.
  api.delete('/bundles/:bundleId', async (request, reply) => {
    const { bundleId } = request.params as { bundleId: string };
    await editor.update(request, (current) => {
      findBundle(current, bundleId);
      return { ...current, bundles: current.bundles.filter((bundle) => bundle.id !== bundleId) };
    });
    return reply.code(204).send();
  });
}
