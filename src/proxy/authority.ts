import { isIP } from 'node:net';

export interface Authority {
  host: string;
  port: number;
}

/**
 * Parses a CONNECT request target (RFC 9110 §9.3.6: `host:port`, IPv6 in brackets).
 * An unbracketed IPv6 address is accepted when the part after its last colon is a
 * port, since some clients send that. Returns null for anything else.
 */
export function parseConnectAuthority(target: string): Authority | null {
  if (target.length === 0 || target.length > 300 || /[\s/@?#\\]/.test(target)) {
    return null;
  }

  let host: string;
  let portText: string;
  if (target.startsWith('[')) {
    const close = target.indexOf(']');
    if (close < 0 || target[close + 1] !== ':') {
      return null;
    }
    host = target.slice(1, close);
    portText = target.slice(close + 2);
    if (isIP(host) !== 6) {
      return null;
    }
  } else {
    const colon = target.lastIndexOf(':');
    if (colon <= 0) {
      return null;
    }
    host = target.slice(0, colon);
    portText = target.slice(colon + 1);
    if (host.includes(':') && isIP(host) !== 6) {
      return null;
    }
  }

  const port = parsePort(portText);
  if (port === null) {
    return null;
  }
  return { host, port };
}

export function parsePort(text: string): number | null {
  if (!/^[0-9]{1,5}$/.test(text)) {
    return null;
  }
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

/** Formats host and port for a URL origin or Host header, bracketing IPv6. */
export function formatAuthority(host: string, port: number, defaultPort?: number): string {
  const hostPart = isIP(host) === 6 ? `[${host}]` : host;
  return port === defaultPort ? hostPart : `${hostPart}:${port}`;
}
