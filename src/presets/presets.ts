// Presets: ready-made credential templates for well-known apps. The catalogue in
// catalogue.ts is data only; this module checks an admin's values against it and
// builds a bundles-file credential document from them.
//
// Templates use `{variable}` placeholders. Variables come from the field values (by
// field name), from the chosen option of a select field (`sets`), and from the keys
// read out of a JSON field (by key name). `{a|b}` takes the first of a and b that has
// a value.

import { validateBundlesDocument } from '../config/bundlesFile.ts';
import type { CredentialType } from '../domain/types.ts';
import { PRESET_CATALOGUE } from './catalogue.ts';

export interface PresetFieldOption {
  value: string;
  label: string;
  /** Template variables that choosing this option sets; their values may use other variables. */
  sets?: Record<string, string>;
}

/** A value that is rejected before any other check, with a message saying what to give instead. */
export interface PresetRejection {
  /** Regular expression matched against the whole value, case-insensitively. */
  pattern: string;
  /** Message that may refer to the pattern's groups as `$1`, `$2`, as String.replace does. */
  message: string;
}

/** A pasted form of a value that is reduced to the form the field expects. */
export interface PresetRewrite {
  /** Regular expression matched against the whole value, case-insensitively. */
  pattern: string;
  /** Replacement for the whole value, with `$1`, `$2` for the pattern's groups. */
  replacement: string;
}

/** One key read out of a JSON field into the template variable of the same name. */
export interface PresetJsonKey {
  key: string;
  required: boolean;
  /** Value used when the key is absent. */
  default?: string;
  pattern?: string;
  patternHint?: string;
}

/** Reading rules for a textarea field that contains a JSON document, such as a key file. */
export interface PresetJsonSpec {
  /** Description of the document for messages, such as "a Google service account key file". */
  description: string;
  /** Key whose value identifies the kind of document, and the value it must have. */
  kindKey: string;
  kindValue: string;
  /** Messages for other values of `kindKey`, by value; `{kind}` is replaced by the value found. */
  kindMessages: Record<string, string>;
  /** Message when `kindKey` has a value with no entry in `kindMessages`, or is absent. */
  otherKindMessage: string;
  keys: PresetJsonKey[];
}

export interface PresetField {
  name: string;
  label: string;
  help: string;
  example?: string;
  /** Regular expression the whole value must match, after rewrites. */
  pattern?: string;
  secret: boolean;
  required: boolean;
  kind: 'text' | 'secret' | 'pem' | 'select' | 'textarea';
  options?: PresetFieldOption[];
  /** Credential document property the value is written to. A field without one only fills templates. */
  target?: string;
  /** Ending of the message "give …" when the value does not match `pattern`, such as "a key that starts with sk-". */
  patternHint?: string;
  /** Lower-cases the value before the checks, for host names. */
  lowercase?: boolean;
  rejections?: PresetRejection[];
  rewrites?: PresetRewrite[];
  json?: PresetJsonSpec;
}

export interface Preset {
  id: string;
  name: string;
  description: string;
  type: CredentialType;
  setupGuideUrl: string;
  fields: PresetField[];
  allowedWebsitesTemplate: string[];
  extraHeaders: Record<string, string>;
  /**
   * Fixed credential document properties. String values are templates. A property whose
   * template refers to a variable with no value (an optional field left empty) is left out.
   */
  defaults: Record<string, unknown>;
  /** Identity endpoint that test-connection calls; `identityFields` are dotted paths into its JSON body. */
  probe: { method: 'GET'; url: string; identityFields?: string[] } | null;
  tokenUrlTemplate?: string;
}

export interface PresetIssue {
  /** Field name of the preset, a credential document property, or empty for the whole credential. */
  path: string;
  message: string;
}

export type PresetBuildResult = { ok: true; document: Record<string, unknown> } | { ok: false; issues: PresetIssue[] };

export function listPresets(): Preset[] {
  return PRESET_CATALOGUE.map((preset) => structuredClone(preset));
}

export function getPreset(id: string): Preset | undefined {
  const preset = PRESET_CATALOGUE.find((candidate) => candidate.id === id);
  return preset === undefined ? undefined : structuredClone(preset);
}

// ---------------------------------------------------------------- building

/** A template variable's value and the preset field it came from. */
interface Variable {
  value: string;
  field: string;
}

type Variables = Map<string, Variable>;

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*(?:\|[A-Za-z_][A-Za-z0-9_]*)*)\}/g;
const DOCUMENT_PREFIX = 'bundles[0].credentials[0]';

/**
 * Checks `values` against the preset's fields and builds a bundles-file credential
 * document named `name`. Every field issue is listed with the field name as its path.
 * The document is then validated as `apply` would, and its issues are reported against
 * the field that supplied the bad value where one did.
 */
