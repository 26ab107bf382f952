// Terminates the sandbox's TLS on a CONNECT tunnel whose host has a credential,
// with a leaf certificate for the CONNECT target, and serves the requests inside
// it. One name drives everything: the CONNECT target picks the certificate, the
// credential and the upstream; an SNI or Host naming anything else is refused
// with 421 (RFC 9110 §15.5.20) instead of being trusted.

import http from 'node:http';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { ProxyError, problemResponse } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { CompiledConfig } from '../policy/compiledConfig.ts';
import { decideTarget } from '../policy/decide.ts';
import { normalizeHost } from '../policy/hostPattern.ts';
import { parseIpLiteral } from '../policy/ipAddress.ts';
import type { SessionAuthenticator } from '../sessions/sessionAuthenticator.ts';
import type { LeafCertificateCache } from '../tls/leafCache.ts';
import { parsePort } from './authority.ts';
import { sendProblem, type RequestContext, type SandboxRequestHandler } from './sandboxRequest.ts';
import { ambiguousFramingReason, upgradeRefusalReason } from './headers.ts';
import { DEFAULT_LIMITS, armBodyIdleTimeout, clientErrorRefusal, headersTimeoutRefusal, refuseOnSocket, type ProxyLimits } from './limits.ts';
import type { WebSocketRelay } from './webSocketRelay.ts';

const TLS_HANDSHAKE_RECORD = 0x16;

interface InterceptedConnection {
  context: RequestContext;
  /** The server name the client sent in its TLS ClientHello, if any. */
  serverName: string | null;
}

export interface TlsInterceptorDeps {
  leafCache: LeafCertificateCache;
  handler: SandboxRequestHandler;
  webSockets: WebSocketRelay;
  authenticator: SessionAuthenticator;
  logger: Logger;
  /** The configuration in force now, so that each request of a kept-alive tunnel gets the current credential. */
  config?: () => CompiledConfig;
  /** Header size, header timeout and body idle limits; DEFAULT_LIMITS when absent. */
  limits?: ProxyLimits;
}

export class TlsInterceptor {
  readonly #deps: TlsInterceptorDeps;
  readonly #connections = new WeakMap<object, InterceptedConnection>();
  readonly #headerTimers = new WeakMap<object, { restart: () => void; stop: () => void }>();
  readonly #server: http.Server;
  readonly #limits: ProxyLimits;

