// Per-source limit on failed authentications, for the admin API (bad bearer tokens and
// logins) and the proxy (bad Proxy-Authorization). The window is fixed and starts at a
// source's first failure. After `maxFailures` failures in it, every further attempt from
// that source is rejected until it ends, valid tokens included, because a change from 429
// to 200 would still tell a guesser when a guess was right. Successes are never counted.

import type { Logger } from '../log.ts';

export interface AuthFailureLimiterOptions {
  /** Names the listener in the log line, such as `admin API` or `proxy`. */
  listener: string;
  logger: Logger;
  /** Default 20. */
  maxFailures?: number;
  /** Default 60 s. */
  windowMs?: number;
  /** Default 10,000 sources; when full, expired windows and then the oldest sources are dropped. */
  maxSources?: number;
  now?: () => number;
}

interface SourceWindow {
  startedAt: number;
  failures: number;
}

export class AuthFailureLimiter {
  readonly #listener: string;
  readonly #logger: Logger;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #maxSources: number;
  readonly #now: () => number;
  /** Insertion order is the order in which windows started, so the first key is the oldest. */
  readonly #windows = new Map<string, SourceWindow>();

  constructor(options: AuthFailureLimiterOptions) {
    this.#listener = options.listener;
    this.#logger = options.logger;
    this.#maxFailures = options.maxFailures ?? 20;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxSources = options.maxSources ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Returns the whole seconds until `address` may try again, or null when it is not limited. */
  retryAfterSeconds(address: string): number | null {
    const window = this.#current(sourceKey(address));
    if (window === undefined || window.failures < this.#maxFailures) {
      return null;
    }
    return Math.max(1, Math.ceil((window.startedAt + this.#windowMs - this.#now()) / 1000));
  }

  /** Counts a failed authentication; the failure that reaches the limit is logged, once per window. */
  recordFailure(address: string): void {
    const key = sourceKey(address);
    let window = this.#current(key);
    if (window === undefined) {
      this.#makeRoom();
      window = { startedAt: this.#now(), failures: 0 };
      this.#windows.set(key, window);
    }
    window.failures += 1;
    if (window.failures === this.#maxFailures) {
      this.#logger.warn(
        { clientAddress: address, source: key, failures: window.failures, windowSeconds: this.#windowMs / 1000, listener: this.#listener },
        `too many failed authentications on the ${this.#listener}; rejecting this source with 429 until its window ends`,
      );
    }
  }

  get trackedSources(): number {
    return this.#windows.size;
  }

  #current(key: string): SourceWindow | undefined {
    const window = this.#windows.get(key);
    if (window !== undefined && this.#now() - window.startedAt >= this.#windowMs) {
      this.#windows.delete(key);
      return undefined;
    }
    return window;
  }

  #makeRoom(): void {
    if (this.#windows.size < this.#maxSources) {
      return;
    }
    const now = this.#now();
    for (const [key, window] of this.#windows) {
      if (now - window.startedAt >= this.#windowMs) this.#windows.delete(key);
    }
    while (this.#windows.size >= this.#maxSources) {
      const oldest = this.#windows.keys().next().value;
      if (oldest === undefined) break;
      this.#windows.delete(oldest);
    }
  }
}

/**
 * Returns the key a source is counted under: an IPv4 address (also when written as
 * IPv4-mapped IPv6), or the /64 prefix of an IPv6 address. One IPv6 host usually controls
 * a whole /64 and could otherwise start a fresh count from each address in it.
 */
export function sourceKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) {
    return mapped[1]!;
  }
  if (!address.includes(':')) {
    return address;
  }
  const groups = expandIpv6(address.split('%')[0]!);
  return groups === null ? address : `${groups.slice(0, 4).join(':')}::/64`;
}

/** Returns the eight groups of an IPv6 address without leading zeros, or null when it is not one. */
function expandIpv6(address: string): string[] | null {
  const halves = address.toLowerCase().split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length === 2 && halves[1] !== '' ? halves[1]!.split(':') : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 2 && missing < 1) || (halves.length === 1 && missing !== 0)) return null;
  const groups = [...head, ...Array<string>(Math.max(0, missing)).fill('0'), ...tail];
  if (!groups.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return null;
  return groups.map((group) => group.replace(/^0+(?=.)/, ''));
}