export function buildCredentialFromPreset(preset: Preset, name: string, values: Record<string, string>): PresetBuildResult {
  const issues: PresetIssue[] = [];
  const variables: Variables = new Map();
  const targets: Record<string, Variable> = {};

  for (const field of preset.fields) {
    const result = readField(field, values[field.name]);
    if ('issue' in result) {
      issues.push({ path: field.name, message: result.issue });
      continue;
    }
    if (result.value === undefined) continue;

    variables.set(field.name, { value: result.value, field: field.name });
    if (field.target !== undefined) targets[field.target] = { value: result.value, field: field.name };
    for (const [variable, value] of result.jsonValues) variables.set(variable, { value, field: field.name });
  }
  if (issues.length > 0) return { ok: false, issues };

  // A chosen option's variables may refer to the field variables, such as `{instance}.my.salesforce.com`.
  for (const field of preset.fields) {
    const chosen = field.options?.find((option) => option.value === variables.get(field.name)?.value);
    for (const [variable, template] of Object.entries(chosen?.sets ?? {})) {
      const filled = fillTemplate(template, variables);
      if (filled !== undefined) variables.set(variable, { value: filled.text, field: filled.field ?? field.name });
    }
  }

  const built = buildDocument(preset, name, variables, targets);
  if ('issues' in built) return { ok: false, issues: built.issues };

  const validation = validateBundlesDocument({ bundles: [{ name: 'preset', channels: ['*'], credentials: [built.document] }] });
  if (!validation.ok) {
    return { ok: false, issues: validation.issues.map((issue) => mapDocumentIssue(issue, built.origins)) };
  }
  return { ok: true, document: built.document };
}

type FieldResult = { value: string | undefined; jsonValues: Map<string, string> } | { issue: string };

function readField(field: PresetField, raw: string | undefined): FieldResult {
  const noValue = { value: undefined, jsonValues: new Map<string, string>() };
  let value = typeof raw === 'string' ? raw.trim() : '';
  if (field.kind === 'text') value = value.replace(/\s+/g, ' ');
  if (field.lowercase) value = value.toLowerCase();

  if (value === '') {
    return field.required ? { issue: `missing ${field.label}; ${whatToGive(field)}` } : noValue;
  }

  if (field.kind === 'select') {
    const options = field.options ?? [];
    if (!options.some((option) => option.value === value)) {
      const choices = options.map((option) => `${JSON.stringify(option.value)} (${option.label})`).join(', ');
      return { issue: `${JSON.stringify(value)} is not one of the choices for ${field.label}; choose ${choices}` };
    }
    return { value, jsonValues: new Map() };
  }

  for (const rejection of field.rejections ?? []) {
    const expression = wholeValueRegExp(rejection.pattern);
    if (expression.test(value)) {
      const shown = field.secret ? describeSecret(value) : JSON.stringify(value);
      return { issue: `${field.label} ${shown}: ${value.replace(expression, rejection.message)}` };
    }
  }

  for (const rewrite of field.rewrites ?? []) {
    const expression = wholeValueRegExp(rewrite.pattern);
    if (expression.test(value)) {
      value = value.replace(expression, rewrite.replacement);
      break;
    }
  }

  if (field.pattern !== undefined && !new RegExp(field.pattern, 'u').test(value)) {
    const shown = field.secret ? `the value given (${describeSecret(value)})` : JSON.stringify(value);
    return { issue: `${field.label}: ${shown} is not in the expected format; ${whatToGive(field)}` };
  }

  if (field.json !== undefined) {
    const parsed = readJsonDocument(field, field.json, value);
    if ('issue' in parsed) return parsed;
    return { value, jsonValues: parsed.values };
  }
  return { value, jsonValues: new Map() };
}

function whatToGive(field: PresetField): string {
  if (field.kind === 'select') {
    return `choose ${(field.options ?? []).map((option) => JSON.stringify(option.value)).join(', ')}`;
  }
  if (field.patternHint !== undefined) return `give ${field.patternHint}`;
  if (field.example !== undefined && !field.secret) return `give a value such as ${JSON.stringify(field.example)}`;
  return `give the ${field.label}: ${field.help}`;
}

/**
 * Describes a secret without revealing it: its length, and its type prefix (such as
 * `xoxp-` or `sk_`) when it has one, because that prefix names the kind of token pasted.
 */
function describeSecret(value: string): string {
  const prefix = /^[A-Za-z]{2,10}[-_]/.exec(value)?.[0];
  return prefix === undefined ? `${value.length} characters` : `starts with "${prefix}", ${value.length} characters`;
}

function wholeValueRegExp(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, 'iu');
}

