import { Agent, type Dispatcher } from 'undici';
import type { Cidr } from '../policy/ipAddress.ts';
import type { Dialer } from './dialer.ts';

// Servers commonly close idle keep-alive connections after 5 s or more; closing
// ours first avoids reusing a socket the server is closing at that moment.
const KEEP_ALIVE_TIMEOUT_MS = 4_000;

/**
 * Keep-alive upstream clients. Each credential gets its own undici Agent, so a
 * connection that carried one credential's requests never carries another's.
 * Every new connection goes through the dialer, which checks the egress policy
 * against the address it actually dials.
 */
export class UpstreamPool {
  readonly #dialer: Dialer;
  readonly #allowedNetworks: () => readonly Cidr[];
  readonly #agents = new Map<string, Agent>();

  constructor(dialer: Dialer, allowedNetworks: () => readonly Cidr[]) {
    this.#dialer = dialer;
    this.#allowedNetworks = allowedNetworks;
  }

  /** Returns the dispatcher for a credential id, or for uncredentialed traffic when `key` is `anonymous`. */
  dispatcher(key: string): Dispatcher {
    let agent = this.#agents.get(key);
    if (!agent) {
      agent = new Agent({
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        keepAliveMaxTimeout: KEEP_ALIVE_TIMEOUT_MS,
        connections: 128,
        headersTimeout: 120_000,
        // Streams such as server-sent events may be idle for long; the client decides when to give up.
        bodyTimeout: 0,
        connect: (options, callback) => {
          const host = options.hostname.replace(/^\[|\]$/g, '');
          const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
          const connecting =
            options.protocol === 'https:'
              ? this.#dialer.connectTls(host, port, this.#allowedNetworks())
              : this.#dialer.resolve(host, port, this.#allowedNetworks()).then((address) => this.#dialer.connectTcp(address, port));
          connecting.then(
            (socket) => callback(null, socket),
            (error: Error) => callback(error, null),
          );
        },
      });
      this.#agents.set(key, agent);
    }
    return agent;
  }

  /** Closes the agents of credentials that no longer exist. */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, agent] of this.#agents) {
      if (key !== 'anonymous' && !keys.has(key)) {
        this.#agents.delete(key);
        void agent.close();
      }
    }
  }

  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.all(agents.map((agent) => agent.destroy()));
  }
}