  constructor(deps: TlsInterceptorDeps) {
    this.#deps = deps;
    this.#limits = deps.limits ?? DEFAULT_LIMITS;
    // Never listens: it only parses HTTP on TLS sockets handed to it. Node runs its
    // headersTimeout check only for servers that listen, so accept() arms its own timer.
    this.#server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 60_000, maxHeaderSize: this.#limits.maxHeaderBytes, insecureHTTPParser: false });
    this.#server.on('request', (req, res) => void this.#onRequest(req, res));
    this.#server.on('upgrade', (req, socket, head) => void this.#onUpgrade(req, socket as Duplex, head));
    this.#server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      const refusal = clientErrorRefusal(error, this.#limits);
      this.#deps.logger.warn({ error: refusal.code, reason: error.code ?? null }, 'request inside a tunnel rejected by the HTTP parser');
      refuseOnSocket(socket, refusal);
    });
  }

  /** Takes over a client socket right after `200 Connection Established`. */
  async accept(clientSocket: Duplex, head: Buffer, context: RequestContext): Promise<void> {
    if (head.length > 0) {
      clientSocket.unshift(head);
    }

    // A client that opens the tunnel and sends nothing would otherwise hold it forever.
    const silence = setTimeout(() => clientSocket.destroy(), this.#limits.headersTimeoutMs);
    const firstByte = await peekFirstByte(clientSocket);
    clearTimeout(silence);
    if (firstByte === null) {
      clientSocket.destroy();
      return;
    }
    if (firstByte !== TLS_HANDSHAKE_RECORD) {
      // A credential must never travel in clear text, so plain HTTP inside a tunnel to a credentialed host is refused.
      const problem = problemResponse(
        new ProxyError('bad_request', `${context.target.host} has a credential, so Agent Proxy only accepts TLS inside this tunnel; use https://.`, {
          host: context.target.host,
        }),
      );
      clientSocket.end(rawResponse(problem.status, problem.headers, problem.body));
      return;
    }

    const secureContext = await this.#deps.leafCache.secureContextFor(context.target.host);
    const connection: InterceptedConnection = { context, serverName: null };
    const tlsSocket = new tls.TLSSocket(clientSocket as import('node:net').Socket, {
      isServer: true,
      secureContext,
      ALPNProtocols: ['http/1.1'],
      SNICallback: (serverName, callback) => {
        connection.serverName = serverName;
        callback(null, secureContext);
      },
    });
    tlsSocket.on('error', (error) => {
      this.#deps.logger.info({ session: context.session.id, host: context.target.host, err: error.message }, 'client TLS handshake failed');
    });

    this.#connections.set(tlsSocket, connection);
    this.#armHeadersTimeout(tlsSocket, context);
    this.#server.emit('connection', tlsSocket);
  }

  /**
   * Closes the tunnel with 408 when a request's headers take longer than the limit
   * (slowloris). The clock starts at the tunnel's first byte and again at the first
   * byte after each response; an idle keep-alive tunnel is left to keepAliveTimeout.
   */
  #armHeadersTimeout(tlsSocket: tls.TLSSocket, context: RequestContext): void {
    let timer: NodeJS.Timeout | null = null;
    let handshakeDone = false;
    tlsSocket.once('secure', () => (handshakeDone = true));
    const start = () => {
      timer = setTimeout(() => {
        this.#deps.logger.warn({ session: context.session.id, host: context.target.host, limit: this.#limits.headersTimeoutMs }, 'request headers inside a tunnel timed out');
        if (!handshakeDone) {
          // No TLS session to answer on: a client that never completes the handshake just loses the connection.
          tlsSocket.destroy();
          return;
        }
        refuseOnSocket(tlsSocket, headersTimeoutRefusal(this.#limits));
        // A client that does not read the refusal must not keep the socket open either.
        setTimeout(() => tlsSocket.destroy(), 1_000).unref();
      }, this.#limits.headersTimeoutMs);
      timer.unref();
    };
    const stop = () => {
      if (timer) clearTimeout(timer);
      timer = null;
    };
    start();
    this.#headerTimers.set(tlsSocket, { restart: () => tlsSocket.once('data', () => !timer && start()), stop });
    tlsSocket.once('close', stop);
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const connection = this.#connections.get(req.socket);
    if (!connection) {
      res.destroy();
      return;
    }
    const headerTimer = this.#headerTimers.get(req.socket);
    headerTimer?.stop();
    res.once('finish', () => headerTimer?.restart());
    armBodyIdleTimeout(req, this.#limits, () =>
      this.#deps.logger.warn({ session: connection.context.session.id, host: connection.context.target.host, limit: this.#limits.bodyIdleTimeoutMs }, 'request body idle for too long; tunnel closed'),
    );

    const checked = await this.#checkRequest(connection, req);
    if (checked instanceof ProxyError) {
      sendProblem(res, checked);
      req.resume();
      this.#deps.logger.warn({ session: connection.context.session.id, host: connection.context.target.host, error: checked.code }, 'request refused');
      return;
    }
    await this.#deps.handler.handle(connection.context, req, res, checked);
  }

  async #onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const connection = this.#connections.get(req.socket);
    if (!connection) {
      socket.destroy();
      return;
    }
    this.#headerTimers.get(req.socket)?.stop();

    const upgradeRefusal = upgradeRefusalReason(req);
    const checked = upgradeRefusal
      ? new ProxyError('bad_request', `Agent Proxy refused the upgrade: ${upgradeRefusal}.`, { host: connection.context.target.host })
      : await this.#checkRequest(connection, req);
    if (checked instanceof ProxyError) {
      const problem = problemResponse(checked);
      socket.end(rawResponse(problem.status, problem.headers, problem.body));
      return;
    }
    await this.#deps.webSockets.relay(connection.context, req, socket, head, checked);
  }

  /** Returns the normalised path to forward, or the refusal. */
  async #checkRequest(connection: InterceptedConnection, req: http.IncomingMessage): Promise<string | ProxyError> {
    const { context } = connection;
    const target = context.target;

    if (!(await this.#deps.authenticator.stillValid(context.session))) {
      return new ProxyError('proxy_auth_required', `Session ${context.session.id} is no longer valid (revoked or expired). Create a new session.`, {
        session: context.session.id,
      });
    }

    // The tunnel chose its credential at CONNECT time, and an apply since then may have changed, narrowed or removed it.
    if (this.#deps.config) {
      const decision = decideTarget(this.#deps.config(), { channel: context.session.channel, host: target.host, port: target.port, scheme: 'https' });
      if (decision.kind === 'deny') {
        return decision.error;
      }
      if (decision.kind !== 'intercept') {
        return new ProxyError('misdirected_request', `The configuration changed after this tunnel to ${target.host}:${target.port} was opened, and no credential covers the host now. Open a new CONNECT to reach it.`, { host: target.host });
      }
      connection.context = { ...context, credential: { bundle: decision.bundle, credential: decision.credential } };
    }

    if (connection.serverName !== null && normalizeHost(connection.serverName) !== target.host) {
      return misdirected(`The TLS server name "${connection.serverName}" does not match the CONNECT target ${target.host}.`, target.host);
    }

    const duplicateHost = duplicateHostProblem(req, target.host);
    if (duplicateHost) {
      return duplicateHost;
    }
    const ambiguous = ambiguousFramingReason(req);
    if (ambiguous) {
      return new ProxyError('bad_request', `The request framing is ambiguous: ${ambiguous}. Send either Content-Length or Transfer-Encoding: chunked.`, { host: target.host });
    }

    const hostHeader = req.headers.host;
    const authority = hostHeader ? parseHostHeader(hostHeader, 443) : null;
    if (!authority || authority.host !== target.host || authority.port !== target.port) {
      return misdirected(`The Host header ${JSON.stringify(hostHeader ?? '')} does not name the CONNECT target ${target.host}:${target.port}.`, target.host);
    }

    return normalizeRequestTarget(req.url ?? '', target.host);
  }
}

function misdirected(detail: string, host: string): ProxyError {
  return new ProxyError('misdirected_request', `${detail} Agent Proxy sends each request only to the host the tunnel was opened for; open a new CONNECT for another host.`, { host });
}

/**
 * Refuses a request with more than one Host header: RFC 9112 §3.2 requires a 400, and
 * Node keeps only the first, so a second one could name another host to a component that
 * reads the last (the Host confusion behind request-routing attacks).
 */
export function duplicateHostProblem(req: http.IncomingMessage, host: string): ProxyError | null {
  let count = 0;
  for (let index = 0; index < req.rawHeaders.length; index += 2) {
    if (req.rawHeaders[index]?.toLowerCase() === 'host') count++;
  }
  return count > 1 ? new ProxyError('bad_request', `The request has ${count} Host headers; send exactly one.`, { host }) : null;
}

/** Parses a Host header value into a normalised host and a port (`defaultPort` when absent). */
export function parseHostHeader(value: string, defaultPort: number): { host: string; port: number } | null {
  const match = /^(\[[^\]]+\]|[^:]+)(?::([0-9]+))?$/.exec(value.trim());
  if (!match) {
    return null;
  }
  const port = match[2] === undefined ? defaultPort : parsePort(match[2]);
  if (port === null) {
    return null;
  }
  const rawHost = match[1]!.replace(/^\[|\]$/g, '');
  const literal = parseIpLiteral(rawHost);
  return { host: literal ? literal.address : normalizeHost(rawHost), port };
}

/**
 * Turns the request target into the origin-form path that is checked against the
 * credential's rules and sent upstream, with dot segments resolved, so the path the
 * rules saw is the path the upstream gets.
 */
export function normalizeRequestTarget(requestTarget: string, host: string): string | ProxyError {
  if (!requestTarget.startsWith('/')) {
    return new ProxyError('bad_request', `The request target ${JSON.stringify(requestTarget.slice(0, 100))} is not an origin-form path starting with "/".`, { host });
  }
  const url = new URL(requestTarget, 'https://placeholder.invalid');
  return `${url.pathname}${url.search}`;
}

function peekFirstByte(socket: Duplex): Promise<number | null> {
  return new Promise((resolve) => {
    const onReadable = () => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      socket.unshift(chunk);
      resolve(chunk[0] ?? null);
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const cleanup = () => {
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
    };
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
    socket.on('close', onEnd);
  });
}

/** Serialises a complete HTTP/1.1 response for a raw socket (CONNECT responses and rejected upgrades). */
export function rawResponse(status: number, headers: Record<string, string>, body: string): string {
  const lines = [`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`];
  for (const [name, value] of Object.entries(headers)) {
    lines.push(`${name}: ${value}`);
  }
  lines.push('connection: close');
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}
