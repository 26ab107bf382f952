// The sandbox-facing listener: CONNECT for HTTPS (intercepted or tunnelled) and
// absolute-form requests for plain HTTP and for old clients that send
// `GET https://…` to the proxy.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AuditLog } from '../audit/auditLog.ts';
import type { Session } from '../domain/types.ts';
import { ProxyError, problemResponse } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { CompiledConfig } from '../policy/compiledConfig.ts';
import { decideTarget } from '../policy/decide.ts';
import { normalizeHost } from '../policy/hostPattern.ts';
import { parseIpLiteral } from '../policy/ipAddress.ts';
import type { SessionAuthenticator } from '../sessions/sessionAuthenticator.ts';
import { parseConnectAuthority } from './authority.ts';
import type { Dialer } from './dialer.ts';
import { sendProblem, type RequestContext, type SandboxRequestHandler, type SandboxTarget } from './sandboxRequest.ts';
import { rawResponse, type TlsInterceptor } from './tlsInterceptor.ts';
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
}

export class ProxyServer {
  readonly #deps: ProxyServerDeps;
  readonly #server: http.Server;
  readonly #sockets = new Set<Duplex>();
  readonly #socketsBySession = new Map<string, Set<Duplex>>();

  constructor(deps: ProxyServerDeps) {
    this.#deps = deps;
    this.#server = http.createServer({
      // Absolute-form requests from some clients carry no Host header.
      requireHostHeader: false,
      // Uploads and downloads may take longer than any fixed limit; idle sockets are closed instead.
      requestTimeout: 0,
      headersTimeout: 30_000,
      keepAliveTimeout: 60_000,
    });
    this.#server.on('request', (req, res) => void this.#onRequest(req, res));
    this.#server.on('connect', (req, socket, head) => void this.#onConnect(req, socket as Duplex, head));
    this.#server.on('connection', (socket: Duplex) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
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
      session = await this.#deps.authenticator.authenticate(req.headers['proxy-authorization']);
      this.#trackSession(session.id, socket);

      const authority = parseConnectAuthority(req.url ?? '');
      const host = authority ? canonicalHost(authority.host) : null;
      if (!authority || !host) {
        throw new ProxyError('bad_request', `The CONNECT target ${JSON.stringify((req.url ?? '').slice(0, 100))} is not a valid host:port.`);
      }
      target = { scheme: 'https', host, port: authority.port };

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
      session = await this.#deps.authenticator.authenticate(req.headers['proxy-authorization']);

      const url = new URL(requestTarget);
      const scheme = url.protocol === 'https:' ? 'https' : 'http';
      const host = canonicalHost(url.hostname.replace(/^\[|\]$/g, ''));
      if (!host || url.username || url.password) {
        throw new ProxyError('bad_request', `The request target host ${JSON.stringify(url.host)} is not valid, or carries user information.`);
      }
      target = { scheme, host, port: Number(url.port) || (scheme === 'https' ? 443 : 80) };

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
    const decision = error ? (error.status >= 500 ? 'error' : 'denied') : 'allowed';
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
  const normalized = normalizeHost(host);
  return normalized === '' ? null : normalized;
}

function toProxyErrorWithoutTarget(error: unknown): ProxyError {
  return error instanceof ProxyError ? error : new ProxyError('internal_error', 'Agent Proxy failed to handle the request; the administrator can find the error in the proxy log.');
}
