// Handles one HTTP request of a sandbox toward a target the policy has already
// accepted: checks the credential's access, injects it, forwards the request
// upstream with both bodies streamed, and writes the audit event and log line.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import type { Dispatcher } from 'undici';
import { auditDecision, pathForAudit, type AuditLog } from '../audit/auditLog.ts';
import { INVALID_TOKEN_BODY_PEEK_BYTES, showsInvalidToken, type OAuthProvider } from '../credentials/oauth/providerRules.ts';
import { isOAuthCredential } from '../credentials/oauth/grants.ts';
import type { TokenManager } from '../credentials/oauth/tokenManager.ts';
import { applyQueryInjection, injectedHeaderNames, removeClientQueryCredentials, injectedValues, type CredentialInjector, type Injection } from '../credentials/injection.ts';
import type { Bundle, Credential, Session } from '../domain/types.ts';
import { ProxyError, problemResponse } from '../errors.ts';
import type { Logger } from '../log.ts';
import { checkCredentialAccess } from '../policy/credentialAccess.ts';
import { formatAuthority } from './authority.ts';
import { downstreamResponseHeaders, flattenHeaders, upstreamRequestHeaders } from './headers.ts';
import { reflectionPatterns, redactHeaders, ReflectionRedactor } from './reflectionRedactor.ts';
import { toProxyError } from './upstreamErrors.ts';
import type { UpstreamPool } from './upstreamPool.ts';

export interface SandboxTarget {
  scheme: 'https' | 'http';
  host: string;
  port: number;
}

/** The proxy's decisions about a request before its body is read: the session, the target and the credential. */
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
  tokens?: TokenManager;
}

export class SandboxRequestHandler {
  readonly #deps: SandboxRequestDeps;

  constructor(deps: SandboxRequestDeps) {
    this.#deps = deps;
  }

