import type { Command } from 'commander';
import type { ConnectionTestResult } from '../../credentials/testConnection.ts';
import { cliContext } from '../context.ts';

export function registerTestConnectionCommand(program: Command): void {
  program
    .command('test-connection')
    .description("mint a token (where the type has one), call the credential's probe URL and print who the call ran as")
    .argument('<credential>', 'credential name')
    .option('--format <format>', 'text or json', 'text')
    .action(async (name: string, options: { format: string }, command: Command) => {
      const result = await cliContext(command)
        .admin()
        .call<ConnectionTestResult>('POST', `/api/v1/credentials/${encodeURIComponent(name)}/test-connection`);

      if (options.format === 'json') {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else {
        process.stdout.write(formatResult(result));
      }
      process.exitCode = result.ok ? 0 : 1;
    });
}

function formatResult(result: ConnectionTestResult): string {
  const lines = [`credential ${result.credential} (${result.type})`];
  if (result.token) {
    lines.push(`  token:    minted for ${result.token.subject}, cached until ${result.token.expiresAt}`);
    if (result.token.instanceUrl) lines.push(`  instance: ${result.token.instanceUrl}`);
  }
  if (result.probe) {
    lines.push(`  probe:    GET ${result.probe.url} -> ${result.probe.status}`);
    const identity = result.probe.identity;
    if (identity) {
      const who = identity.preferred_username ?? identity.username ?? identity.email ?? identity.sub ?? identity.name;
      lines.push(`  ran as:   ${who ?? '(unknown)'}`);
      if (identity.user_id) lines.push(`  user id:  ${identity.user_id}`);
      if (identity.organization_id) lines.push(`  org id:   ${identity.organization_id}`);
    }
  }
  for (const warning of result.warnings) {
    lines.push(`  warning:  ${warning}`);
  }
  if (result.error) {
    lines.push(`  FAILED:   ${result.error.message}`);
    if (result.error.providerError) {
      lines.push(`  provider: ${result.error.providerError}${result.error.providerErrorDescription ? ` (${result.error.providerErrorDescription})` : ''}`);
    }
  }
  lines.push(result.ok ? 'OK' : 'FAILED');
  return `${lines.join('\n')}\n`;
}
