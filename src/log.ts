import { pino, type Logger } from 'pino';

export type { Logger };

// Header and field names that may carry a secret. pino replaces their values, as a
// second line of defence: call sites already log only ids, hosts and codes.
const REDACTED_PATHS = [
  'token',
  'secret',
  'password',
  'privateKey',
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  '*.token',
  '*.secret',
  '*.password',
  '*.privateKey',
];

/** Creates the process logger: JSON lines on stderr, level from `$AGENT_PROXY_LOG_LEVEL` (default info). */
export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  const level = options.level ?? process.env.AGENT_PROXY_LOG_LEVEL ?? 'info';
  return pino(
    {
      level,
      base: { service: 'agent-proxy' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? (process.stderr as unknown as pino.DestinationStream),
  );
}
