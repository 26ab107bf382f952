// Who an authenticated admin API request acts as: the admin token it presented, or the
// token its cookie session logged in with.

import type { FastifyRequest } from 'fastify';
import type { AdminRole } from '../store/store.ts';

export interface AdminPrincipal {
  tokenId: string;
  tokenName: string;
  role: AdminRole;
  via: 'bearer' | 'cookie';
}

const principals = new WeakMap<FastifyRequest, AdminPrincipal>();

export function setPrincipal(request: FastifyRequest, principal: AdminPrincipal): void {
  principals.set(request, principal);
}

/** Returns the request's principal, or undefined before authentication or when it failed. */
export function principalOf(request: FastifyRequest): AdminPrincipal | undefined {
  return principals.get(request);
}
