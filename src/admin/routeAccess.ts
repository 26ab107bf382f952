// The role each admin API route requires, and the admin audit action it records. Every
// authenticated route must have an entry, or the server fails to start, so a new route
// cannot end up open to every role by mistake.

import type { AdminRole } from '../store/store.ts';

export interface RouteAccess {
  roles: readonly AdminRole[];
  /** Set for routes that change something; the admin audit trail records them under this name. */
  action?: string;
}

const ADMIN: readonly AdminRole[] = ['admin'];
const READERS: readonly AdminRole[] = ['admin', 'viewer'];
const SESSION_WRITERS: readonly AdminRole[] = ['admin', 'session-issuer'];
const EVERY_ROLE: readonly AdminRole[] = ['admin', 'viewer', 'session-issuer'];

/** Keyed by `METHOD path` with the path as registered under /api/v1. */
export const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = {
  'GET /config': { roles: READERS },
  'POST /apply': { roles: ADMIN, action: 'config.apply' },
  'GET /egress': { roles: READERS },
  'PUT /egress': { roles: ADMIN, action: 'egress.update' },
  // The CA certificate is public, and an orchestrator that makes sessions must hand it to sandboxes.
  'GET /ca': { roles: EVERY_ROLE },

  'GET /bundles': { roles: READERS },
  'POST /bundles': { roles: ADMIN, action: 'bundle.create' },
  'GET /bundles/:bundleId': { roles: READERS },
  'PATCH /bundles/:bundleId': { roles: ADMIN, action: 'bundle.update' },
  'DELETE /bundles/:bundleId': { roles: ADMIN, action: 'bundle.delete' },
  'GET /bundles/:bundleId/credentials': { roles: READERS },
  'POST /bundles/:bundleId/credentials': { roles: ADMIN, action: 'credential.create' },
  'GET /bundles/:bundleId/credentials/:credentialId': { roles: READERS },
  'PATCH /bundles/:bundleId/credentials/:credentialId': { roles: ADMIN, action: 'credential.update' },
  'DELETE /bundles/:bundleId/credentials/:credentialId': { roles: ADMIN, action: 'credential.delete' },
  'POST /bundles/:bundleId/credentials/:credentialId/move': { roles: ADMIN, action: 'credential.move' },
  // Testing a connection mints a token with the credential, so it is kept to admins.
  'POST /bundles/:bundleId/credentials/:credentialId/test-connection': { roles: ADMIN },
  'POST /credentials/:name/test-connection': { roles: ADMIN },

  'GET /presets': { roles: READERS },
  'GET /presets/:presetId': { roles: READERS },
  'POST /presets/:presetId/credential': { roles: ADMIN, action: 'credential.create' },

  'GET /sessions': { roles: EVERY_ROLE },
  'POST /sessions': { roles: SESSION_WRITERS, action: 'session.create' },
  'DELETE /sessions/:id': { roles: SESSION_WRITERS, action: 'session.revoke' },

  'GET /audit': { roles: READERS },
  'GET /admin-audit': { roles: READERS },

  'GET /admin-tokens': { roles: ADMIN },
  'POST /admin-tokens': { roles: ADMIN, action: 'admin_token.create' },
  'DELETE /admin-tokens/:name': { roles: ADMIN, action: 'admin_token.revoke' },
};

export const API_PREFIX = '/api/v1';

/** Returns the access rule of a registered route, or undefined when the table has none. HEAD uses the GET rule. */
export function routeAccess(method: string, url: string): RouteAccess | undefined {
  const path = url.startsWith(API_PREFIX) ? url.slice(API_PREFIX.length) : url;
  return ROUTE_ACCESS[`${method === 'HEAD' ? 'GET' : method} ${path}`];
}
