// Limits that keep one sandbox session, or a client that never finishes its
// request, from exhausting the proxy for everyone else: concurrent connections
// per session and in total, the time to send request headers, the size of those
// headers, and the idle time allowed while a request body is being received.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ProxyError, problemResponse } from '../errors.ts';

export interface ProxyLimits {
  /** Concurrent CONNECT tunnels plus in-flight absolute-form requests of one session. */
  maxConnectionsPerSession: number;
  /** Concurrent CONNECT tunnels plus in-flight absolute-form requests of all sessions together. */
  maxConnectionsTotal: number;
  /** Time in milliseconds from the first byte of a request to the end of its headers; later gets 408. */
  headersTimeoutMs: number;
  /** Time in milliseconds a request body may stay without a new byte before the connection is closed. */
  bodyIdleTimeoutMs: number;
  /** Maximum size in bytes of a request line plus headers; more gets 431. */
  maxHeaderBytes: number;
}

// NOTE: 256 per session and 4,096 in total are estimates (an agent rarely needs more
// than a browser's few dozen connections; each tunnel costs two or three file
// descriptors), not measured capacities.
export const DEFAULT_LIMITS: ProxyLimits = {
  maxConnectionsPerSession: 256,
  maxConnectionsTotal: 4096,
  headersTimeoutMs: 30_000,
  bodyIdleTimeoutMs: 60_000,
  maxHeaderBytes: 16 * 1024,
};

/** Returns the limits with `overrides` applied, so callers and tests name only what they change. */
export function resolveLimits(overrides: Partial<ProxyLimits> = {}): ProxyLimits {
  return { ...DEFAULT_LIMITS, ...overrides };
}

/**
 * Node checks `headersTimeout` on a timer whose default period is 30 s, so a slow
 * client could hold its headers open for twice the limit. Checking at a quarter of
 * the limit (at most every second) keeps the overshoot small.
 */
export function connectionsCheckingInterval(limits: ProxyLimits): number {
  return Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4)));
}

/** Counts the concurrent connections of each session and of the whole proxy. */
export class ConnectionLimiter {
  readonly #limits: ProxyLimits;
  readonly #bySession = new Map<string, number>();
  #total = 0;

  constructor(limits: ProxyLimits) {
    this.#limits = limits;
  }

  get total(): number {
    return this.#total;
  }

  /**
   * Takes a slot for the session. Returns a release function that may be called more
   * than once, or the `too_many_connections` refusal when a limit is reached.
   */
  acquire(sessionId: string): (() => void) | ProxyError {
    const current = this.#bySession.get(sessionId) ?? 0;
    if (current >= this.#limits.maxConnectionsPerSession) {
      return new ProxyError(
        'too_many_connections',
        `Session ${sessionId} already has ${current} open tunnels and requests, the maximum for one session. Close connections you no longer use, or reuse them with keep-alive.`,
        { session: sessionId, limit: this.#limits.maxConnectionsPerSession },
      );
    }
    if (this.#total >= this.#limits.maxConnectionsTotal) {
      return new ProxyError(
        'too_many_connections',
        `Agent Proxy has ${this.#total} open tunnels and requests, its maximum for all sessions together. Retry shortly; the administrator can see the load in the proxy metrics.`,
        { limit: this.#limits.maxConnectionsTotal },
      );
    }

    this.#bySession.set(sessionId, current + 1);
    this.#total += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total -= 1;
      const remaining = (this.#bySession.get(sessionId) ?? 1) - 1;
      if (remaining <= 0) this.#bySession.delete(sessionId);
      else this.#bySession.set(sessionId, remaining);
    };
  }
}

/**
 * Returns the refusal for an error Node's HTTP parser reports on a client connection
 * (`clientError`). Node's own answers (431, 408, 400) would carry no error code, so
 * the proxy sends its problem responses instead.
 */
export function clientErrorRefusal(error: NodeJS.ErrnoException, limits: ProxyLimits): ProxyError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new ProxyError('request_header_fields_too_large', `The request line and headers are larger than ${limits.maxHeaderBytes} bytes. Send fewer or shorter headers.`, {
        limit: limits.maxHeaderBytes,
      });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return headersTimeoutRefusal(limits);
    default:
      // llhttp rejects ambiguous framing (CL with TE, repeated Content-Length, obsolete line folding, bare CR or LF, NUL), the request smuggling vectors of CVE-2022-32213, CVE-2022-32215 and CVE-2023-30589.
      return new ProxyError('bad_request', `The request is not valid HTTP/1.1 (${error.code ?? 'parse error'}), so Agent Proxy did not forward it.`, {
        reason: error.code ?? null,
      });
  }
}

export function headersTimeoutRefusal(limits: ProxyLimits): ProxyError {
  return new ProxyError('request_timeout', `The request headers did not arrive within ${limits.headersTimeoutMs} ms, so Agent Proxy closed the connection.`, {
    limit: limits.headersTimeoutMs,
  });
}

/** Serialises a problem response for a raw socket whose HTTP parser has failed, and closes it. */
export function refuseOnSocket(socket: Duplex, error: ProxyError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const problem = problemResponse(error);
  const lines = [`HTTP/1.1 ${problem.status} ${error.code}`];
  for (const [name, value] of Object.entries(problem.headers)) {
    lines.push(`${name}: ${value}`);
  }
  lines.push('connection: close');
  socket.end(`${lines.join('\r\n')}\r\n\r\n${problem.body}`);
}

/**
 * Closes the connection when a request body stays idle for `limits.bodyIdleTimeoutMs`.
 * Without it a client could hold a slot (and an upstream connection) open forever
 * by sending a body one byte a minute, because the listeners run with
 * `requestTimeout: 0` so that long uploads are possible. The timer is the socket's
 * inactivity timeout, so it also fires when the upstream stops reading the body for
 * that long. `onTimeout` is called before the socket is destroyed, for the log.
 */
export function armBodyIdleTimeout(req: IncomingMessage, limits: ProxyLimits, onTimeout: () => void): void {
  if (req.complete) return;
  // A 'timeout' listener on the request stops Node from destroying the socket itself, so the log line comes first.
  req.setTimeout(limits.bodyIdleTimeoutMs, () => {
    onTimeout();
    req.socket.destroy();
  });
  const disarm = () => {
    if (!req.socket.destroyed) req.socket.setTimeout(0);
  };
  req.once('end', disarm);
}
