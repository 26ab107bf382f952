// GET /api/v1/openapi.json: an OpenAPI 3.1 description rendered with zod 4's
// `z.toJSONSchema` from the same schemas that validate the requests.

import { z } from 'zod';
import { bundleObjectSchemas } from '../config/bundlesFile.ts';
import { credentialField } from '../config/credentialSchemas.ts';
import * as schemas from './schemas.ts';

interface Operation {
  summary: string;
  body?: z.ZodType;
  /** Response schema of the success status; omitted for 204. */
  response?: z.ZodType;
  status?: number;
  query?: z.ZodObject;
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  // Refinements (host patterns, PEM keys) cannot be expressed in JSON Schema and are left out.
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function operation(spec: Operation, path: string): Record<string, unknown> {
  const status = spec.status ?? 200;
  const parameters = [...path.matchAll(/\{(\w+)\}/g)].map((match) => ({ name: match[1], in: 'path', required: true, schema: { type: 'string' } }));
  for (const [name, field] of Object.entries(spec.query?.shape ?? {})) {
    parameters.push({ name, in: 'query', required: false, schema: jsonSchema(field as z.ZodType, 'input') as { type: string } });
  }
  const error = { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  return {
    summary: spec.summary,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(spec.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(spec.body, 'input') } } } } : {}),
    responses: {
      [String(status)]: spec.response
        ? { description: 'Success', content: { 'application/json': { schema: jsonSchema(spec.response, 'output') } } }
        : { description: 'Success, no content' },
      default: error,
    },
  };
}

/** Builds the OpenAPI document; the server renders it once at start. */
export function buildOpenApiDocument(): Record<string, unknown> {
  const partialCredential = z.record(z.string(), z.unknown()).describe('Fields of the credential to change; omitted fields, secrets included, keep their value and null removes an optional field');
  const routes: Record<string, Record<string, Operation>> = {
    '/login': { post: { summary: 'Start a browser session with the admin token', body: schemas.loginBodySchema, response: schemas.loginResultSchema } },
    '/me': { get: { summary: 'Show whether the request is authenticated, with the CSRF token of a cookie session', response: schemas.meSchema } },
    '/logout': { post: { summary: 'End the browser session', status: 204 } },
    '/bundles': {
      get: { summary: 'List bundles', response: z.object({ bundles: z.array(schemas.bundleSummarySchema) }) },
      post: { summary: 'Create a bundle', body: bundleObjectSchemas.bundle, response: schemas.bundleSummarySchema, status: 201 },
    },
    '/bundles/{bundleId}': {
      get: { summary: 'Show a bundle with its credentials', response: schemas.bundleDetailSchema },
      patch: { summary: 'Change a bundle', body: bundleObjectSchemas.bundlePatch, response: schemas.bundleSummarySchema },
      delete: { summary: 'Delete a bundle and its credentials', status: 204 },
    },
    '/bundles/{bundleId}/credentials': {
      get: { summary: "List a bundle's credentials", response: z.object({ credentials: z.array(schemas.credentialViewSchema) }) },
      post: { summary: 'Create a credential (bundles-file form, secrets inline)', body: credentialField, response: schemas.credentialViewSchema, status: 201 },
    },
    '/bundles/{bundleId}/credentials/{credentialId}': {
      get: { summary: 'Show a credential', response: schemas.credentialViewSchema },
      patch: { summary: 'Change a credential', body: partialCredential, response: schemas.credentialViewSchema },
      delete: { summary: 'Delete a credential', status: 204 },
    },
    '/bundles/{bundleId}/credentials/{credentialId}/move': {
      post: { summary: 'Move a credential to another bundle', body: schemas.moveBodySchema, response: schemas.credentialViewSchema },
    },
    '/bundles/{bundleId}/credentials/{credentialId}/test-connection': {
      post: { summary: 'Mint a token and call the probe URL', response: schemas.testConnectionSchema },
    },
    '/presets': { get: { summary: 'List presets', response: z.object({ presets: z.array(z.record(z.string(), z.unknown())) }) } },
    '/presets/{presetId}': { get: { summary: 'Show a preset', response: z.record(z.string(), z.unknown()) } },
    '/presets/{presetId}/credential': {
      post: { summary: 'Create a credential from a preset', body: schemas.presetCredentialBodySchema, response: schemas.credentialViewSchema, status: 201 },
    },
    '/egress': {
      get: { summary: 'Show the egress policy', response: bundleObjectSchemas.egress },
      put: { summary: 'Replace the egress policy', body: bundleObjectSchemas.egress, response: bundleObjectSchemas.egress },
    },
    '/sessions': {
      get: { summary: 'List active sessions', response: z.array(schemas.sessionSummarySchema) },
      post: { summary: 'Create a sandbox session', body: schemas.sessionCreateBody, response: schemas.sessionCreatedSchema, status: 201 },
    },
    '/sessions/{id}': { delete: { summary: 'Revoke a session', status: 204 } },
    '/audit': { get: { summary: 'Page through the audit log', query: schemas.auditQuerySchema, response: schemas.auditPageSchema } },
    '/admin-audit': {
      get: { summary: 'Page through the admin audit trail (roles admin and viewer)', query: schemas.adminAuditQuerySchema, response: schemas.adminAuditPageSchema },
    },
    '/admin-tokens': {
      get: { summary: 'List admin API tokens, never the tokens themselves (role admin)', response: z.object({ tokens: z.array(schemas.adminTokenViewSchema) }) },
      post: { summary: 'Create an admin API token; the response is the only place it appears (role admin)', body: schemas.adminTokenCreateBody, response: schemas.adminTokenCreatedSchema, status: 201 },
    },
    '/admin-tokens/{name}': { delete: { summary: 'Revoke an admin API token (role admin)', status: 204 } },
    '/apply': { post: { summary: 'Make the configuration match a bundles document', body: z.record(z.string(), z.unknown()), response: schemas.applyResultSchema } },
    '/config': { get: { summary: 'Show the whole configuration, secrets redacted', response: z.record(z.string(), z.unknown()) } },
    '/ca': { get: { summary: "Download the proxy's CA certificate (PEM)" } },
    '/credentials/{name}/test-connection': { post: { summary: 'Test a credential by name', response: schemas.testConnectionSchema } },
  };

  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, methods] of Object.entries(routes)) {
    paths[path] = Object.fromEntries(Object.entries(methods).map(([method, spec]) => [method, operation(spec, path)]));
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Agent Proxy admin API', version: '1' },
    servers: [{ url: '/api/v1' }],
    components: {
      schemas: { Error: jsonSchema(schemas.errorBodySchema, 'output') },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An admin API token; its role (admin, viewer or session-issuer) decides which routes it may call' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'ap_session', description: 'Browser session from POST /login; state-changing requests also need X-CSRF-Token' },
      },
    },
    security: [{ bearer: [] }, { cookie: [] }],
    paths,
  };
}
