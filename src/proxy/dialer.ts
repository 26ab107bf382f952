// Resolves upstream names, checks every resolved address against the egress
// policy, and connects to exactly the address it checked. Checking one answer and
// letting the socket resolve again would let a DNS rebinding attack swap in a
// private address between the two lookups.

import { lookup as dnsLookup } from 'node:dns/promises';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import tls from 'node:tls';
import { ProxyError } from '../errors.ts';
import { checkAddress, cidrContains, classifyAddress, parseCidr, parseIpLiteral, type Cidr } from '../policy/ipAddress.ts';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to its addresses; replaceable so tests can point the proxy at a fake DNS. */
export type HostResolver = (host: string) => Promise<ResolvedAddress[]>;

export const systemResolver: HostResolver = async (host) => {
  const answers = await dnsLookup(host, { all: true, verbatim: true });
  return answers.map((answer) => ({ address: answer.address, family: answer.family === 6 ? 6 : 4 }));
};

/** A `--resolve HOST:PORT:ADDR` pin, as curl's option of that name. */
export interface ResolvePin {
  host: string;
  port: number;
  address: string;
}

export interface DialerOptions {
  resolver: HostResolver;
  pins: readonly ResolvePin[];
  /** Extra CA certificates (PEM) trusted for upstream TLS on top of Node's bundled roots. */
  upstreamCa: readonly string[];
  connectTimeoutMs: number;
  /**
   * Called before every TCP connect with the address about to be dialled; a throw aborts
   * the connect. Tests use it to fail, instead of leaving the machine, if the proxy ever
   * dials an address off loopback.
   */
  connectGuard?: (address: ResolvedAddress, port: number) => void;
}

interface Listener {
  address: string;
  port: number;
}

export class Dialer {
  readonly #options: DialerOptions;
  // Built once: parsing Node's ~140 public roots into a new context for every upstream
  // connection costs several milliseconds each time.
  readonly #upstreamTrust: tls.SecureContext;
  readonly #ownListeners: Listener[] = [];

  constructor(options: DialerOptions) {
    this.#options = options;
    this.#upstreamTrust = tls.createSecureContext({ ca: [...tls.rootCertificates, ...options.upstreamCa] });
  }

  /**
   * Resolves `host` and checks every address. A single forbidden answer refuses the
   * whole name: a name that mixes public and private answers is a rebinding setup.
   */
  async resolve(host: string, port: number, allowedNetworks: readonly Cidr[]): Promise<ResolvedAddress> {
    const literal = parseIpLiteral(host);
    let answers: ResolvedAddress[];
    if (literal) {
      answers = [literal];
    } else {
      const pin = this.#options.pins.find((candidate) => candidate.host === host && candidate.port === port);
      answers = pin ? [parseIpLiteral(pin.address) ?? { address: pin.address, family: 4 }] : await this.#lookup(host, port);
    }

    for (const answer of answers) {
      const verdict = checkAddress(answer.address, allowedNetworks);
      if (!verdict.allowed) {
        const via = literal ? '' : ` (${host} resolves to ${answer.address})`;
        throw new ProxyError(
          'egress_denied',
          `Agent Proxy policy does not allow connections to ${host}:${port}${via}: it is a ${verdict.reason}. ` +
            'This is a policy decision, not a network fault; ask the Agent Proxy administrator to list the network in egress.allowPrivateNetworks if the host is meant to be reachable.',
          { host, port, address: answer.address, reason: verdict.class },
        );
      }
    }

    for (const answer of answers) {
      if (this.#isOwnListener(answer.address, port)) {
        throw new ProxyError(
          'egress_denied',
          `Agent Proxy does not connect to its own listeners, and ${host}:${port} is its proxy or admin port. ` +
            'The admin API is not reachable through the proxy; an administrator calls it directly.',
          { host, port, address: answer.address, reason: 'proxy_listener' },
        );
      }
    }

    const first = answers[0];
    if (!first) {
      throw unreachable(host, port, 'the name has no addresses');
    }
    return first;
  }

  /**
   * Makes `resolve` refuse the proxy's own listening address and port, so that a sandbox
   * cannot reach the admin API (or loop into the proxy) even where loopback is allowed.
   */
  protectListener(address: string, port: number): void {
    this.#ownListeners.push({ address, port });
  }

