// The bundles file that `agent-proxy apply -f FILE` and `serve --config FILE` read:
// text → document (parseBundlesText) → secret references inlined (resolveSecretRefs)
// → ProxyConfig (validateBundlesDocument).

import { readFileSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import {
  DEFAULT_EGRESS,
  SECRET_FIELDS,
  type Bundle,
  type Credential,
  type CredentialSettings,
  type EgressPolicy,
  type ProxyConfig,
} from '../domain/types.ts';
import {
  cidrField,
  credentialField,
  describeKind,
  hostPatternField,
  isRecord,
  isSecretReference,
  knownFieldsObject,
  nameField,
  type ParsedCredential,
} from './credentialSchemas.ts';
import { resolveSecretRefs } from './secretRefs.ts';

export interface ConfigIssue {
  /** Location in the document, such as `bundles[0].credentials[1].allowedWebsites[0]`; empty for the whole document. */
  path: string;
  message: string;
}

export class BundlesFileError extends Error {
  override name = 'BundlesFileError';

  constructor(readonly issues: ConfigIssue[], readonly fileName?: string) {
    super(`${fileName ? `${fileName}: ` : ''}invalid bundles file:\n${formatIssues(issues)}`);
  }
}

// ---------------------------------------------------------------- parsing

/**
 * Parses the text of a bundles file. Files named `*.json` are read with JSON.parse,
 * whose messages fit JSON better than YAML's; everything else is YAML 1.2.
 */
export function parseBundlesText(text: string, fileName: string): unknown {
  const isJson = extname(fileName).toLowerCase() === '.json';
  let json: unknown;
  if (isJson) {
    try {
      json = JSON.parse(text) as unknown;
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      throw new BundlesFileError([{ path: '', message: describeJsonError(error, text) }], fileName);
    }
  }

  // JSON.parse keeps the last of two equal keys without a word, so JSON text is also read
  // as YAML (a superset of JSON) to report duplicate keys with their line.
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  const errors = isJson ? document.errors.filter((error) => error.code === 'DUPLICATE_KEY') : document.errors;
  const issues = errors.map((error) => {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    return { path: '', message: `line ${line}, column ${col}: ${error.message.split('\n')[0]}` };
  });
  if (issues.length > 0) {
    throw new BundlesFileError(issues, fileName);
  }
  if (isJson) {
    return json;
  }
  // Building the value resolves aliases, which fails on an alias to an unknown anchor or on
  // more aliases than the YAML library allows (its guard against alias expansion bombs).
  try {
    return document.toJS() as unknown;
  } catch (error) {
    throw new BundlesFileError([{ path: '', message: `invalid YAML: ${(error as Error).message}` }], fileName);
  }
}

function describeJsonError(error: SyntaxError, text: string): string {
  // Drop V8's position and its quoted copy of the input, which repeats the whole file.
  const reason = error.message
    .replace(/ at position \d+.*$/s, '')
    .replace(/ in JSON$/, '')
    .replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '');
  const offset = jsonErrorOffset(text, error.message);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${column}: ${reason}`;
}

/**
 * Returns the offset of the first character that makes `text` invalid JSON. V8 states it
 * for most errors but not for "Unexpected token". There a binary search finds the longest
 * prefix that is still the start of some valid JSON text.
 */
function jsonErrorOffset(text: string, message: string): number {
  const stated = /at position (\d+)/.exec(message);
  if (stated) {
    return Number(stated[1]);
  }

  let low = 0;
  let high = text.length;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (isJsonPrefix(text.slice(0, middle))) {
      low = middle;
    } else {
      high = middle;
    }
  }
  return low;
}

function isJsonPrefix(prefix: string): boolean {
  try {
    JSON.parse(prefix);
    return true;
  } catch (error) {
    const message = (error as Error).message;
    const stated = /at position (\d+)/.exec(message);
    return stated ? Number(stated[1]) >= prefix.length : message.startsWith('Unexpected end of JSON input');
  }
}

// ---------------------------------------------------------------- schema

const egressField = knownFieldsObject({
  default: z
    .enum(['allow', 'deny'], { error: (issue) => (issue.input === undefined ? undefined : `${JSON.stringify(issue.input)} is not an egress default; use allow or deny`) })
    .default('allow'),
  allow: z.array(hostPatternField).default(() => []),
  allowPrivateNetworks: z.array(cidrField).default(() => []),
});

const channelsField = z.array(z.string()).superRefine(
  (channels, context) => {
    for (const [index, channel] of channels.entries()) {
      if (typeof channel !== 'string') continue;
      if (channel === '*' && channels.length > 1) {
        context.addIssue({ code: 'custom', path: [index], message: '"*" covers every channel, so give it alone: channels: ["*"]' });
      } else if (channel === '' || /[\s\p{Cc}]/u.test(channel)) {
        context.addIssue({
          code: 'custom',
          path: [index],
          message: `${JSON.stringify(channel)} is not a channel id; give an id such as "C0SALES", without spaces`,
        });
      }
    }
  },
  { when: (payload) => Array.isArray(payload.value) },
);

const bundleField = knownFieldsObject({
  name: nameField('bundle'),
  description: z.string().default(''),
  channels: channelsField,
  credentials: z.array(credentialField).default(() => []),
});

const documentSchema = knownFieldsObject({
  version: z.literal(1, { error: (issue) => `unsupported version ${JSON.stringify(issue.input)}; this agent-proxy reads version 1` }).optional(),
  egress: egressField.optional(),
  bundles: z.array(bundleField),
}).superRefine(checkUniqueNames, { when: (payload) => isRecord(payload.value) });

/**
 * Rejects repeated bundle names, and credential names repeated anywhere in the file,
 * because `audit --credential NAME` and `test-connection NAME` select a credential by name alone.
 */
function checkUniqueNames(document: Record<string, unknown>, context: z.RefinementCtx): void {
  if (!Array.isArray(document['bundles'])) return;

  const bundlePaths = new Map<string, string>();
  const credentialPaths = new Map<string, string>();
  for (const [bundleIndex, bundle] of document['bundles'].entries()) {
    if (!isRecord(bundle)) continue;

    const bundleName = bundle['name'];
    if (typeof bundleName === 'string') {
      const earlier = bundlePaths.get(bundleName);
      if (earlier) {
        context.addIssue({ code: 'custom', path: ['bundles', bundleIndex, 'name'], message: `duplicate bundle name "${bundleName}"; ${earlier} already uses it` });
      } else {
        bundlePaths.set(bundleName, `bundles[${bundleIndex}]`);
      }
    }

    if (!Array.isArray(bundle['credentials'])) continue;
    for (const [credentialIndex, credential] of bundle['credentials'].entries()) {
      const credentialName = isRecord(credential) ? credential['name'] : undefined;
      if (typeof credentialName !== 'string') continue;
      const path = `bundles[${bundleIndex}].credentials[${credentialIndex}]`;
      const earlier = credentialPaths.get(credentialName);
      if (earlier) {
        context.addIssue({
          code: 'custom',
          path: ['bundles', bundleIndex, 'credentials', credentialIndex, 'name'],
          message: `duplicate credential name "${credentialName}"; ${earlier} already uses it, and audit --credential selects credentials by name across all bundles`,
        });
      } else {
        credentialPaths.set(credentialName, path);
      }
    }
  }
}

// ---------------------------------------------------------------- validation

/** Validates a parsed document, listing every issue in it, and builds the configuration it describes. */
export function validateBundlesDocument(doc: unknown): { ok: true; config: ProxyConfig } | { ok: false; issues: ConfigIssue[] } {
  const result = documentSchema.safeParse(doc, { error: genericMessage });
  if (!result.success) {
    return { ok: false, issues: result.error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message })) };
  }

  const egress: EgressPolicy = result.data.egress ?? { ...DEFAULT_EGRESS, allow: [], allowPrivateNetworks: [] };
  const bundles: Bundle[] = result.data.bundles.map((bundle) => ({
    id: '',
    name: bundle.name,
    description: bundle.description,
    channels: bundle.channels,
    credentials: bundle.credentials.map(toCredential),
  }));
  return { ok: true, config: { egress, bundles } };
}

/**
 * Validates one credential object as it appears in a bundles file, with the messages
 * `validateBundlesDocument` gives, and paths relative to the credential (`allowedWebsites[0]`).
 * The admin API creates and edits credentials one at a time through this.
 */
export function validateCredentialDocument(doc: unknown): { ok: true; value: Credential } | { ok: false; issues: ConfigIssue[] } {
  return validateFileObject(credentialField, doc, toCredential);
}

/** Schemas of the bundle and egress objects of the file, for the admin API's one-object edits. */
export const bundleObjectSchemas = {
  bundle: knownFieldsObject({ name: nameField('bundle'), description: z.string().default(''), channels: channelsField }),
  bundlePatch: knownFieldsObject({ name: nameField('bundle').optional(), description: z.string().optional(), channels: channelsField.optional() }),
  egress: egressField,
} as const;

/** Parses `value` with one of the file's object schemas, wording issues as `validateBundlesDocument` does. */
export function validateFileObject<Schema extends z.ZodType, Result = z.output<Schema>>(
  schema: Schema,
  value: unknown,
  build: (parsed: z.output<Schema>) => Result = (parsed) => parsed as Result,
): { ok: true; value: Result } | { ok: false; issues: ConfigIssue[] } {
  const result = schema.safeParse(value, { error: genericMessage });
  if (!result.success) {
    return { ok: false, issues: result.error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message })) };
  }
  return { ok: true, value: build(result.data) };
}

const COMMON_CREDENTIAL_FIELDS = new Set(['name', 'type', 'allowedWebsites', 'access', 'rules', 'extraHeaders']);

function toCredential(parsed: ParsedCredential): Credential {
  const secretFields = SECRET_FIELDS[parsed.type];
  const settings: Record<string, unknown> = { type: parsed.type };
  const secrets: Record<string, string> = {};
  for (const [field, value] of Object.entries(parsed)) {
    if (value === undefined || COMMON_CREDENTIAL_FIELDS.has(field)) continue;
    if (secretFields.includes(field)) {
      secrets[field] = value as string;
    } else {
      settings[field] = value;
    }
  }

  return {
    id: '',
    bundleId: '',
    name: parsed.name,
    // The credential schema of `parsed.type` admits exactly the settings fields of that type.
    settings: settings as CredentialSettings,
    secrets,
    allowedWebsites: parsed.allowedWebsites,
    access: parsed.access,
    rules: parsed.rules.map((rule) => ({
      ...(rule.methods ? { methods: rule.methods } : {}),
      ...(rule.paths ? { paths: rule.paths } : {}),
    })),
    extraHeaders: parsed.extraHeaders,
  };
}

/** Words the issues that no field schema words itself: missing fields and wrong kinds of value. */
function genericMessage(issue: z.core.$ZodRawIssue): string | undefined {
  const path = issue.path ?? [];
  const field = path.at(-1);
  if (issue.code === 'invalid_type') {
    if (path.length === 0 && (issue.input === null || issue.input === undefined)) {
      return 'the document is empty; it needs at least "bundles:" with a list of bundles';
    }
    if (issue.input === undefined && typeof field === 'string') {
      return `missing required field "${field}"`;
    }
    if (isSecretReference(issue.input)) {
      return 'only secret fields may be given as {file: PATH} or {env: NAME}; give this value inline';
    }
    let expected = `a ${issue.expected}`;
    if (issue.expected === 'array') expected = 'a list';
    if (issue.expected === 'object') expected = 'an object';
    const quoteHint = issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean') ? ' (quote the value to make it text)' : '';
    return `expected ${expected}, got ${describeValue(issue.input)}${quoteHint}`;
  }
  if (issue.code === 'invalid_value') {
    return `${JSON.stringify(issue.input)} is not valid here; use ${issue.values.map((value) => JSON.stringify(value)).join(' or ')}`;
  }
  return undefined;
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return `${describeKind(value)} (${String(value)})`;
  return describeKind(value);
}

function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    if (typeof key === 'number') {
      text += `[${key}]`;
    } else if (typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      text += text === '' ? key : `.${key}`;
    } else {
      text += `[${JSON.stringify(String(key))}]`;
    }
  }
  return text;
}

/** Formats issues one per line as `PATH: MESSAGE`, or just the message for the whole document. */
export function formatIssues(issues: ConfigIssue[]): string {
  return issues.map((issue) => (issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`)).join('\n');
}

// ---------------------------------------------------------------- file

/**
 * Reads, resolves and validates a bundles file from disk, as the CLI does for
 * `apply -f` and `serve --config`. Throws BundlesFileError listing every issue.
 */
export function readBundlesFile(filePath: string, env: Record<string, string | undefined> = process.env): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(filePath, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new BundlesFileError([{ path: '', message: `cannot read the bundles file "${filePath}" (${reason}); check the path given to -f or --config` }], filePath);
  }

  const parsed = parseBundlesText(text, filePath);
  const resolved = resolveSecretRefs(parsed, { baseDir: dirname(filePath), env });
  const validation = validateBundlesDocument(resolved.doc);
  // A reference that failed to resolve stays in the document, so validation reports its
  // path again. The resolution issue is more specific, so only that one is kept.
  const resolvedPaths = new Set(resolved.issues.map((issue) => issue.path));
  const validationIssues = validation.ok ? [] : validation.issues.filter((issue) => !resolvedPaths.has(issue.path));
  const issues = [...resolved.issues, ...validationIssues];
  if (issues.length > 0 || !validation.ok) {
    throw new BundlesFileError(issues, filePath);
  }
  return validation.config;
}

export { resolveSecretRefs };
