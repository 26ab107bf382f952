import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { sandboxEnvironment } from '../../sessions/sandboxEnvironment.ts';
import type { CreatedSession } from '../../sessions/sessionService.ts';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';
import { checkTtlOption, warnIfChannelUncovered } from '../sessionRequest.ts';

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run a command as a sandbox of a channel: a fresh session, its environment, revoked at exit')
    .requiredOption('--channel <id>', 'channel the sandbox works for')
    .option('--thread <id>', 'thread in the channel')
    .option('--ttl <duration>', 'session lifetime (default 8h)')
    .argument('<command...>', 'command and its arguments, after --')
    .action(async (argv: string[], options: { channel: string; thread?: string; ttl?: string }, command: Command) => {
      checkTtlOption(options.ttl);
      const admin = cliContext(command).admin();
      await warnIfChannelUncovered(admin, options.channel);
      const session = await admin.call<CreatedSession>('POST', '/api/v1/sessions', { channel: options.channel, thread: options.thread, ttl: options.ttl });

      let status: number;
      try {
        status = await runChild(argv, { ...process.env, ...sandboxEnvironment(session) });
      } finally {
        await admin.call('DELETE', `/api/v1/sessions/${encodeURIComponent(session.id)}`).catch((error: Error) => {
          process.stderr.write(`agent-proxy: could not revoke session ${session.id}: ${error.message}\n`);
        });
      }
      if (status !== 0) {
        process.stderr.write(`agent-proxy: the command exited with status ${status}; \`agent-proxy audit --since 10m --channel ${options.channel}\` shows what the proxy allowed and refused.\n`);
      }
      process.exitCode = status;
    });
}

/** Runs the command with inherited stdio and returns its exit status (128 + signal number when killed, as shells do). */
function runChild(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [file, ...args] = argv;
  if (!file) {
    throw new CliError('run needs a command after --, for example: agent-proxy run --channel C0SALES -- curl https://api.example.com');
  }

  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'inherit', env });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);

    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(new CliError(`cannot run ${file}: ${error.code === 'ENOENT' ? 'command not found' : error.message}`, 127));
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}
