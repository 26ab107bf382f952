import type { Command } from 'commander';
import { resolveDataDirectory, type DataDirectory } from '../runtime/dataDir.ts';
import { AdminClient } from './adminClient.ts';

export interface CliContext {
  dataDir: DataDirectory;
  server: string | undefined;
  admin(): AdminClient;
}

/** Reads the global options (`--data-dir`, `--server`) of the command being run. */
export function cliContext(command: Command): CliContext {
  const options = command.optsWithGlobals<{ dataDir?: string; server?: string }>();
  const dataDir = resolveDataDirectory(options.dataDir);
  return {
    dataDir,
    server: options.server,
    admin: () => AdminClient.locate(dataDir, options.server),
  };
}
