import type { Duplex } from 'node:stream';

// An opaque tunnel with no traffic either way for this long is closed, so dead
// peers do not hold file descriptors forever.
const TUNNEL_IDLE_TIMEOUT_MS = 10 * 60_000;

export interface TunnelResult {
  bytesFromClient: number;
  bytesFromUpstream: number;
}

/**
 * Relays bytes between two sockets until both directions have ended. A half-close
 * (one side's FIN) is passed on without closing the other direction, since
 * protocols such as TLS close_notify flows and `nc -q` rely on it.
 */
export function relay(client: Duplex & { setTimeout?: (ms: number) => unknown }, upstream: Duplex & { setTimeout?: (ms: number) => unknown }): Promise<TunnelResult> {
  return new Promise((resolve) => {
    let bytesFromClient = 0;
    let bytesFromUpstream = 0;
    let settled = false;

    const finish = () => {
      if (settled) return;
      settled = true;
      client.destroy();
      upstream.destroy();
      resolve({ bytesFromClient, bytesFromUpstream });
    };

    client.on('data', (chunk: Buffer) => {
      bytesFromClient += chunk.length;
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('data', (chunk: Buffer) => {
      bytesFromUpstream += chunk.length;
      if (!client.write(chunk)) upstream.pause();
    });
    upstream.on('drain', () => client.resume());
    client.on('drain', () => upstream.resume());

    let clientEnded = false;
    let upstreamEnded = false;
    client.on('end', () => {
      clientEnded = true;
      upstream.end();
      if (upstreamEnded) finish();
    });
    upstream.on('end', () => {
      upstreamEnded = true;
      client.end();
      if (clientEnded) finish();
    });

    client.on('error', finish);
    upstream.on('error', finish);
    client.on('close', finish);
    upstream.on('close', finish);

    for (const socket of [client, upstream]) {
      socket.setTimeout?.(TUNNEL_IDLE_TIMEOUT_MS);
      socket.on('timeout', finish);
    }
  });
}
