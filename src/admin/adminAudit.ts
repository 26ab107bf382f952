// The admin audit trail: one row per object a configuration change touched, naming the
// token that made it, the action, the target, the names of the changed fields (never
// their values), the outcome and the client address. Each row is also logged as one
// `admin audit` line, so the process log shows it next to the proxy's request lines.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.ts';
import type { AdminAuditEvent, AdminAuditOutcome, Store } from '../store/store.ts';
import type { TargetChange } from './configDiff.ts';
import { principalOf } from './principal.ts';
import { routeAccess } from './routeAccess.ts';

/** What a route handler found out about its change; the onSend hook turns it into rows. */
interface AuditNote {
  changes?: TargetChange[];
  target?: string;
  fields?: string[];
}

export type AdminAuditEntry = Omit<AdminAuditEvent, 'id' | 'time'>;

export class AdminAuditLog {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #notes = new WeakMap<FastifyRequest, AuditNote>();

  constructor(store: Store, logger: Logger, now: () => number = Date.now) {
    this.#store = store;
    this.#logger = logger;
    this.#now = now;
  }

  /** Records the objects a configuration change created, changed or deleted, one row each. */
  noteChanges(request: FastifyRequest, changes: TargetChange[]): void {
    this.#notes.set(request, { ...this.#notes.get(request), changes });
  }

  /** Records the target of a change that is not part of the configuration, such as a session. */
  noteTarget(request: FastifyRequest, target: string, fields: string[] = []): void {
    this.#notes.set(request, { ...this.#notes.get(request), target, fields });
  }

  /**
   * Stores the entries and logs each. A failure to store is logged and not raised, because
   * the change it describes is already committed and the client must still get its response.
   */
  async record(entries: AdminAuditEntry[]): Promise<void> {
    const time = new Date(this.#now());
    for (const entry of entries) {
      this.#logger.info(
        { actor: entry.actor, action: entry.action, target: entry.target, fields: entry.fields, outcome: entry.outcome, clientAddress: entry.clientAddress },
        'admin audit',
      );
    }
    try {
      await this.#store.appendAdminAudit(entries.map((entry) => ({ ...entry, time })));
    } catch (error) {
      this.#logger.error({ err: error, actions: entries.map((entry) => entry.action) }, 'storing admin audit events failed');
    }
  }

  /**
   * onSend hook of the authenticated routes. It runs before the response leaves, so a client
   * that reads the admin audit after its change finds the change there. Requests that did
   * not authenticate (401, 429) have no actor and are left to the failure limiter's log.
   */
  readonly onSend = async (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    const action = routeAccess(request.method, request.routeOptions.url ?? '')?.action;
    const principal = principalOf(request);
    if (action === undefined || principal === undefined) {
      return payload;
    }
    if (request.method === 'POST' && request.routeOptions.url?.endsWith('/apply') && (request.query as Record<string, unknown>)['dryRun'] === 'true') {
      return payload;
    }

    const outcome = outcomeOf(reply.statusCode);
    const base = { actor: principal.tokenName, action, outcome, clientAddress: request.ip };
    const note = this.#notes.get(request) ?? {};
    const changes = outcome === 'success' ? (note.changes ?? []) : [];
    const entries: AdminAuditEntry[] =
      changes.length > 0
        ? changes.map((change) => ({ ...base, target: change.target, fields: change.fields }))
        : [{ ...base, target: note.target ?? request.url.split('?')[0]!, fields: note.fields ?? [] }];
    await this.record(entries);
    return payload;
  };
}

function outcomeOf(status: number): AdminAuditOutcome {
  if (status < 400) return 'success';
  return status === 403 ? 'denied' : 'failure';
}