function readJsonDocument(field: PresetField, spec: PresetJsonSpec, text: string): { values: Map<string, string> } | { issue: string } {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    // The parser's message quotes the input, which contains a private key, so it is not shown.
    return { issue: `${field.label} is not valid JSON; paste the whole of ${spec.description}, from the opening { to the closing }` };
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    return { issue: `${field.label} is JSON but not an object; paste the whole of ${spec.description}, from the opening { to the closing }` };
  }
  const record = document as Record<string, unknown>;

  const kind = record[spec.kindKey];
  if (kind !== spec.kindValue) {
    const known = typeof kind === 'string' ? spec.kindMessages[kind] : undefined;
    const message = (known ?? spec.otherKindMessage).replaceAll('{kind}', typeof kind === 'string' ? kind : 'missing');
    return { issue: `${field.label}: ${message}` };
  }

  const values = new Map<string, string>();
  const problems: string[] = [];
  for (const key of spec.keys) {
    const value = record[key.key];
    if (value === undefined || value === '') {
      if (key.default !== undefined) values.set(key.key, key.default);
      else if (key.required) problems.push(`has no "${key.key}"`);
      continue;
    }
    if (typeof value !== 'string') {
      problems.push(`has a "${key.key}" that is not a string`);
      continue;
    }
    if (key.pattern !== undefined && !new RegExp(key.pattern, 'u').test(value)) {
      problems.push(`has "${key.key}": ${JSON.stringify(value)}, but ${key.patternHint ?? 'that value is not valid'}`);
      continue;
    }
    values.set(key.key, value);
  }
  if (problems.length > 0) {
    return { issue: `${field.label} ${problems.join(', and ')}; paste the whole of ${spec.description} as downloaded, without edits` };
  }
  return { values };
}

/**
 * Fills a template's placeholders. Returns undefined when a placeholder has no value,
 * and otherwise the text and the field that supplied the first placeholder's value.
 */
function fillTemplate(template: string, variables: Variables): { text: string; field: string | undefined } | undefined {
  let missing = false;
  let field: string | undefined;
  const text = template.replace(PLACEHOLDER, (_placeholder, names: string) => {
    for (const variableName of names.split('|')) {
      const variable = variables.get(variableName);
      if (variable !== undefined && variable.value !== '') {
        field ??= variable.field;
        return variable.value;
      }
    }
    missing = true;
    return '';
  });
  return missing ? undefined : { text, field };
}

interface BuiltDocument {
  document: Record<string, unknown>;
  /** Preset field that supplied each document property, for reporting validation issues. */
  origins: Map<string, string>;
}

function buildDocument(preset: Preset, name: string, variables: Variables, targets: Record<string, Variable>): BuiltDocument | { issues: PresetIssue[] } {
  const issues: PresetIssue[] = [];
  const origins = new Map<string, string>();
  const document: Record<string, unknown> = { name, type: preset.type };

  // A required template with an unfilled placeholder is a mistake in the catalogue, not in the values.
  const required = (template: string, property: string): string => {
    const filled = fillTemplate(template, variables);
    if (filled === undefined) {
      issues.push({ path: '', message: `preset "${preset.id}" cannot fill ${property} template ${JSON.stringify(template)}; this is a bug in the preset catalogue` });
      return '';
    }
    if (filled.field !== undefined && !origins.has(property)) origins.set(property, filled.field);
    return filled.text;
  };

  for (const [property, value] of Object.entries(preset.defaults)) {
    if (typeof value !== 'string') {
      document[property] = structuredClone(value);
      continue;
    }
    const filled = fillTemplate(value, variables);
    if (filled === undefined) continue;
    document[property] = filled.text;
    if (filled.field !== undefined) origins.set(property, filled.field);
  }
  for (const [property, variable] of Object.entries(targets)) {
    document[property] = variable.value;
    origins.set(property, variable.field);
  }

  if (preset.tokenUrlTemplate !== undefined) document['tokenUrl'] = required(preset.tokenUrlTemplate, 'tokenUrl');
  document['allowedWebsites'] = preset.allowedWebsitesTemplate.map((template) => required(template, 'allowedWebsites'));
  document['extraHeaders'] = Object.fromEntries(Object.entries(preset.extraHeaders).map(([header, template]) => [header, required(template, 'extraHeaders')]));
  if (preset.probe !== null) document['probeUrl'] = required(preset.probe.url, 'probeUrl');

  return issues.length > 0 ? { issues } : { document, origins };
}

/** Re-words a bundles-file validation issue for the preset form: the field that supplied the value, or the document property. */
function mapDocumentIssue(issue: { path: string; message: string }, origins: Map<string, string>): PresetIssue {
  if (!issue.path.startsWith(DOCUMENT_PREFIX)) return issue;

  const relative = issue.path.slice(DOCUMENT_PREFIX.length).replace(/^\./, '');
  const property = /^[A-Za-z_][A-Za-z0-9_]*/.exec(relative)?.[0] ?? '';
  const field = origins.get(property);
  return { path: field ?? relative, message: issue.message };
}
