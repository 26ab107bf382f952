// The sandbox-facing listener: CONNECT for HTTPS (intercepted or tunnelled) and
// absolute-form requests for plain HTTP and for old clients that send
// `GET https://…` to the proxy.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { auditDecision, type AuditLog } from '../audit/auditLog.ts';
import type { Session } from '../domain/types.ts';
import { ProxyError, problemResponse } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { CompiledConfig } from '../policy/compiledConfig.ts';
import { decideTarget } from '../policy/decide.ts';
import { normalizeHost } from '../policy/hostPattern.ts';
import { looksLikeIpLiteral, parseIpLiteral } from '../policy/ipAddress.ts';
import type { SessionAuthenticator } from '../sessions/sessionAuthenticator.ts';
import { parseConnectAuthority } from './authority.ts';
import type { AuthFailureLimiter } from '../admin/authFailureLimiter.ts';
import type { Dialer } from './dialer.ts';
import { sendProblem, type RequestContext, type SandboxRequestHandler, type SandboxTarget } from './sandboxRequest.ts';
import { duplicateHostProblem, parseHostHeader, rawResponse, type TlsInterceptor } from './tlsInterceptor.ts';
import { ambiguousFramingReason, asksForHttp2, upgradeRefusalReason } from './headers.ts';
import { ConnectionLimiter, DEFAULT_LIMITS, armBodyIdleTimeout, clientErrorRefusal, connectionsCheckingInterval, refuseOnSocket, type ProxyLimits } from './limits.ts';
import { relay } from './tunnel.ts';
import { toProxyError } from './upstreamErrors.ts';

export interface ProxyServerDeps {
  config: () => CompiledConfig;
  authenticator: SessionAuthenticator;
  dialer: Dialer;
  interceptor: TlsInterceptor;
  handler: SandboxRequestHandler;
  audit: AuditLog;
  logger: Logger;
  /** Connection, header and body limits; DEFAULT_LIMITS when absent. */
  limits?: ProxyLimits;
  /** Counts the connections refused by a limit, by error code. */
  onLimitRefusal?: (code: string) => void;
  /** Rejects a client address with 429 after repeated failed proxy authentications. */
  authFailures?: AuthFailureLimiter;
}

export class ProxyServer {
  readonly #deps: ProxyServerDeps;
  readonly #server: http.Server;
  readonly #sockets = new Set<Duplex>();
  readonly #socketsBySession = new Map<string, Set<Duplex>>();
  readonly #limits: ProxyLimits;
  readonly #connections: ConnectionLimiter;

