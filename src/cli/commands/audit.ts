import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEvent } from '../../domain/types.ts';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';

type AuditEventView = Omit<AuditEvent, 'time'> & { id: number; time: string };

interface AuditOptions {
  follow?: boolean;
  channel?: string;
  credential?: string;
  bundle?: string;
  decision?: string;
  since?: string;
  limit?: string;
  format: string;
}

const FOLLOW_POLL_MS = 1000;

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description('show the audit log: proxied requests, tunnels, refusals and token mints')
    .option('--follow', 'keep printing new events')
    .option('--channel <id>', 'only events of this channel')
    .option('--credential <name>', 'only events of this credential')
    .option('--bundle <name>', 'only events of this bundle')
    .option('--decision <decision>', 'allowed, denied or error')
    .option('--since <duration>', 'only events of the last DURATION, such as 15m or 2h')
    .option('--limit <n>', 'number of events to show (default 100, max 1000)')
    .option('--format <format>', 'text or json (one JSON object a line)', 'text')
    .action(async (options: AuditOptions, command: Command) => {
      if (options.format !== 'text' && options.format !== 'json') {
        throw new CliError(`--format "${options.format}" is invalid: use text or json`);
      }
      if (options.decision !== undefined && !['allowed', 'denied', 'error'].includes(options.decision)) {
        throw new CliError(`--decision "${options.decision}" is invalid: use allowed, denied or error`);
      }
      const admin = cliContext(command).admin();
      const filters = new URLSearchParams();
      for (const key of ['channel', 'credential', 'bundle', 'decision', 'since', 'limit'] as const) {
        const value = options[key];
        if (value !== undefined) filters.set(key, value);
      }

      let lastId = 0;
      const print = (events: AuditEventView[]) => {
        for (const event of events) {
          lastId = Math.max(lastId, event.id);
          process.stdout.write(`${options.format === 'json' ? JSON.stringify(event) : formatEvent(event)}\n`);
        }
      };

      print((await admin.call<{ events: AuditEventView[] }>('GET', `/api/v1/audit?${filters}`)).events);
      while (options.follow) {
        await sleep(FOLLOW_POLL_MS);
        const next = new URLSearchParams(filters);
        next.delete('since');
        next.delete('limit');
        next.set('afterId', String(lastId));
        print((await admin.call<{ events: AuditEventView[] }>('GET', `/api/v1/audit?${next}`)).events);
      }
    });
}

function formatEvent(event: AuditEventView): string {
  const target = event.host ? `${event.host}${event.port && event.port !== 443 ? `:${event.port}` : ''}${event.path ?? ''}` : '-';
  return [
    event.time,
    event.decision.padEnd(7),
    String(event.status ?? '-').padEnd(3),
    (event.method ?? '-').padEnd(7),
    target,
    `channel=${event.channel ?? '-'}`,
    `credential=${event.credential ?? '-'}`,
    event.subject ? `subject=${event.subject}` : '',
    event.errorCode ? `error=${event.errorCode}` : '',
    `session=${event.sessionId ?? '-'}`,
  ]
    .filter((part) => part !== '')
    .join(' ');
}
