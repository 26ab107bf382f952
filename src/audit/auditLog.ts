import type { AuditDecision, AuditEvent } from '../domain/types.ts';
import type { Logger } from '../log.ts';
import type { Store } from '../store/store.ts';

const FLUSH_INTERVAL_MS = 100;
const FLUSH_BATCH = 200;

/**
 * Buffers audit events and writes them to the store in batches, so a burst of
 * proxied requests costs one transaction instead of one per request.
 */
export class AuditLog {
  readonly #store: Store;
  readonly #logger: Logger;
  #pending: AuditEvent[] = [];
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> = Promise.resolve();

  readonly #onRecord: (event: AuditEvent) => void;

  constructor(store: Store, logger: Logger, onRecord: (event: AuditEvent) => void = () => {}) {
    this.#store = store;
    this.#logger = logger;
    this.#onRecord = onRecord;
  }

  record(event: Omit<AuditEvent, 'time'> & { time?: Date }): void {
    const complete = { ...event, time: event.time ?? new Date() };
    this.#onRecord(complete);
    this.#pending.push(complete);
    if (this.#pending.length >= FLUSH_BATCH) {
      void this.flush();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
      this.#timer.unref();
    }
  }

  /** Writes every buffered event; resolves when they are stored. */
  flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) {
      return this.#writing;
    }

    this.#writing = this.#writing.then(async () => {
      try {
        await this.#store.appendAudit(batch);
      } catch (error) {
        this.#logger.error({ err: error, events: batch.length }, 'failed to write audit events');
      }
    });
    return this.#writing;
  }
}

/**
 * Returns the audit decision of a request the proxy handled: allowed without an error
 * code, error when the proxy or the upstream failed (5xx), denied for any other refusal.
 */
export function auditDecision(errorCode: string | null, status: number | null): AuditDecision {
  if (!errorCode) {
    return 'allowed';
  }
  if (status !== null && status >= 500) {
    return 'error';
  }
  return 'denied';
}

/** Keeps a path and its query keys but drops every query value: `/search?q=secret&page=2` → `/search?q=&page=`. */
export function pathForAudit(pathWithQuery: string): string {
  const questionMark = pathWithQuery.indexOf('?');
  if (questionMark < 0) {
    return pathWithQuery;
  }
  const keys = pathWithQuery
    .slice(questionMark + 1)
    .split('&')
    .filter((part) => part !== '')
    .map((part) => `${part.split('=', 1)[0]}=`);
  return `${pathWithQuery.slice(0, questionMark)}?${keys.join('&')}`;
}