  /** Forwards `req` to the context's target and streams the response into `res`. Never throws. */
  async handle(context: RequestContext, req: IncomingMessage, res: ServerResponse, pathWithQuery: string): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const outcome: Outcome = { status: null, errorCode: null, bytesIn: 0, bytesOut: 0, subject: null, redactions: 0 };

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
      const refusal = rejectReflectingRequest(context.credential.credential, method, context.target, path) ?? checkCredentialAccess(context.credential.credential, method, path);
      if (refusal) {
        throw refusal;
      }
      injection = await this.#deps.injector.prepare(context.credential.credential, context.credential.bundle.name);
    }

    const dispatcher = this.#deps.pool.dispatcher(context.credential?.credential.id ?? 'anonymous');
    return { dispatcher, injection, upstreamPath: applyQueryInjection(context.credential ? removeClientQueryCredentials(pathWithQuery) : pathWithQuery, injection?.query ?? null), originalPath: pathWithQuery };
  }

  /**
   * Sends the request upstream and streams the response back. When the response shows
   * that an injected OAuth token is no longer valid, the token is dropped and, if
   * the request body can be sent again, the request is retried once with a new token.
   */
  async #forward(context: RequestContext, prepared: Prepared, req: IncomingMessage, res: ServerResponse, outcome: Outcome): Promise<void> {
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });

    outcome.subject = prepared.injection?.token?.subject ?? null;
    // A retry injects a new token, and the rejected one is no less secret, so the response is searched for both.
    const injected = prepared.injection ? injectedValues(prepared.injection) : [];
    const body = await readReplayableBody(req, prepared.injection?.token ? MAX_REPLAY_BODY_BYTES : 0, (count) => (outcome.bytesIn = count));
    let upstream = await this.#send(context, prepared, req, body, abort.signal);
    let prefix: Buffer | null = null;

    const token = prepared.injection?.token;
    if (token) {
      prefix = await peekInvalidTokenBody(token.provider, upstream);
      if (showsInvalidToken(token.provider, upstream.statusCode, prefix?.toString('utf8') ?? null)) {
        this.#deps.tokens?.invalidate(token.credentialId, token.accessToken);
        if (body.replayable) {
          this.#deps.logger.info({ session: context.session.id, credential: context.credential?.credential.name, status: upstream.statusCode }, 'upstream rejected the token; retrying once with a new token');
          // dump() drains the rejected response with an error listener attached. destroy() alone emits an unhandled 'error' that ends the process.
          await upstream.body.dump();
          const retried = await this.#prepare(context, req.method ?? 'GET', prepared.originalPath);
          upstream = await this.#send(context, retried, req, body, abort.signal);
          if (retried.injection) injected.push(...injectedValues(retried.injection));
          prefix = null;
        }
      }
    }

    const patterns = reflectionPatterns(injected);
    const hasBody = (req.method ?? 'GET') !== 'HEAD' && upstream.statusCode !== 204 && upstream.statusCode !== 304;
    let decoders: Transform[] = [];
    try {
      decoders = patterns.length > 0 && hasBody ? contentDecoders(upstream.headers['content-encoding'], context.target.host) : [];
    } catch (error) {
      await upstream.body.dump();
      throw error;
    }
    let headers = downstreamResponseHeaders(upstream.headers);
    if (decoders.length > 0) {
      // The body goes out decoded, so the headers that describe the encoded bytes no longer apply.
      headers = headers.filter(([name]) => !['content-encoding', 'content-length'].includes(name.toLowerCase()));
    }
    if (patterns.length > 0) {
      const redacted = redactHeaders(headers, patterns);
      headers = redacted.headers;
      outcome.redactions += redacted.found;
    }

    outcome.status = upstream.statusCode;
    res.writeHead(upstream.statusCode, flattenHeaders(headers));
    res.flushHeaders();
    const counter = countingTransform((count) => (outcome.bytesOut = count));
    const stages: Transform[] = [...decoders];
    if (patterns.length > 0) {
      stages.push(new ReflectionRedactor(patterns, (found) => (outcome.redactions += found)));
    }
    stages.push(counter);
    if (prefix && prefix.length > 0) {
      stages[0]!.write(prefix);
    }

    await new Promise<void>((resolve) => {
      pipeline([upstream.body, ...stages, res], (error) => {
        if (error && !res.destroyed) {
          res.destroy(error);
        }
        resolve();
      });
    });
  }

  async #send(context: RequestContext, prepared: Prepared, req: IncomingMessage, body: RequestBody, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    const { target } = context;
    const headers = upstreamRequestHeaders(req.rawHeaders, {
      host: formatAuthority(target.host, target.port, target.scheme === 'https' ? 443 : 80),
      remove: prepared.injection ? injectedHeaderNames(prepared.injection, context.credential?.credential) : undefined,
    });
    if (prepared.injection) {
      headers.push(...prepared.injection.headers);
      // A compressed body cannot be searched for an echoed credential as it streams past.
      // Upstreams that compress anyway are decoded on the way back (see contentDecoders).
      const identity = headers.filter(([name]) => name.toLowerCase() !== 'accept-encoding');
      headers.splice(0, headers.length, ...identity, ['accept-encoding', 'identity']);
    }
    if (body.replayable && body.buffer) {
      // The client's own Content-Length is still in `headers`, and undici rejects a request with two.
      const framed = headers.filter(([name]) => name.toLowerCase() !== 'content-length');
      headers.splice(0, headers.length, ...framed, ['content-length', String(body.buffer.length)]);
    }

    return prepared.dispatcher.request({
      origin: `${target.scheme}://${formatAuthority(target.host, target.port)}`,
      path: prepared.upstreamPath,
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: flattenHeaders(headers),
      body: body.replayable ? body.buffer : body.stream,
      signal,
    });
  }

  #finish(context: RequestContext, method: string, pathWithQuery: string, outcome: Outcome, durationMs: number): void {
    const auditPath = pathForAudit(pathWithQuery);
    const decision = auditDecision(outcome.errorCode, outcome.status);

    this.#deps.audit.record({
      kind: outcome.errorCode && outcome.status !== null && outcome.status < 500 ? 'refusal' : 'request',
      decision,
      // The request itself was allowed; the code only marks that the sandbox got a masked response.
      errorCode: outcome.errorCode ?? (outcome.redactions > 0 ? RESPONSE_REDACTED : null),
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
      subject: outcome.subject,
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
      redactions: outcome.redactions,
    };
    if (outcome.redactions > 0) this.#deps.logger.warn(line, 'upstream response echoed the injected credential; masked it');
    if (decision === 'allowed') this.#deps.logger.info(line, 'request forwarded');
    else if (decision === 'denied') this.#deps.logger.warn(line, 'request refused');
    else this.#deps.logger.error(line, 'request failed');
  }
}

interface Prepared {
  dispatcher: Dispatcher;
  injection: Injection | null;
  upstreamPath: string;
  /** The path before the credential's query parameter was added, for a retry to start from. */
  originalPath: string;
}

/** A request body either held in memory (so it can be sent twice) or streamed once. */
type RequestBody = { replayable: true; buffer: Buffer | null } | { replayable: false; stream: Readable };

/**
 * Bodies up to this size are held in memory when an OAuth token is injected, so the
 * request can be retried once if the upstream rejects the token. Larger bodies, and
 * chunked bodies of unknown size, are streamed and a rejection goes back to the client.
 */
export const MAX_REPLAY_BODY_BYTES = 64 * 1024;

interface Outcome {
  /** Subject the injected OAuth token acts for, so the audit shows which user each call ran as. */
  subject: string | null;
  status: number | null;
  errorCode: string | null;
  bytesIn: number;
  bytesOut: number;
  /** Occurrences of the injected credential masked in the response headers and body. */
  redactions: number;
}

/** Audit error code of an allowed request whose response echoed the injected credential and was masked. */
export const RESPONSE_REDACTED = 'response_redacted';