  constructor(deps: ProxyServerDeps) {
    this.#deps = deps;
    this.#limits = deps.limits ?? DEFAULT_LIMITS;
    this.#connections = new ConnectionLimiter(this.#limits);
    this.#server = http.createServer({
      // Absolute-form requests from some clients carry no Host header.
      requireHostHeader: false,
      // Uploads and downloads may take longer than any fixed limit; idle sockets are closed instead.
      requestTimeout: 0,
      headersTimeout: this.#limits.headersTimeoutMs,
      connectionsCheckingInterval: connectionsCheckingInterval(this.#limits),
      // Set explicitly so that neither --max-http-header-size nor a Node upgrade changes it unnoticed.
      maxHeaderSize: this.#limits.maxHeaderBytes,
      // Lenient parsing would accept the ambiguous framing that request smuggling needs (CVE-2022-32215); it must stay off.
      insecureHTTPParser: false,
      keepAliveTimeout: 60_000,
    });
    this.#server.on('request', (req, res) => void this.#onRequest(req, res));
    this.#server.on('connect', (req, socket, head) => void this.#onConnect(req, socket as Duplex, head));
    this.#server.on('connection', (socket: Duplex) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      const refusal = clientErrorRefusal(error, this.#limits);
      this.#deps.onLimitRefusal?.(refusal.code);
      this.#deps.logger.warn({ client: (socket as { remoteAddress?: string }).remoteAddress ?? null, error: refusal.code, reason: error.code ?? null }, 'client request rejected by the HTTP parser');
      refuseOnSocket(socket, refusal);
    });
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Closes every CONNECT tunnel of a session, so a revoked session keeps no open connection. */
  closeSession(sessionId: string): void {
    for (const socket of this.#socketsBySession.get(sessionId) ?? []) {
      socket.destroy();
    }
    this.#socketsBySession.delete(sessionId);
  }

  #trackSession(sessionId: string, socket: Duplex): void {
    let sockets = this.#socketsBySession.get(sessionId);
    if (!sockets) {
      sockets = new Set();
      this.#socketsBySession.set(sessionId, sockets);
    }
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0 && this.#socketsBySession.get(sessionId) === sockets) this.#socketsBySession.delete(sessionId);
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    this.#server.closeAllConnections();
    await closed;
  }

  async #onConnect(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const clientAddress = req.socket.remoteAddress ?? null;
    let session: Session | null = null;
    let target: SandboxTarget | null = null;

    try {
      // The target is parsed first so that a refused authentication is audited with the host it was for.
      const authority = parseConnectAuthority(req.url ?? '');
      const host = authority ? canonicalHost(authority.host) : null;
      if (authority && host) {
        target = { scheme: 'https', host, port: authority.port };
      }

      session = await this.#authenticate(req, clientAddress);
      this.#trackSession(session.id, socket);
      const release = this.#connections.acquire(session.id);
      if (release instanceof ProxyError) {
        this.#deps.onLimitRefusal?.(release.code);
        throw release;
      }
      socket.once('close', release);
      if (!authority || !host || !target) {
        throw new ProxyError('bad_request', `The CONNECT target ${JSON.stringify((req.url ?? '').slice(0, 100))} is not a valid host:port.`);
      }

      const config = this.#deps.config();
      const decision = decideTarget(config, { channel: session.channel, host, port: authority.port, scheme: 'https' });
      if (decision.kind === 'deny') {
        throw decision.error;
      }
      const address = await this.#deps.dialer.resolve(host, authority.port, config.allowedNetworks);

      if (decision.kind === 'intercept') {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        const context: RequestContext = { session, target, credential: { bundle: decision.bundle, credential: decision.credential }, clientAddress };
        this.#deps.logger.debug({ session: session.id, host, port: authority.port, credential: decision.credential.name }, 'intercepting CONNECT');
        await this.#deps.interceptor.accept(socket, head, context);
        return;
      }

      const upstream = await this.#deps.dialer.connectTcp(address, authority.port, { allowHalfOpen: true });
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      const started = performance.now();
      const bytes = await relay(socket, upstream);
      this.#recordTunnel(session, target, clientAddress, null, 200, bytes.bytesFromClient, bytes.bytesFromUpstream, performance.now() - started);
    } catch (error) {
      const proxyError = target ? toProxyError(error, target.host, target.port) : toProxyErrorWithoutTarget(error);
      const problem = problemResponse(proxyError);
      if (socket.writable) socket.end(rawResponse(problem.status, problem.headers, problem.body));
      this.#recordTunnel(session, target, clientAddress, proxyError, proxyError.status, 0, 0, 0);
    }
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const clientAddress = req.socket.remoteAddress ?? null;
    const requestTarget = req.url ?? '';
    if (!/^https?:\/\//i.test(requestTarget)) {
      sendProblem(
        res,
        new ProxyError('bad_request', 'Agent Proxy is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT, with the proxy configured as HTTP(S)_PROXY.'),
      );
      return;
    }

    let session: Session | null = null;
    let target: SandboxTarget | null = null;
    try {
      session = await this.#authenticate(req, clientAddress);
      const release = this.#connections.acquire(session.id);
      if (release instanceof ProxyError) {
        this.#deps.onLimitRefusal?.(release.code);
        throw release;
      }
      res.once('close', release);
      const ambiguous = ambiguousFramingReason(req);
      if (ambiguous) {
        throw new ProxyError('bad_request', `The request framing is ambiguous: ${ambiguous}. Send either Content-Length or Transfer-Encoding: chunked.`);
      }
      // Node has no 'upgrade' listener here, so an upgrade would be forwarded as a plain request; an h2c upgrade is refused outright.
      if (asksForHttp2(req.headers)) {
        throw new ProxyError('bad_request', `Agent Proxy refused the upgrade: ${upgradeRefusalReason(req) ?? 'h2c'}.`);
      }
      armBodyIdleTimeout(req, this.#limits, () =>
        this.#deps.logger.warn({ session: session?.id ?? null, limit: this.#limits.bodyIdleTimeoutMs }, 'request body idle for too long; connection closed'),
      );

      // WHATWG URL drops an empty userinfo (`https://@host/`) and reads `\` as `/`, where other
      // parsers see another host, so an authority with either is refused rather than reinterpreted.
      const rawAuthority = requestTarget.slice(requestTarget.indexOf('://') + 3).split(/[/?#]/, 1)[0] ?? '';
      if (/[@\\]/.test(rawAuthority)) {
        throw new ProxyError('bad_request', 'The request target carries user information ("@") or a backslash in its host part; send the URL without them.');
      }
      const url = new URL(requestTarget);
      const scheme = url.protocol === 'https:' ? 'https' : 'http';
      const host = canonicalHost(url.hostname.replace(/^\[|\]$/g, ''));
      if (!host || url.username || url.password) {
        throw new ProxyError('bad_request', `The request target host ${JSON.stringify(url.host)} is not valid, or carries user information.`);
      }
      target = { scheme, host, port: Number(url.port) || (scheme === 'https' ? 443 : 80) };
      checkAbsoluteFormHost(req, target);

      const config = this.#deps.config();
      const decision = decideTarget(config, { channel: session.channel, host, port: target.port, scheme });
      if (decision.kind === 'deny') {
        throw decision.error;
      }
      await this.#deps.dialer.resolve(host, target.port, config.allowedNetworks);

      const context: RequestContext = {
        session,
        target,
        credential: decision.kind === 'intercept' ? { bundle: decision.bundle, credential: decision.credential } : null,
        clientAddress,
      };
      await this.#deps.handler.handle(context, req, res, `${url.pathname}${url.search}`);
    } catch (error) {
      const proxyError = target ? toProxyError(error, target.host, target.port) : toProxyErrorWithoutTarget(error);
      sendProblem(res, proxyError);
      req.resume();
      this.#recordTunnel(session, target, clientAddress, proxyError, proxyError.status, 0, 0, 0, req.method ?? null);
    }
  }

  /**
   * Authenticates the session behind a request, first rejecting an address with too many
   * recent failures. A request without Proxy-Authorization is not counted as a failure,
   * because clients commonly send their first request without it and answer the 407.
   */
  async #authenticate(req: http.IncomingMessage, clientAddress: string | null): Promise<Session> {
    const limiter = this.#deps.authFailures;
    const address = clientAddress ?? 'unknown';
    const retryAfterSeconds = limiter?.retryAfterSeconds(address) ?? null;
    if (retryAfterSeconds !== null) {
      throw new ProxyError(
        'rate_limited',
        `Too many failed proxy authentications from ${address}; every request from this address is rejected for ${retryAfterSeconds} s more. Check the session id and token in the proxy URL, or create a new session.`,
        { retryAfterSeconds },
      );
    }
    const header = req.headers['proxy-authorization'];
    try {
      return await this.#deps.authenticator.authenticate(header);
    } catch (error) {
      if (header !== undefined && error instanceof ProxyError && error.code === 'proxy_auth_required') {
        limiter?.recordFailure(address);
      }
      throw error;
    }
  }

  #recordTunnel(
    session: Session | null,
    target: SandboxTarget | null,
    clientAddress: string | null,
    error: ProxyError | null,
    status: number,
    bytesIn: number,
    bytesOut: number,
    durationMs: number,
    method: string | null = 'CONNECT',
  ): void {
    if (error?.code === 'rate_limited') {
      // The limiter logs a limited address once per window. An audit row and a log line per
      // rejected attempt would let a flood of bad credentials fill the database and the log.
      return;
    }
    const decision = auditDecision(error?.code ?? null, error?.status ?? null);
    this.#deps.audit.record({
      kind: error ? 'refusal' : 'tunnel',
      decision,
      errorCode: error?.code ?? null,
      sessionId: session?.id ?? null,
      channel: session?.channel ?? null,
      thread: session?.thread ?? null,
      bundle: null,
      credential: null,
      method,
      host: target?.host ?? null,
      port: target?.port ?? null,
      path: null,
      status,
      bytesIn,
      bytesOut,
      durationMs: Math.round(durationMs),
      subject: null,
      clientAddress,
    });

    const line = { session: session?.id ?? null, method, host: target?.host ?? null, port: target?.port ?? null, status, error: error?.code ?? null };
    if (!error) this.#deps.logger.info({ ...line, bytesIn, bytesOut }, 'tunnel closed');
    else if (error.status < 500) this.#deps.logger.warn({ ...line, detail: error.detail }, 'request refused');
    else this.#deps.logger.error({ ...line, detail: error.detail }, 'request failed');
  }
}

