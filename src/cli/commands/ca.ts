import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';

export function registerCaCommand(program: Command): void {
  const ca = program.command('ca').description('the proxy CA that sandboxes must trust');

  ca.command('path')
    .description('print the path of the CA certificate (PEM)')
    .action((_options: unknown, command: Command) => {
      process.stdout.write(`${caPath(command)}\n`);
    });

  ca.command('export')
    .description('print the CA certificate (PEM)')
    .action((_options: unknown, command: Command) => {
      process.stdout.write(readFileSync(caPath(command), 'utf8'));
    });
}

function caPath(command: Command): string {
  const { dataDir } = cliContext(command);
  // The name `loadOrCreateCa` gives the certificate; not imported, to keep the CLI quick to start.
  const file = path.join(dataDir.root, 'ca.pem');
  if (!existsSync(file)) {
    throw new CliError(`No CA in ${dataDir.root} yet; \`agent-proxy serve\` creates it on first start.`);
  }
  return file;
}
