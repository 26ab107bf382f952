import type { Command } from 'commander';
import { Document } from 'yaml';
import type { BundleView, CredentialView } from '../../credentials/redaction.ts';
import type { EgressPolicy } from '../../domain/types.ts';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';

/** Response of GET /api/v1/config: the configuration with every secret replaced by its fingerprint. */
export interface RedactedConfig {
  egress: EgressPolicy;
  bundles: BundleView[];
}

/** A secret field left out of an export, and the environment variable that `apply` reads it from instead. */
export interface ExportedSecret {
  bundle: string;
  credential: string;
  field: string;
  variable: string;
}

export interface ConfigExport {
  document: { egress: EgressPolicy; bundles: Record<string, unknown>[] };
  secrets: ExportedSecret[];
}

export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description('print the configuration as a bundles file; secret values are left out and read from environment variables instead')
    .option('--format <format>', 'yaml or json', 'yaml')
    .action(async (options: { format: string }, command: Command) => {
      if (options.format !== 'yaml' && options.format !== 'json') {
        throw new CliError(`--format "${options.format}" is invalid; give yaml or json.`);
      }
      // The server returns secrets only as fingerprints, so no secret value reaches this process.
      const config = await cliContext(command).admin().call<RedactedConfig>('GET', '/api/v1/config');
      const exported = buildConfigExport(config);
      process.stdout.write(formatConfigExport(exported, options.format));
      if (options.format === 'json' && exported.secrets.length > 0) {
        process.stderr.write(`Secret values are not exported. Set these variables before \`agent-proxy apply\`:\n${secretList(exported.secrets)}\n`);
      }
    });
}

/** Turns the redacted configuration into a bundles document whose secret fields are `{ env: NAME }` references. */
export function buildConfigExport(config: RedactedConfig): ConfigExport {
  const secrets: ExportedSecret[] = [];
  const usedVariables = new Set<string>();
  const bundles = config.bundles.map((bundle) => ({
    name: bundle.name,
    ...(bundle.description === '' ? {} : { description: bundle.description }),
    channels: bundle.channels,
    credentials: bundle.credentials.map((credential) => exportCredential(bundle.name, credential, secrets, usedVariables)),
  }));
  return { document: { egress: config.egress, bundles }, secrets };
}

/** Renders the export as YAML, with a comment that lists the variables to set, or as JSON. */
export function formatConfigExport(exported: ConfigExport, format: 'yaml' | 'json'): string {
  if (format === 'json') {
    return `${JSON.stringify(exported.document, null, 2)}\n`;
  }
  const document = new Document(exported.document);
  const header = ['Exported from Agent Proxy. Secret values are not exported: each secret field reads an', 'environment variable instead.'];
  if (exported.secrets.length > 0) {
    header.push('Set these before `agent-proxy apply -f FILE`:', ...secretList(exported.secrets).split('\n'));
  }
  document.commentBefore = header.map((line) => ` ${line}`).join('\n');
  return document.toString({ lineWidth: 0 });
}

function exportCredential(bundle: string, credential: CredentialView, secrets: ExportedSecret[], usedVariables: Set<string>): Record<string, unknown> {
  const secretReferences: Record<string, { env: string }> = {};
  for (const field of Object.keys(credential.secrets)) {
    const variable = uniqueVariable(`${screamingSnake(credential.name)}_${screamingSnake(field)}`, usedVariables);
    secrets.push({ bundle, credential: credential.name, field, variable });
    secretReferences[field] = { env: variable };
  }
  return {
    name: credential.name,
    type: credential.type,
    ...credential.settings,
    ...secretReferences,
    allowedWebsites: credential.allowedWebsites,
    access: credential.access,
    ...(credential.rules.length === 0 ? {} : { rules: credential.rules }),
    ...(Object.keys(credential.extraHeaders).length === 0 ? {} : { extraHeaders: credential.extraHeaders }),
  };
}

function secretList(secrets: ExportedSecret[]): string {
  return secrets.map((secret) => `  ${secret.variable}: ${secret.field} of credential ${secret.credential} in bundle ${secret.bundle}`).join('\n');
}

/** `privateKey` → `PRIVATE_KEY`, `my-app.v2` → `MY_APP_V2`. */
function screamingSnake(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase();
}

// Credential names such as `a-b` and `a_b` map to the same variable, so later ones get a suffix.
function uniqueVariable(candidate: string, used: Set<string>): string {
  const base = /^[0-9]/.test(candidate) ? `_${candidate}` : candidate;
  let variable = base;
  for (let suffix = 2; used.has(variable); suffix += 1) {
    variable = `${base}_${suffix}`;
  }
  used.add(variable);
  return variable;
}
