import type { Command } from 'commander';
import { formatShellExports, sandboxEnvironment } from '../../sessions/sandboxEnvironment.ts';
import type { CreatedSession, SessionSummary } from '../../sessions/sessionService.ts';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';
import { checkTtlOption, warnIfChannelUncovered } from '../sessionRequest.ts';

export function registerSessionCommand(program: Command): void {
  const session = program.command('session').description('create, list and revoke sandbox sessions');

  session
    .command('create')
    .description('create a session for a sandbox of a channel and print its environment')
    .requiredOption('--channel <id>', 'channel the sandbox works for')
    .option('--thread <id>', 'thread in the channel')
    .option('--ttl <duration>', 'session lifetime, such as 30m, 8h or 7d (default 8h)')
    .option('--format <format>', 'env (shell exports) or json', 'env')
    .action(async (options: { channel: string; thread?: string; ttl?: string; format: string }, command: Command) => {
      if (options.format !== 'env' && options.format !== 'json') {
        throw new CliError(`--format "${options.format}" is invalid: use env or json`);
      }
      checkTtlOption(options.ttl);
      const admin = cliContext(command).admin();
      await warnIfChannelUncovered(admin, options.channel);
      const created = await admin.call<CreatedSession>('POST', '/api/v1/sessions', { channel: options.channel, thread: options.thread, ttl: options.ttl });
      const environment = sandboxEnvironment(created);
      if (options.format === 'json') {
        process.stdout.write(`${JSON.stringify({ ...created, env: environment }, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatShellExports(environment)}\n`);
      }
    });

  session
    .command('revoke')
    .description('revoke a session: its proxy token stops working within a second')
    .argument('<id>', 'session id')
    .action(async (id: string, _options: unknown, command: Command) => {
      await cliContext(command).admin().call('DELETE', `/api/v1/sessions/${encodeURIComponent(id)}`);
      process.stdout.write(`revoked ${id}\n`);
    });

  session
    .command('list')
    .description('list active sessions')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { format: string }, command: Command) => {
      const sessions = await cliContext(command).admin().call<SessionSummary[]>('GET', '/api/v1/sessions');
      if (options.format === 'json') {
        process.stdout.write(`${JSON.stringify(sessions, null, 2)}\n`);
        return;
      }
      if (sessions.length === 0) {
        process.stdout.write('No active sessions.\n');
        return;
      }
      process.stdout.write('SESSION\tCHANNEL\tTHREAD\tEXPIRES\n');
      for (const item of sessions) {
        process.stdout.write(`${item.id}\t${item.channel}\t${item.thread ?? '-'}\t${item.expiresAt}\n`);
      }
    });
}
