// Credentials of a bundle: /bundles/:bundleId/credentials[/:credentialId[/move|/test-connection]].
// Bodies use the bundles-file form of a credential and pass the same validation as `apply`,
// so a credential is stored complete or not at all.

import type { FastifyInstance } from 'fastify';
import type { Credential, ProxyConfig } from '../../domain/types.ts';
import { ApiError, requireObjectBody } from '../apiError.ts';
import { assertCredentialNameFree, credentialToDocument, findBundle, findCredential, validateCredential, withBundle } from '../configEditor.ts';
import type { RouteContext } from '../context.ts';
import { credentialNamed } from '../views.ts';
import { moveBodySchema } from '../schemas.ts';

interface CredentialParams {
  bundleId: string;
  credentialId: string;
}

/** Adds a validated credential to a bundle; shared with the preset route. */
export function addCredential(config: ProxyConfig, bundleId: string, credential: Credential): ProxyConfig {
  assertCredentialNameFree(config, credential.name);
  return withBundle(config, bundleId, (bundle) => ({ ...bundle, credentials: [...bundle.credentials, { ...credential, id: '', bundleId }] }));
}

export function registerCredentialRoutes(api: FastifyInstance, { deps, editor, views }: RouteContext): void {
  api.get('/bundles/:bundleId/credentials', async (request) => {
    const { bundleId } = request.params as { bundleId: string };
    const bundle = findBundle(await editor.load(), bundleId);
    return { credentials: await views.credentials(bundle.credentials) };
  });

  api.post('/bundles/:bundleId/credentials', async (request, reply) => {
    const { bundleId } = request.params as { bundleId: string };
    const credential = validateCredential(requireObjectBody(request.body));
    const { config } = await editor.update(request, (current) => addCredential(current, bundleId, credential));
    return reply.code(201).send(await views.credential(credentialNamed(config, credential.name)));
  });

  api.get('/bundles/:bundleId/credentials/:credentialId', async (request) => {
    const { bundleId, credentialId } = request.params as CredentialParams;
    return views.credential(findCredential(await editor.load(), bundleId, credentialId).credential);
  });

  api.patch('/bundles/:bundleId/credentials/:credentialId', async (request) => {
    const { bundleId, credentialId } = request.params as CredentialParams;
    const patch = requireObjectBody(request.body);

    const { config } = await editor.update(request, (current) => {
      const { credential } = findCredential(current, bundleId, credentialId);
      const replacement = mergeCredentialPatch(credential, patch);
      assertCredentialNameFree(current, replacement.name, credentialId);
      return withBundle(current, bundleId, (bundle) => ({
        ...bundle,
        credentials: bundle.credentials.map((candidate) => (candidate.id === credentialId ? replacement : candidate)),
      }));
    });
    return views.credential(findCredential(config, bundleId, credentialId).credential);
  });

  api.delete('/bundles/:bundleId/credentials/:credentialId', async (request, reply) => {
    const { bundleId, credentialId } = request.params as CredentialParams;
    await editor.update(request, (current) => {
      findCredential(current, bundleId, credentialId);
      return withBundle(current, bundleId, (bundle) => ({ ...bundle, credentials: bundle.credentials.filter((candidate) => candidate.id !== credentialId) }));
    });
    return reply.code(204).send();
  });

  api.post('/bundles/:bundleId/credentials/:credentialId/move', async (request) => {
    const { bundleId, credentialId } = request.params as CredentialParams;
    const parsed = moveBodySchema.safeParse(request.body);
    if (!parsed.success) {
      throw new ApiError('invalid_request', 'Send {"bundleId": "<target bundle id>"} to move a credential.', { field: 'bundleId' });
    }
    const targetId = parsed.data.bundleId;

    const { config } = await editor.update(request, (current) => {
      const { credential } = findCredential(current, bundleId, credentialId);
      findBundle(current, targetId);
      if (targetId === bundleId) return current;
      const removed = withBundle(current, bundleId, (bundle) => ({ ...bundle, credentials: bundle.credentials.filter((candidate) => candidate.id !== credentialId) }));
      return withBundle(removed, targetId, (bundle) => ({ ...bundle, credentials: [...bundle.credentials, { ...credential, bundleId: targetId }] }));
    });
    return views.credential(findCredential(config, targetId, credentialId).credential);
  });

  api.post('/bundles/:bundleId/credentials/:credentialId/test-connection', async (request) => {
    const { bundleId, credentialId } = request.params as CredentialParams;
    const { credential } = findCredential(await editor.load(), bundleId, credentialId);
    const result = await deps.testConnection(credential.name);
    if (result === null) {
      throw new ApiError('not_found', `Credential "${credential.name}" is not loaded by the proxy yet; try again in a moment.`, { field: 'credentialId' });
    }
    return result;
  });
}

/**
 * Merges a partial bundles-file credential onto the stored one and validates the result
 * as a whole. Omitted fields, secrets included, keep their stored value, and `null` removes
 * an optional field. `type` cannot change because the fields of one type mean nothing to another.
 */
function mergeCredentialPatch(stored: Credential, patch: Record<string, unknown>): Credential {
  const type = stored.settings.type;
  if ('type' in patch && patch['type'] !== type) {
    throw new ApiError(
      'invalid_request',
      `The type of credential "${stored.name}" is ${type} and cannot change; create a new credential of type ${JSON.stringify(patch['type'])} and delete this one.`,
      { field: 'type' },
    );
  }

  const merged = credentialToDocument(stored);
  for (const [field, value] of Object.entries(patch)) {
    if (value === null) {
      delete merged[field];
    } else {
      merged[field] = value;
    }
  }
  return { ...validateCredential(merged), id: stored.id, bundleId: stored.bundleId };
}