/** Normalises a target host: IP literals in any spelling to their canonical form, names to lower-case ASCII. */
function canonicalHost(host: string): string | null {
  const literal = parseIpLiteral(host);
  if (literal) {
    return literal.address;
  }
  // A name whose last label is a number (`evil.123`, `1.2.3.4.5`) is an invalid IP address to
  // a URL parser (WHATWG "ends in a number"), and resolvers disagree on it, so it is never looked up.
  if (looksLikeIpLiteral(host.replace(/^\[|\]$/g, ''))) {
    return null;
  }
  const normalized = normalizeHost(host);
  return normalized === '' ? null : normalized;
}

/**
 * Refuses an absolute-form request whose Host header names another host than its
 * target. RFC 9112 §3.2.2 lets a proxy ignore such a Host, but a mismatch only comes
 * from a client that tries to make two components disagree about the host, and the
 * CONNECT path refuses the same mismatch with 421, so one rule holds for both.
 */
function checkAbsoluteFormHost(req: http.IncomingMessage, target: SandboxTarget): void {
  const duplicate = duplicateHostProblem(req, target.host);
  if (duplicate) {
    throw duplicate;
  }
  const hostHeader = req.headers.host;
  if (hostHeader === undefined) {
    return;
  }
  const authority = parseHostHeader(hostHeader, target.scheme === 'https' ? 443 : 80);
  if (!authority || authority.host !== target.host || authority.port !== target.port) {
    throw new ProxyError(
      'misdirected_request',
      `The Host header ${JSON.stringify(hostHeader.slice(0, 100))} does not name the request target ${target.host}:${target.port}. Send the Host of the URL, or no Host header.`,
      { host: target.host },
    );
  }
}

function toProxyErrorWithoutTarget(error: unknown): ProxyError {
  return error instanceof ProxyError ? error : new ProxyError('internal_error', 'Agent Proxy failed to handle the request; the administrator can find the error in the proxy log.');
}
