import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { AdminApiError } from '../adminClient.ts';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';

interface ApplyResponse {
  dryRun: boolean;
  created: string[];
  changed: string[];
  deleted: string[];
}

export function registerApplyCommand(program: Command): void {
  program
    .command('apply')
    .description('make bundles and credentials match a YAML or JSON bundles file')
    .requiredOption('-f, --file <file>', 'bundles file')
    .option('--dry-run', 'show what would change without changing anything')
    .action(async (options: { file: string; dryRun?: boolean }, command: Command) => {
      const { formatIssues } = await import('../../config/bundlesFile.ts');
      const document = await readAndValidate(options.file);
      const client = cliContext(command).admin();

      let result: ApplyResponse;
      try {
        result = await client.call<ApplyResponse>('POST', `/api/v1/apply${options.dryRun ? '?dryRun=true' : ''}`, document);
      } catch (error) {
        const issues = (error as AdminApiError).body as { error?: { issues?: { path: string; message: string }[] } } | undefined;
        if (error instanceof AdminApiError && issues?.error?.issues) {
          throw new CliError(`${options.file} was rejected by the server; nothing was changed:\n${formatIssues(issues.error.issues)}`);
        }
        throw error;
      }

      const verb = result.dryRun ? 'would be ' : '';
      const lines = [
        ...result.created.map((name) => `created ${name}`),
        ...result.changed.map((name) => `changed ${name}`),
        ...result.deleted.map((name) => `deleted ${name}`),
      ];
      if (lines.length === 0) {
        process.stdout.write(`No changes${result.dryRun ? ' would be made' : ''}: the stored configuration already matches ${options.file}.\n`);
        return;
      }
      process.stdout.write(`${lines.map((line) => (verb ? line.replace(/^(\w+)/, `${verb}$1`) : line)).join('\n')}\n`);
      process.stdout.write(`${result.created.length} ${verb}created, ${result.changed.length} ${verb}changed, ${result.deleted.length} ${verb}deleted.\n`);
    });
}

/** Reads the file, inlines secret references and validates it here, so every error is listed before anything is sent. */
async function readAndValidate(file: string): Promise<unknown> {
  // Loaded here: the schemas pull in zod, jose and the key parser, which other commands do not need.
  const { BundlesFileError, formatIssues, parseBundlesText, resolveSecretRefs, validateBundlesDocument } = await import('../../config/bundlesFile.ts');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`Cannot read the bundles file ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)}); check the path given to -f.`);
  }

  try {
    const parsed = parseBundlesText(text, file);
    const resolved = resolveSecretRefs(parsed, { baseDir: path.dirname(path.resolve(file)), env: process.env });
    const validation = validateBundlesDocument(resolved.doc);
    const resolvedPaths = new Set(resolved.issues.map((issue) => issue.path));
    const issues = [...resolved.issues, ...(validation.ok ? [] : validation.issues.filter((issue) => !resolvedPaths.has(issue.path)))];
    if (issues.length > 0) {
      throw new BundlesFileError(issues, file);
    }
    return resolved.doc;
  } catch (error) {
    if (error instanceof BundlesFileError) {
      const count = error.issues.length;
      throw new CliError(`${file} is invalid (${count} ${count === 1 ? 'error' : 'errors'}); nothing was changed:\n${formatIssues(error.issues)}`);
    }
    throw error;
  }
}
