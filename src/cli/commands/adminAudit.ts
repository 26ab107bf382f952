import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';

interface AdminAuditEventView {
  id: number;
  time: string;
  actor: string;
  action: string;
  target: string | null;
  fields: string[];
  outcome: string;
  clientAddress: string | null;
}

interface AdminAuditOptions {
  follow?: boolean;
  actor?: string;
  action?: string;
  since?: string;
  limit?: string;
  format: string;
}

const FOLLOW_POLL_MS = 1000;

export function registerAdminAuditCommand(program: Command): void {
  program
    .command('admin-audit')
    .description('show the admin audit trail: who changed which configuration, sessions and admin tokens (field names, never values)')
    .option('--follow', 'keep printing new events')
    .option('--actor <name>', 'only changes made with this admin token')
    .option('--action <action>', 'only this action, such as credential.update')
    .option('--since <duration>', 'only events of the last DURATION, such as 15m or 2h')
    .option('--limit <n>', 'number of events to show (default 100, max 1000)')
    .option('--format <format>', 'text or json (one JSON object a line)', 'text')
    .action(async (options: AdminAuditOptions, command: Command) => {
      if (options.format !== 'text' && options.format !== 'json') {
        throw new CliError(`--format "${options.format}" is invalid: use text or json`);
      }
      const admin = cliContext(command).admin();
      const filters = new URLSearchParams();
      for (const key of ['actor', 'action', 'since', 'limit'] as const) {
        const value = options[key];
        if (value !== undefined) filters.set(key, value);
      }

      let lastId = 0;
      const print = (events: AdminAuditEventView[]) => {
        for (const event of events) {
          lastId = Math.max(lastId, event.id);
          process.stdout.write(`${options.format === 'json' ? JSON.stringify(event) : formatEvent(event)}\n`);
        }
      };

      print((await admin.call<{ events: AdminAuditEventView[] }>('GET', `/api/v1/admin-audit?${filters}`)).events);
      while (options.follow) {
        await sleep(FOLLOW_POLL_MS);
        const next = new URLSearchParams(filters);
        next.delete('since');
        next.delete('limit');
        next.set('afterId', String(lastId));
        print((await admin.call<{ events: AdminAuditEventView[] }>('GET', `/api/v1/admin-audit?${next}`)).events);
      }
    });
}

function formatEvent(event: AdminAuditEventView): string {
  return [
    event.time,
    event.outcome.padEnd(7),
    event.action.padEnd(18),
    event.target ?? '-',
    `actor=${event.actor}`,
    event.fields.length > 0 ? `fields=${event.fields.join(',')}` : '',
    `client=${event.clientAddress ?? '-'}`,
  ]
    .filter((part) => part !== '')
    .join(' ');
}
