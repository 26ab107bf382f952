import { Command, CommanderError } from 'commander';
import { registerAdminAuditCommand } from './commands/adminAudit.ts';
import { registerAdminTokenCommand } from './commands/adminToken.ts';
import { registerApplyCommand } from './commands/apply.ts';
import { registerAuditCommand } from './commands/audit.ts';
import { registerCaCommand } from './commands/ca.ts';
import { registerExportCommand } from './commands/export.ts';
import { registerKeysCommand } from './commands/keys.ts';
import { registerRunCommand } from './commands/run.ts';
import { registerServeCommand } from './commands/serve.ts';
import { registerSessionCommand } from './commands/session.ts';
import { registerTestConnectionCommand } from './commands/testConnection.ts';
import { CliError } from './cliError.ts';

const program = new Command('agent-proxy')
  .description('Egress proxy that adds an organisation\'s credentials to sandbox traffic, so the sandbox never holds a secret.')
  .option('--data-dir <dir>', 'data directory (default $AGENT_PROXY_HOME or ./.agent-proxy)')
  .option('--server <url>', 'admin API URL of the server to talk to (default: found through the data directory)')
  .showHelpAfterError()
  .exitOverride();

registerServeCommand(program);
registerApplyCommand(program);
registerSessionCommand(program);
registerRunCommand(program);
registerTestConnectionCommand(program);
registerAuditCommand(program);
registerAdminAuditCommand(program);
registerAdminTokenCommand(program);
registerCaCommand(program);
registerKeysCommand(program);
registerExportCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else if (error instanceof CliError) {
    process.stderr.write(`agent-proxy: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`agent-proxy: ${(error as Error).message ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
