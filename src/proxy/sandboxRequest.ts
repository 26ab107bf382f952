// Handles one HTTP request of a sandbox toward a target the policy has already
// accepted: checks the credential's access, injects it, forwards the request
// upstream with both bodies streamed, and writes the audit event and log line.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, pipeline, type TransformCallback } from 'node:stream';
import type { Dispatcher } from 'undici';
import { pathForAudit, type AuditLog } from '../audit/auditLog.ts';
import { applyQueryInjection, injectedHeaderNames, type CredentialInjector, type Injection } from '../credentials/injection.ts';
import type { Bundle, Credential, Session } from '../domain/types.ts';
import { ProxyError, problemResponse } from '../errors.ts';
import type { Logger } from '../log.ts';
import { checkCredentialAccess } from '../policy/credentialAccess.ts';
import { formatAuthority } from './authority.ts';
import { downstreamResponseHeaders, flattenHeaders, upstreamRequestHeaders } from './headers.ts';
import { toProxyError } from './upstreamErrors.ts';
import type { UpstreamPool } from './upstreamPool.ts';

export interface SandboxTarget {
  scheme: 'https' | 'http';
  host: string;
  port: number;
}

/** What the proxy knows about the request before it reads it: who sends it, where to, and with which credential. */
export interface RequestContext {
  session: Session;
  target: SandboxTarget;
  credential: { bundle: Bundle; credential: Credential } | null;
  clientAddress: string | null;
}

export interface SandboxRequestDeps {
  pool: UpstreamPool;
  injector: CredentialInjector;
  audit: AuditLog;
  logger: Logger;
}

export class SandboxRequestHandler {
  readonly #deps: SandboxRequestDeps;

  constructor(deps: SandboxRequestDeps) {
    this.#deps = deps;
  }

  /** Forwards `req` to the context's target and streams the answer into `res`. Never throws. */
  async handle(context: RequestContext, req: IncomingMessage, res: ServerResponse, pathWithQuery: string): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const outcome: Outcome = { status: null, errorCode: null, bytesIn: 0, bytesOut: 0 };

    try {
      const prepared = await this.#prepare(context, method, pathWithQuery);
      await this.#forward(context, prepared, req, res, outcome);
    } catch (error) {
      const proxyError = toProxyError(error, context.target.host, context.target.port);
      outcome.errorCode = proxyError.code;
      outcome.status = proxyError.status;
      if (proxyError.code === 'internal_error' || !(error instanceof ProxyError)) {
        this.#deps.logger.error({ err: error, session: context.session.id, host: context.target.host }, 'upstream request failed');
      }
      sendProblem(res, proxyError);
      req.resume();
    }

    this.#finish(context, method, pathWithQuery, outcome, performance.now() - started);
  }

  /**
   * Runs the credential's access check and builds the outgoing path and headers.
   * Throws a ProxyError that is sent to the sandbox as is.
   */
  async #prepare(context: RequestContext, method: string, pathWithQuery: string): Promise<Prepared> {
    const path = pathWithQuery.split('?', 1)[0]!;
    let injection: Injection | null = null;

    if (context.credential) {
      const refusal = checkCredentialAccess(context.credential.credential, method, path);
      if (refusal) {
        throw refusal;
      }
      injection = await this.#deps.injector.prepare(context.credential.credential);
    }

    const dispatcher = this.#deps.pool.dispatcher(context.credential?.credential.id ?? 'anonymous');
    return { dispatcher, injection, upstreamPath: applyQueryInjection(pathWithQuery, injection?.query ?? null) };
  }

  async #forward(context: RequestContext, prepared: Prepared, req: IncomingMessage, res: ServerResponse, outcome: Outcome): Promise<void> {
    const { target } = context;
    const defaultPort = target.scheme === 'https' ? 443 : 80;
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      host: formatAuthority(target.host, target.port, defaultPort),
      remove: prepared.injection ? injectedHeaderNames(prepared.injection) : undefined,
    });
    if (prepared.injection) {
      headers.push(...prepared.injection.headers);
    }

    const requestBody = hasBody(req) ? countBytes(req, (count) => (outcome.bytesIn = count)) : null;
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });

    const upstream = await prepared.dispatcher.request({
      origin: `${target.scheme}://${formatAuthority(target.host, target.port)}`,
      path: prepared.upstreamPath,
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: flattenHeaders(headers),
      body: requestBody,
      signal: abort.signal,
    });

    outcome.status = upstream.statusCode;
    res.writeHead(upstream.statusCode, flattenHeaders(downstreamResponseHeaders(upstream.headers)));
    res.flushHeaders();

    await new Promise<void>((resolve) => {
      pipeline(upstream.body, countingTransform((count) => (outcome.bytesOut = count)), res, (error) => {
        if (error && !res.destroyed) {
          res.destroy(error);
        }
        resolve();
      });
    });
  }

  #finish(context: RequestContext, method: string, pathWithQuery: string, outcome: Outcome, durationMs: number): void {
    const auditPath = pathForAudit(pathWithQuery);
    const decision = outcome.errorCode ? (outcome.status !== null && outcome.status >= 500 ? 'error' : 'denied') : 'allowed';

    this.#deps.audit.record({
      kind: outcome.errorCode && outcome.status !== null && outcome.status < 500 ? 'refusal' : 'request',
      decision,
      errorCode: outcome.errorCode,
      sessionId: context.session.id,
      channel: context.session.channel,
      thread: context.session.thread,
      bundle: context.credential?.bundle.name ?? null,
      credential: context.credential?.credential.name ?? null,
      method,
      host: context.target.host,
      port: context.target.port,
      path: auditPath,
      status: outcome.status,
      bytesIn: outcome.bytesIn,
      bytesOut: outcome.bytesOut,
      durationMs: Math.round(durationMs),
      subject: null,
      clientAddress: context.clientAddress,
    });

    const line = {
      session: context.session.id,
      channel: context.session.channel,
      credential: context.credential?.credential.name ?? null,
      method,
      host: context.target.host,
      port: context.target.port,
      path: auditPath,
      status: outcome.status,
      error: outcome.errorCode,
      bytesIn: outcome.bytesIn,
      bytesOut: outcome.bytesOut,
      durationMs: Math.round(durationMs),
    };
    if (decision === 'allowed') this.#deps.logger.info(line, 'request forwarded');
    else if (decision === 'denied') this.#deps.logger.warn(line, 'request refused');
    else this.#deps.logger.error(line, 'request failed');
  }
}

interface Prepared {
  dispatcher: Dispatcher;
  injection: Injection | null;
  upstreamPath: string;
}

interface Outcome {
  status: number | null;
  errorCode: string | null;
  bytesIn: number;
  bytesOut: number;
}

/** Sends a problem response, or cuts the connection when the response has already started. */
export function sendProblem(res: ServerResponse, error: ProxyError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const problem = problemResponse(error);
  res.writeHead(problem.status, problem.headers);
  res.end(problem.body);
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function countBytes(source: IncomingMessage, report: (count: number) => void): Transform {
  const counter = countingTransform(report);
  pipeline(source, counter, () => {});
  return counter;
}

function countingTransform(report: (count: number) => void): Transform {
  let count = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      count += chunk.length;
      report(count);
      callback(null, chunk);
    },
  });
}
