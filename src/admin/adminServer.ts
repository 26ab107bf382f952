// The admin API under /api/v1, plus the unauthenticated health endpoints and Prometheus
// metrics. Route modules live in ./routes; authentication in ./auth.ts.

import Fastify, { type FastifyInstance } from 'fastify';
import { validateBundlesDocument } from '../config/bundlesFile.ts';
import { AdminAuditLog } from './adminAudit.ts';
import { AdminTokenService } from './adminTokens.ts';
import { ApiError, sendApiError } from './apiError.ts';
import { AdminAuth } from './auth.ts';
import { AuthFailureLimiter } from './authFailureLimiter.ts';
import { ConfigEditor } from './configEditor.ts';
import { registerConsole } from './console.ts';
import type { AdminServerDeps, RouteContext } from './context.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { routeAccess } from './routeAccess.ts';
import { registerAdminAuditRoutes } from './routes/adminAudit.ts';
import { registerAdminTokenRoutes } from './routes/adminTokens.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerBundleRoutes } from './routes/bundles.ts';
import { registerConfigRoutes } from './routes/config.ts';
import { registerCredentialRoutes } from './routes/credentials.ts';
import { registerPresetRoutes } from './routes/presets.ts';
import { registerSessionRoutes } from './routes/sessions.ts';
import { ViewBuilder } from './views.ts';

export type { AdminServerDeps, ApplyResult } from './context.ts';

export function buildAdminServer(deps: AdminServerDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 5 * 1024 * 1024 });
  const tokens = new AdminTokenService(deps.store, deps.logger);
  const audit = new AdminAuditLog(deps.store, deps.logger);
  const failures = new AuthFailureLimiter({ listener: 'admin API', logger: deps.logger, ...deps.authFailureLimit });
  const auth = new AdminAuth({ tokens, failures, audit });
  const context: RouteContext = {
    deps,
    editor: new ConfigEditor(deps.store, deps.reloadConfig, deps.logger, audit),
    views: new ViewBuilder(deps.store, deps.fingerprintKey),
    audit,
    tokens,
  };
  const openApiDocument = buildOpenApiDocument();

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => (deps.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'starting' })));
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });

  app.register(
    async (api) => {
      // Responses carry configuration and session tokens, so no cache may keep them. No CORS
      // headers are sent: only the console on the same origin may call the API from a browser.
      api.addHook('onSend', async (_request, reply, payload) => {
        reply.header('cache-control', 'no-store');
        return payload;
      });
      api.get('/openapi.json', async () => openApiDocument);
      auth.registerRoutes(api);

      api.register(async (protectedApi) => {
        protectedApi.addHook('onRoute', (route) => {
          for (const method of [route.method].flat()) {
            if (method !== 'HEAD' && routeAccess(method, route.url) === undefined) {
              throw new Error(`The admin API route ${method} ${route.url} has no entry in ROUTE_ACCESS (src/admin/routeAccess.ts); add the roles it allows.`);
            }
          }
        });
        protectedApi.addHook('onRequest', auth.requireAuthentication);
        protectedApi.addHook('onSend', audit.onSend);
        registerConfigRoutes(protectedApi, context);
        registerBundleRoutes(protectedApi, context);
        registerCredentialRoutes(protectedApi, context);
        registerPresetRoutes(protectedApi, context);
        registerSessionRoutes(protectedApi, context);
        registerAuditRoutes(protectedApi, context);
        registerAdminAuditRoutes(protectedApi, context);
        registerAdminTokenRoutes(protectedApi, context);
        protectedApi.post('/credentials/:name/test-connection', async (request) => {
          const { name } = request.params as { name: string };
          const result = await deps.testConnection(name);
          if (!result) {
            throw new ApiError('not_found', `No credential is named ${JSON.stringify(name)}; GET /api/v1/config lists the credentials.`, { field: 'name' });
          }
          return result;
        });
      });
    },
    { prefix: '/api/v1' },
  );

  registerConsole(app);

  app.setNotFoundHandler((request, reply) =>
    sendApiError(reply, new ApiError('not_found', `No route ${request.method} ${request.url.split('?')[0]}; GET /api/v1/openapi.json lists the routes.`)),
  );

  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    if (error instanceof ApiError) {
      return sendApiError(reply, error);
    }
    // Fastify's own client errors: malformed JSON, wrong content type, body too large.
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return sendApiError(reply, new ApiError('invalid_request', error.message, { status: error.statusCode }));
    }
    deps.logger.error({ err: error, method: request.method, url: request.url.split('?')[0] }, 'admin API request failed');
    return sendApiError(reply, new ApiError('internal_error', 'The admin API failed to handle the request; see the server log.'));
  });

  return app;
}

export { validateBundlesDocument };
