import type { Command } from 'commander';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';

interface AdminTokenView {
  name: string;
  role: string;
  status: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const ROLES = ['admin', 'viewer', 'session-issuer'];

export function registerAdminTokenCommand(program: Command): void {
  const adminToken = program.command('admin-token').description('create, list and revoke admin API tokens');

  adminToken
    .command('create')
    .description('create an admin API token and print it once; only its hash is stored')
    .requiredOption('--name <name>', 'unique name, recorded as the actor in the admin audit trail')
    .requiredOption('--role <role>', 'admin (change configuration), viewer (read configuration and audit) or session-issuer (only create, list and revoke sessions)')
    .option('--expires-in <duration>', 'lifetime such as 12h or 90d (default: no expiry)')
    .option('--format <format>', 'token (the token alone) or json', 'token')
    .action(async (options: { name: string; role: string; expiresIn?: string; format: string }, command: Command) => {
      if (!ROLES.includes(options.role)) {
        throw new CliError(`--role "${options.role}" is invalid: use ${ROLES.join(', ')}`);
      }
      if (options.format !== 'token' && options.format !== 'json') {
        throw new CliError(`--format "${options.format}" is invalid: use token or json`);
      }
      const created = await cliContext(command)
        .admin()
        .call<AdminTokenView & { token: string }>('POST', '/api/v1/admin-tokens', { name: options.name, role: options.role, expiresIn: options.expiresIn });
      if (options.format === 'json') {
        process.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${created.token}\n`);
      process.stderr.write(
        `Created admin token "${created.name}" with role ${created.role}${created.expiresAt ? `, expiring at ${created.expiresAt}` : ''}. ` +
          'It is shown only now; store it in your secret manager.\n',
      );
    });

  adminToken
    .command('list')
    .description('list admin API tokens: name, role, status and times, never the token')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { format: string }, command: Command) => {
      if (options.format !== 'table' && options.format !== 'json') {
        throw new CliError(`--format "${options.format}" is invalid: use table or json`);
      }
      const { tokens } = await cliContext(command).admin().call<{ tokens: AdminTokenView[] }>('GET', '/api/v1/admin-tokens');
      if (options.format === 'json') {
        process.stdout.write(`${JSON.stringify(tokens, null, 2)}\n`);
        return;
      }
      process.stdout.write('NAME\tROLE\tSTATUS\tCREATED\tEXPIRES\tLAST USED\tREVOKED\n');
      for (const token of tokens) {
        const columns = [token.name, token.role, token.status, token.createdAt, token.expiresAt ?? '-', token.lastUsedAt ?? '-', token.revokedAt ?? '-'];
        process.stdout.write(`${columns.join('\t')}\n`);
      }
    });

  adminToken
    .command('revoke')
    .description('revoke an admin API token: it and its console sessions stop working within a second')
    .argument('<name>', 'name of the token')
    .action(async (name: string, _options: unknown, command: Command) => {
      await cliContext(command).admin().call('DELETE', `/api/v1/admin-tokens/${encodeURIComponent(name)}`);
      process.stdout.write(`revoked ${name}\n`);
    });
}