  #isOwnListener(address: string, port: number): boolean {
    for (const listener of this.#ownListeners) {
      if (listener.port !== port) continue;
      // Any loopback or unspecified address may reach a listener on loopback or on the wildcard address.
      const addressClass = classifyAddress(address).class;
      if (addressClass === 'loopback' || addressClass === 'unspecified') return true;
      if (sameAddress(listener.address, address)) return true;
      const listenerClass = parseIpLiteral(listener.address) ? classifyAddress(listener.address).class : null;
      if (listenerClass === 'unspecified' && localInterfaceAddresses().some((local) => sameAddress(local, address))) return true;
    }
    return false;
  }

  /** Opens a TCP connection to an address `resolve` returned. */
  connectTcp(address: ResolvedAddress, port: number, options: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      try {
        this.#options.connectGuard?.(address, port);
      } catch (error) {
        reject(error);
        return;
      }
      const socket = net.connect({ host: address.address, port, family: address.family, allowHalfOpen: options.allowHalfOpen ?? false });
      socket.setNoDelay(true);

      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ProxyError('upstream_timeout', `Connecting to ${address.address}:${port} timed out after ${this.#options.connectTimeoutMs} ms.`));
      }, this.#options.connectTimeoutMs);

      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(socket);
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /**
   * Opens verified TLS to `host` at a checked address: the certificate must name
   * `host`, whatever address was dialled. IP-literal hosts send no SNI (RFC 6066 §3).
   */
  async connectTls(host: string, port: number, allowedNetworks: readonly Cidr[]): Promise<tls.TLSSocket> {
    const address = await this.resolve(host, port, allowedNetworks);
    const tcp = await this.connectTcp(address, port);

    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        socket: tcp,
        host,
        servername: net.isIP(host) ? undefined : host,
        secureContext: this.#upstreamTrust,
        ALPNProtocols: ['http/1.1'],
        rejectUnauthorized: true,
      });
      socket.once('secureConnect', () => resolve(socket));
      socket.once('error', (error: NodeJS.ErrnoException) => {
        tcp.destroy();
        reject(
          new ProxyError(
            'upstream_tls_failed',
            `TLS to ${host}:${port} failed: ${error.message}. The upstream's certificate is not trusted for this name; the request was not sent.`,
            { host, port, tlsError: error.code ?? null },
          ),
        );
      });
    });
  }

  async #lookup(host: string, port: number): Promise<ResolvedAddress[]> {
    try {
      return await this.#options.resolver(host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'lookup failed';
      throw unreachable(host, port, `DNS lookup failed (${code})`);
    }
  }
}

/** Returns whether two IP literals name one address, an IPv4 address and its IPv4-mapped IPv6 form included. */
function sameAddress(listenerAddress: string, address: string): boolean {
  const literal = parseIpLiteral(listenerAddress);
  if (!literal) return false;
  return cidrContains(parseCidr(`${literal.address}/${literal.family === 4 ? 32 : 128}`), address);
}

function localInterfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((entries) => (entries ?? []).map((entry) => entry.address.replace(/%.*$/, '')));
}

export function unreachable(host: string, port: number, why: string): ProxyError {
  return new ProxyError('upstream_unreachable', `Agent Proxy could not reach ${host}:${port}: ${why}.`, { host, port });
}

/** Parses `HOST:PORT:ADDR` (ADDR may be a bracketed IPv6 address). */
export function parseResolvePin(text: string): ResolvePin {
  const match = /^([^:\s]+):([0-9]{1,5}):(\[[0-9a-fA-F:.]+\]|[^:\s]+)$/.exec(text);
  const address = match?.[3]?.replace(/^\[|\]$/g, '');
  const literal = address ? parseIpLiteral(address) : null;
  const port = match ? Number(match[2]) : 0;
  if (!match || !literal || port < 1 || port > 65535) {
    throw new Error(`--resolve "${text}" is invalid: give HOST:PORT:ADDRESS, for example api.example.com:443:127.0.0.1`);
  }
  return { host: match[1]!.toLowerCase().replace(/\.$/, ''), port, address: literal.address };
}
