// Presets: GET /presets, GET /presets/:presetId, and POST /presets/:presetId/credential,
// which builds a bundles-file credential from an admin's field values and stores it as
// POST /bundles/:bundleId/credentials does.

import type { FastifyInstance } from 'fastify';
import { ApiError, requireObjectBody, validationError } from '../apiError.ts';
import { validateCredential } from '../configEditor.ts';
import type { RouteContext } from '../context.ts';
import { credentialNamed } from '../views.ts';
import { issuesOf, presetCredentialBodySchema } from '../schemas.ts';
import { addCredential } from './credentials.ts';

/** The functions of the preset catalogue (`src/presets/`) that the admin API serves. */
export interface PresetCatalogue {
  listPresets(): { id: string }[];
  getPreset(id: string): { id: string } | undefined;
  // Method syntax keeps the parameter bivariant, so the catalogue's own Preset type fits.
  buildCredentialFromPreset(
    preset: { id: string },
    name: string,
    values: Record<string, string>,
  ): { ok: true; document: unknown } | { ok: false; issues: { path: string; message: string }[] };
}

export function registerPresetRoutes(api: FastifyInstance, { deps, editor, views }: RouteContext): void {
  const catalogue = (): PresetCatalogue => {
    if (deps.presets === undefined) {
      throw new ApiError('not_found', 'This server has no preset catalogue; add the credential with POST /api/v1/bundles/:bundleId/credentials instead.');
    }
    return deps.presets;
  };
  const presetById = (presetId: string): { id: string } => {
    const preset = catalogue().getPreset(presetId);
    if (preset === undefined) {
      throw new ApiError('not_found', `Preset ${JSON.stringify(presetId)} does not exist; GET /api/v1/presets lists the preset ids.`, { field: 'presetId' });
    }
    return preset;
  };

  api.get('/presets', async () => ({ presets: catalogue().listPresets() }));

  api.get('/presets/:presetId', async (request) => presetById((request.params as { presetId: string }).presetId));

  api.post('/presets/:presetId/credential', async (request, reply) => {
    const preset = presetById((request.params as { presetId: string }).presetId);
    const parsed = presetCredentialBodySchema.safeParse(requireObjectBody(request.body));
    if (!parsed.success) {
      throw validationError('preset request', issuesOf(parsed.error));
    }
    const { bundleId, name, values, access } = parsed.data;

    const built = catalogue().buildCredentialFromPreset(preset, name, values);
    if (!built.ok) {
      throw validationError('preset field values', built.issues);
    }
    const credential = validateCredential({ ...(built.document as Record<string, unknown>), access });
    const { config } = await editor.update(request, (current) => addCredential(current, bundleId, credential));
    return reply.code(201).send(await views.credential(credentialNamed(config, credential.name)));
  });
}