/**
 * Rejects requests whose response would hand the sandbox what the proxy injected:
 * `TRACE` (RFC 9110 §9.3.8) and Microsoft's `TRACK` echo the request with its
 * headers, and the credential's own token endpoint answers with tokens minted for
 * the proxy. Returns null when the request may go on to the access check.
 */
export function rejectReflectingRequest(credential: Credential, method: string, target: SandboxTarget, path: string): ProxyError | null {
  const upper = method.toUpperCase();
  if (upper === 'TRACE' || upper === 'TRACK') {
    return new ProxyError(
      'method_not_allowed_by_credential',
      `${upper} to ${target.host} is rejected because the upstream would echo the injected credential of "${credential.name}" back to the sandbox. Use another method.`,
      { host: target.host, credential: credential.name, method: upper },
    );
  }

  if (isOAuthCredential(credential) && isTokenEndpoint(credential.settings.tokenUrl, target, path)) {
    return new ProxyError(
      'method_not_allowed_by_credential',
      `${target.host}${path} is the token endpoint of credential "${credential.name}". Agent Proxy requests tokens itself and rejects sandbox requests to that endpoint; call the API directly and the proxy adds the token.`,
      { host: target.host, credential: credential.name, method: upper },
    );
  }
  return null;
}

function isTokenEndpoint(tokenUrl: string, target: SandboxTarget, path: string): boolean {
  const url = new URL(tokenUrl);
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = Number(url.port) || (url.protocol === 'http:' ? 80 : 443);
  if (host !== target.host.toLowerCase() || port !== target.port) {
    return false;
  }
  // Servers differ in how they treat case, escapes and a trailing slash, so each is compared loosely.
  const comparable = (value: string) => safeDecode(value).toLowerCase().replace(/\/+$/, '');
  return comparable(path) === comparable(url.pathname);
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * Returns the decoders for a response's Content-Encoding, outermost last as RFC 9110
 * §8.4 lists them. Throws `response_not_inspectable` for an encoding Node cannot decode,
 * since that body cannot be searched for the injected credential.
 */
function contentDecoders(contentEncoding: string | string[] | undefined, host: string): Transform[] {
  const codings = (Array.isArray(contentEncoding) ? contentEncoding.join(',') : (contentEncoding ?? ''))
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');

  // A body cut short still ends cleanly, as curl and browsers accept it.
  const lenient = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
  return codings.reverse().map((coding) => {
    switch (coding) {
      case 'gzip':
      case 'x-gzip':
        return zlib.createGunzip(lenient);
      case 'deflate':
        return zlib.createInflate(lenient);
      case 'br':
        return zlib.createBrotliDecompress({ finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH });
      default:
        throw new ProxyError(
          'response_not_inspectable',
          `${host} answered with Content-Encoding "${coding}", which Agent Proxy cannot decode to check that the response does not echo the injected credential. The response was not passed on; ask for an uncompressed response.`,
          { host, contentEncoding: coding },
        );
    }
  });
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

async function readReplayableBody(req: IncomingMessage, limit: number, report: (count: number) => void): Promise<RequestBody> {
  if (!hasBody(req)) {
    return { replayable: true, buffer: null };
  }

  const length = Number(req.headers['content-length']);
  if (req.headers['transfer-encoding'] !== undefined || !Number.isSafeInteger(length) || length > limit) {
    const counter = countingTransform(report);
    pipeline(req, counter, () => {});
    return { replayable: false, stream: counter };
  }

  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    chunks.push(chunk as Buffer);
  }
  const buffer = Buffer.concat(chunks);
  report(buffer.length);
  return { replayable: true, buffer };
}

/**
 * Reads the start of a response body where the status alone cannot tell whether the
 * token was rejected (Salesforce's 403 `Bad_OAuth_Token`). Returns the bytes read, which
 * must be sent on before the rest of the body.
 */
async function peekInvalidTokenBody(provider: OAuthProvider, upstream: Dispatcher.ResponseData): Promise<Buffer | null> {
  if (provider !== 'salesforce' || upstream.statusCode !== 403) {
    return null;
  }
  return readPrefix(upstream.body, INVALID_TOKEN_BODY_PEEK_BYTES);
}

/** Reads at least `max` bytes (or up to the end) without ending the stream, so the rest can still be piped. */
async function readPrefix(stream: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  while (size < max) {
    const chunk = stream.read() as Buffer | null;
    if (chunk !== null) {
      chunks.push(chunk);
      size += chunk.length;
      continue;
    }
    if (stream.readableEnded || stream.destroyed) break;
    const ended = await new Promise<boolean>((resolve) => {
      const onReadable = () => finish(false);
      const onEnd = () => finish(true);
      const finish = (done: boolean) => {
        stream.off('readable', onReadable);
        stream.off('end', onEnd);
        stream.off('error', onEnd);
        stream.off('close', onEnd);
        resolve(done);
      };
      stream.on('readable', onReadable);
      stream.on('end', onEnd);
      stream.on('error', onEnd);
      stream.on('close', onEnd);
    });
    if (ended) break;
  }
  return Buffer.concat(chunks);
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
