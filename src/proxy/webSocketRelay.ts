// WebSocket (RFC 6455) upgrades on an intercepted connection: the handshake
// request gets the credential like any other request, then the two sockets are
// spliced and frames pass through untouched.
// NOTE: only the handshake response headers are searched for an echoed credential.
// Frames are not, since they may be fragmented or compressed (RFC 7692).

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { auditDecision, pathForAudit, type AuditLog } from '../audit/auditLog.ts';
import { applyQueryInjection, injectedHeaderNames, removeClientQueryCredentials, injectedValues, type CredentialInjector } from '../credentials/injection.ts';
import { problemResponse, type ProxyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { checkCredentialAccess } from '../policy/credentialAccess.ts';
import { formatAuthority } from './authority.ts';
import { downstreamResponseHeaders, flattenHeaders, upstreamRequestHeaders } from './headers.ts';
import { rejectReflectingRequest, RESPONSE_REDACTED, type RequestContext } from './sandboxRequest.ts';
import { redactHeaders, reflectionPatterns } from './reflectionRedactor.ts';
import { relay } from './tunnel.ts';
import { toProxyError } from './upstreamErrors.ts';
import type { UpstreamPool } from './upstreamPool.ts';
import { rawResponse } from './tlsInterceptor.ts';

export interface WebSocketRelayDeps {
  pool: UpstreamPool;
  injector: CredentialInjector;
  audit: AuditLog;
  logger: Logger;
}

export class WebSocketRelay {
  readonly #deps: WebSocketRelayDeps;

  constructor(deps: WebSocketRelayDeps) {
    this.#deps = deps;
  }

  async relay(context: RequestContext, req: IncomingMessage, client: Duplex, head: Buffer, pathWithQuery: string): Promise<void> {
    const started = performance.now();
    const { target } = context;
    let status: number | null = null;
    let errorCode: string | null = null;
    let bytes = { bytesFromClient: 0, bytesFromUpstream: 0 };
    let redactions = 0;

    try {
      const path = pathWithQuery.split('?', 1)[0]!;
      const refusal = context.credential
        ? (rejectReflectingRequest(context.credential.credential, 'GET', target, path) ?? checkCredentialAccess(context.credential.credential, 'GET', path))
        : null;
      if (refusal) throw refusal;

      const injection = context.credential ? await this.#deps.injector.prepare(context.credential.credential) : null;
      const headers = upstreamRequestHeaders(req.rawHeaders, {
        host: formatAuthority(target.host, target.port, target.scheme === 'https' ? 443 : 80),
        remove: injection ? injectedHeaderNames(injection, context.credential?.credential) : undefined,
      });
      if (injection) headers.push(...injection.headers);

      const dispatcher = this.#deps.pool.dispatcher(context.credential?.credential.id ?? 'anonymous');
      const upgraded = await dispatcher.upgrade({
        origin: `${target.scheme}://${formatAuthority(target.host, target.port)}`,
        path: applyQueryInjection(injection ? removeClientQueryCredentials(pathWithQuery) : pathWithQuery, injection?.query ?? null),
        method: 'GET',
        headers: flattenHeaders(headers),
        protocol: req.headers.upgrade ?? 'websocket',
      } as Dispatcher.UpgradeOptions);

      status = 101;
      const { headers: responseHeaders, found } = redactHeaders(
        downstreamResponseHeaders(upgraded.headers as Record<string, string | string[]>),
        reflectionPatterns(injection ? injectedValues(injection) : []),
      );
      redactions = found;
      const lines = ['HTTP/1.1 101 Switching Protocols', `connection: Upgrade`, `upgrade: ${req.headers.upgrade ?? 'websocket'}`];
      for (const [name, value] of responseHeaders) lines.push(`${name}: ${value}`);
      client.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upgraded.socket.write(head);

      bytes = await relay(client, upgraded.socket);
    } catch (error) {
      const proxyError: ProxyError = toProxyError(error, target.host, target.port);
      errorCode = proxyError.code;
      status = proxyError.status;
      const problem = problemResponse(proxyError);
      client.end(rawResponse(problem.status, problem.headers, problem.body));
    }

    this.#deps.audit.record({
      kind: 'request',
      decision: auditDecision(errorCode, status),
      errorCode: errorCode ?? (redactions > 0 ? RESPONSE_REDACTED : null),
      sessionId: context.session.id,
      channel: context.session.channel,
      thread: context.session.thread,
      bundle: context.credential?.bundle.name ?? null,
      credential: context.credential?.credential.name ?? null,
      method: 'GET',
      host: target.host,
      port: target.port,
      path: pathForAudit(pathWithQuery),
      status,
      bytesIn: bytes.bytesFromClient,
      bytesOut: bytes.bytesFromUpstream,
      durationMs: Math.round(performance.now() - started),
      subject: null,
      clientAddress: context.clientAddress,
    });
    if (redactions > 0) this.#deps.logger.warn({ session: context.session.id, host: target.host, redactions }, 'websocket handshake response echoed the injected credential; masked it');
    this.#deps.logger.info({ session: context.session.id, host: target.host, status, error: errorCode }, 'websocket closed');
  }
}
