import type { AdminClient } from './adminClient.ts';
import { CliError } from './cliError.ts';

/** Rejects a `--ttl` without a unit: `2` would be two seconds, a session expired before it is used. */
export function checkTtlOption(ttl: string | undefined): void {
  if (ttl !== undefined && /^\d+$/.test(ttl.trim())) {
    throw new CliError(`--ttl "${ttl}" has no unit; give one, such as ${ttl}m, ${ttl}h or ${ttl}d`);
  }
}

/**
 * Warns on stderr when no bundle covers the channel: the sandbox would then get no
 * credential anywhere, and a client would only see its TLS or HTTP errors. The check
 * is skipped for tokens that may not read bundles (role session-issuer).
 */
export async function warnIfChannelUncovered(admin: AdminClient, channel: string): Promise<void> {
  let bundles: Array<{ name: string; channels: string[] }>;
  try {
    bundles = (await admin.call<{ bundles: Array<{ name: string; channels: string[] }> }>('GET', '/api/v1/bundles')).bundles;
  } catch {
    return;
  }
  if (!bundles.some((bundle) => bundle.channels.includes('*') || bundle.channels.includes(channel))) {
    process.stderr.write(
      `agent-proxy: warning: no bundle covers channel ${channel}, so this session gets no credential; \`agent-proxy apply\` a bundle with channels: ["${channel}"] to give it one.\n`,
    );
  }
}
